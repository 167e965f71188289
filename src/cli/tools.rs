//! `tools list` (the tools agents use, `GET /v1/tools`) and `tools exec NAME --args JSON`.
//!
//! `--args` is parsed by clap (`parse_arguments`), so malformed JSON is a usage error before
//! any request. A tool that ran and failed is the daemon's 502 with its detail (exit 1).

use serde_json::{json, Value};

use super::output::{cell, print_json, print_lines, print_table, shorten, table};
use super::{CliError, Context};

/// clap value parser for `--args`: a JSON object.
pub(crate) fn parse_arguments(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("must be a JSON object, e.g. '{\"timezone\": \"UTC\"}'".to_string()),
        Err(error) => Err(format!("not valid JSON: {error}")),
    }
}

pub(crate) fn list(context: &Context) -> Result<(), CliError> {
    let answer = context.client.get("/v1/tools")?;
    if context.json {
        return print_json(&answer);
    }
    let mut rows = table(&["NAME", "TYPE", "AGENTS", "DESCRIPTION"]);
    for tool in answer["tools"].as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&tool["name"]),
            cell(&tool["type"]),
            cell(&tool["agents"]),
            shorten(&cell(&tool["description"]), 60),
        ]);
    }
    print_table(&rows, "no tools in use by the loaded agents")
}

pub(crate) fn exec(context: &Context, name: &str, arguments: &Value) -> Result<(), CliError> {
    let answer = context.client.post("/v1/tools/execute", &json!({"tool": name, "input": arguments}))?;
    if context.json {
        return print_json(&answer);
    }
    match &answer["output"] {
        Value::String(text) => print_lines(std::slice::from_ref(text)),
        other => print_json(other),
    }
}
