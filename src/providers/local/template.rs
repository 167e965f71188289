//! Chat templates per family and the parsing of tool calls out of generated text.
//!
//! Qwen2 uses ChatML with Qwen2.5's tool convention: the schemas go into the system turn inside
//! `<tools></tools>`, the model answers `<tool_call>{"name": .., "arguments": {..}}</tool_call>`,
//! and results come back as `<tool_response>` blocks in a user turn. Llama uses the Llama-3
//! header format with Llama-3.1's JSON tool convention (`{"name": .., "parameters": {..}}`,
//! results in `ipython` turns). These are the templates the models were trained with, written
//! out in code: GGUF files carry a Jinja `tokenizer.chat_template`, but rendering arbitrary
//! model-supplied Jinja would let a file decide what our prompts look like.
//! Not here: tokenising (`tokenizer`), sampling (`worker`).

use serde_json::Value;

use super::gguf::Family;
use crate::providers::{ChatMessage, Role, ToolCall, ToolSpec};

const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// The prompt text for `messages`, ending where the assistant's answer starts.
pub(crate) fn render(family: Family, messages: &[ChatMessage], tools: &[ToolSpec]) -> String {
    match family {
        Family::Qwen2 => render_chatml(messages, tools),
        Family::Llama => render_llama3(messages, tools),
    }
}

/// `{"type": "function", "function": {"name": .., "description": .., "parameters": ..}}` in the
/// key order and spacing of the models' own templates (serde_json would sort the keys).
fn tool_json(tool: &ToolSpec) -> String {
    format!(
        "{{\"type\": \"function\", \"function\": {{\"name\": {}, \"description\": {}, \"parameters\": {}}}}}",
        Value::from(tool.name.as_str()),
        Value::from(tool.description.as_str()),
        tool.parameters
    )
}

/// `{"name": .., "<arguments_key>": ..}`, name first as the models were trained.
fn call_json(name: &str, arguments_key: &str, arguments: &Value) -> String {
    format!("{{\"name\": {}, \"{arguments_key}\": {arguments}}}", Value::from(name))
}

fn render_chatml(messages: &[ChatMessage], tools: &[ToolSpec]) -> String {
    let mut prompt = String::new();
    let (system, rest) = match messages.first() {
        Some(first) if first.role == Role::System => (first.content.as_str(), &messages[1..]),
        _ => (DEFAULT_SYSTEM, messages),
    };
    prompt.push_str("<|im_start|>system\n");
    prompt.push_str(system);
    if !tools.is_empty() {
        prompt.push_str("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n");
        prompt.push_str("You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        for tool in tools {
            prompt.push('\n');
            prompt.push_str(&tool_json(tool));
        }
        prompt.push_str("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    }
    prompt.push_str("<|im_end|>\n");
    let mut idx = 0;
    while idx < rest.len() {
        let message = &rest[idx];
        match message.role {
            Role::Tool => {
                // Consecutive tool results share one user turn.
                prompt.push_str("<|im_start|>user");
                while idx < rest.len() && rest[idx].role == Role::Tool {
                    prompt.push_str("\n<tool_response>\n");
                    prompt.push_str(&rest[idx].content);
                    prompt.push_str("\n</tool_response>");
                    idx += 1;
                }
                prompt.push_str("<|im_end|>\n");
                continue;
            }
            Role::Assistant => {
                prompt.push_str("<|im_start|>assistant\n");
                prompt.push_str(&message.content);
                for call in &message.tool_calls {
                    if !prompt.ends_with('\n') {
                        prompt.push('\n');
                    }
                    prompt.push_str("<tool_call>\n");
                    prompt.push_str(&call_json(&call.name, "arguments", &call.arguments));
                    prompt.push_str("\n</tool_call>");
                }
                prompt.push_str("<|im_end|>\n");
            }
            role => {
                prompt.push_str("<|im_start|>");
                prompt.push_str(role.as_str());
                prompt.push('\n');
                prompt.push_str(&message.content);
                prompt.push_str("<|im_end|>\n");
            }
        }
        idx += 1;
    }
    prompt.push_str("<|im_start|>assistant\n");
    prompt
}

fn render_llama3(messages: &[ChatMessage], tools: &[ToolSpec]) -> String {
    let mut prompt = String::from("<|begin_of_text|>");
    let header = |prompt: &mut String, role: &str| {
        prompt.push_str("<|start_header_id|>");
        prompt.push_str(role);
        prompt.push_str("<|end_header_id|>\n\n");
    };
    let (system, rest) = match messages.first() {
        Some(first) if first.role == Role::System => (first.content.as_str(), &messages[1..]),
        _ => (DEFAULT_SYSTEM, messages),
    };
    header(&mut prompt, "system");
    prompt.push_str(system);
    if !tools.is_empty() {
        prompt.push_str("\n\nYou have access to the following functions. To call a function, respond only with a JSON object of the form {\"name\": function name, \"parameters\": dictionary of argument name and its value}.\n");
        for tool in tools {
            prompt.push('\n');
            prompt.push_str(&tool_json(tool));
        }
    }
    prompt.push_str("<|eot_id|>");
    for message in rest {
        match message.role {
            Role::Tool => {
                header(&mut prompt, "ipython");
                prompt.push_str(&message.content);
            }
            Role::Assistant if !message.tool_calls.is_empty() => {
                header(&mut prompt, "assistant");
                let calls: Vec<String> = message
                    .tool_calls
                    .iter()
                    .map(|call| call_json(&call.name, "parameters", &call.arguments))
                    .collect();
                prompt.push_str(&calls.join("; "));
            }
            role => {
                header(&mut prompt, role.as_str());
                prompt.push_str(&message.content);
            }
        }
        prompt.push_str("<|eot_id|>");
    }
    header(&mut prompt, "assistant");
    prompt
}

/// Splits generated text into the visible answer and the tool calls it makes. `next_id` gives
/// each call a fresh id (the model writes none).
pub(crate) fn parse_tool_calls(
    family: Family,
    text: &str,
    next_id: &mut dyn FnMut() -> String,
) -> (String, Vec<ToolCall>) {
    match family {
        Family::Qwen2 => parse_qwen(text, next_id),
        Family::Llama => parse_llama(text, next_id),
    }
}

fn call_from_json(value: &Value, arguments_key: &str, id: String) -> Option<ToolCall> {
    let name = value.get("name")?.as_str()?.to_string();
    Some(match value.get(arguments_key) {
        None | Some(Value::Null) => ToolCall::from_argument_text(id, name, ""),
        // Some models write the arguments as a JSON string.
        Some(Value::String(text)) => ToolCall::from_argument_text(id, name, text),
        Some(arguments) => ToolCall { id, name, arguments: arguments.clone(), raw_arguments: None },
    })
}

fn parse_qwen(text: &str, next_id: &mut dyn FnMut() -> String) -> (String, Vec<ToolCall>) {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut visible = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        visible.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        // A generation cut by max_tokens or a stop token may lack the closing tag.
        let (body, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        match serde_json::from_str::<Value>(body.trim())
            .ok()
            .and_then(|value| call_from_json(&value, "arguments", next_id()))
        {
            Some(call) => calls.push(call),
            // Not a call after all: keep the text the model wrote.
            None => {
                visible.push_str(OPEN);
                visible.push_str(body);
                if next.len() < after.len() - body.len() {
                    visible.push_str(CLOSE);
                }
            }
        }
        rest = next;
    }
    visible.push_str(rest);
    (visible.trim().to_string(), calls)
}

fn parse_llama(text: &str, next_id: &mut dyn FnMut() -> String) -> (String, Vec<ToolCall>) {
    let trimmed = text.trim();
    let trimmed = trimmed.strip_prefix("<|python_tag|>").unwrap_or(trimmed);
    if trimmed.starts_with('{') {
        let mut calls = Vec::new();
        for part in trimmed.split("; ") {
            match serde_json::from_str::<Value>(part.trim())
                .ok()
                .and_then(|value| call_from_json(&value, "parameters", next_id()))
            {
                Some(call) => calls.push(call),
                None => return (text.trim().to_string(), Vec::new()),
            }
        }
        return (String::new(), calls);
    }
    (text.trim().to_string(), Vec::new())
}

#[cfg(test)]
mod tests;
