//! Pulling a JSON value out of model text: plans, subtask lists, supervisor decisions.
//!
//! Models wrap JSON in ```json fences, put prose before or after it, or answer with nothing
//! usable at all. `extract_json` tries, in order: the whole text, each fenced block, then the
//! first balanced `{...}` or `[...]` that parses. It never fails loudly: `None` means "no JSON
//! here", and every caller has a documented fallback for that.

use serde_json::Value;

/// The first JSON object or array found in `text`, if any.
pub(crate) fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Some(value) = parse_structured(trimmed) {
        return Some(value);
    }
    for block in fenced_blocks(trimmed) {
        if let Some(value) = parse_structured(block.trim()).or_else(|| first_balanced(block)) {
            return Some(value);
        }
    }
    first_balanced(trimmed)
}

/// Only objects and arrays count: a bare `42` or `"text"` is prose, not a plan.
fn parse_structured(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Object(_) | Value::Array(_))) => Some(value),
        _ => None,
    }
}

/// The bodies of ``` fenced blocks (any info string), in order; an unclosed fence runs to the end.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        // Skip the info string (`json`, `JSON`, ...) up to the end of the line.
        let body_start = after.find('\n').map(|newline| newline + 1).unwrap_or(after.len());
        let body = &after[body_start..];
        match body.find("```") {
            Some(end) => {
                blocks.push(&body[..end]);
                rest = &body[end + 3..];
            }
            None => {
                blocks.push(body);
                break;
            }
        }
    }
    blocks
}

/// Scans for `{` or `[` and tries the balanced span from there (strings and escapes respected).
fn first_balanced(text: &str) -> Option<Value> {
    for (start, opening) in text.char_indices().filter(|(_, ch)| matches!(ch, '{' | '[')) {
        let Some(end) = balanced_end(&text[start..], opening) else { continue };
        if let Some(value) = parse_structured(&text[start..start + end]) {
            return Some(value);
        }
    }
    None
}

/// The byte length of the balanced span starting with `opening` at the start of `text`.
fn balanced_end(text: &str, opening: char) -> Option<usize> {
    let closing = if opening == '{' { '}' } else { ']' };
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (idx, ch) in text.char_indices() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            ch if ch == opening => depth += 1,
            ch if ch == closing => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(idx + ch.len_utf8());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::extract_json;

    #[test]
    fn plain_json_parses() {
        assert_eq!(extract_json(r#" {"steps": []} "#), Some(json!({"steps": []})));
        assert_eq!(extract_json(r#"["a", "b"]"#), Some(json!(["a", "b"])));
    }

    #[test]
    fn fenced_blocks_with_prose_around_them() {
        let text = "Here is the plan:\n```json\n{\"steps\": [{\"step\": 1}]}\n```\nLet me know!";
        assert_eq!(extract_json(text), Some(json!({"steps": [{"step": 1}]})));
        let bare_fence = "```\n[\"x\"]\n```";
        assert_eq!(extract_json(bare_fence), Some(json!(["x"])));
        let unclosed = "```json\n{\"a\": 1}";
        assert_eq!(extract_json(unclosed), Some(json!({"a": 1})));
    }

    #[test]
    fn json_embedded_in_prose_and_trailing_text() {
        let text = "Sure. {\"delegate\": \"writer\", \"task\": \"say {hi}\"} Hope that helps.";
        assert_eq!(extract_json(text), Some(json!({"delegate": "writer", "task": "say {hi}"})));
        let escaped = r#"ok {"a": "quote \" and } brace"} done"#;
        assert_eq!(extract_json(escaped), Some(json!({"a": "quote \" and } brace"})));
    }

    #[test]
    fn a_broken_candidate_is_skipped_for_a_later_good_one() {
        let text = "{not json} then [1, 2]";
        assert_eq!(extract_json(text), Some(json!([1, 2])));
        let fence_then_prose = "```json\n{broken\n```\nbut {\"b\": true}";
        assert_eq!(extract_json(fence_then_prose), Some(json!({"b": true})));
    }

    #[test]
    fn nothing_usable_is_none() {
        assert_eq!(extract_json("no json here"), None);
        assert_eq!(extract_json("42"), None);
        assert_eq!(extract_json("\"just a string\""), None);
        assert_eq!(extract_json("{\"open\": [1, 2"), None);
        assert_eq!(extract_json(""), None);
    }
}
