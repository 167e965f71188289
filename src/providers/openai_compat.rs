//! The OpenAI Chat Completions wire format, spoken by OpenAI, Azure, vLLM, llama.cpp, TGI, ...
//!
//! `POST {endpoint}/chat/completions` with a bearer key. Tool-call arguments travel as JSON
//! *strings*: we parse them, and keep unparsable text in `raw_arguments` instead of failing the
//! call. Cached tokens are read from any of the three places vendors put them. Streaming is SSE
//! until `data: [DONE]`, with tool calls assembled from fragments keyed by their index.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{host_of, read_json, read_stream, resolve_key, Auth, HttpEndpoint};
use super::stream::{Assembled, SseDecoder, SseEvent, StreamAssembler, StreamFault, ToolCallParts};
use super::{
    Capabilities, ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelCall, ProviderError, Role, TokenSink,
    ToolCall, Usage,
};
use crate::config::model::ModelCandidate;
use crate::config::Secret;

pub(crate) struct OpenAiCompat {
    http: HttpEndpoint,
    provider: String,
    model: String,
    parameters: Map<String, Value>,
    api_key: Option<Secret>,
    api_key_env: Option<String>,
    /// A missing key is an error (rather than "send none") for api.openai.com or an explicit env.
    key_required: bool,
}

impl OpenAiCompat {
    pub(crate) fn new(candidate: &ModelCandidate) -> Result<OpenAiCompat, ProviderError> {
        Ok(OpenAiCompat {
            http: HttpEndpoint::new(candidate)?,
            provider: candidate.provider.clone(),
            model: candidate.model.clone(),
            parameters: candidate.parameters.clone(),
            api_key: candidate.api_key.clone(),
            api_key_env: candidate.api_key_env.clone(),
            key_required: candidate.api_key_env_explicit || host_of(&candidate.endpoint) == "api.openai.com",
        })
    }

    fn auth(&self) -> Result<Auth, ProviderError> {
        let key = resolve_key(self.api_key.as_ref(), self.api_key_env.as_deref(), self.key_required)?;
        let headers = key.iter().map(|key| ("authorization", format!("Bearer {}", key.expose()))).collect();
        Ok(Auth { headers, secret: key })
    }
}

impl ChatModel for OpenAiCompat {
    fn complete<'a>(&'a self, request: &'a ChatRequest, timeout: Duration) -> ModelCall<'a, ChatResponse> {
        Box::pin(async move {
            let started = Instant::now();
            let auth = self.auth()?;
            let url = self.http.url("/chat/completions");
            let body = request_body(&self.model, request, &request.merged_parameters(&self.parameters), false);
            let response = self.http.post_json(&url, &auth, &body, timeout).await?;
            let parsed: CompletionBody = read_json(response, &url, self.http.timeouts(timeout).0).await?;
            let assembled =
                parse_completion(parsed).map_err(|detail| ProviderError::Malformed { url: url.clone(), detail })?;
            Ok(assembled.into_response(&self.provider, &self.model, started.elapsed()))
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
            let url = self.http.url("/chat/completions");
            let body = request_body(&self.model, request, &request.merged_parameters(&self.parameters), true);
            let response = self.http.post_json(&url, &auth, &body, timeout).await?;
            let mut assembler = OpenAiAssembler::default();
            read_stream(response, &mut assembler, tokens, &url, self.http.timeouts(timeout).0).await?;
            Ok(assembler.assembled().into_response(&self.provider, &self.model, started.elapsed()))
        })
    }

    fn health(&self, timeout: Duration) -> ModelCall<'_, ()> {
        Box::pin(async move {
            let auth = self.auth()?;
            self.http.get(&self.http.url("/models"), &auth, timeout).await.map(drop)
        })
    }

    fn capabilities(&self) -> Capabilities {
        let model = self.model.to_ascii_lowercase();
        let vision = ["vision", "gpt-4o", "gpt-4.1", "gpt-5"].iter().any(|marker| model.contains(marker));
        Capabilities { tools: true, vision }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// The request body: parameters first, so that `model`, `messages` and `stream` always win.
pub(crate) fn request_body(model: &str, request: &ChatRequest, parameters: &Map<String, Value>, stream: bool) -> Value {
    let mut body = parameters.clone();
    body.insert("model".into(), Value::from(model));
    body.insert("messages".into(), Value::Array(request.messages.iter().map(wire_message).collect()));
    body.insert("stream".into(), Value::Bool(stream));
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if !request.tools.is_empty() {
        // OpenAI rejects `tools: []`, so the field is only present when there are tools.
        let tools = request
            .tools
            .iter()
            .map(|tool| json!({"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(body)
}

fn wire_message(message: &ChatMessage) -> Value {
    let mut wire = Map::new();
    wire.insert("role".into(), Value::from(message.role.as_str()));
    match message.role {
        Role::Tool => {
            wire.insert("tool_call_id".into(), Value::from(message.tool_call_id.clone().unwrap_or_default()));
            wire.insert("content".into(), Value::from(message.content.as_str()));
        }
        Role::Assistant => {
            let content = if message.content.is_empty() && !message.tool_calls.is_empty() {
                Value::Null
            } else {
                Value::from(message.content.as_str())
            };
            wire.insert("content".into(), content);
            if !message.tool_calls.is_empty() {
                let calls = message.tool_calls.iter().map(wire_tool_call).collect();
                wire.insert("tool_calls".into(), Value::Array(calls));
            }
            if let Some(reasoning) = &message.reasoning_content {
                wire.insert("reasoning_content".into(), Value::from(reasoning.as_str()));
            }
        }
        Role::System | Role::User => {
            if message.images.is_empty() {
                wire.insert("content".into(), Value::from(message.content.as_str()));
            } else {
                let mut parts = vec![json!({"type": "text", "text": message.content})];
                for image in &message.images {
                    let url = match super::http::image_parts(image) {
                        Some((media_type, data)) if !image.starts_with("data:") => {
                            format!("data:{media_type};base64,{data}")
                        }
                        _ => image.clone(),
                    };
                    parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                }
                wire.insert("content".into(), Value::Array(parts));
            }
        }
    }
    if let (Some(name), false) = (&message.name, message.role == Role::Tool) {
        wire.insert("name".into(), Value::from(name.as_str()));
    }
    Value::Object(wire)
}

fn wire_tool_call(call: &ToolCall) -> Value {
    // What the model wrote is sent back as it was, even when it was not valid JSON.
    let arguments = match &call.raw_arguments {
        Some(raw) => raw.clone(),
        None => call.arguments.to_string(),
    };
    json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}})
}

#[derive(Debug, Deserialize)]
struct CompletionBody {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Value,
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl WireUsage {
    fn to_usage(&self) -> Usage {
        let nested = self.prompt_tokens_details.as_ref().and_then(|details| details.cached_tokens);
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_tokens: nested.or(self.cached_tokens).or(self.cache_read_input_tokens).unwrap_or(0),
        }
    }
}

/// Text content: a string, null, or (some servers) an array of `{type: text, text}` parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

fn parse_completion(body: CompletionBody) -> Result<Assembled, String> {
    let Some(choice) = body.choices.into_iter().next() else {
        return Err("the response has no choices".to_string());
    };
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(idx, call)| {
            let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{idx}"));
            match call.function.arguments {
                Value::String(text) => ToolCall::from_argument_text(id, call.function.name, &text),
                Value::Null => ToolCall::from_argument_text(id, call.function.name, ""),
                arguments => ToolCall { id, name: call.function.name, arguments, raw_arguments: None },
            }
        })
        .collect();
    Ok(Assembled {
        content: content_text(&choice.message.content),
        reasoning: choice.message.reasoning_content.unwrap_or_default(),
        tool_calls,
        usage: body.usage.map(|usage| usage.to_usage()).unwrap_or_default(),
        model: body.model,
        finish_reason: choice.finish_reason,
    })
}

#[derive(Debug, Deserialize)]
struct StreamChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: Option<StreamDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<StreamToolCall>>,
}

#[derive(Debug, Deserialize)]
struct StreamToolCall {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<StreamFunction>,
}

#[derive(Debug, Deserialize)]
struct StreamFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Assembles an OpenAI SSE stream.
#[derive(Debug, Default)]
pub(crate) struct OpenAiAssembler {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    out: Assembled,
    tools: ToolCallParts,
    done: bool,
    ended: bool,
}

impl OpenAiAssembler {
    fn apply(&mut self, data: &str, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() || self.done {
            return Ok(());
        }
        let chunk: StreamChunk = serde_json::from_str(data)
            .map_err(|error| StreamFault::Malformed(format!("{error} (frame: {})", super::http::excerpt(data))))?;
        if let Some(error) = chunk.error {
            let message =
                error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_string);
            return Err(StreamFault::Upstream(message));
        }
        if self.out.model.is_none() {
            self.out.model = chunk.model;
        }
        if let Some(usage) = chunk.usage {
            self.out.usage = usage.to_usage();
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                self.out.content.push_str(&text);
                tokens.push(text);
            }
            if let Some(reasoning) = delta.reasoning_content {
                self.out.reasoning.push_str(&reasoning);
            }
            for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let function = call.function.as_ref();
                self.tools.add(
                    call.index.unwrap_or(position as u64),
                    call.id.as_deref(),
                    function.and_then(|function| function.name.as_deref()),
                    function.and_then(|function| function.arguments.as_deref()),
                );
            }
            if choice.finish_reason.is_some() {
                self.out.finish_reason = choice.finish_reason;
            }
        }
        Ok(())
    }

    fn apply_events(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            self.apply(&event.data, tokens)?;
        }
        self.events = events;
        self.events.clear();
        Ok(())
    }
}

impl StreamAssembler for OpenAiAssembler {
    fn push(&mut self, bytes: &[u8], tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        self.sse.push(bytes, &mut self.events);
        self.apply_events(tokens)
    }

    fn end(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        self.sse.finish(&mut self.events);
        self.ended = true;
        self.apply_events(tokens)
    }

    fn is_done(&self) -> bool {
        // Some servers end without `[DONE]`; a finish reason followed by a clean end is complete.
        self.done || (self.ended && self.out.finish_reason.is_some())
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
    fn request_body_omits_empty_tools_and_lets_core_fields_win() {
        let request = ChatRequest::new(vec![ChatMessage::user("hi")]);
        let mut parameters = Map::new();
        parameters.insert("temperature".into(), json!(0.2));
        parameters.insert("stream".into(), json!(true));
        let body = request_body("gpt-4o", &request, &parameters, false);
        assert_eq!(
            body,
            json!({"model": "gpt-4o", "temperature": 0.2, "stream": false, "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn history_with_tool_calls_images_and_reasoning_has_the_openai_shape() {
        let call = ToolCall { id: "c1".into(), name: "add".into(), arguments: json!({"a": 1}), raw_arguments: None };
        let mut assistant = ChatMessage::assistant_tool_calls("", vec![call]);
        assistant.reasoning_content = Some("thinking".into());
        let mut user = ChatMessage::user("look");
        user.images = vec!["iVBORw0K".into()];
        let mut request = ChatRequest::new(vec![user, assistant, ChatMessage::tool_result("c1", "add", "2")]);
        request.tools =
            vec![ToolSpec { name: "add".into(), description: "Adds".into(), parameters: json!({"type": "object"}) }];
        let body = request_body("m", &request, &Map::new(), true);
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}})
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": null, "reasoning_content": "thinking",
                   "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(body["messages"][2], json!({"role": "tool", "tool_call_id": "c1", "content": "2"}));
        assert_eq!(body["tools"][0]["function"]["name"], "add");
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn completion_parses_arguments_and_every_cached_token_location() {
        let body: CompletionBody = serde_json::from_value(json!({
            "model": "gpt-4o-2024",
            "choices": [{"message": {"content": null, "tool_calls": [
                {"id": "a", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
                {"id": "b", "function": {"name": "g", "arguments": "{oops"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}
        }))
        .unwrap();
        let assembled = parse_completion(body).unwrap();
        assert_eq!(assembled.tool_calls[0].arguments, json!({"x": 1}));
        assert_eq!(assembled.tool_calls[1].raw_arguments.as_deref(), Some("{oops"));
        assert_eq!(assembled.usage, Usage { input_tokens: 10, output_tokens: 3, cached_tokens: 4 });
        for usage in [json!({"cached_tokens": 5}), json!({"cache_read_input_tokens": 5})] {
            let usage: WireUsage = serde_json::from_value(usage).unwrap();
            assert_eq!(usage.to_usage().cached_tokens, 5);
        }
    }

    #[test]
    fn stream_error_frame_is_an_upstream_fault() {
        let mut assembler = OpenAiAssembler::default();
        let result = feed_split(&mut assembler, b"data: {\"error\": {\"message\": \"overloaded\"}}\n\n", &[]);
        assert_eq!(result.map(|_| ()), Err(StreamFault::Upstream("overloaded".into())));
    }

    fn sample_stream(text_parts: &[String]) -> String {
        let mut frames = Vec::new();
        for part in text_parts {
            frames.push(json!({"model": "m", "choices": [{"index": 0, "delta": {"content": part}}]}));
        }
        frames.push(json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "lookup", "arguments": "{\"q\":"}}]}}]}));
        frames.push(
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"ünï\"}"}}]}}]}),
        );
        frames.push(json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}));
        frames.push(json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}));
        let mut text: String = frames.iter().map(|frame| format!("data: {frame}\n\n")).collect();
        text.push_str("data: [DONE]\n\n");
        text
    }

    proptest! {
        #[test]
        fn stream_assembly_does_not_depend_on_chunk_splits(
            parts in proptest::collection::vec("[a-zé €\n]{1,8}", 1..6),
            cuts in proptest::collection::vec(0usize..2000, 0..16),
        ) {
            let text = sample_stream(&parts);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut assembler = OpenAiAssembler::default();
            let (tokens, assembled) = feed_split(&mut assembler, text.as_bytes(), &cuts).unwrap();
            prop_assert!(assembler.is_done());
            prop_assert_eq!(&tokens, &parts);
            prop_assert_eq!(assembled.content, parts.concat());
            prop_assert_eq!(assembled.tool_calls.len(), 1);
            prop_assert_eq!(&assembled.tool_calls[0].id, "call_x");
            prop_assert_eq!(&assembled.tool_calls[0].arguments, &json!({"q": "ünï"}));
            prop_assert_eq!(assembled.usage.input_tokens, 7);
            prop_assert_eq!(assembled.finish_reason.as_deref(), Some("tool_calls"));
        }
    }
}
