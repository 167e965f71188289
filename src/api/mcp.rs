//! `POST /mcp`: the agents as an MCP server (Streamable HTTP, through `rmcp`).
//!
//! Each ready agent is one tool, `agent_<name>`, taking `{query, session_id?}` and answering
//! with the run's response as text. A failed run is an `isError` result, not a protocol error,
//! so clients show the message to the model. The service is stateless (no `Mcp-Session-Id`;
//! every POST stands alone) and answers plain JSON, which keeps it behind the same middleware as
//! the rest of the API and needs no per-session tasks to drain at shutdown. Host validation is
//! off because the daemon binds what the operator configured; there is no auth today, as for
//! every other route.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};

use crate::runtime::{RunRequest, Runtime};

/// Tool names are `agent_<name>`.
const TOOL_PREFIX: &str = "agent_";

/// The tower service mounted at `/mcp`.
pub(crate) fn service(
    runtime: Runtime,
    shutdown: tokio_util::sync::CancellationToken,
    max_body: usize,
) -> StreamableHttpService<AgentTools, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(Vec::<String>::new())
        .with_max_request_body_bytes(max_body)
        .with_cancellation_token(shutdown.child_token());
    StreamableHttpService::new(
        move || Ok(AgentTools { runtime: runtime.clone() }),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// The MCP handler: lists and runs the runtime's ready agents.
#[derive(Clone)]
pub(crate) struct AgentTools {
    runtime: Runtime,
}

fn input_schema() -> Map<String, Value> {
    let schema = json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "The request for the agent"},
            "session_id": {"type": "string", "description": "Continue a stored conversation"}
        },
        "required": ["query"]
    });
    match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn failed(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

impl AgentTools {
    fn tools(&self) -> Vec<Tool> {
        let schema = Arc::new(input_schema());
        self.runtime
            .agents()
            .iter()
            .filter(|entry| entry.config().is_some())
            .map(|entry| {
                let description = if entry.description.is_empty() {
                    format!("Ask the agent '{}'", entry.name)
                } else {
                    entry.description.clone()
                };
                Tool::new(format!("{TOOL_PREFIX}{}", entry.name), description, schema.clone())
            })
            .collect()
    }

    async fn call(&self, request: CallToolRequestParams) -> CallToolResponse {
        let Some(agent) = request.name.strip_prefix(TOOL_PREFIX) else {
            return failed(format!("unknown tool '{}'", request.name));
        };
        let arguments = request.arguments.unwrap_or_default();
        let query = match arguments.get("query") {
            Some(Value::String(query)) => query.clone(),
            Some(_) => return failed("`query` must be a string"),
            None => return failed("`query` is required"),
        };
        let session_id = match arguments.get("session_id") {
            Some(Value::String(session)) => Some(session.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return failed("`session_id` must be a string"),
        };
        let run = RunRequest { agent: agent.to_string(), query, session_id, context: Map::new(), history: None };
        match self.runtime.run(run, None).await {
            Ok(outcome) => CallToolResult::success(vec![ContentBlock::text(outcome.response)]).into(),
            Err(error) => failed(error.to_string()),
        }
    }
}

impl ServerHandler for AgentTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("astromesh", env!("CARGO_PKG_VERSION")))
            .with_instructions("Each tool runs one Astromesh agent and returns its answer.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(self.call(request).await)
    }
}
