//! ReAct with native tool calling (REFERENCE.md §3): ask, run the calls, feed results back.
//!
//! One assistant message carries all the calls of a turn (with the provider's
//! `reasoning_content` echoed back), then one `tool` message per result, in call order. Calls of
//! one turn are independent, so they run concurrently. A tool error is an observation, not a
//! failed run. When `max_iterations` runs out the answer says so.

use futures_util::future::join_all;

use super::PatternOutcome;
use crate::providers::ChatMessage;
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

pub(super) async fn run(context: &RunContext, mut messages: Vec<ChatMessage>) -> Result<PatternOutcome, RunError> {
    let tools = context.tool_specs().await;
    let max_iterations = context.max_iterations();
    let mut last_text = String::new();
    for iteration in 1..=max_iterations {
        let response = context.model("reasoner", messages.clone(), tools.clone()).await?;
        if response.tool_calls.is_empty() {
            return Ok(PatternOutcome { answer: response.content, iterations: iteration });
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
    let mut answer =
        format!("I stopped after reaching the limit of {max_iterations} iterations without a final answer.");
    if !last_text.trim().is_empty() {
        answer.push_str(&format!(" My last note was: {last_text}"));
    }
    Ok(PatternOutcome { answer, iterations: max_iterations })
}
