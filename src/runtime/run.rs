//! The steps of one run (ARCHITECTURE.md "How a run flows"), in order, under one deadline.
//!
//! Resolve the agent → input guardrails → history → prompt → pattern → output guardrails →
//! persist both turns → outcome. The trace and metrics are recorded whether the run succeeds or
//! not; history changes only when it succeeds.

use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use rand::Rng;
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use super::context::{Ledger, RunContext};
use super::prompt::{render, PromptInputs};
use super::{AgentRuntime, ParentRun, RunError, RunEvent, RunOutcome, RunRequest, Runtime, Timing};
use crate::config::AgentState;
use crate::memory::{shape, History, Summary, Turn};
use crate::orchestration;
use crate::providers::ChatMessage;
use crate::rag::{ChunkOptions, Document, RagError};
use crate::telemetry::{clip, Span, TraceRecorder};

/// Session ids name storage keys and URLs: printable, bounded.
fn check_session(session: &str) -> Result<(), RunError> {
    if session.is_empty() || session.len() > 256 {
        return Err(RunError::InvalidSession("must be 1 to 256 characters".into()));
    }
    if session.chars().any(char::is_control) {
        return Err(RunError::InvalidSession("must not contain control characters".into()));
    }
    Ok(())
}

fn new_session_id() -> String {
    let mut rng = rand::rng();
    format!("sess_{}", (0..8).map(|_| format!("{:02x}", rng.random::<u8>())).collect::<String>())
}

pub(super) async fn run(
    runtime: Runtime,
    request: RunRequest,
    events: Option<Sender<RunEvent>>,
    parent: Option<ParentRun>,
) -> Result<RunOutcome, RunError> {
    let started = StdInstant::now();
    let agent = match runtime.ready_agent(&request.agent) {
        Some(agent) => agent,
        None => {
            return Err(match runtime.agent(&request.agent).map(|entry| entry.state) {
                Some(AgentState::Error(message)) => RunError::AgentInvalid { agent: request.agent.clone(), message },
                _ => RunError::UnknownAgent(request.agent.clone()),
            })
        }
    };
    if request.query.trim().is_empty() {
        return Err(RunError::EmptyQuery);
    }
    let session_id = match request.session_id.clone() {
        Some(session) => {
            check_session(&session)?;
            session
        }
        None => new_session_id(),
    };
    let (trace, parent_span, depth) = match &parent {
        Some(parent) => (parent.trace.clone(), Some(parent.span_id.clone()), parent.depth),
        None => (TraceRecorder::new(&agent.config.name, &session_id), None, 0),
    };
    let mut root = trace.span("agent.run", parent_span.as_deref());
    root.set("agent", agent.config.name.as_str());
    root.set("session", session_id.as_str());
    root.set("query", clip(&request.query, 5_000));
    root.set("pattern", agent.config.orchestration.pattern.as_str());
    let metrics = runtime.telemetry().metrics();
    metrics.incr("agent.runs", 1);
    let agent_labels = [("agent", agent.config.name.as_str())];
    metrics.add_gauge("astromesh_active_sessions", &agent_labels, 1.0);

    let timeout = agent.config.orchestration.timeout;
    let context = RunContext {
        runtime: runtime.clone(),
        agent: agent.clone(),
        session_id: session_id.clone(),
        trace: trace.clone(),
        root_span: root.id().to_string(),
        deadline: tokio::time::Instant::now() + timeout,
        events,
        ledger: Mutex::new(Ledger::default()),
        depth,
    };
    let steps = steps(&context, &request);
    let result = match tokio::time::timeout(timeout, steps).await {
        Ok(result) => result,
        Err(_) => Err(RunError::Deadline(timeout.as_secs_f64())),
    };
    let elapsed = started.elapsed();
    metrics.observe("agent.latency_ms", elapsed.as_secs_f64() * 1000.0);
    metrics.add_gauge("astromesh_active_sessions", &agent_labels, -1.0);
    let pattern = agent.config.orchestration.pattern.as_str();
    let labels = [("agent", agent.config.name.as_str()), ("pattern", pattern)];
    metrics.observe_series("astromesh_agent_latency_seconds", &labels, elapsed.as_secs_f64());
    let status = if result.is_ok() { "success" } else { "error" };
    let labels = [("agent", agent.config.name.as_str()), ("pattern", pattern), ("status", status)];
    metrics.incr_series("astromesh_agent_runs_total", &labels, 1.0);
    let outcome = result.map(|response| {
        let ledger = context.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        RunOutcome {
            response,
            session_id: session_id.clone(),
            tool_calls: ledger.tool_calls.clone(),
            usage: ledger.usage,
            timing: Timing {
                total_ms: elapsed.as_millis() as u64,
                model_ms: ledger.model_time.as_millis() as u64,
                tool_ms: ledger.tool_time.as_millis() as u64,
            },
            model: ledger.last_model.as_ref().map(|(provider, model)| format!("{provider}/{model}")),
            provider: ledger.last_model.as_ref().map(|(provider, _)| provider.clone()),
            trace_id: trace.trace_id().to_string(),
        }
    });
    match &outcome {
        Ok(outcome) => {
            root.set("input_tokens", outcome.usage.input_tokens);
            root.set("output_tokens", outcome.usage.output_tokens);
        }
        Err(error) => {
            metrics.incr("agent.errors", 1);
            root.fail(&error.to_string());
        }
    }
    root.finish();
    drop(context);
    if parent.is_none() {
        runtime.telemetry().finish(&trace).await;
    }
    outcome
}

/// Everything inside the deadline.
async fn steps(context: &RunContext, request: &RunRequest) -> Result<String, RunError> {
    let agent: &Arc<AgentRuntime> = &context.agent;
    let config = &agent.config;
    let trace = &context.trace;
    let query = agent.guardrails.apply_input(&request.query)?;

    let mut span = trace.span("memory_build", Some(&context.root_span));
    let conversations = context.runtime.conversations();
    let history = match &request.history {
        Some(turns) => History { turns: (0u64..).zip(turns.iter().cloned()).collect(), summary: None },
        None => conversations.load(&config.name, &context.session_id, config.memory.ttl).await?,
    };
    let mut window = shape(&history, &config.memory);
    if request.history.is_some() {
        // Caller-supplied history is not ours to fold into a stored summary; the window's
        // trimming still applies.
        window.to_summarise = None;
    }
    span.set("turns", window.turns.len() as u64);
    span.finish();
    if let Some((folded, upto)) = window.to_summarise.take() {
        let summary = summarise(context, window.summary.as_deref(), &folded).await?;
        conversations
            .save_summary(&config.name, &context.session_id, &Summary { summary: summary.clone(), upto })
            .await?;
        window.summary = Some(summary);
    }

    let semantic = recall(context, &query).await;
    let knowledge = retrieve_knowledge(context, &query).await;

    let mut span: Span = trace.span("prompt_render", Some(&context.root_span));
    let system_prompt = render(
        &config.system_prompt,
        &PromptInputs {
            context: &request.context,
            conversation: &window.turns,
            summary: window.summary.as_deref(),
            semantic: &semantic,
            knowledge: &knowledge,
        },
    )
    .map_err(|message| {
        span.fail(&message);
        RunError::Template { agent: config.name.clone(), message }
    })?;
    span.finish();

    let mut messages = Vec::with_capacity(window.turns.len() + 3);
    if !system_prompt.trim().is_empty() {
        messages.push(ChatMessage::system(&system_prompt));
    }
    if let Some(summary) = &window.summary {
        messages.push(ChatMessage::system(&format!("Summary of the earlier conversation:\n{summary}")));
    }
    for turn in &window.turns {
        messages.push(match turn.role.as_str() {
            "assistant" => ChatMessage::assistant(&turn.content),
            _ => ChatMessage::user(&turn.content),
        });
    }
    messages.push(ChatMessage::user(&query));

    let mut span = trace.span("orchestration", Some(&context.root_span));
    span.set("pattern", config.orchestration.pattern.as_str());
    let answer = match orchestration::run(context, messages).await {
        Ok(outcome) => {
            span.set("iterations", outcome.iterations as u64);
            span.finish();
            outcome.answer
        }
        Err(error) => {
            span.fail(&error.to_string());
            span.finish();
            return Err(error);
        }
    };
    let answer = agent.guardrails.apply_output(&answer)?;

    if request.history.is_none() {
        let span = trace.span("memory_persist", Some(&context.root_span));
        conversations
            .append(&config.name, &context.session_id, vec![Turn::new("user", &query), Turn::new("assistant", &answer)])
            .await?;
        span.finish();
        remember(context, &query, &answer).await;
    }
    Ok(answer)
}

/// Folds older turns (and any earlier summary) into a new summary with the agent's own model.
async fn summarise(context: &RunContext, previous: Option<&str>, turns: &[Turn]) -> Result<String, RunError> {
    let mut transcript = String::new();
    if let Some(previous) = previous {
        transcript.push_str(&format!("Earlier summary: {previous}\n"));
    }
    for turn in turns {
        transcript.push_str(&format!("{}: {}\n", turn.role, turn.content));
    }
    let messages = vec![
        ChatMessage::system(
            "Summarize the conversation below in a few sentences. Keep names, facts, decisions and open questions.",
        ),
        ChatMessage::user(&transcript),
    ];
    let response = context.model("summarizer", messages, Vec::new()).await?;
    Ok(response.content)
}

/// `spec.knowledge`: chunks of the agent's collection relevant to the query, for the prompt's
/// `knowledge` variable. A collection nobody has ingested into yet gives no knowledge.
async fn retrieve_knowledge(context: &RunContext, query: &str) -> String {
    let Some(knowledge) = &context.agent.config.knowledge else { return String::new() };
    let mut span = context.trace.span("rag_build", Some(&context.root_span));
    span.set("collection", knowledge.collection.as_str());
    let rag = context.runtime.rag();
    let hits =
        match rag.query(&knowledge.collection, query, knowledge.top_k as usize, knowledge.score_threshold as f32).await
        {
            Ok(hits) => hits,
            Err(RagError::UnknownCollection(_)) => Vec::new(),
            Err(error) => {
                span.fail(&error.to_string());
                tracing::warn!(agent = %context.agent_name(), "knowledge retrieval failed: {error}");
                Vec::new()
            }
        };
    span.set("chunks", hits.len() as u64);
    span.finish();
    hits.into_iter().map(|hit| hit.text).collect::<Vec<_>>().join("\n\n")
}

/// `memory.semantic`: earlier turns similar to the query, for the prompt's `memory.semantic`.
async fn recall(context: &RunContext, query: &str) -> Vec<Value> {
    let memory = &context.agent.config.memory;
    if memory.semantic_backend.is_none() {
        return Vec::new();
    }
    let collection = Runtime::semantic_collection(context.agent_name());
    let threshold = memory.similarity_threshold as f32;
    match context.runtime.rag().query(&collection, query, memory.max_results as usize, threshold).await {
        Ok(hits) => hits
            .into_iter()
            .map(|hit| serde_json::json!({"content": hit.text, "similarity": hit.score, "metadata": hit.metadata}))
            .collect(),
        Err(RagError::UnknownCollection(_)) => Vec::new(),
        Err(error) => {
            tracing::warn!(agent = %context.agent_name(), "semantic recall failed: {error}");
            Vec::new()
        }
    }
}

/// Stores the run's turns in the agent's semantic memory. A failure here is logged, never a
/// failed run: the conversation itself is already persisted.
async fn remember(context: &RunContext, query: &str, answer: &str) {
    if context.agent.config.memory.semantic_backend.is_none() {
        return;
    }
    let timestamp = crate::memory::now_rfc3339();
    let documents = [("user", query), ("assistant", answer)]
        .into_iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(role, text)| {
            let metadata = serde_json::json!({"session_id": context.session_id, "timestamp": timestamp, "role": role});
            Document { id: None, text: text.to_string(), metadata: metadata.as_object().cloned().unwrap_or_default() }
        })
        .collect();
    let collection = Runtime::semantic_collection(context.agent_name());
    if let Err(error) = context.runtime.rag().ingest(&collection, documents, &ChunkOptions::default()).await {
        tracing::warn!(agent = %context.agent_name(), "semantic memory not stored: {error}");
    }
}
