//! Parallel fan-out (REFERENCE.md §3): `planner` splits the query into 2-4 independent
//! subtasks, each subtask runs concurrently as its own bounded tool loop (`worker`), and
//! `synthesizer` aggregates the results.
//!
//! The reference ignored the workers' tool calls; here every subtask is a `react::converse`
//! loop, so its calls are executed and fed back. A planner reply that is not a usable list
//! makes the query itself the only subtask; more than four subtasks are cut to four.

use futures_util::future::join_all;
use serde_json::Value;

use super::json::extract_json;
use super::react::converse;
use super::{Framing, PatternOutcome};
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

const MAX_SUBTASKS: usize = 4;

pub(super) async fn run(context: &RunContext, framing: Framing) -> Result<PatternOutcome, RunError> {
    let query = &framing.query;
    let planner_prompt =
        format!("Decompose this into 2-4 independent subtasks. Return a JSON list of strings.\nTask: {query}");
    let plan_reply = context.model("planner", framing.ask(&planner_prompt), Vec::new()).await?;
    let subtasks = parse_subtasks(&plan_reply.content).unwrap_or_else(|| vec![query.clone()]);

    let tools = context.tool_specs().await;
    let prompts: Vec<Vec<_>> = subtasks
        .iter()
        .map(|subtask| framing.ask(&format!("Complete this subtask: {subtask}\nIt is part of the task: {query}")))
        .collect();
    let outcomes = join_all(prompts.into_iter().map(|messages| converse(context, "worker", messages, &tools))).await;
    let mut model_calls = 1;
    let mut results = Vec::with_capacity(subtasks.len());
    for (subtask, outcome) in subtasks.iter().zip(outcomes) {
        let outcome = outcome?;
        model_calls += outcome.model_calls;
        results.push(serde_json::json!({"subtask": subtask, "result": outcome.answer}));
    }
    let listed = serde_json::to_string_pretty(&results).unwrap_or_default();
    let prompt = format!("Aggregate these results into a final answer:\n{listed}\nOriginal question: {query}");
    let answer = context.model("synthesizer", framing.ask(&prompt), Vec::new()).await?;
    Ok(PatternOutcome { answer: answer.content, iterations: model_calls + 1 })
}

/// A JSON list of strings (or of objects with `description`/`task`), bare or under `subtasks`.
fn parse_subtasks(text: &str) -> Option<Vec<String>> {
    let value = extract_json(text)?;
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(map) => map.get("subtasks").or_else(|| map.get("tasks"))?.as_array()?,
        _ => return None,
    };
    let subtasks: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Value::String(text) => Some(text.clone()),
            Value::Object(map) => ["description", "task", "subtask"]
                .iter()
                .find_map(|key| map.get(*key).and_then(Value::as_str))
                .map(str::to_string),
            _ => None,
        })
        .filter(|text| !text.trim().is_empty())
        .take(MAX_SUBTASKS)
        .collect();
    (!subtasks.is_empty()).then_some(subtasks)
}

#[cfg(test)]
mod tests {
    use super::parse_subtasks;

    #[test]
    fn subtasks_come_from_lists_and_are_capped() {
        assert_eq!(parse_subtasks("```json\n[\"a\", \"b\"]\n```").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_subtasks("{\"subtasks\": [{\"task\": \"x\"}]}").unwrap(), vec!["x"]);
        assert_eq!(parse_subtasks("[\"1\", \"2\", \"3\", \"4\", \"5\"]").unwrap().len(), 4);
        assert!(parse_subtasks("first do a, then b").is_none());
        assert!(parse_subtasks("[1, 2]").is_none());
    }
}
