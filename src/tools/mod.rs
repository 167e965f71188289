//! The tool registry: what each agent may call, argument validation, limits, and execution.
//!
//! Built once in `App::build` and shared as `Arc<ToolRegistry>`. For an agent it announces the
//! tools of its YAML in declared order (`specs_for`; MCP entries expanded into the server's
//! tools) and runs them (`execute`): find the tool, enforce `rate_limit` (sliding window per
//! agent and tool), validate the arguments against the tool's JSON Schema (`schema`), then run
//! it within its `timeout` (default 30 s) and the run's deadline. Whatever goes wrong is an
//! observation (`ToolOutcome.error`), never a panic or an `Err`: the model reads it and decides.
//! `execute_direct` serves `POST /v1/tools/execute`: built-ins (with runtime.yaml's
//! `spec.tools.<name>` as their config) and the MCP tools of any agent, no agent context.
//!
//! Tool kinds: `builtin`/`internal` run `builtin::run` (with the catalogue's schema, whatever
//! `parameters` the YAML repeats; a name that is not a built-in is logged and not offered);
//! `client` tools are announced but not run
//! (`{"ok": true}`); `webhook` tools POST their arguments to the configured URL through the
//! network policy; `mcp` entries are served by `mcp::McpServer`. `agent` tools are announced
//! here but run by the runtime (they need `Runtime::run`), which intercepts them before calling
//! `execute`. Not here: the sandbox rules (`policy`), outbound HTTP (`fetch`).

mod builtin;
mod fetch;
mod limits;
mod mcp;
mod policy;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::config::agent::{ToolConfig, ToolKind};
use crate::config::{AgentConfig, AgentEntry, Config};
use crate::providers::router::ModelRouter;
use crate::providers::ToolSpec;
use crate::rag::Rag;
use crate::store::Store;
use builtin::BuiltinCall;
use mcp::McpServer;

/// The timeout of a tool that does not set one, and of direct execution.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a tool call knows about its caller.
#[derive(Clone)]
pub struct ToolContext {
    /// The calling agent (empty for direct execution).
    pub agent: String,
    pub session_id: String,
    /// The agent's model router, for tools that ask the model (text_summarize).
    pub model: Option<Arc<ModelRouter>>,
    /// The run's deadline; no tool runs past it.
    pub deadline: tokio::time::Instant,
    /// The agent's knowledge collection (`spec.knowledge`), for rag_query / rag_ingest.
    pub collection: Option<String>,
}

/// The result of one call: the observation, and the failure when there was one (then `output`
/// is `{"error": message}`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub output: Value,
    pub error: Option<String>,
    pub duration: Duration,
}

impl ToolOutcome {
    fn failed(message: String, duration: Duration) -> ToolOutcome {
        ToolOutcome { output: json!({ "error": message }), error: Some(message), duration }
    }
}

/// A built-in as `GET /v1/tools/builtin` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuiltinInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: Value,
}

/// A tool as `GET /v1/tools` lists it: every agent that uses it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolListing {
    pub name: String,
    /// The declared type (`builtin`, `internal`, `client`, `webhook`, `agent`), or `mcp`.
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub agents: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("Tool '{0}' not found")]
    UnknownTool(String),
    /// `loc` is the path to the field inside the input (`["url"]`; empty: the input itself).
    #[error("invalid input for '{tool}': {field}: {message}")]
    InvalidInput { tool: String, field: String, loc: Vec<Value>, message: String },
    #[error("runtime.yaml: spec.tools.{0}: not a built-in tool (see GET /v1/tools/builtin)")]
    UnknownDirectConfig(String),
}

pub struct ToolRegistry {
    store: Arc<Store>,
    rag: Arc<Rag>,
    builtins: Vec<BuiltinInfo>,
    builtin_schemas: HashMap<&'static str, schema::Compiled>,
    /// Schemas of the agents' own tools (client, webhook, agent), by (agent, tool).
    declared_schemas: HashMap<(String, String), schema::Compiled>,
    servers: Vec<Arc<McpServer>>,
    agents: Vec<Arc<AgentConfig>>,
    /// runtime.yaml `spec.tools`: the config of built-ins run directly.
    direct_config: HashMap<String, Map<String, Value>>,
    limiter: limits::RateLimiter,
}

/// A tool found for a call.
enum Target<'a> {
    Builtin { tool: Option<&'a ToolConfig>, name: &'static str },
    Declared(&'a ToolConfig),
    Mcp { server: Arc<McpServer>, tool: mcp::RemoteTool },
}

impl ToolRegistry {
    /// Compiles every schema and prepares (without starting) the MCP servers. Problems in an
    /// agent's tools are logged and make that tool fail when called; only an unusable
    /// runtime.yaml `spec.tools` is an error.
    pub fn new(config: &Config, store: Arc<Store>, rag: Arc<Rag>) -> Result<ToolRegistry, ToolError> {
        let builtins = builtin::catalog::catalog();
        let builtin_schemas = builtins.iter().map(|info| (info.name, schema::compile(&info.parameters))).collect();
        let agents: Vec<Arc<AgentConfig>> = config.agents.iter().filter_map(AgentEntry::config).cloned().collect();
        let mut declared_schemas = HashMap::new();
        let mut servers = Vec::new();
        for agent in &agents {
            for tool in &agent.tools {
                match tool.kind {
                    ToolKind::Builtin if !builtin::is_builtin(&tool.name) => {
                        tracing::warn!(agent = %agent.name, tool = %tool.name, "not a built-in tool; it will not be offered");
                    }
                    ToolKind::Builtin => {}
                    ToolKind::Mcp => match McpServer::new(&agent.name, tool) {
                        Ok(server) => servers.push(Arc::new(server)),
                        Err(error) => tracing::warn!(%error, "MCP entry ignored"),
                    },
                    ToolKind::Agent | ToolKind::Client | ToolKind::Webhook => {
                        let compiled = schema::compile(&tool.parameters);
                        if let Err(reason) = &compiled {
                            tracing::warn!(agent = %agent.name, tool = %tool.name, %reason, "invalid parameter schema");
                        }
                        declared_schemas.insert((agent.name.clone(), tool.name.clone()), compiled);
                    }
                }
            }
        }
        let mut direct_config = HashMap::new();
        for (name, settings) in &config.runtime.tools {
            if !builtin::is_builtin(name) {
                return Err(ToolError::UnknownDirectConfig(name.clone()));
            }
            direct_config.insert(name.clone(), settings.clone());
        }
        Ok(ToolRegistry {
            store,
            rag,
            builtins,
            builtin_schemas,
            declared_schemas,
            servers,
            agents,
            direct_config,
            limiter: limits::RateLimiter::default(),
        })
    }

    /// Connects every MCP server now (they connect lazily otherwise); failures are logged.
    pub async fn start(&self) {
        let mut connecting = tokio::task::JoinSet::new();
        for server in &self.servers {
            let server = Arc::clone(server);
            connecting.spawn(async move {
                // Failures are logged by the server and retried on first use.
                let _ = server.tools().await;
            });
        }
        while connecting.join_next().await.is_some() {}
    }

    /// Stops every MCP server (closing stdio children cleanly).
    pub async fn shutdown(&self) {
        let mut stopping = tokio::task::JoinSet::new();
        for server in &self.servers {
            let server = Arc::clone(server);
            stopping.spawn(async move { server.shutdown().await });
        }
        while stopping.join_next().await.is_some() {}
    }

    /// The 17 built-ins, in catalogue order.
    pub fn builtins(&self) -> Vec<BuiltinInfo> {
        self.builtins.clone()
    }

    fn builtin(&self, name: &str) -> Option<&BuiltinInfo> {
        self.builtins.iter().find(|info| info.name == name)
    }

    fn servers_of<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a Arc<McpServer>> + 'a {
        self.servers.iter().filter(move |server| server.agent == agent)
    }

    /// The tools to announce to the model for `agent`, in its declared order.
    pub async fn specs_for(&self, agent: &AgentConfig) -> Vec<ToolSpec> {
        let mut specs: Vec<ToolSpec> = Vec::with_capacity(agent.tools.len());
        for tool in &agent.tools {
            match tool.kind {
                ToolKind::Builtin => {
                    if let Some(info) = self.builtin(&tool.name) {
                        let description = if tool.description.is_empty() {
                            info.description.to_string()
                        } else {
                            tool.description.clone()
                        };
                        specs.push(ToolSpec {
                            name: tool.name.clone(),
                            description,
                            parameters: info.parameters.clone(),
                        });
                    }
                }
                ToolKind::Agent | ToolKind::Client | ToolKind::Webhook => specs.push(ToolSpec {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    parameters: tool.parameters.clone(),
                }),
                ToolKind::Mcp => {
                    let Some(server) = self.servers_of(&agent.name).find(|server| server.entry == tool.name) else {
                        continue;
                    };
                    // An unreachable server contributes no tools; it was logged.
                    for remote in server.tools().await.iter().flat_map(|tools| tools.iter()) {
                        if !specs.iter().any(|spec| spec.name == remote.name) {
                            specs.push(ToolSpec {
                                name: remote.name.clone(),
                                description: remote.description.clone(),
                                parameters: remote.parameters.clone(),
                            });
                        }
                    }
                }
            }
        }
        specs
    }

    /// Every tool the agents use, merged by name, for `GET /v1/tools`.
    pub fn listing(&self) -> Vec<ToolListing> {
        let mut listing: Vec<ToolListing> = Vec::new();
        let mut add = |name: &str, kind: &str, description: &str, agent: &str| match listing
            .iter_mut()
            .find(|entry| entry.name == name)
        {
            Some(entry) if entry.agents.iter().any(|known| known == agent) => {}
            Some(entry) => entry.agents.push(agent.to_string()),
            None => listing.push(ToolListing {
                name: name.to_string(),
                kind: kind.to_string(),
                description: description.to_string(),
                agents: vec![agent.to_string()],
            }),
        };
        for agent in &self.agents {
            for tool in &agent.tools {
                let server = self.servers_of(&agent.name).find(|server| server.entry == tool.name);
                match (tool.kind, server) {
                    (ToolKind::Mcp, Some(server)) => {
                        let known = server.known_tools();
                        if known.is_empty() {
                            add(&tool.name, "mcp", &tool.description, &agent.name);
                        }
                        for remote in known.iter() {
                            add(&remote.name, "mcp", &remote.description, &agent.name);
                        }
                    }
                    (ToolKind::Mcp, None) => {}
                    (ToolKind::Builtin, _) => {
                        // A name that is not a built-in is not offered, so it is not listed.
                        if let Some(info) = self.builtin(&tool.name) {
                            let description =
                                if tool.description.is_empty() { info.description } else { &tool.description };
                            add(&tool.name, &tool.declared_type, description, &agent.name);
                        }
                    }
                    _ => add(&tool.name, &tool.declared_type, &tool.description, &agent.name),
                }
            }
        }
        listing
    }

    /// Finds `name` among `agent`'s tools (MCP servers are connected if needed).
    async fn find<'a>(&self, agent: &'a AgentConfig, name: &str) -> Result<Target<'a>, String> {
        if let Some(tool) = agent.tools.iter().find(|tool| tool.name == name && tool.kind != ToolKind::Mcp) {
            return match (tool.kind, self.builtin(name)) {
                (ToolKind::Builtin, Some(info)) => Ok(Target::Builtin { tool: Some(tool), name: info.name }),
                (ToolKind::Builtin, None) => Err(format!("Tool '{name}' not found (not a built-in tool)")),
                _ => Ok(Target::Declared(tool)),
            };
        }
        let mut unreachable = Vec::new();
        for server in self.servers_of(&agent.name) {
            match server.tools().await {
                Ok(tools) => {
                    if let Some(tool) = tools.iter().find(|tool| tool.name == name) {
                        return Ok(Target::Mcp { server: Arc::clone(server), tool: tool.clone() });
                    }
                }
                Err(error) => unreachable.push(error.to_string()),
            }
        }
        if unreachable.is_empty() {
            Err(format!("Tool '{name}' not found"))
        } else {
            Err(format!("Tool '{name}' not found ({})", unreachable.join("; ")))
        }
    }

    /// Runs `name` for `agent`. Every failure (unknown tool, rate limit, invalid arguments,
    /// policy, timeout, the tool's own error) comes back as an outcome with `error` set.
    pub async fn execute(&self, agent: &AgentConfig, name: &str, input: Value, ctx: &ToolContext) -> ToolOutcome {
        let started = tokio::time::Instant::now();
        let span = tracing::debug_span!("tool.execute", tool = %name, agent = %agent.name);
        let result = async {
            let target = self.find(agent, name).await?;
            let (rate_limit, timeout) = match &target {
                Target::Builtin { tool, .. } => {
                    (tool.and_then(|tool| tool.rate_limit.clone()), tool.map_or(DEFAULT_TIMEOUT, |tool| tool.timeout))
                }
                Target::Declared(tool) => (tool.rate_limit.clone(), tool.timeout),
                Target::Mcp { server, .. } => (server.rate_limit.clone(), server.timeout),
            };
            if let Some(limit) = rate_limit {
                if !self.limiter.admit(&agent.name, name, &limit) {
                    return Err(format!("Rate limit exceeded for '{name}'"));
                }
            }
            let compiled = match &target {
                Target::Builtin { name, .. } => self.builtin_schemas.get(name).cloned(),
                Target::Declared(tool) => self.declared_schemas.get(&(agent.name.clone(), tool.name.clone())).cloned(),
                Target::Mcp { tool, .. } => Some(tool.validator.clone()),
            };
            validate(name, compiled.as_ref(), &input).map_err(|error| error.to_string())?;
            self.run(&target, name, input, ctx, timeout).await
        }
        .instrument(span)
        .await;
        finish(result, started.elapsed())
    }

    /// Runs a built-in or a registered MCP tool outside any agent (`POST /v1/tools/execute`).
    /// Unknown tools and invalid input are `Err`; a tool that runs and fails is an outcome with
    /// `error` set.
    pub async fn execute_direct(&self, name: &str, input: Value) -> Result<ToolOutcome, ToolError> {
        let started = tokio::time::Instant::now();
        let target = match self.builtin(name) {
            Some(info) => Target::Builtin { tool: None, name: info.name },
            None => self.find_mcp(name).await.ok_or_else(|| ToolError::UnknownTool(name.to_string()))?,
        };
        let (compiled, timeout) = match &target {
            Target::Builtin { name, .. } => (self.builtin_schemas.get(name).cloned(), DEFAULT_TIMEOUT),
            Target::Mcp { server, tool } => (Some(tool.validator.clone()), server.timeout),
            Target::Declared(_) => (None, DEFAULT_TIMEOUT),
        };
        validate(name, compiled.as_ref(), &input)?;
        let ctx = ToolContext {
            agent: String::new(),
            session_id: String::new(),
            model: None,
            deadline: tokio::time::Instant::now() + timeout,
            collection: None,
        };
        let span = tracing::debug_span!("tool.execute", tool = %name, agent = "");
        let result = self.run(&target, name, input, &ctx, timeout).instrument(span).await;
        Ok(finish(result, started.elapsed()))
    }

    async fn find_mcp(&self, name: &str) -> Option<Target<'static>> {
        for server in &self.servers {
            if let Ok(tools) = server.tools().await {
                if let Some(tool) = tools.iter().find(|tool| tool.name == name) {
                    return Some(Target::Mcp { server: Arc::clone(server), tool: tool.clone() });
                }
            }
        }
        None
    }

    /// Dispatches within the timeout and the deadline.
    async fn run(
        &self,
        target: &Target<'_>,
        name: &str,
        input: Value,
        ctx: &ToolContext,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = ctx.deadline.min(tokio::time::Instant::now() + timeout);
        let run_deadline_first = ctx.deadline < tokio::time::Instant::now() + timeout;
        let Value::Object(arguments) = input else {
            return Err("Input should be an object".to_string());
        };
        let empty = Map::new();
        let work = async {
            match target {
                Target::Builtin { tool, name } => {
                    let config = match tool {
                        Some(tool) => &tool.config,
                        None => self.direct_config.get(*name).unwrap_or(&empty),
                    };
                    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let call = BuiltinCall {
                        name,
                        input: &arguments,
                        config,
                        ctx,
                        store: &self.store,
                        rag: &self.rag,
                        timeout: remaining,
                    };
                    builtin::run(&call).await.map_err(|failure| failure.to_string())
                }
                Target::Declared(tool) => match tool.kind {
                    ToolKind::Client => Ok(json!({"ok": true})),
                    ToolKind::Webhook => webhook(tool, &arguments, deadline).await,
                    _ => Err("agent tools are run by the runtime".to_string()),
                },
                Target::Mcp { server, tool } => {
                    server.call(&tool.remote, arguments.clone()).await.map_err(|error| error.to_string())
                }
            }
        };
        let out_of_time = || {
            if run_deadline_first {
                format!("Tool '{name}' stopped at the run's deadline")
            } else {
                format!("Tool '{name}' timed out after {:.1}s", timeout.as_secs_f64())
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            // A tool whose own timer (an HTTP timeout set to the same deadline) fired first
            // failed for the same reason: say so the same way.
            Ok(Err(_)) if tokio::time::Instant::now() >= deadline => Err(out_of_time()),
            Ok(result) => result,
            Err(_) => Err(out_of_time()),
        }
    }
}

fn validate(tool: &str, compiled: Option<&schema::Compiled>, input: &Value) -> Result<(), ToolError> {
    let invalid = |field: String, loc: Vec<Value>, message: String| ToolError::InvalidInput {
        tool: tool.to_string(),
        field,
        loc,
        message,
    };
    match compiled {
        Some(Ok(validator)) => {
            schema::check(validator, input).map_err(|error| invalid(error.field(), error.path, error.message))
        }
        Some(Err(reason)) => {
            Err(invalid("input".to_string(), Vec::new(), format!("the tool's parameter schema is invalid: {reason}")))
        }
        None if input.is_object() => Ok(()),
        None => Err(invalid("input".to_string(), Vec::new(), "Input should be an object".to_string())),
    }
}

fn finish(result: Result<Value, String>, duration: Duration) -> ToolOutcome {
    match result {
        Ok(output) => ToolOutcome { output, error: None, duration },
        Err(message) => {
            tracing::debug!(error = %message, "tool failed");
            ToolOutcome::failed(message, duration)
        }
    }
}

/// A `webhook` tool: POST the arguments as JSON to the configured URL (`method: GET` sends them
/// as query parameters instead), with its headers, through the network policy; the answer (JSON
/// or text) is the observation.
async fn webhook(
    tool: &ToolConfig,
    arguments: &Map<String, Value>,
    deadline: tokio::time::Instant,
) -> Result<Value, String> {
    let url = tool.url.as_deref().ok_or_else(|| format!("webhook tool '{}' has no url", tool.name))?;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let policy = policy::NetPolicy::from_config(&tool.config, remaining);
    let method = tool.method.clone().unwrap_or_else(|| "POST".to_string()).to_ascii_uppercase();
    let call = if method == "GET" {
        // A GET carries the arguments in the query string instead of a body.
        let query = arguments
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())));
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        let separator = if url.contains('?') { '&' } else { '?' };
        let mut call = fetch::HttpCall::get(&format!("{url}{separator}{encoded}"));
        call.headers = tool.headers.clone();
        call
    } else {
        let mut call = fetch::HttpCall::post_json(url, &Value::Object(arguments.clone()), tool.headers.clone());
        call.method = method;
        call
    };
    let reply = fetch::fetch(&policy, call).await.map_err(|error| error.to_string())?;
    if !reply.is_success() {
        let body: String = reply.text().chars().take(300).collect();
        return Err(format!("the webhook answered HTTP {}: {body}", reply.status));
    }
    Ok(reply.body_value())
}
