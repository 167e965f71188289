//! MCP servers as tool sources, through the official Rust SDK (`rmcp`) as a client.
//!
//! One `McpServer` per `type: mcp` entry of an agent. It connects lazily (or when the registry
//! starts): spawns the stdio command, or opens a Streamable HTTP session, performs the
//! initialize handshake and lists the tools, which are exposed as `<prefix><remote name>`
//! (prefix: `config.prefix`, default `<entry name>_`; names are squeezed into
//! `^[a-zA-Z0-9_-]{1,64}$`). With `tool_name` the entry exposes that one remote tool under its
//! own name. Calls go through `tools/call`. A server whose transport has closed (a crashed
//! child) is restarted on the next use; a failed connect is not retried for `RETRY_AFTER`, so a
//! broken server does not cost every run a process spawn. `shutdown` closes every session:
//! rmcp closes a child's stdin, waits, then SIGTERMs and kills it.
//!
//! The child's environment is cleared but for `PATH`, `HOME`, `LANG`, `TMPDIR` and `USER`, plus
//! the entry's `env`: the daemon's API keys are not handed to third-party servers. Its stderr
//! is logged at debug level. The HTTP transport is rmcp's reqwest client, with rustls on ring
//! configured here. MCP endpoints are the operator's configuration, not the model's choice, so
//! the network policy of the built-ins does not apply to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::schema;
use crate::config::agent::{valid_tool_name, RateLimit, ToolConfig};

/// How long a failed connect is remembered before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How long `shutdown` waits for one server to exit.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Variables a stdio server inherits from the daemon.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR", "USER"];

#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    #[error("MCP server '{server}' could not start: {reason}")]
    Start { server: String, reason: String },
    #[error("MCP server '{server}' did not complete the handshake: {reason}")]
    Handshake { server: String, reason: String },
    #[error("MCP server '{server}' failed to list its tools: {reason}")]
    List { server: String, reason: String },
    #[error("MCP server '{server}': {reason}")]
    Call { server: String, reason: String },
    #[error("MCP server '{server}' is unavailable (last failure {ago:.0}s ago: {reason})")]
    Unavailable { server: String, ago: f64, reason: String },
}

/// How to reach the server.
#[derive(Debug, Clone)]
enum Endpoint {
    Stdio { command: String, args: Vec<String>, env: Vec<(String, String)>, cwd: Option<String> },
    Http { url: String, headers: Vec<(String, String)> },
}

/// A tool the server offers, as exposed to agents.
#[derive(Debug, Clone)]
pub(crate) struct RemoteTool {
    /// The server's name for it (used in `tools/call`).
    pub remote: String,
    /// The name agents see.
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub validator: schema::Compiled,
}

struct Connection {
    service: RunningService<RoleClient, ()>,
    tools: Arc<Vec<RemoteTool>>,
}

#[derive(Default)]
struct State {
    connection: Option<Connection>,
    last_failure: Option<(Instant, McpError)>,
}

/// One configured MCP server (one `type: mcp` entry of one agent).
pub(crate) struct McpServer {
    /// `agent/entry`, for logs and messages.
    pub label: String,
    pub agent: String,
    pub entry: String,
    pub rate_limit: Option<RateLimit>,
    pub timeout: Duration,
    endpoint: Endpoint,
    prefix: String,
    only: Option<String>,
    state: Mutex<State>,
    /// The last tool list, for synchronous listings.
    known: StdMutex<Arc<Vec<RemoteTool>>>,
}

impl McpServer {
    pub fn new(agent: &str, tool: &ToolConfig) -> Result<McpServer, McpError> {
        let label = format!("{agent}/{}", tool.name);
        let server = tool.server.as_ref().and_then(Value::as_object);
        let from_server = |key: &str| server.and_then(|map| map.get(key)).and_then(Value::as_str).map(str::to_string);
        let command = tool.command.clone().or_else(|| from_server("command"));
        let url = tool.url.clone().or_else(|| from_server("url"));
        let transport = tool.transport.clone().or_else(|| from_server("transport")).unwrap_or_else(|| {
            match (tool.declared_type.as_str(), &command) {
                ("mcp_http" | "mcp_sse", _) | (_, None) => "http".to_string(),
                _ => "stdio".to_string(),
            }
        });
        let endpoint = match (transport.as_str(), command, url) {
            ("stdio", Some(command), _) => {
                let mut args = tool.args.clone();
                let mut env = tool.env.clone();
                if let Some(map) = server {
                    if args.is_empty() {
                        args = map
                            .get("args")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|arg| arg.as_str().map(str::to_string))
                            .collect();
                    }
                    if env.is_empty() {
                        env = super::builtin::string_pairs(map.get("env"));
                    }
                }
                let cwd = tool.config.get("cwd").and_then(Value::as_str).map(str::to_string);
                Endpoint::Stdio { command, args, env, cwd }
            }
            ("http" | "streamable_http" | "sse", _, Some(url)) => Endpoint::Http { url, headers: tool.headers.clone() },
            (other, _, _) => {
                return Err(McpError::Start {
                    server: label,
                    reason: format!("transport '{other}' needs `command` (stdio) or `url` (http)"),
                })
            }
        };
        let prefix = tool
            .config
            .get("prefix")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}_", tool.name));
        Ok(McpServer {
            label,
            agent: agent.to_string(),
            entry: tool.name.clone(),
            rate_limit: tool.rate_limit.clone(),
            timeout: tool.timeout,
            endpoint,
            prefix,
            only: tool.tool_name.clone(),
            state: Mutex::new(State::default()),
            known: StdMutex::new(Arc::new(Vec::new())),
        })
    }

    /// The tools from the last successful listing (empty before the first connect).
    pub fn known_tools(&self) -> Arc<Vec<RemoteTool>> {
        self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The server's tools, connecting (or reconnecting after a crash) if needed.
    pub async fn tools(&self) -> Result<Arc<Vec<RemoteTool>>, McpError> {
        let mut state = self.state.lock().await;
        self.ensure_connected(&mut state).await.map(|connection| connection.tools.clone())
    }

    async fn ensure_connected<'a>(&self, state: &'a mut State) -> Result<&'a Connection, McpError> {
        if state
            .connection
            .as_ref()
            .is_some_and(|connection| connection.service.is_closed() || connection.service.peer().is_transport_closed())
        {
            tracing::warn!(server = %self.label, "MCP server connection closed; restarting it");
            if let Some(dead) = state.connection.take() {
                close(dead, &self.label).await;
            }
        }
        if state.connection.is_none() {
            if let Some((when, error)) = &state.last_failure {
                if when.elapsed() < RETRY_AFTER {
                    return Err(McpError::Unavailable {
                        server: self.label.clone(),
                        ago: when.elapsed().as_secs_f64(),
                        reason: error.to_string(),
                    });
                }
            }
            match tokio::time::timeout(self.timeout, self.connect()).await {
                Ok(Ok(connection)) => {
                    *self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = connection.tools.clone();
                    state.last_failure = None;
                    state.connection = Some(connection);
                }
                Ok(Err(error)) => {
                    tracing::warn!(server = %self.label, %error, "MCP server unavailable");
                    state.last_failure = Some((Instant::now(), error.clone()));
                    return Err(error);
                }
                Err(_) => {
                    let error = McpError::Handshake {
                        server: self.label.clone(),
                        reason: format!("no answer within {:.0}s", self.timeout.as_secs_f64()),
                    };
                    tracing::warn!(server = %self.label, %error, "MCP server unavailable");
                    state.last_failure = Some((Instant::now(), error.clone()));
                    return Err(error);
                }
            }
        }
        state
            .connection
            .as_ref()
            .ok_or_else(|| McpError::Start { server: self.label.clone(), reason: "not connected".into() })
    }

    async fn connect(&self) -> Result<Connection, McpError> {
        let server = self.label.clone();
        let service = match &self.endpoint {
            Endpoint::Stdio { command, args, env, cwd } => {
                let mut process = tokio::process::Command::new(command);
                process.args(args).env_clear().kill_on_drop(true);
                for name in INHERITED_ENV {
                    if let Ok(value) = std::env::var(name) {
                        process.env(name, value);
                    }
                }
                process.envs(env.iter().map(|(name, value)| (name, value)));
                if let Some(cwd) = cwd {
                    process.current_dir(cwd);
                }
                let start_failure = |error: std::io::Error| McpError::Start {
                    server: server.clone(),
                    reason: format!("{command}: {error}"),
                };
                let (transport, stderr) = TokioChildProcess::builder(process)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(start_failure)?;
                if let Some(stderr) = stderr {
                    let label = self.label.clone();
                    // Ends by itself when the child closes its stderr (exits).
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            tracing::debug!(server = %label, "{line}");
                        }
                    });
                }
                ().serve(transport)
                    .await
                    .map_err(|error| McpError::Handshake { server: server.clone(), reason: error.to_string() })?
            }
            Endpoint::Http { url, headers } => {
                let client = http_client().map_err(|reason| McpError::Start { server: server.clone(), reason })?;
                let mut header_map = HashMap::new();
                for (name, value) in headers {
                    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes());
                    let value = reqwest::header::HeaderValue::from_str(value);
                    match (name, value) {
                        (Ok(name), Ok(value)) => {
                            header_map.insert(name, value);
                        }
                        _ => return Err(McpError::Start { server, reason: "invalid header in `headers`".to_string() }),
                    }
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(header_map);
                let transport = StreamableHttpClientTransport::with_client(client, config);
                ().serve(transport)
                    .await
                    .map_err(|error| McpError::Handshake { server: server.clone(), reason: error.to_string() })?
            }
        };
        let listed = service.peer().list_all_tools().await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                let _ = service.cancel().await; // Closing a session we could not use; its outcome changes nothing.
                return Err(McpError::List { server, reason: error.to_string() });
            }
        };
        let mut tools = Vec::new();
        for tool in listed {
            let remote = tool.name.to_string();
            let name = match &self.only {
                Some(only) if *only != remote => continue,
                Some(_) => self.entry.clone(),
                None => exposed_name(&self.prefix, &remote),
            };
            let parameters = Value::Object((*tool.input_schema).clone());
            let validator = schema::compile(&parameters);
            if let Err(reason) = &validator {
                tracing::warn!(server = %self.label, tool = %remote, %reason, "MCP tool has an invalid input schema");
            }
            let description = tool.description.map(|text| text.to_string()).unwrap_or_default();
            tools.push(RemoteTool { remote, name, description, parameters, validator });
        }
        tracing::info!(server = %self.label, tools = tools.len(), "MCP server connected");
        Ok(Connection { service, tools: Arc::new(tools) })
    }

    /// Calls remote tool `remote` with `arguments`. The connection lock is not held during the
    /// call, so calls to one server run concurrently.
    pub async fn call(&self, remote: &str, arguments: Map<String, Value>) -> Result<Value, McpError> {
        let peer = {
            let mut state = self.state.lock().await;
            self.ensure_connected(&mut state).await?.service.peer().clone()
        };
        let params = CallToolRequestParams::new(remote.to_string()).with_arguments(arguments);
        let call_failure = |reason: String| McpError::Call { server: self.label.clone(), reason };
        let result = peer.call_tool(params).await.map_err(|error| call_failure(error.to_string()))?;
        let texts: Vec<String> = result
            .content
            .iter()
            .filter_map(|block| serde_json::to_value(block).ok())
            .map(|block| match block.get("text").and_then(Value::as_str) {
                Some(text) => text.to_string(),
                None => block.to_string(),
            })
            .collect();
        let text = texts.join("\n");
        if result.is_error == Some(true) {
            return Err(call_failure(if text.is_empty() { "the tool reported an error".to_string() } else { text }));
        }
        Ok(match result.structured_content {
            Some(structured) => structured,
            None => json!({"result": text}),
        })
    }

    /// Ends the session (and the child process).
    pub async fn shutdown(&self) {
        let connection = self.state.lock().await.connection.take();
        if let Some(connection) = connection {
            close(connection, &self.label).await;
        }
    }
}

async fn close(connection: Connection, label: &str) {
    match tokio::time::timeout(SHUTDOWN_WAIT, connection.service.cancel()).await {
        Ok(_) => tracing::debug!(server = %label, "MCP server closed"),
        Err(_) => tracing::warn!(server = %label, "MCP server did not close in time"),
    }
}

/// `prefix + remote`, with characters outside `[a-zA-Z0-9_-]` replaced by `_` and cut to 64.
pub(crate) fn exposed_name(prefix: &str, remote: &str) -> String {
    let name: String = format!("{prefix}{remote}")
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' { ch } else { '_' })
        .take(64)
        .collect();
    debug_assert!(name.is_empty() || valid_tool_name(&name));
    if name.is_empty() {
        "_".to_string()
    } else {
        name
    }
}

/// A reqwest client whose TLS is rustls with the ring provider and the webpki roots.
fn http_client() -> Result<reqwest::Client, String> {
    crate::net::client(|builder| builder)
}

#[cfg(test)]
mod tests {
    use super::exposed_name;

    #[test]
    fn exposed_names_fit_the_tool_name_rules() {
        assert_eq!(exposed_name("fs_", "list_directory"), "fs_list_directory");
        assert_eq!(exposed_name("x.", "a b/c"), "x_a_b_c");
        assert_eq!(exposed_name("p_", &"n".repeat(100)).len(), 64);
    }
}
