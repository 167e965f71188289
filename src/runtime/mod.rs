//! The agent registry and the run pipeline: the one function every entry point calls.
//!
//! `Runtime::run(RunRequest, events)` is used by the HTTP handler, the WebSocket and the CLI
//! alike; streaming is the same run with an event sender. Each ready agent gets its routers (one
//! per role) and compiled guardrails at startup. Nothing here knows about HTTP; `api/`
//! translates `RunError` into status codes. Not here: the patterns' loops (`orchestration`),
//! wire formats (`providers`), tool execution (`tools`).

pub mod context;
pub mod guardrails;
pub mod prompt;
mod reload;
mod run;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{AgentConfig, AgentEntry, AgentState, Config};
use crate::memory::Conversations;
use crate::providers::local::{LocalModelReport, LocalModels};
use crate::providers::router::{BreakerSettings, CandidateHealth, ModelRouter};
use crate::rag::Rag;
use crate::store::Store;
use crate::telemetry::{Telemetry, TraceRecorder};
use crate::tools::ToolRegistry;
use guardrails::{Blocked, Guardrails};
pub use reload::{ReloadError, ReloadProblem, ReloadReport};

pub use crate::providers::router::ProviderState;

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub agent: String,
    pub query: String,
    /// Omitted: a new `sess_<hex>` id is generated and returned.
    pub session_id: Option<String>,
    /// Variables for the prompt template.
    pub context: Map<String, Value>,
    /// Prior messages supplied by the caller (the OpenAI endpoint's earlier `messages`). When
    /// set, they replace the stored history of the session and the run persists nothing: the
    /// caller owns the conversation.
    pub history: Option<Vec<crate::memory::Turn>>,
}

/// Streamed while a run is in flight (the WebSocket forwards them).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Token(String),
    ToolCall { tool: String, input: Value },
    ToolResult { tool: String, output: Value },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolCallRecord {
    pub tool: String,
    pub input: Value,
    pub output: Value,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct UsageTotals {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Timing {
    pub total_ms: u64,
    pub model_ms: u64,
    pub tool_ms: u64,
}

/// What a run returns; serialized as the `POST /v1/agents/{name}/run` body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunOutcome {
    pub response: String,
    pub session_id: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: UsageTotals,
    pub timing: Timing,
    /// `provider/model` of the call that produced the answer.
    pub model: Option<String>,
    pub provider: Option<String>,
    pub trace_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Agent '{0}' not found")]
    UnknownAgent(String),
    #[error("Agent '{agent}' has configuration errors: {message}")]
    AgentInvalid { agent: String, message: String },
    /// The agent's deadline in seconds (`120`, `0.5`).
    #[error("Orchestration timeout exceeded ({0}s)")]
    Deadline(f64),
    #[error("{0}")]
    ProvidersDown(String),
    #[error(transparent)]
    Blocked(#[from] Blocked),
    #[error("invalid session_id: {0}")]
    InvalidSession(String),
    #[error("query must not be empty")]
    EmptyQuery,
    #[error("prompt template error in agent '{agent}': {message}")]
    Template { agent: String, message: String },
    #[error("agent tools nest deeper than {0} levels")]
    TooDeep(usize),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

/// One ready agent with what it needs to run.
pub(crate) struct AgentRuntime {
    pub config: Arc<AgentConfig>,
    /// Routers by role; `default` always exists.
    pub routers: BTreeMap<String, Arc<ModelRouter>>,
    pub guardrails: Guardrails,
}

impl AgentRuntime {
    /// The router for a pattern's role, after `role_map`; unknown roles use `default`.
    pub fn router(&self, role: &str) -> (&str, &Arc<ModelRouter>) {
        let mapped =
            self.config.orchestration.role_map.iter().find(|(from, _)| from == role).map(|(_, to)| to.as_str());
        let wanted = mapped.unwrap_or(role);
        match self.routers.get_key_value(wanted) {
            Some((name, router)) => (name.as_str(), router),
            None => {
                let (name, router) =
                    self.routers.iter().find(|(name, _)| *name == "default").expect("default router exists");
                (name.as_str(), router)
            }
        }
    }
}

/// The loaded agents at one moment. A reload builds a new set and swaps it in whole; a run
/// holds the `Arc<AgentRuntime>` it started with, so it finishes on the definition it began with.
pub(crate) struct AgentSet {
    pub entries: Vec<AgentEntry>,
    pub ready: BTreeMap<String, Arc<AgentRuntime>>,
    /// Agents whose file failed on the last reload: they keep running their previous definition,
    /// and this says why the new one was refused.
    pub stale: BTreeMap<String, String>,
}

impl AgentSet {
    /// Compiles routers and guardrails for every ready entry; an agent whose guardrails do not
    /// compile becomes an error entry.
    fn build(mut entries: Vec<AgentEntry>, breaker: BreakerSettings, local: &Arc<LocalModels>) -> AgentSet {
        let mut ready = BTreeMap::new();
        for entry in &mut entries {
            let AgentState::Ready(agent) = &entry.state else { continue };
            let guardrails = match Guardrails::compile(&agent.guardrails_input, &agent.guardrails_output) {
                Ok(guardrails) => guardrails,
                Err(message) => {
                    entry.state = AgentState::Error(format!("{}: {message}", entry.source));
                    continue;
                }
            };
            let mut routers = BTreeMap::new();
            routers.insert(
                "default".to_string(),
                Arc::new(ModelRouter::with_local_models(&agent.model.default, breaker, local)),
            );
            for (role, role_config) in &agent.model.roles {
                routers.insert(role.clone(), Arc::new(ModelRouter::with_local_models(role_config, breaker, local)));
            }
            if let Some(backend) = &agent.memory.conversational_backend {
                if !matches!(backend.as_str(), "in_memory" | "store") {
                    tracing::info!(agent = %agent.name, backend = %backend, "conversation memory is kept in the embedded store");
                }
            }
            ready.insert(agent.name.clone(), Arc::new(AgentRuntime { config: agent.clone(), routers, guardrails }));
        }
        AgentSet { entries, ready, stale: BTreeMap::new() }
    }
}

pub(crate) struct RuntimeInner {
    pub config: Arc<Config>,
    /// Swapped whole by `reload`; readers clone the `Arc` and drop the lock at once.
    agents: RwLock<Arc<AgentSet>>,
    /// One reload at a time, so two reloads cannot interleave their reads and swaps.
    reloading: tokio::sync::Mutex<()>,
    pub conversations: Conversations,
    pub telemetry: Arc<Telemetry>,
    pub tools: Arc<ToolRegistry>,
    pub rag: Arc<Rag>,
    pub local: Arc<LocalModels>,
}

/// The loaded agents and the run pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl Runtime {
    pub fn new(
        config: Arc<Config>,
        store: Arc<Store>,
        telemetry: Arc<Telemetry>,
        tools: Arc<ToolRegistry>,
        rag: Arc<Rag>,
    ) -> Runtime {
        let breaker = BreakerSettings::from_config(&config.providers);
        // One registry for every agent (and every reload): routers naming the same GGUF file
        // share its worker.
        let local = Arc::new(LocalModels::new(config.runtime.data_dir.join("models")));
        let agents = RwLock::new(Arc::new(AgentSet::build(config.agents.clone(), breaker, &local)));
        let conversations = Conversations::new(store);
        let reloading = tokio::sync::Mutex::new(());
        Runtime {
            inner: Arc::new(RuntimeInner { config, agents, reloading, conversations, telemetry, tools, rag, local }),
        }
    }

    /// The current agent set (a snapshot: a reload does not change it under the caller).
    pub(crate) fn agent_set(&self) -> Arc<AgentSet> {
        self.inner.agents.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Every agent as currently loaded, ready or not.
    pub fn agents(&self) -> Vec<AgentEntry> {
        self.agent_set().entries.clone()
    }

    /// The names of the agents this node can run now (the mesh advertises them).
    pub fn ready_agent_names(&self) -> Vec<String> {
        self.agent_set().ready.keys().cloned().collect()
    }

    pub fn agent(&self, name: &str) -> Option<AgentEntry> {
        self.agent_set().entries.iter().find(|entry| entry.name == name).cloned()
    }

    /// A ready agent, to run.
    pub(crate) fn ready_agent(&self, name: &str) -> Option<Arc<AgentRuntime>> {
        self.agent_set().ready.get(name).cloned()
    }

    /// Why the last reload refused this agent's new file (it runs its previous definition).
    pub fn reload_error(&self, name: &str) -> Option<String> {
        self.agent_set().stale.get(name).cloned()
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    pub fn conversations(&self) -> &Conversations {
        &self.inner.conversations
    }

    pub fn rag(&self) -> &Arc<Rag> {
        &self.inner.rag
    }

    /// The collection that holds an agent's semantic memory.
    pub fn semantic_collection(agent: &str) -> String {
        format!("semantic:{agent}")
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.inner.telemetry
    }

    /// The local GGUF models the agents use (loaded or not), for the doctor.
    pub fn local_models(&self) -> Vec<LocalModelReport> {
        self.inner.local.report()
    }

    /// Agents that loaded without errors.
    pub fn ready_count(&self) -> usize {
        self.agent_set().ready.len()
    }

    /// Health of every candidate of every role of every ready agent, as the routers know it.
    pub fn candidate_health(&self) -> Vec<(String, String, CandidateHealth)> {
        let mut all = Vec::new();
        for (agent, runtime) in &self.agent_set().ready {
            for (role, router) in &runtime.routers {
                all.extend(router.health().into_iter().map(|health| (agent.clone(), role.clone(), health)));
            }
        }
        all
    }

    /// One state per distinct provider endpoint: the best state any router has seen for it.
    pub fn provider_states(&self) -> Vec<(String, ProviderState)> {
        let mut states: BTreeMap<String, ProviderState> = BTreeMap::new();
        for (_, _, health) in self.candidate_health() {
            let key = format!("{} {}", health.provider, health.endpoint);
            let rank = |state: ProviderState| match state {
                ProviderState::Healthy => 2,
                ProviderState::Degraded => 1,
                ProviderState::Unavailable => 0,
            };
            states
                .entry(key)
                .and_modify(|current| {
                    if rank(health.state) > rank(*current) {
                        *current = health.state;
                    }
                })
                .or_insert(health.state);
        }
        states.into_iter().collect()
    }

    /// Runs an agent: the single pipeline behind HTTP, WebSocket and CLI.
    pub async fn run(
        &self,
        request: RunRequest,
        events: Option<tokio::sync::mpsc::Sender<RunEvent>>,
    ) -> Result<RunOutcome, RunError> {
        run::run(self.clone(), request, events, None).await
    }

    pub(crate) fn inner(&self) -> &RuntimeInner {
        &self.inner
    }
}

/// A nested run (an agent called as a tool) shares the caller's trace and session.
pub(crate) struct ParentRun {
    pub trace: Arc<TraceRecorder>,
    pub span_id: String,
    pub depth: usize,
}
