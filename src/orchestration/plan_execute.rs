//! Plan-and-execute (REFERENCE.md §3): `planner` writes a JSON plan, `worker` carries out each
//! step with tools, `synthesizer` writes the answer from the step results.
//!
//! Unlike the reference, a step's tool calls are fed back to the worker until it answers
//! (`react::converse`, at most `max_iterations` model calls per step), and steps run in
//! dependency order (`depends_on`). A plan that cannot be used (no JSON, no steps) becomes a
//! one-step plan: the query itself. The planner gets the tool list as text, not as callable
//! tools: planning is not the moment to act.

use serde_json::Value;

use super::json::extract_json;
use super::react::converse;
use super::{listing, Framing, PatternOutcome};
use crate::runtime::context::RunContext;
use crate::runtime::RunError;

/// More steps than this are dropped: a runaway plan must not turn into a runaway run.
const MAX_STEPS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlanStep {
    pub number: u64,
    pub description: String,
    pub tool: Option<String>,
    pub depends_on: Vec<u64>,
}

pub(super) async fn run(context: &RunContext, framing: Framing) -> Result<PatternOutcome, RunError> {
    let query = &framing.query;
    let tools = context.tool_specs().await;
    let tool_list = listing(tools.iter().map(|tool| (tool.name.as_str(), tool.description.as_str())));
    let planner_prompt = format!(
        "Create a step-by-step plan to answer: {query}\n\nAvailable tools:\n{tool_list}\n\nReturn JSON: {{\"steps\": [{{\"step\": 1, \"description\": \"...\", \"tool\": null, \"depends_on\": []}}]}}"
    );
    let plan_reply = context.model("planner", framing.ask(&planner_prompt), Vec::new()).await?;
    let mut model_calls = 1;
    let plan = order(parse_plan(&plan_reply.content).unwrap_or_else(|| single_step(query)));

    let mut results: Vec<(u64, String)> = Vec::with_capacity(plan.len());
    for step in &plan {
        let previous = if results.is_empty() {
            "(none yet)".to_string()
        } else {
            results.iter().map(|(number, result)| format!("Step {number}: {result}")).collect::<Vec<_>>().join("\n")
        };
        let hint = step.tool.as_deref().map(|tool| format!("\nSuggested tool: {tool}")).unwrap_or_default();
        let prompt = format!(
            "Execute step {}: {}{hint}\nPrevious results:\n{previous}\nOriginal question: {query}",
            step.number, step.description
        );
        let outcome = converse(context, "worker", framing.ask(&prompt), &tools).await?;
        model_calls += outcome.model_calls;
        results.push((step.number, outcome.answer));
    }

    let summary = results.iter().map(|(number, result)| format!("Step {number}: {result}")).collect::<Vec<_>>();
    let prompt =
        format!("Synthesize a final answer from these results:\n{}\nOriginal question: {query}", summary.join("\n"));
    let answer = context.model("synthesizer", framing.ask(&prompt), Vec::new()).await?;
    Ok(PatternOutcome { answer: answer.content, iterations: model_calls + 1 })
}

fn single_step(query: &str) -> Vec<PlanStep> {
    vec![PlanStep { number: 1, description: query.to_string(), tool: None, depends_on: Vec::new() }]
}

/// The steps of a plan reply: `{"steps": [...]}` or a bare list; a step is an object with a
/// `description` (or `task`) or just a string. `None` when no step is usable.
pub(super) fn parse_plan(text: &str) -> Option<Vec<PlanStep>> {
    let value = extract_json(text)?;
    let items = match &value {
        Value::Object(map) => map.get("steps").or_else(|| map.get("plan"))?.as_array()?,
        Value::Array(items) => items,
        _ => return None,
    };
    let mut steps = Vec::new();
    for (idx, item) in items.iter().take(MAX_STEPS).enumerate() {
        let fallback_number = idx as u64 + 1;
        let step = match item {
            Value::String(text) if !text.trim().is_empty() => {
                PlanStep { number: fallback_number, description: text.clone(), tool: None, depends_on: Vec::new() }
            }
            Value::Object(map) => {
                let Some(description) = ["description", "task", "action"]
                    .iter()
                    .find_map(|key| map.get(*key).and_then(Value::as_str))
                    .filter(|text| !text.trim().is_empty())
                else {
                    continue;
                };
                PlanStep {
                    number: map.get("step").and_then(Value::as_u64).unwrap_or(fallback_number),
                    description: description.to_string(),
                    tool: map.get("tool").and_then(Value::as_str).map(str::to_string),
                    depends_on: map
                        .get("depends_on")
                        .and_then(Value::as_array)
                        .map(|deps| deps.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default(),
                }
            }
            _ => continue,
        };
        steps.push(step);
    }
    (!steps.is_empty()).then_some(steps)
}

/// Dependency order: a step runs once the steps it depends on have run. Unknown dependencies
/// are ignored; a cycle runs its remaining steps in the order written.
pub(super) fn order(mut pending: Vec<PlanStep>) -> Vec<PlanStep> {
    let known: Vec<u64> = pending.iter().map(|step| step.number).collect();
    let mut done: Vec<u64> = Vec::with_capacity(pending.len());
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|step| {
            step.depends_on.iter().all(|dep| done.contains(dep) || !known.contains(dep) || *dep == step.number)
        });
        let step = pending.remove(ready.unwrap_or(0));
        done.push(step.number);
        ordered.push(step);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::{order, parse_plan};

    #[test]
    fn plans_parse_from_objects_lists_and_strings() {
        let plan = parse_plan(
            "Plan:\n```json\n{\"steps\": [{\"step\": 1, \"description\": \"look\", \"tool\": \"search\"}, {\"step\": 2, \"description\": \"write\", \"depends_on\": [1]}]}\n```",
        )
        .unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].tool.as_deref(), Some("search"));
        assert_eq!(plan[1].depends_on, vec![1]);
        let bare = parse_plan("[\"first\", \"second\"]").unwrap();
        assert_eq!(bare.iter().map(|step| step.number).collect::<Vec<_>>(), vec![1, 2]);
        assert!(parse_plan("I will just answer.").is_none());
        assert!(parse_plan("{\"steps\": []}").is_none());
        assert!(parse_plan("{\"steps\": [{\"tool\": \"x\"}]}").is_none(), "a step needs a description");
    }

    #[test]
    fn steps_run_after_their_dependencies() {
        let plan = parse_plan(
            r#"{"steps": [{"step": 1, "description": "a", "depends_on": [3]}, {"step": 2, "description": "b"}, {"step": 3, "description": "c", "depends_on": [9]}]}"#,
        )
        .unwrap();
        let numbers: Vec<u64> = order(plan).iter().map(|step| step.number).collect();
        assert_eq!(numbers, vec![2, 3, 1]);
        let cycle = parse_plan(
            r#"[{"step": 1, "description": "a", "depends_on": [2]}, {"step": 2, "description": "b", "depends_on": [1]}]"#,
        )
        .unwrap();
        assert_eq!(order(cycle).iter().map(|step| step.number).collect::<Vec<_>>(), vec![1, 2]);
    }
}
