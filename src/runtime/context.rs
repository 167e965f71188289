//! `RunContext`: the handles one run gives its pattern — model calls and tool calls — with the
//! bookkeeping both need (spans, metrics, events, usage and timing totals).
//!
//! Patterns (`orchestration/`) see only this: they ask for a model by role and call tools by
//! name; everything observable about those calls is recorded here, once, for every pattern.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::{AgentRuntime, ParentRun, RunError, RunEvent, RunRequest, Runtime, ToolCallRecord, UsageTotals};
use crate::config::agent::{PipelineStage, ToolKind};
use crate::config::AgentConfig;
use crate::providers::router::RouterError;
use crate::providers::{ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec};
use crate::telemetry::{clip, TraceRecorder};
use crate::tools::ToolContext;

/// Agent tools may nest this deep (a calls b calls c ...).
pub const MAX_AGENT_DEPTH: usize = 5;

/// Totals a run accumulates across concurrent calls.
#[derive(Debug, Default)]
pub struct Ledger {
    pub usage: UsageTotals,
    pub model_time: Duration,
    pub tool_time: Duration,
    pub tool_calls: Vec<ToolCallRecord>,
    /// `(provider, model)` of the latest model call.
    pub last_model: Option<(String, String)>,
}

pub struct RunContext {
    pub(super) runtime: Runtime,
    pub(super) agent: Arc<AgentRuntime>,
    pub(super) session_id: String,
    pub(super) trace: Arc<TraceRecorder>,
    /// The `agent.run` span's id: model and tool spans hang under it.
    pub(super) root_span: String,
    pub(super) deadline: Instant,
    pub(super) events: Option<Sender<RunEvent>>,
    pub(super) ledger: Mutex<Ledger>,
    pub(super) depth: usize,
}

impl RunContext {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn agent_name(&self) -> &str {
        &self.agent.config.name
    }

    pub fn max_iterations(&self) -> u32 {
        self.agent.config.orchestration.max_iterations
    }

    async fn emit(&self, event: RunEvent) {
        if let Some(events) = &self.events {
            // A closed receiver means nobody is listening: the run goes on, history is still kept.
            let _ = events.send(event).await;
        }
    }

    /// The tool schemas announced to the model.
    pub async fn tool_specs(&self) -> Vec<ToolSpec> {
        self.runtime.inner().tools.specs_for(&self.agent.config).await
    }

    /// One model call for a pattern's role, streamed to the client when someone listens.
    pub async fn model(
        &self,
        role: &str,
        messages: Vec<ChatMessage>,
        tools: Vec<ToolSpec>,
    ) -> Result<ChatResponse, RunError> {
        self.model_as(&self.agent, role, messages, tools).await
    }

    /// A model call made as another agent (a swarm member): that agent's routers and
    /// `role_map`, this run's trace, deadline, events and usage.
    pub(crate) async fn model_as(
        &self,
        agent: &AgentRuntime,
        role: &str,
        messages: Vec<ChatMessage>,
        tools: Vec<ToolSpec>,
    ) -> Result<ChatResponse, RunError> {
        let (resolved_role, router) = agent.router(role);
        let mut span = self.trace.span("llm.complete", Some(&self.root_span));
        if agent.config.name != self.agent.config.name {
            span.set("agent", agent.config.name.as_str());
        }
        span.set("role", role);
        span.set("resolved_role", resolved_role);
        if let Some(system) = messages.iter().find(|message| message.role == crate::providers::Role::System) {
            span.set("prompt", clip(&system.content, 10_000));
        }
        if let Some(user) = messages.iter().rev().find(|message| message.role == crate::providers::Role::User) {
            span.set("input_messages", clip(&user.content, 10_000));
        }
        let request = ChatRequest { messages, tools, ..ChatRequest::default() };
        let metrics = self.runtime.telemetry().metrics();
        let started = StdInstant::now();
        let result = match &self.events {
            None => router.complete(request, self.deadline, None).await,
            Some(events) => {
                let (tokens, mut received) = tokio::sync::mpsc::channel::<String>(64);
                let forward = async {
                    while let Some(token) = received.recv().await {
                        // See `emit`: a gone listener does not stop the run.
                        let _ = events.send(RunEvent::Token(token)).await;
                    }
                };
                let (result, ()) = tokio::join!(router.complete(request, self.deadline, Some(tokens)), forward);
                result
            }
        };
        let elapsed = started.elapsed();
        metrics.incr("llm.calls", 1);
        metrics.observe("llm.latency_ms", elapsed.as_secs_f64() * 1000.0);
        self.ledger().model_time += elapsed;
        {
            // Prometheus series: a failed call is counted under the first candidate it tried.
            let first = router.candidates().next();
            let (provider, model) = match &result {
                Ok(response) => (response.provider.as_str(), response.model.as_str()),
                Err(_) => first.map(|c| (c.provider.as_str(), c.model.as_str())).unwrap_or(("none", "none")),
            };
            let status = if result.is_ok() { "success" } else { "error" };
            let labels = [("provider", provider), ("model", model)];
            metrics.observe_series("astromesh_provider_latency_seconds", &labels, elapsed.as_secs_f64());
            let labels = [("provider", provider), ("model", model), ("status", status)];
            metrics.incr_series("astromesh_provider_calls_total", &labels, 1.0);
        }
        match result {
            Ok(response) => {
                metrics.incr("llm.tokens.input", response.usage.input_tokens);
                metrics.incr("llm.tokens.output", response.usage.output_tokens);
                let agent = self.agent.config.name.as_str();
                let tokens = response.usage.input_tokens as f64;
                metrics.incr_series("astromesh_tokens_used_total", &[("agent", agent), ("direction", "input")], tokens);
                let tokens = response.usage.output_tokens as f64;
                metrics.incr_series(
                    "astromesh_tokens_used_total",
                    &[("agent", agent), ("direction", "output")],
                    tokens,
                );
                span.set("provider", response.provider.as_str());
                span.set("model", response.model.as_str());
                span.set("input_tokens", response.usage.input_tokens);
                span.set("output_tokens", response.usage.output_tokens);
                span.set("latency_ms", elapsed.as_millis() as u64);
                span.set("response", clip(&response.content, 10_000));
                if !response.tool_calls.is_empty() {
                    let calls: Vec<Value> = response
                        .tool_calls
                        .iter()
                        .map(|call| json!({"id": call.id, "name": call.name, "arguments": call.arguments}))
                        .collect();
                    span.set("tool_calls", Value::Array(calls));
                }
                span.finish();
                let mut ledger = self.ledger();
                ledger.usage.input_tokens += response.usage.input_tokens;
                ledger.usage.output_tokens += response.usage.output_tokens;
                ledger.usage.total_tokens += response.usage.input_tokens + response.usage.output_tokens;
                ledger.last_model = Some((response.provider.clone(), response.model.clone()));
                Ok(response)
            }
            Err(error) => {
                metrics.incr("llm.errors", 1);
                span.fail(&error.to_string());
                span.finish();
                Err(match error {
                    RouterError::DeadlineExceeded => {
                        RunError::Deadline(self.agent.config.orchestration.timeout.as_secs_f64())
                    }
                    RouterError::NoCandidates => {
                        RunError::ProvidersDown("All providers unavailable: no model is configured".into())
                    }
                    other => RunError::ProvidersDown(other.to_string()),
                })
            }
        }
    }

    /// One tool call. Failures come back as the observation text, never as a run error.
    pub async fn tool(&self, call: &ToolCall) -> String {
        self.tool_as(&self.agent, call).await
    }

    /// A tool call made as another agent (a swarm member): that agent's declared tools.
    pub(crate) async fn tool_as(&self, agent: &AgentRuntime, call: &ToolCall) -> String {
        self.emit(RunEvent::ToolCall { tool: call.name.clone(), input: call.arguments.clone() }).await;
        let mut span = self.trace.span("tool.call", Some(&self.root_span));
        if agent.config.name != self.agent.config.name {
            span.set("agent", agent.config.name.as_str());
        }
        span.set("tool", call.name.as_str());
        span.set("tool_args", clip(&call.arguments.to_string(), 5_000));
        let started = StdInstant::now();
        let declared = agent.config.tools.iter().find(|tool| tool.name == call.name);
        let (output, error) = if let Some(raw) = &call.raw_arguments {
            (Value::Null, Some(format!("the arguments were not valid JSON: {}", clip(raw, 200))))
        } else if let Some(tool) = declared.filter(|tool| tool.kind == ToolKind::Agent) {
            self.call_agent(tool.agent.as_deref().unwrap_or_default(), &call.arguments, span.id()).await
        } else {
            let context = ToolContext {
                agent: agent.config.name.clone(),
                session_id: self.session_id.clone(),
                model: Some(agent.router("default").1.clone()),
                deadline: self.deadline,
                collection: self.agent.config.knowledge.as_ref().map(|knowledge| knowledge.collection.clone()),
            };
            let outcome =
                self.runtime.inner().tools.execute(&agent.config, &call.name, call.arguments.clone(), &context).await;
            (outcome.output, outcome.error)
        };
        let elapsed = started.elapsed();
        let metrics = self.runtime.telemetry().metrics();
        metrics.incr("tool.executions", 1);
        let status = if error.is_some() { "error" } else { "success" };
        metrics.incr_series(
            "astromesh_tool_executions_total",
            &[("tool", call.name.as_str()), ("status", status)],
            1.0,
        );
        let output = match error {
            Some(message) => {
                metrics.incr("tool.errors", 1);
                span.fail(&message);
                json!({ "error": message })
            }
            None => output,
        };
        let observation = match &output {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        span.set("tool_result", clip(&observation, 5_000));
        span.finish();
        {
            let mut ledger = self.ledger();
            ledger.tool_time += elapsed;
            ledger.tool_calls.push(ToolCallRecord {
                tool: call.name.clone(),
                input: call.arguments.clone(),
                output: output.clone(),
            });
        }
        self.emit(RunEvent::ToolResult { tool: call.name.clone(), output }).await;
        observation
    }

    /// Runs another agent as a tool: same session, same trace, one level deeper.
    async fn call_agent(&self, target: &str, arguments: &Value, span_id: &str) -> (Value, Option<String>) {
        if self.depth + 1 >= MAX_AGENT_DEPTH {
            return (Value::Null, Some(RunError::TooDeep(MAX_AGENT_DEPTH).to_string()));
        }
        let query = match arguments.get("query") {
            Some(Value::String(query)) => query.clone(),
            Some(other) => other.to_string(),
            None => arguments.to_string(),
        };
        let request = RunRequest {
            agent: target.to_string(),
            query,
            session_id: Some(self.session_id.clone()),
            context: arguments.as_object().cloned().unwrap_or_default(),
            history: None,
        };
        let parent = ParentRun { trace: self.trace.clone(), span_id: span_id.to_string(), depth: self.depth + 1 };
        match Box::pin(super::run::run(self.runtime.clone(), request, None, Some(parent))).await {
            Ok(outcome) => (json!({ "response": outcome.response, "tool_calls": outcome.tool_calls }), None),
            Err(error) => (Value::Null, Some(error.to_string())),
        }
    }
}

impl RunContext {
    pub fn pattern(&self) -> crate::config::agent::Pattern {
        self.agent.config.orchestration.pattern
    }

    pub(crate) fn agent_config(&self) -> &AgentConfig {
        &self.agent.config
    }

    pub(crate) fn stages(&self) -> &[PipelineStage] {
        &self.agent.config.orchestration.stages
    }

    /// Hand-offs allowed in a swarm: `max_handoffs`, else `max_iterations`.
    pub(crate) fn max_handoffs(&self) -> u32 {
        let orchestration = &self.agent.config.orchestration;
        orchestration.max_handoffs.unwrap_or(orchestration.max_iterations)
    }

    /// The running agent itself.
    pub(crate) fn this_agent(&self) -> Arc<AgentRuntime> {
        self.agent.clone()
    }

    /// Another ready agent of this runtime (a swarm member), by name.
    pub(crate) fn member(&self, name: &str) -> Option<Arc<AgentRuntime>> {
        self.runtime.ready_agent(name)
    }

    /// The tool schemas announced to the model when `agent` is acting.
    pub(crate) async fn tool_specs_as(&self, agent: &AgentRuntime) -> Vec<ToolSpec> {
        self.runtime.inner().tools.specs_for(&agent.config).await
    }
}
