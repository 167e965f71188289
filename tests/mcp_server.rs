//! `POST /mcp`: the agents as MCP tools, driven by rmcp's Streamable HTTP client, by raw
//! JSON-RPC, and by the official MCP Python SDK.

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

use crate::runs::{agent, app_with};
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::{python, send, TestApp};

/// A plain-HTTP reqwest client (rustls with ring, as the daemon builds it; no TLS is used).
fn http_client() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap()
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result.content.iter().filter_map(|block| block.as_text().map(|text| text.text.clone())).collect()
}

#[tokio::test]
async fn rmcp_client_lists_and_calls_the_agents() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Paris is the capital of France."));
    let app = app_with(&llm, &[("geo", ""), ("helper", "")]).await;
    let transport = StreamableHttpClientTransport::with_client(
        http_client(),
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.url)),
    );
    let client = ClientConfig::default().serve(transport).await.expect("initialize succeeds");
    let info = client.peer_info().expect("server info after initialize");
    assert_eq!(info.server_info.as_ref().unwrap().name, "astromesh");

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, ["agent_geo", "agent_helper"]);
    assert_eq!(tools[0].description.as_deref(), Some("geo"));
    assert_eq!(
        Value::Object((*tools[0].input_schema).clone()),
        json!({"type": "object", "properties": {
            "query": {"type": "string", "description": "The request for the agent"},
            "session_id": {"type": "string", "description": "Continue a stored conversation"}
        }, "required": ["query"]})
    );

    let arguments = json!({"query": "Capital of France?", "session_id": "mcp-1"}).as_object().cloned().unwrap();
    let result = client.call_tool(CallToolRequestParams::new("agent_geo").with_arguments(arguments)).await.unwrap();
    assert_ne!(result.is_error, Some(true));
    assert_eq!(text_of(&result), "Paris is the capital of France.");
    let stored = app.get("/v1/memory/geo/history/mcp-1").await;
    assert_eq!(stored.json["messages"].as_array().unwrap().len(), 2, "the session was used");

    // Failures are tool errors the model can read, not protocol errors.
    let missing = client
        .call_tool(
            CallToolRequestParams::new("agent_nobody")
                .with_arguments(json!({"query": "hi"}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true));
    assert_eq!(text_of(&missing), "Agent 'nobody' not found");
    let no_query = client
        .call_tool(CallToolRequestParams::new("agent_geo").with_arguments(json!({}).as_object().cloned().unwrap()))
        .await
        .unwrap();
    assert_eq!(no_query.is_error, Some(true));
    assert_eq!(text_of(&no_query), "`query` is required");

    client.cancel().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn raw_json_rpc_over_http() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("pong"));
    let app = app_with(&llm, &[("helper", "")]).await;
    let url = format!("{}/mcp", app.url);
    let headers = [("accept", "application/json, text/event-stream"), ("mcp-protocol-version", "2025-06-18")];
    let post = |body: Value| send("POST", &url, Some(body.to_string().into_bytes()), &headers);

    let init = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
    .await;
    assert_eq!(init.status, 200, "{}", init.text);
    assert_eq!(init.json["result"]["serverInfo"]["name"], "astromesh");
    assert!(init.json["result"]["capabilities"]["tools"].is_object());

    let listed = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["result"]["tools"][0]["name"], "agent_helper");

    let called = post(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "agent_helper", "arguments": {"query": "ping"}}}))
    .await;
    assert_eq!(called.status, 200, "{}", called.text);
    assert_eq!(called.json["result"]["content"], json!([{"type": "text", "text": "pong"}]));
    assert_eq!(called.json["result"]["isError"], false);
    app.stop().await;
}

#[tokio::test]
async fn the_official_mcp_python_sdk_lists_and_calls() {
    let Some(python) = python::python().await else { return };
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Hello from the agent."));
    let helper = agent("helper", &llm, "");
    let app = TestApp::start(&[("agents/helper.agent.yaml", &helper)]).await;
    let seen =
        python::run_script(&python, "mcp_client.py", &[&format!("{}/mcp", app.url), "agent_helper", "Say hello"]).await;
    assert_eq!(seen["server"], "astromesh");
    assert_eq!(seen["tools"][0]["name"], "agent_helper");
    assert_eq!(seen["tools"][0]["schema"]["required"], json!(["query"]));
    assert_eq!(seen["is_error"], false);
    assert_eq!(seen["text"], json!(["Hello from the agent."]));
    assert_eq!(
        llm.chat_requests().last().unwrap().body["messages"].as_array().unwrap().last().unwrap()["content"],
        "Say hello"
    );
    app.stop().await;
}
