//! Prompt formatting per family and tool-call parsing, pinned with snapshots.

use expect_test::expect;
use serde_json::json;

use super::*;

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Weather for a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

fn conversation() -> Vec<ChatMessage> {
    let call = ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Oslo"}),
        raw_arguments: None,
    };
    vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("Weather in Oslo?"),
        ChatMessage::assistant_tool_calls("", vec![call]),
        ChatMessage::tool_result("call_1", "get_weather", "{\"temp\": 3}"),
        ChatMessage::assistant("3 degrees."),
        ChatMessage::user("Thanks"),
    ]
}

fn ids() -> impl FnMut() -> String {
    let mut next = 0;
    move || {
        next += 1;
        format!("call_{next}")
    }
}

#[test]
fn chatml_without_tools_or_system_uses_the_default_system_turn() {
    let prompt = render(Family::Qwen2, &[ChatMessage::user("Hi")], &[]);
    expect![[r#"
        <|im_start|>system
        You are a helpful assistant.<|im_end|>
        <|im_start|>user
        Hi<|im_end|>
        <|im_start|>assistant
    "#]]
    .assert_eq(&prompt);
}

#[test]
fn chatml_with_tools_follows_the_qwen25_convention() {
    let prompt = render(Family::Qwen2, &conversation(), &[weather_tool()]);
    expect![[r#"
        <|im_start|>system
        You are terse.

        # Tools

        You may call one or more functions to assist with the user query.

        You are provided with function signatures within <tools></tools> XML tags:
        <tools>
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}}}
        </tools>

        For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
        <tool_call>
        {"name": <function-name>, "arguments": <args-json-object>}
        </tool_call><|im_end|>
        <|im_start|>user
        Weather in Oslo?<|im_end|>
        <|im_start|>assistant
        <tool_call>
        {"name": "get_weather", "arguments": {"city":"Oslo"}}
        </tool_call><|im_end|>
        <|im_start|>user
        <tool_response>
        {"temp": 3}
        </tool_response><|im_end|>
        <|im_start|>assistant
        3 degrees.<|im_end|>
        <|im_start|>user
        Thanks<|im_end|>
        <|im_start|>assistant
    "#]].assert_eq(&prompt);
}

#[test]
fn llama3_with_tools_puts_schemas_in_the_system_turn() {
    let prompt = render(Family::Llama, &conversation(), &[weather_tool()]);
    expect![[r#"
        <|begin_of_text|><|start_header_id|>system<|end_header_id|>

        You are terse.

        You have access to the following functions. To call a function, respond only with a JSON object of the form {"name": function name, "parameters": dictionary of argument name and its value}.

        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}}}<|eot_id|><|start_header_id|>user<|end_header_id|>

        Weather in Oslo?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

        {"name": "get_weather", "parameters": {"city":"Oslo"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

        {"temp": 3}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

        3 degrees.<|eot_id|><|start_header_id|>user<|end_header_id|>

        Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>

    "#]].assert_eq(&prompt);
}

#[test]
fn qwen_tool_calls_are_parsed_and_removed_from_the_text() {
    let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"CET\\\"}\"}\n</tool_call>";
    let (visible, calls) = parse_tool_calls(Family::Qwen2, text, &mut ids());
    assert_eq!(visible, "Let me check.");
    expect![[r#"
        [
            ToolCall {
                id: "call_1",
                name: "get_weather",
                arguments: Object {
                    "city": String("Oslo"),
                },
                raw_arguments: None,
            },
            ToolCall {
                id: "call_2",
                name: "get_time",
                arguments: Object {
                    "tz": String("CET"),
                },
                raw_arguments: None,
            },
        ]
    "#]]
    .assert_debug_eq(&calls);
}

#[test]
fn a_call_cut_off_before_its_closing_tag_still_parses() {
    let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}";
    let (visible, calls) = parse_tool_calls(Family::Qwen2, text, &mut ids());
    assert_eq!(visible, "");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].arguments, json!({"city": "Oslo"}));
}

#[test]
fn malformed_tool_call_blocks_stay_text() {
    let text = "Sure <tool_call>not json</tool_call> done";
    let (visible, calls) = parse_tool_calls(Family::Qwen2, text, &mut ids());
    assert!(calls.is_empty());
    assert_eq!(visible, "Sure <tool_call>not json</tool_call> done");
}

#[test]
fn invalid_argument_text_is_kept_raw() {
    let text = "<tool_call>{\"name\": \"f\", \"arguments\": \"{oops\"}</tool_call>";
    let (_, calls) = parse_tool_calls(Family::Qwen2, text, &mut ids());
    assert_eq!(calls[0].raw_arguments.as_deref(), Some("{oops"));
    assert_eq!(calls[0].arguments, json!({}));
}

#[test]
fn llama_json_calls_are_parsed_and_plain_text_is_not() {
    let (visible, calls) = parse_tool_calls(
        Family::Llama,
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
        &mut ids(),
    );
    assert_eq!(visible, "");
    assert_eq!((calls[0].name.as_str(), &calls[0].arguments), ("get_weather", &json!({"city": "Oslo"})));
    let (visible, calls) = parse_tool_calls(Family::Llama, " It is {cold} today ", &mut ids());
    assert_eq!((visible.as_str(), calls.len()), ("It is {cold} today", 0));
}
