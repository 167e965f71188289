//! The system prompt: `spec.prompts.system` rendered with minijinja for every run.
//!
//! Variables: every key of the request's `context`, plus `memory` (`conversation`,
//! `conversation_summary`, `semantic`) and `knowledge`. Undefined variables render empty
//! (Jinja2's default), so prompts written for the Python version keep working. Each agent's
//! template lives in its own environment: templates never leak between agents.

use minijinja::{Environment, UndefinedBehavior, Value as JinjaValue};
use serde_json::{json, Map, Value};

use crate::memory::Turn;

/// What a prompt can refer to besides the request's context.
pub struct PromptInputs<'a> {
    pub context: &'a Map<String, Value>,
    pub conversation: &'a [Turn],
    pub summary: Option<&'a str>,
    pub semantic: &'a [Value],
    pub knowledge: &'a str,
}

/// The line-numbered template error, as users need it to fix their YAML.
pub fn describe(error: &minijinja::Error) -> String {
    let what = error.detail().map(str::to_string).unwrap_or_else(|| error.kind().to_string());
    match error.line() {
        Some(line) => format!("{what} (line {line} of spec.prompts.system)"),
        None => what,
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
}

pub fn render(source: &str, inputs: &PromptInputs<'_>) -> Result<String, String> {
    let env = environment();
    let template = env.template_from_str(source).map_err(|error| describe(&error))?;
    let mut variables = inputs.context.clone();
    variables.insert(
        "memory".to_string(),
        json!({
            "conversation": inputs.conversation,
            "conversation_summary": inputs.summary,
            "semantic": inputs.semantic,
            "episodic": [],
        }),
    );
    variables.insert("knowledge".to_string(), Value::from(inputs.knowledge));
    template.render(JinjaValue::from_serialize(&variables)).map_err(|error| describe(&error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(context: &Map<String, Value>) -> PromptInputs<'_> {
        PromptInputs { context, conversation: &[], summary: None, semantic: &[], knowledge: "" }
    }

    #[test]
    fn context_and_undefined_variables() {
        let context = json!({"user_name": "Ada"}).as_object().unwrap().clone();
        let rendered =
            render("Hi {{ user_name }}{% if missing %}!{% endif %}{{ nothing }}.", &inputs(&context)).unwrap();
        assert_eq!(rendered, "Hi Ada.");
        let loop_over_missing = render("{% for x in missing %}{{ x }}{% endfor %}ok", &inputs(&context)).unwrap();
        assert_eq!(loop_over_missing, "ok");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let context = Map::new();
        let error = render("line one\n{% if %}\n", &inputs(&context)).unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }
}
