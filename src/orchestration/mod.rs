//! Orchestration patterns: how a run loops between the model and its tools.
//!
//! Each pattern is a function of the prepared messages and the run's handles (`RunContext`:
//! model calls by role, tool calls by name) returning the answer. Patterns never touch storage,
//! HTTP or traces directly; every observable effect goes through the context, so every model
//! and tool call of every pattern shows in the trace, in `tool_calls`, in the events and in
//! `usage`. The run's deadline is enforced by the caller around the whole pattern; limits on
//! loops (`max_iterations`, `max_handoffs`) are enforced here.

mod fan_out;
mod json;
mod pipeline;
mod plan_execute;
mod react;
mod supervisor;
mod swarm;

use crate::config::agent::Pattern;
use crate::providers::{ChatMessage, Role};
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

/// What a pattern produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternOutcome {
    pub answer: String,
    /// Model calls the pattern made (ReAct: its iterations).
    pub iterations: u32,
}

/// Runs the agent's pattern over `messages` (system prompt, history, then the user's query).
pub async fn run(context: &RunContext, messages: Vec<ChatMessage>) -> Result<PatternOutcome, RunError> {
    match context.pattern() {
        Pattern::React => react::run(context, messages).await,
        Pattern::PlanAndExecute => plan_execute::run(context, Framing::new(messages)).await,
        Pattern::ParallelFanOut => fan_out::run(context, Framing::new(messages)).await,
        Pattern::Pipeline => pipeline::run(context, Framing::new(messages)).await,
        Pattern::Supervisor => supervisor::run(context, Framing::new(messages)).await,
        Pattern::Swarm => swarm::run(context, Framing::new(messages)).await,
    }
}

/// The run's messages split into what every sub-call keeps (the system prompt and the
/// conversation so far) and the user's query, which each pattern rephrases per role.
pub(crate) struct Framing {
    preamble: Vec<ChatMessage>,
    pub query: String,
}

impl Framing {
    fn new(mut messages: Vec<ChatMessage>) -> Framing {
        let query = match messages.last() {
            Some(last) if last.role == Role::User => messages.pop().map(|last| last.content).unwrap_or_default(),
            _ => String::new(),
        };
        Framing { preamble: messages, query }
    }

    /// The preamble followed by `prompt` as the user's message.
    fn ask(&self, prompt: &str) -> Vec<ChatMessage> {
        let mut messages = Vec::with_capacity(self.preamble.len() + 1);
        messages.extend(self.preamble.iter().cloned());
        messages.push(ChatMessage::user(prompt));
        messages
    }
}

/// `- name: description` lines for a prompt.
fn listing<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let lines: Vec<String> = entries
        .map(
            |(name, description)| {
                if description.trim().is_empty() {
                    format!("- {name}")
                } else {
                    format!("- {name}: {description}")
                }
            },
        )
        .collect();
    if lines.is_empty() {
        "(none)".to_string()
    } else {
        lines.join("\n")
    }
}
