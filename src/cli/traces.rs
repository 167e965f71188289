//! `traces list [--agent A] [--limit N]` and `traces show ID` (the spans as a tree).
//!
//! The tree is built from `parent_span_id`; a span whose parent is not in the trace (the trace
//! of an agent called as a tool starts under its caller's span) is shown as a root. Children
//! are ordered by start time, as they happened.

use std::collections::HashMap;

use serde_json::Value;

use super::client::segment;
use super::output::{cell, millis, print_json, print_lines, print_table, shorten, table};
use super::{CliError, Context};

pub(crate) fn list(context: &Context, agent: Option<&str>, limit: Option<u32>) -> Result<(), CliError> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(agent) = agent {
        query.append_pair("agent", agent);
    }
    if let Some(limit) = limit {
        query.append_pair("limit", &limit.to_string());
    }
    let query = query.finish();
    let path = if query.is_empty() { "/v1/traces".to_string() } else { format!("/v1/traces?{query}") };
    let answer = context.client.get(&path)?;
    if context.json {
        return print_json(&answer);
    }
    let mut rows = table(&["TRACE_ID", "AGENT", "SESSION", "STATUS", "DURATION", "SPANS"]);
    for trace in answer["traces"].as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&trace["trace_id"]),
            cell(&trace["agent"]),
            cell(&trace["session_id"]),
            cell(&trace["status"]),
            millis(&trace["duration_ms"]),
            trace["spans"].as_array().map_or(0, Vec::len).to_string(),
        ]);
    }
    print_table(&rows, "no traces")
}

pub(crate) fn show(context: &Context, trace_id: &str) -> Result<(), CliError> {
    let trace = context.client.get(&format!("/v1/traces/{}", segment(trace_id)))?;
    if context.json {
        return print_json(&trace);
    }
    let mut lines = vec![format!(
        "trace {}  agent {}  session {}  {}  {}",
        cell(&trace["trace_id"]),
        cell(&trace["agent"]),
        cell(&trace["session_id"]),
        cell(&trace["status"]),
        millis(&trace["duration_ms"])
    )];
    lines.extend(span_tree(trace["spans"].as_array().map(Vec::as_slice).unwrap_or_default()));
    print_lines(&lines)
}

/// One line per span, indented under its parent with box-drawing guides.
fn span_tree(spans: &[Value]) -> Vec<String> {
    let ids: Vec<&str> = spans.iter().map(|span| span["span_id"].as_str().unwrap_or_default()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        match span["parent_span_id"].as_str() {
            Some(parent) if ids.contains(&parent) && parent != ids[index] => {
                children.entry(parent).or_default().push(index)
            }
            _ => roots.push(index),
        }
    }
    let start = |index: &usize| spans[*index]["start_time"].as_f64().unwrap_or_default();
    let by_start = |list: &mut Vec<usize>| list.sort_by(|a, b| start(a).total_cmp(&start(b)));
    by_start(&mut roots);
    children.values_mut().for_each(by_start);
    let mut lines = Vec::with_capacity(spans.len());
    // Depth-first with an explicit stack: (span, prefix for its children, its own guide).
    let mut stack: Vec<(usize, String, String)> =
        roots.iter().rev().map(|index| (*index, String::new(), String::new())).collect();
    while let Some((index, prefix, guide)) = stack.pop() {
        let span = &spans[index];
        let mut line = format!("{guide}{}  {}", cell(&span["name"]), millis(&span["duration_ms"]));
        if span["status"].as_str().is_some_and(|status| status != "OK") {
            line.push_str(&format!("  {}", cell(&span["status"])));
        }
        let attributes = span["attributes"].as_object().filter(|map| !map.is_empty());
        if let Some(attributes) = attributes {
            let pairs: Vec<String> = attributes.iter().map(|(key, value)| format!("{key}={}", cell(value))).collect();
            line.push_str(&format!("  {}", shorten(&pairs.join(" "), 100)));
        }
        lines.push(line);
        let kids = children.get(ids[index]).map(Vec::as_slice).unwrap_or_default();
        for (position, child) in kids.iter().enumerate().rev() {
            let last = position + 1 == kids.len();
            let child_guide = format!("{prefix}{}", if last { "└─ " } else { "├─ " });
            let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
            stack.push((*child, child_prefix, child_guide));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spans_nest_under_their_parents_in_start_order() {
        let span = |id: &str, parent: Option<&str>, start: f64| {
            json!({"name": format!("s{id}"), "span_id": id, "parent_span_id": parent, "start_time": start,
                   "duration_ms": 1.0, "status": "OK", "attributes": {}})
        };
        let spans =
            [span("2", Some("1"), 2.0), span("1", None, 1.0), span("3", Some("1"), 1.5), span("4", Some("3"), 1.6)];
        let lines = span_tree(&spans);
        assert_eq!(lines, ["s1  1 ms", "├─ s3  1 ms", "│  └─ s4  1 ms", "└─ s2  1 ms"]);
    }
}
