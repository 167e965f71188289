//! Supervisor (REFERENCE.md §3): role `supervisor` delegates to worker agents until it gives a
//! final answer, at most `max_iterations` decisions.
//!
//! The workers are the agent's `agent`-type tools, listed by tool name and description in the
//! prompt (the reference listed none). The protocol is JSON in the reply text,
//! `{"delegate": "<worker>", "task": "..."}` or `{"final_answer": "..."}`, so it works with
//! models without function calling. A delegation runs the worker agent through
//! `RunContext::tool` with a synthesized call, so it is traced, listed in `tool_calls` and
//! streamed like any tool call. A reply that is not JSON is the answer; a delegation to an
//! unknown worker is reported back to the supervisor as its result.

use serde_json::{json, Value};

use super::json::extract_json;
use super::react::limit_note;
use super::{listing, Framing, PatternOutcome};
use crate::config::agent::ToolKind;
use crate::providers::ToolCall;
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

pub(super) async fn run(context: &RunContext, framing: Framing) -> Result<PatternOutcome, RunError> {
    let query = &framing.query;
    let workers: Vec<(&str, &str)> = context
        .agent_config()
        .tools
        .iter()
        .filter(|tool| tool.kind == ToolKind::Agent)
        .map(|tool| (tool.name.as_str(), tool.description.as_str()))
        .collect();
    let worker_list = listing(workers.iter().copied());
    let max_iterations = context.max_iterations();
    let mut results: Vec<String> = Vec::new();
    for iteration in 1..=max_iterations {
        let so_far = if results.is_empty() { "(none yet)".to_string() } else { results.join("\n") };
        let prompt = format!(
            "You are a supervisor coordinating workers.\nWorkers:\n{worker_list}\n\nTask: {query}\n\nResults so far:\n{so_far}\n\nReply with JSON only: {{\"delegate\": \"<worker>\", \"task\": \"...\"}} to give a worker a task, or {{\"final_answer\": \"...\"}} when the task is done."
        );
        let reply = context.model("supervisor", framing.ask(&prompt), Vec::new()).await?;
        let decision = extract_json(&reply.content);
        let Some(Value::Object(decision)) = decision else {
            return Ok(PatternOutcome { answer: reply.content, iterations: iteration });
        };
        if let Some(answer) = decision.get("final_answer") {
            let answer = answer.as_str().map(str::to_string).unwrap_or_else(|| answer.to_string());
            return Ok(PatternOutcome { answer, iterations: iteration });
        }
        let Some(worker) = decision.get("delegate").and_then(Value::as_str) else {
            return Ok(PatternOutcome { answer: reply.content, iterations: iteration });
        };
        let task = decision.get("task").and_then(Value::as_str).unwrap_or(query.as_str());
        if !workers.iter().any(|(name, _)| *name == worker) {
            let names: Vec<&str> = workers.iter().map(|(name, _)| *name).collect();
            results.push(format!(
                "[{iteration}] {worker}: there is no worker named \"{worker}\" (workers: {})",
                names.join(", ")
            ));
            continue;
        }
        let call = ToolCall {
            id: format!("supervisor_{iteration}"),
            name: worker.to_string(),
            arguments: json!({ "query": task }),
            raw_arguments: None,
        };
        let observation = context.tool(&call).await;
        results.push(format!("[{iteration}] {worker} (task: {task}): {}", worker_answer(&observation)));
    }
    let last = results.last().cloned().unwrap_or_default();
    Ok(PatternOutcome { answer: limit_note(max_iterations, &last), iterations: max_iterations })
}

/// An agent tool's observation is `{"response": ..., "tool_calls": ...}`; the supervisor needs
/// the response. Errors and other shapes are passed on as they are.
fn worker_answer(observation: &str) -> String {
    match serde_json::from_str::<Value>(observation) {
        Ok(Value::Object(map)) => match map.get("response") {
            Some(Value::String(response)) => response.clone(),
            _ => observation.to_string(),
        },
        _ => observation.to_string(),
    }
}
