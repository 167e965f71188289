//! ReAct with native tool calling (REFERENCE.md §3): ask, run the calls, feed results back.
//!
//! One assistant message carries all the calls of a turn (with the provider's
//! `reasoning_content` echoed back), then one `tool` message per result, in call order. Calls of
//! one turn are independent, so they run concurrently. A tool error is an observation, not a
//! failed run. When `max_iterations` runs out the answer says so.
//!
//! `converse` is the same loop for any role: the other patterns use it for every sub-step that
//! may call tools (a plan step, a fan-out subtask, a pipeline stage), so those calls are really
//! executed and fed back, each sub-step bounded by `max_iterations` model calls.

use futures_util::future::join_all;

use super::PatternOutcome;
use crate::providers::{ChatMessage, ToolSpec};
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

/// How one bounded tool loop ended.
#[derive(Debug, Clone)]
pub(super) struct Conversed {
    /// The final text, or a note saying the limit was reached.
    pub answer: String,
    pub model_calls: u32,
}

pub(super) async fn run(context: &RunContext, messages: Vec<ChatMessage>) -> Result<PatternOutcome, RunError> {
    let tools = context.tool_specs().await;
    let outcome = converse(context, "reasoner", messages, &tools).await?;
    Ok(PatternOutcome { answer: outcome.answer, iterations: outcome.model_calls })
}

/// Asks `role` until it answers without tool calls, executing the calls it makes; at most
/// `max_iterations` model calls.
pub(super) async fn converse(
    context: &RunContext,
    role: &str,
    mut messages: Vec<ChatMessage>,
    tools: &[ToolSpec],
) -> Result<Conversed, RunError> {
    let max_iterations = context.max_iterations();
    let mut last_text = String::new();
    for iteration in 1..=max_iterations {
        let response = context.model(role, messages.clone(), tools.to_vec()).await?;
        if response.tool_calls.is_empty() {
            return Ok(Conversed { answer: response.content, model_calls: iteration });
        }
        if !response.content.trim().is_empty() {
            last_text = response.content.clone();
        }
        let mut assistant = ChatMessage::assistant_tool_calls(&response.content, response.tool_calls.clone());
        assistant.reasoning_content = response.reasoning_content.clone();
        messages.push(assistant);
        let observations = join_all(response.tool_calls.iter().map(|call| context.tool(call))).await;
        for (call, observation) in response.tool_calls.iter().zip(observations) {
            messages.push(ChatMessage::tool_result(&call.id, &call.name, &observation));
        }
    }
    Ok(Conversed { answer: limit_note(max_iterations, &last_text), model_calls: max_iterations })
}

/// The answer when a loop runs out of iterations.
pub(super) fn limit_note(max_iterations: u32, last_text: &str) -> String {
    let mut answer =
        format!("I stopped after reaching the limit of {max_iterations} iterations without a final answer.");
    if !last_text.trim().is_empty() {
        answer.push_str(&format!(" My last note was: {last_text}"));
    }
    answer
}
