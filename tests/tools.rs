//! Tools: the registry's endpoints, every built-in against local servers and temp files, the
//! network and file policy, agent-scoped calls, and MCP servers.

mod agents;
mod direct;
mod local;
mod mcp;
mod messaging;
mod web;

use serde_json::{json, Value};

use crate::support::{Answer, TestApp};

/// runtime.yaml giving the built-ins run by `POST /v1/tools/execute` their config.
pub fn runtime_yaml(tools: &Value) -> String {
    format!("apiVersion: astromesh/v1\nkind: RuntimeConfig\nspec:\n  tools: {tools}\n")
}

/// A daemon whose direct execution uses `tools` (`{tool_name: config}`).
pub async fn app_with(tools: Value) -> TestApp {
    TestApp::start(&[("runtime.yaml", &runtime_yaml(&tools))]).await
}

pub async fn execute(app: &TestApp, tool: &str, input: Value) -> Answer {
    app.post("/v1/tools/execute", &json!({"tool": tool, "input": input})).await
}

/// The `detail` of an error answer.
pub fn detail(answer: &Answer) -> String {
    answer.json["detail"].as_str().unwrap_or_default().to_string()
}
