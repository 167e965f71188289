//! The native Ollama chat API: `POST {endpoint}/api/chat`, NDJSON streaming.
//!
//! Sampling parameters live in `options{}` (`max_tokens` becomes `num_predict`); anything else
//! (`format`, `keep_alive`, `think`) stays at the top level. Images travel as bare base64 in
//! the message's `images`. Ollama's tool calls carry no ids, which the rest of the runtime
//! needs to pair results with calls, so we make them: `call_<n>`, unique in this process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{excerpt, image_parts, read_json, read_stream, Auth, HttpEndpoint};
use super::stream::{Assembled, NdjsonDecoder, StreamAssembler, StreamFault};
use super::{
    Capabilities, ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelCall, ProviderError, Role, TokenSink,
    ToolCall, Usage,
};
use crate::config::model::ModelCandidate;

/// Parameters that Ollama reads from `options`, not from the top level.
const OPTION_KEYS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "num_ctx",
    "repeat_penalty",
    "num_predict",
    "repeat_last_n",
];

static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(0);

fn next_call_id() -> String {
    format!("call_{}", NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed))
}

pub(crate) struct Ollama {
    http: HttpEndpoint,
    provider: String,
    model: String,
    parameters: Map<String, Value>,
}

impl Ollama {
    pub(crate) fn new(candidate: &ModelCandidate) -> Result<Ollama, ProviderError> {
        Ok(Ollama {
            http: HttpEndpoint::new(candidate)?,
            provider: candidate.provider.clone(),
            model: candidate.model.clone(),
            parameters: candidate.parameters.clone(),
        })
    }
}

impl ChatModel for Ollama {
    fn complete<'a>(&'a self, request: &'a ChatRequest, timeout: Duration) -> ModelCall<'a, ChatResponse> {
        Box::pin(async move {
            let started = Instant::now();
            let url = self.http.url("/api/chat");
            let body = request_body(&self.model, request, &request.merged_parameters(&self.parameters), false);
            let response = self.http.post_json(&url, &Auth::default(), &body, timeout).await?;
            let chunk: ChatChunk = read_json(response, &url, self.http.timeouts(timeout).0).await?;
            if let Some(error) = chunk.error {
                return Err(ProviderError::Malformed { url, detail: format!("the response is an error: {error}") });
            }
            let mut out = Assembled::default();
            apply_chunk(&mut out, chunk, &mut Vec::new());
            Ok(out.into_response(&self.provider, &self.model, started.elapsed()))
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
            let url = self.http.url("/api/chat");
            let body = request_body(&self.model, request, &request.merged_parameters(&self.parameters), true);
            let response = self.http.post_json(&url, &Auth::default(), &body, timeout).await?;
            let mut assembler = OllamaAssembler::default();
            read_stream(response, &mut assembler, tokens, &url, self.http.timeouts(timeout).0).await?;
            Ok(assembler.assembled().into_response(&self.provider, &self.model, started.elapsed()))
        })
    }

    fn health(&self, timeout: Duration) -> ModelCall<'_, ()> {
        Box::pin(async move { self.http.get(&self.http.url("/api/tags"), &Auth::default(), timeout).await.map(drop) })
    }

    fn capabilities(&self) -> Capabilities {
        let model = self.model.to_ascii_lowercase();
        let vision = ["llava", "vision", "-vl", "moondream"].iter().any(|marker| model.contains(marker));
        Capabilities { tools: true, vision }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

pub(crate) fn request_body(model: &str, request: &ChatRequest, parameters: &Map<String, Value>, stream: bool) -> Value {
    let mut body = Map::new();
    let mut options = Map::new();
    for (key, value) in parameters {
        match key.as_str() {
            "max_tokens" => {
                options.entry("num_predict").or_insert(value.clone());
            }
            "options" if value.is_object() => {
                options
                    .extend(value.as_object().into_iter().flatten().map(|(key, value)| (key.clone(), value.clone())));
            }
            key if OPTION_KEYS.contains(&key) => {
                options.insert(key.to_string(), value.clone());
            }
            _ => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    body.insert("model".into(), Value::from(model));
    body.insert("messages".into(), Value::Array(request.messages.iter().map(wire_message).collect()));
    body.insert("stream".into(), Value::Bool(stream));
    body.insert("options".into(), Value::Object(options));
    if !request.tools.is_empty() {
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
    wire.insert("content".into(), Value::from(message.content.as_str()));
    if !message.images.is_empty() {
        // Ollama wants bare base64; a data-URL prefix makes it fail to decode.
        let images = message
            .images
            .iter()
            .map(|image| Value::from(image_parts(image).map_or_else(|| image.clone(), |(_, data)| data)))
            .collect();
        wire.insert("images".into(), Value::Array(images));
    }
    if !message.tool_calls.is_empty() {
        let calls = message
            .tool_calls
            .iter()
            .map(|call| json!({"function": {"name": call.name, "arguments": if call.arguments.is_object() { call.arguments.clone() } else { json!({}) }}}))
            .collect();
        wire.insert("tool_calls".into(), Value::Array(calls));
    }
    if let (Role::Tool, Some(name)) = (message.role, &message.name) {
        wire.insert("tool_name".into(), Value::from(name.as_str()));
    }
    Value::Object(wire)
}

#[derive(Debug, Default, Deserialize)]
struct ChatChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    message: Option<ChunkMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
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

/// Folds one response object (the whole body, or one NDJSON line) into `out`.
fn apply_chunk(out: &mut Assembled, chunk: ChatChunk, tokens: &mut Vec<String>) {
    if out.model.is_none() {
        out.model = chunk.model;
    }
    if let Some(message) = chunk.message {
        if let Some(text) = message.content.filter(|text| !text.is_empty()) {
            out.content.push_str(&text);
            tokens.push(text);
        }
        if let Some(thinking) = message.thinking {
            out.reasoning.push_str(&thinking);
        }
        for call in message.tool_calls.unwrap_or_default() {
            let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(next_call_id);
            out.tool_calls.push(match call.function.arguments {
                Value::String(text) => ToolCall::from_argument_text(id, call.function.name, &text),
                Value::Null => ToolCall::from_argument_text(id, call.function.name, ""),
                arguments => ToolCall { id, name: call.function.name, arguments, raw_arguments: None },
            });
        }
    }
    if chunk.done {
        out.finish_reason = chunk.done_reason.or(Some("stop".to_string()));
        out.usage = Usage {
            input_tokens: chunk.prompt_eval_count.unwrap_or(0),
            output_tokens: chunk.eval_count.unwrap_or(0),
            cached_tokens: 0,
        };
    }
}

/// Assembles an Ollama NDJSON stream.
#[derive(Debug, Default)]
pub(crate) struct OllamaAssembler {
    ndjson: NdjsonDecoder,
    lines: Vec<String>,
    out: Assembled,
    done: bool,
}

impl OllamaAssembler {
    fn apply_lines(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.iter().try_for_each(|line| {
            if self.done {
                return Ok(());
            }
            let chunk: ChatChunk = serde_json::from_str(line)
                .map_err(|error| StreamFault::Malformed(format!("{error} (line: {})", excerpt(line))))?;
            if let Some(error) = chunk.error {
                return Err(StreamFault::Upstream(error));
            }
            self.done = chunk.done;
            apply_chunk(&mut self.out, chunk, tokens);
            Ok(())
        });
        lines.clear();
        self.lines = lines;
        result
    }
}

impl StreamAssembler for OllamaAssembler {
    fn push(&mut self, bytes: &[u8], tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        self.ndjson.push(bytes, &mut self.lines);
        self.apply_lines(tokens)
    }

    fn end(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault> {
        self.ndjson.finish(&mut self.lines);
        self.apply_lines(tokens)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn assembled(&mut self) -> Assembled {
        self.out.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::stream::feed_split;
    use proptest::prelude::*;

    #[test]
    fn parameters_split_between_options_and_top_level() {
        let mut parameters = Map::new();
        for (key, value) in [
            ("max_tokens", json!(64)),
            ("temperature", json!(0.1)),
            ("seed", json!(7)),
            ("num_ctx", json!(4096)),
            ("format", json!("json")),
            ("keep_alive", json!("5m")),
            ("options", json!({"mirostat": 2})),
        ] {
            parameters.insert(key.into(), value);
        }
        let body = request_body("llama3", &ChatRequest::new(vec![ChatMessage::user("x")]), &parameters, false);
        assert_eq!(
            body["options"],
            json!({"num_predict": 64, "temperature": 0.1, "seed": 7, "num_ctx": 4096, "mirostat": 2})
        );
        assert_eq!(body["format"], "json");
        assert_eq!(body["keep_alive"], "5m");
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn images_are_bare_base64_and_tool_history_has_the_ollama_shape() {
        let mut user = ChatMessage::user("see");
        user.images = vec!["data:image/png;base64,iVBOR".into()];
        let call = ToolCall { id: "call_1".into(), name: "f".into(), arguments: json!({"a": 1}), raw_arguments: None };
        let request = ChatRequest::new(vec![
            user,
            ChatMessage::assistant_tool_calls("", vec![call]),
            ChatMessage::tool_result("call_1", "f", "ok"),
        ]);
        let body = request_body("llava", &request, &Map::new(), false);
        assert_eq!(body["messages"][0]["images"], json!(["iVBOR"]));
        assert_eq!(body["messages"][1]["tool_calls"], json!([{"function": {"name": "f", "arguments": {"a": 1}}}]));
        assert_eq!(body["messages"][2], json!({"role": "tool", "content": "ok", "tool_name": "f"}));
    }

    #[test]
    fn tool_calls_without_ids_get_unique_ids() {
        let chunk: ChatChunk = serde_json::from_value(json!({
            "model": "llama3", "done": true, "prompt_eval_count": 5, "eval_count": 2,
            "message": {"content": "", "tool_calls": [
                {"function": {"name": "a", "arguments": {"x": 1}}},
                {"function": {"name": "b", "arguments": {}}}
            ]}
        }))
        .unwrap();
        let mut out = Assembled::default();
        apply_chunk(&mut out, chunk, &mut Vec::new());
        assert_eq!(out.tool_calls.len(), 2);
        assert!(out.tool_calls.iter().all(|call| call.id.starts_with("call_")));
        assert_ne!(out.tool_calls[0].id, out.tool_calls[1].id);
        assert_eq!(out.usage, Usage { input_tokens: 5, output_tokens: 2, cached_tokens: 0 });
    }

    fn sample_stream(parts: &[String]) -> String {
        let mut lines: Vec<Value> = parts
            .iter()
            .map(|part| json!({"model": "llama3", "message": {"role": "assistant", "content": part}, "done": false}))
            .collect();
        lines.push(json!({"model": "llama3", "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "ü"}}}]}, "done": false}));
        lines.push(json!({"model": "llama3", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 4}));
        lines.iter().map(|line| format!("{line}\n")).collect()
    }

    proptest! {
        #[test]
        fn stream_assembly_does_not_depend_on_chunk_splits(
            parts in proptest::collection::vec("[a-zé €\n]{1,8}", 1..6),
            cuts in proptest::collection::vec(0usize..1500, 0..16),
        ) {
            let text = sample_stream(&parts);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut assembler = OllamaAssembler::default();
            let (tokens, out) = feed_split(&mut assembler, text.as_bytes(), &cuts).unwrap();
            prop_assert!(assembler.is_done());
            prop_assert_eq!(&tokens, &parts);
            prop_assert_eq!(out.content, parts.concat());
            prop_assert_eq!(out.tool_calls.len(), 1);
            prop_assert_eq!(&out.tool_calls[0].arguments, &json!({"q": "ü"}));
            prop_assert_eq!(out.usage.input_tokens, 12);
            prop_assert_eq!(out.usage.output_tokens, 4);
        }
    }
}
