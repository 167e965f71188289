//! Orchestration patterns: how a run loops between the model and its tools.
//!
//! Each pattern is a function of the prepared messages and the run's handles (`RunContext`:
//! model calls by role, tool calls by name) returning the answer. Patterns never touch storage,
//! HTTP or traces directly; every observable effect goes through the context.

mod react;

use crate::config::agent::Pattern;
use crate::providers::ChatMessage;
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

/// What a pattern produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternOutcome {
    pub answer: String,
    pub iterations: u32,
}

/// Runs the agent's pattern over `messages` (system prompt, history, then the user's query).
pub async fn run(context: &RunContext, messages: Vec<ChatMessage>) -> Result<PatternOutcome, RunError> {
    match context.pattern() {
        Pattern::React => react::run(context, messages).await,
        other => Err(RunError::PatternUnavailable(other.as_str().to_string())),
    }
}
