//! The native Anthropic Messages API: `POST {endpoint}/v1/messages`.
//!
//! The shapes differ from OpenAI's in ways that matter: system prompts are one top-level
//! `system` field, `max_tokens` is required (we default it to 4096), tool calls are `tool_use`
//! content blocks, and tool results are `tool_result` blocks inside a *user* message, with
//! consecutive results merged into one message. Streaming is SSE with typed events
//! (message_start, content_block_*, message_delta, message_stop).

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{excerpt, host_of, image_parts, read_json, read_stream, resolve_key, Auth, HttpEndpoint};
use super::stream::{Assembled, SseDecoder, SseEvent, StreamAssembler, StreamFault, ToolCallParts};
use super::{
    Capabilities, ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelCall, ProviderError, Role, TokenSink,
    ToolCall, Usage,
};
use crate::config::model::ModelCandidate;
use crate::config::Secret;

const API_VERSION: &str = "2023-06-01";
const DEFAULT_MAX_TOKENS: u64 = 4096;

pub(crate) struct Anthropic {
    http: HttpEndpoint,
    provider: String,
    model: String,
    parameters: Map<String, Value>,
    api_key: Option<Secret>,
    api_key_env: Option<String>,
    key_required: bool,
}

impl Anthropic {
    pub(crate) fn new(candidate: &ModelCandidate) -> Result<Anthropic, ProviderError> {
        Ok(Anthropic {
            http: HttpEndpoint::new(candidate)?,
            provider: candidate.provider.clone(),
            model: candidate.model.clone(),
            parameters: candidate.parameters.clone(),
            api_key: candidate.api_key.clone(),
            api_key_env: candidate.api_key_env.clone(),
            key_required: candidate.api_key_env_explicit || host_of(&candidate.endpoint) == "api.anthropic.com",
        })
    }

    fn auth(&self) -> Result<Auth, ProviderError> {
        let key = resolve_key(self.api_key.as_ref(), self.api_key_env.as_deref(), self.key_required)?;
        let mut headers = vec![("anthropic-version", API_VERSION.to_string())];
        if let Some(key) = &key {
            headers.push(("x-api-key", key.expose().to_string()));
        }
        Ok(Auth { headers, secret: key })
    }
}

impl ChatModel for Anthropic {
    fn complete<'a>(&'a self, request: &'a ChatRequest, timeout: Duration) -> ModelCall<'a, ChatResponse> {
        Box::pin(async move {
            let started = Instant::now();
            let auth = self.auth()?;
            let url = self.http.url("/v1/messages");
            let body = request_body(&self.model, request, &request.merged_parameters(&self.parameters), false);
            let response = self.http.post_json(&url, &auth, &body, timeout).await?;
            let parsed: MessageBody = read_json(response, &url, self.http.timeouts(timeout).0).await?;
            Ok(parse_message(parsed).into_response(&self.provider, &self.model, started.elapsed()))
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
        tokens: &'a mut TokenSink,
    ) -> ModelCall<'a, ChatResponse> {
        Box::pin(async move {
            let started = Instant::now();
            let auth = self.auth()?;
            let url = self.http.url("/v1/messages");
            let body = request_body(&self.model, request, &request.merged_parameters(&self.parameters), true);
            let response = self.http.post_json(&url, &auth, &body, timeout).await?;
            let mut assembler = AnthropicAssembler::default();
            read_stream(response, &mut assembler, tokens, &url, self.http.timeouts(timeout).0).await?;
            Ok(assembler.assembled().into_response(&self.provider, &self.model, started.elapsed()))
        })
    }

    fn health(&self, timeout: Duration) -> ModelCall<'_, ()> {
        Box::pin(async move {
            let auth = self.auth()?;
            self.http.get(&self.http.url("/v1/models"), &auth, timeout).await.map(drop)
        })
    }

    fn capabilities(&self) -> Capabilities {
        // Every Claude model since Claude 3 reads images.
        Capabilities { tools: true, vision: self.model.to_ascii_lowercase().contains("claude") }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

pub(crate) fn request_body(model: &str, request: &ChatRequest, parameters: &Map<String, Value>, stream: bool) -> Value {
    let mut body = parameters.clone();
    // The OpenAI spelling `stop` is what most YAML files carry.
    if let Some(stop) = body.remove("stop") {
        let sequences = match stop {
            Value::String(text) => Value::Array(vec![Value::String(text)]),
            other => other,
        };
        body.entry("stop_sequences").or_insert(sequences);
    }
    body.entry("max_tokens").or_insert(Value::from(DEFAULT_MAX_TOKENS));
    body.insert("model".into(), Value::from(model));
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|message| message.role == Role::System)
        .map(|message| message.content.as_str())
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::from(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(wire_messages(&request.messages)));
    body.insert("stream".into(), Value::Bool(stream));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| json!({"name": tool.name, "description": tool.description, "input_schema": tool.parameters}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

fn wire_messages(messages: &[ChatMessage]) -> Vec<Value> {
    let mut wire: Vec<Value> = Vec::with_capacity(messages.len());
    let mut previous_was_tool = false;
    for message in messages {
        let is_tool = message.role == Role::Tool;
        match message.role {
            Role::System => continue,
            Role::User => {
                let content = if message.images.is_empty() {
                    Value::from(message.content.as_str())
                } else {
                    let mut blocks: Vec<Value> = message.images.iter().map(|image| image_block(image)).collect();
                    blocks.push(json!({"type": "text", "text": message.content}));
                    Value::Array(blocks)
                };
                wire.push(json!({"role": "user", "content": content}));
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !message.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": message.content}));
                }
                for call in &message.tool_calls {
                    let input = if call.arguments.is_object() { call.arguments.clone() } else { json!({}) };
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                let content =
                    if blocks.is_empty() { Value::from(message.content.as_str()) } else { Value::Array(blocks) };
                wire.push(json!({"role": "assistant", "content": content}));
            }
            Role::Tool => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                    "content": message.content,
                });
                let previous_results = match previous_was_tool {
                    true => wire.last_mut().and_then(|last| last.get_mut("content")).and_then(Value::as_array_mut),
                    false => None,
                };
                match previous_results {
                    Some(blocks) => blocks.push(block),
                    None => wire.push(json!({"role": "user", "content": [block]})),
                }
            }
        }
        previous_was_tool = is_tool;
    }
    wire
}

fn image_block(image: &str) -> Value {
    match image_parts(image) {
        Some((media_type, data)) => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        None => json!({"type": "image", "source": {"type": "url", "url": image}}),
    }
}

#[derive(Debug, Deserialize)]
struct MessageBody {
    #[serde(default)]
    model: Option<String>,
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

fn parse_message(body: MessageBody) -> Assembled {
    let mut out = Assembled { model: body.model, finish_reason: body.stop_reason, ..Assembled::default() };
    for block in &body.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => out.content.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => {
                out.reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or_default())
            }
            Some("tool_use") => out.tool_calls.push(ToolCall {
                id: block.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                name: block.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
                raw_arguments: None,
            }),
            _ => {}
        }
    }
    if let Some(usage) = body.usage {
        out.usage = Usage {
            input_tokens: usage.input_tokens.unwrap_or(0),
            output_tokens: usage.output_tokens.unwrap_or(0),
            cached_tokens: usage.cache_read_input_tokens.unwrap_or(0),
        };
    }
    out
}

/// Assembles an Anthropic SSE stream.
#[derive(Debug, Default)]
pub(crate) struct AnthropicAssembler {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    out: Assembled,
    tools: ToolCallParts,
    done: bool,
}

impl AnthropicAssembler {
    fn apply(&mut self, event: &SseEvent, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|error| StreamFault::Malformed(format!("{error} (frame: {})", excerpt(&event.data))))?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                self.out.model = message.get("model").and_then(Value::as_str).map(str::to_string);
                self.read_usage(message.get("usage"));
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let id = block.get("id").and_then(Value::as_str);
                        let name = block.get("name").and_then(Value::as_str);
                        self.tools.add(index, id, name, None);
                    }
                    Some("text") => self.text(block.get("text"), tokens),
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.text(delta.get("text"), tokens),
                    Some("input_json_delta") => {
                        self.tools.add(index, None, None, delta.get("partial_json").and_then(Value::as_str));
                    }
                    Some("thinking_delta") => {
                        self.out.reasoning.push_str(delta.get("thinking").and_then(Value::as_str).unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.out.finish_reason = Some(reason.to_string());
                }
                self.read_usage(data.get("usage"));
            }
            "message_stop" => self.done = true,
            "error" => {
                let message = data.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(StreamFault::Upstream(message.to_string()));
            }
            _ => {} // ping, content_block_stop
        }
        Ok(())
    }

    fn text(&mut self, text: Option<&Value>, tokens: &mut Vec<String>) {
        if let Some(text) = text.and_then(Value::as_str).filter(|text| !text.is_empty()) {
            self.out.content.push_str(text);
            tokens.push(text.to_string());
        }
    }

    /// Usage arrives in parts: input counts in message_start, output counts in message_delta.
    fn read_usage(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        if let Some(input) = usage.get("input_tokens").and_then(Value::as_u64) {
            self.out.usage.input_tokens = input;
        }
        if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
            self.out.usage.output_tokens = output;
        }
        if let Some(cached) = usage.get("cache_read_input_tokens").and_then(Value::as_u64) {
            self.out.usage.cached_tokens = cached;
        }
    }

    fn apply_events(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        let mut events = std::mem::take(&mut self.events);
        let result = events.iter().try_for_each(|event| if self.done { Ok(()) } else { self.apply(event, tokens) });
        events.clear();
        self.events = events;
        result
    }
}

impl StreamAssembler for AnthropicAssembler {
    fn push(&mut self, bytes: &[u8], tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        self.sse.push(bytes, &mut self.events);
        self.apply_events(tokens)
    }

    fn end(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        self.sse.finish(&mut self.events);
        self.apply_events(tokens)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn assembled(&mut self) -> Assembled {
        let mut assembled = self.out.clone();
        if !self.tools.is_empty() {
            assembled.tool_calls = self.tools.finish();
        }
        assembled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::stream::feed_split;
    use crate::providers::ToolSpec;
    use proptest::prelude::*;

    #[test]
    fn system_max_tokens_tools_and_merged_tool_results() {
        let calls = vec![
            ToolCall { id: "t1".into(), name: "a".into(), arguments: json!({"x": 1}), raw_arguments: None },
            ToolCall { id: "t2".into(), name: "b".into(), arguments: json!({}), raw_arguments: None },
        ];
        let mut request = ChatRequest::new(vec![
            ChatMessage::system("be brief"),
            ChatMessage::user("go"),
            ChatMessage::assistant_tool_calls("calling", calls),
            ChatMessage::tool_result("t1", "a", "one"),
            ChatMessage::tool_result("t2", "b", "two"),
        ]);
        request.tools =
            vec![ToolSpec { name: "a".into(), description: "A".into(), parameters: json!({"type": "object"}) }];
        let mut parameters = Map::new();
        parameters.insert("stop".into(), json!("END"));
        let body = request_body("claude-x", &request, &parameters, false);
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], 4096);
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert_eq!(body["tools"][0], json!({"name": "a", "description": "A", "input_schema": {"type": "object"}}));
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][1], json!({"type": "tool_use", "id": "t1", "name": "a", "input": {"x": 1}}));
        assert_eq!(
            messages[2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "two"}
            ]})
        );
    }

    #[test]
    fn images_become_base64_blocks() {
        let mut user = ChatMessage::user("what is this");
        user.images = vec!["data:image/jpeg;base64,/9j/AA".into()];
        let body = request_body("claude", &ChatRequest::new(vec![user]), &Map::new(), false);
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/AA"}})
        );
    }

    #[test]
    fn message_parses_text_tool_use_and_usage() {
        let body: MessageBody = serde_json::from_value(json!({
            "model": "claude-sonnet-4",
            "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"},
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 2}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 9, "output_tokens": 4, "cache_read_input_tokens": 3}
        }))
        .unwrap();
        let out = parse_message(body);
        assert_eq!(out.content, "Hi there");
        assert_eq!(out.tool_calls[0].arguments, json!({"a": 2}));
        assert_eq!(out.usage, Usage { input_tokens: 9, output_tokens: 4, cached_tokens: 3 });
    }

    fn sample_stream(parts: &[String]) -> String {
        let mut frames = vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {"model": "claude-m", "usage": {"input_tokens": 11, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
        ];
        for part in parts {
            frames.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}),
            ));
        }
        frames.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        frames.push(("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "search", "input": {}}})));
        for fragment in ["{\"q\": ", "\"ñ", "\"}"] {
            frames.push(("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": fragment}})));
        }
        frames.push((
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
        ));
        frames.push(("message_stop", json!({"type": "message_stop"})));
        frames.iter().map(|(event, data)| format!("event: {event}\ndata: {data}\n\n")).collect()
    }

    proptest! {
        #[test]
        fn stream_assembly_does_not_depend_on_chunk_splits(
            parts in proptest::collection::vec("[a-zé €\n]{1,8}", 1..6),
            cuts in proptest::collection::vec(0usize..3000, 0..16),
        ) {
            let text = sample_stream(&parts);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut assembler = AnthropicAssembler::default();
            let (tokens, out) = feed_split(&mut assembler, text.as_bytes(), &cuts).unwrap();
            prop_assert!(assembler.is_done());
            prop_assert_eq!(&tokens, &parts);
            prop_assert_eq!(out.content, parts.concat());
            prop_assert_eq!(out.tool_calls.len(), 1);
            prop_assert_eq!(&out.tool_calls[0].id, "toolu_9");
            prop_assert_eq!(&out.tool_calls[0].arguments, &json!({"q": "ñ"}));
            prop_assert_eq!(out.usage, Usage { input_tokens: 11, output_tokens: 5, cached_tokens: 0 });
            prop_assert_eq!(out.model.as_deref(), Some("claude-m"));
        }
    }
}
