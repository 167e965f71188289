//! Pipeline (REFERENCE.md §3): the query flows through `orchestration.stages` in order; each
//! stage's output is the next stage's input and the last output is the answer.
//!
//! Each stage asks role `stage:<name>` (so `role_map` or `spec.model.roles` can give a stage its
//! own model) with the stage's own `prompt` or the reference's default instruction. A stage may
//! call tools: it is a bounded tool loop (`react::converse`), and its final text is its output.

use super::react::converse;
use super::{Framing, PatternOutcome};
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

pub(super) async fn run(context: &RunContext, framing: Framing) -> Result<PatternOutcome, RunError> {
    let tools = context.tool_specs().await;
    let mut current = framing.query.clone();
    let mut model_calls = 0;
    for stage in context.stages() {
        let instruction = match &stage.prompt {
            Some(prompt) => prompt.clone(),
            None => {
                format!("Stage '{}': Process the following input and produce output for the next stage.", stage.name)
            }
        };
        let prompt = format!("{instruction}\nInput:\n{current}");
        let outcome = converse(context, &format!("stage:{}", stage.name), framing.ask(&prompt), &tools).await?;
        model_calls += outcome.model_calls;
        current = outcome.answer;
    }
    Ok(PatternOutcome { answer: current, iterations: model_calls })
}
