//! Model providers: the `ChatModel` trait, its three wire adapters, and the router over them.
//!
//! Every model call in the daemon goes through a `ChatModel`. The trait is async: the HTTP
//! adapters use one pooled reqwest client each, so a call waiting on a provider holds no thread
//! (under load a blocking call per run meant a runnable thread per run); a local model's
//! generation runs on its own worker thread and is awaited through a channel. The router
//! (`router`) passes the run's remaining deadline as the timeout.
//! The adapters (`openai_compat`, `anthropic`, `ollama`) own their wire format and nothing else;
//! the byte-level stream decoders they share live in `stream` as pure functions, so they can be
//! property-tested over arbitrary chunk splits. Not here: choosing a candidate, fallback and
//! circuit breaking (`router`), prices (`pricing`), or anything about agents and HTTP serving.
//! **Architecture Invariant:** API keys never appear in a `ProviderError`'s text, in logs, or in
//! `Debug` output; they are read (from the config or the environment) at the moment of sending.

mod anthropic;
pub(crate) mod http;
pub mod local;
mod ollama;
mod openai_compat;
pub mod pricing;
pub mod router;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::model::{ModelCandidate, ProviderKind};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation, in the provider-neutral shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Images attached to a user message: data URLs (`data:image/png;base64,...`), bare base64,
    /// or http(s) URLs for providers that fetch them.
    pub images: Vec<String>,
    /// Tool calls made by an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the id of the call this message answers.
    pub tool_call_id: Option<String>,
    /// For `Role::Tool`: the tool's name; otherwise an optional participant name.
    pub name: Option<String>,
    /// The model's reasoning, echoed back to providers that want it (DeepSeek, Kimi).
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    fn plain(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.to_string(),
            images: Vec::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            reasoning_content: None,
        }
    }

    pub fn system(content: &str) -> ChatMessage {
        ChatMessage::plain(Role::System, content)
    }

    pub fn user(content: &str) -> ChatMessage {
        ChatMessage::plain(Role::User, content)
    }

    pub fn assistant(content: &str) -> ChatMessage {
        ChatMessage::plain(Role::Assistant, content)
    }

    /// An assistant turn that called tools (what the model answered, sent back in history).
    pub fn assistant_tool_calls(content: &str, tool_calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage { tool_calls, ..ChatMessage::plain(Role::Assistant, content) }
    }

    /// The result of one tool call.
    pub fn tool_result(tool_call_id: &str, tool_name: &str, content: &str) -> ChatMessage {
        ChatMessage {
            tool_call_id: Some(tool_call_id.to_string()),
            name: Some(tool_name.to_string()),
            ..ChatMessage::plain(Role::Tool, content)
        }
    }
}

/// A tool call in the canonical internal shape `{id, name, arguments: <object>}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    /// `Some(raw)` when the provider sent argument text that is not valid JSON; `arguments` is
    /// then `{}` and the caller decides whether to report it to the model.
    pub raw_arguments: Option<String>,
}

impl ToolCall {
    /// Parses argument text as a provider sent it. Empty text is `{}`.
    pub(crate) fn from_argument_text(id: String, name: String, text: &str) -> ToolCall {
        if text.trim().is_empty() {
            return ToolCall { id, name, arguments: Value::Object(Map::new()), raw_arguments: None };
        }
        match serde_json::from_str::<Value>(text) {
            Ok(arguments) => ToolCall { id, name, arguments, raw_arguments: None },
            Err(_) => {
                ToolCall { id, name, arguments: Value::Object(Map::new()), raw_arguments: Some(text.to_string()) }
            }
        }
    }
}

/// A tool the model may call, with its JSON-Schema parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// One model call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    /// Per-call overrides, merged over the candidate's configured `parameters`.
    pub parameters: Map<String, Value>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest { messages, ..ChatRequest::default() }
    }

    /// Whether any message carries an image (the router's `capability_match` needs vision).
    pub fn needs_vision(&self) -> bool {
        self.messages.iter().any(|message| !message.images.is_empty())
    }

    /// The candidate's parameters with this request's overrides on top.
    pub(crate) fn merged_parameters(&self, configured: &Map<String, Value>) -> Map<String, Value> {
        let mut merged = configured.clone();
        for (key, value) in &self.parameters {
            merged.insert(key.clone(), value.clone());
        }
        merged
    }
}

/// Token counts as the provider reported them (0 when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
}

/// What a model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// The model that answered, as the provider reported it (else the configured name).
    pub model: String,
    /// The provider name as configured (`openai`, `vllm`, `anthropic`, ...).
    pub provider: String,
    pub reasoning_content: Option<String>,
    pub finish_reason: Option<String>,
    /// Wall-clock time of the call, including reading the whole body.
    pub latency: Duration,
}

/// What a stream yields while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A text delta.
    Token(String),
}

/// What a model can take as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub tools: bool,
    pub vision: bool,
}

/// The future of one model call; it borrows the adapter and the request.
pub type ModelCall<'a, T> = futures_util::future::BoxFuture<'a, Result<T, ProviderError>>;

/// Where a streaming call's text deltas go: a channel, or nowhere. Once the receiver is gone
/// the deltas are dropped, but the call goes on, so the answer can still be kept.
#[derive(Debug, Default)]
pub struct TokenSink {
    sender: Option<tokio::sync::mpsc::Sender<String>>,
    emitted: bool,
}

impl TokenSink {
    pub fn new(sender: Option<tokio::sync::mpsc::Sender<String>>) -> TokenSink {
        TokenSink { sender, emitted: false }
    }

    /// Forwards one delta, waiting while the channel is full (a slow reader slows the call).
    pub async fn send(&mut self, token: &str) {
        self.emitted = true;
        if let Some(sender) = &self.sender {
            if sender.send(token.to_string()).await.is_err() {
                self.sender = None;
            }
        }
    }

    /// Whether any delta was produced (a failure after that cannot fall back silently).
    pub fn emitted(&self) -> bool {
        self.emitted
    }
}

/// A model endpoint speaking one wire protocol.
pub trait ChatModel: Send + Sync {
    /// One non-streaming call. `timeout` is the run's remaining time; the adapter uses the
    /// smaller of it and the candidate's own `timeout`.
    fn complete<'a>(&'a self, request: &'a ChatRequest, timeout: Duration) -> ModelCall<'a, ChatResponse>;

    /// Streams text deltas to `tokens` and returns the assembled whole response (text + tool
    /// calls assembled from deltas + usage).
    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
        tokens: &'a mut TokenSink,
    ) -> ModelCall<'a, ChatResponse>;

    /// A cheap request proving the endpoint answers (a model list).
    fn health(&self, timeout: Duration) -> ModelCall<'_, ()>;

    fn capabilities(&self) -> Capabilities;

    /// `provider/model`, for logs and error messages.
    fn describe(&self) -> String;
}

/// Why a model call failed. The text never contains an API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("missing API key: the environment variable {env} is not set")]
    MissingApiKey { env: String },
    #[error("connection refused by {url}")]
    ConnectionRefused { url: String },
    #[error("could not resolve the host of {url}")]
    Dns { url: String },
    #[error("no connection to {url} within {}", secs(*.timeout))]
    ConnectTimeout { url: String, timeout: Duration },
    #[error("no complete answer from {url} within {}", secs(*.timeout))]
    Timeout { url: String, timeout: Duration },
    #[error("connection to {url} failed: {reason}")]
    Connection { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("malformed response from {url}: {detail}")]
    Malformed { url: String, detail: String },
    #[error("stream from {url} interrupted after {received_bytes} bytes: {reason}")]
    StreamInterrupted { url: String, received_bytes: u64, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// A local model's generation queue is full: the request was refused, nothing ran.
    #[error("{0}")]
    Busy(String),
}

impl ProviderError {
    /// A stable diagnostic code, as the reference's `ModelProviderError.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::MissingApiKey { .. } => "model_missing_api_key",
            ProviderError::ConnectionRefused { .. } => "model_connection_refused",
            ProviderError::Dns { .. } => "model_dns_resolution_failed",
            ProviderError::ConnectTimeout { .. } | ProviderError::Timeout { .. } => "model_timeout",
            ProviderError::Connection { .. } => "model_connection_failed",
            ProviderError::Status { .. } => "model_http_error",
            ProviderError::Malformed { .. } => "model_malformed_response",
            ProviderError::StreamInterrupted { .. } => "model_stream_interrupted",
            ProviderError::Unsupported(_) => "model_unsupported",
            ProviderError::Busy(_) => "model_busy",
        }
    }

    /// Whether this is a timeout (the router does not blame a candidate for the run's deadline).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProviderError::ConnectTimeout { .. } | ProviderError::Timeout { .. })
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.3}s", duration.as_secs_f64()).replace(".000s", "s")
}

/// Builds the adapter for a candidate. Remote adapters do no I/O (an unreachable endpoint fails
/// at call time). A local model gets a registry of its own (absolute `model_path` only, not
/// shared): the runtime uses `build_model_with` and its one registry instead.
pub fn build_model(candidate: &ModelCandidate) -> Result<Arc<dyn ChatModel>, ProviderError> {
    build_model_with(candidate, &local::LocalModels::new(std::path::PathBuf::new()))
}

/// `build_model` with local models taken from (and shared through) `local`; a local model's
/// file header is read here.
pub fn build_model_with(
    candidate: &ModelCandidate,
    local: &local::LocalModels,
) -> Result<Arc<dyn ChatModel>, ProviderError> {
    let model: Arc<dyn ChatModel> = match candidate.kind {
        ProviderKind::OpenAiCompat => Arc::new(openai_compat::OpenAiCompat::new(candidate)?),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(candidate)?),
        ProviderKind::Ollama => Arc::new(ollama::Ollama::new(candidate)?),
        ProviderKind::Local => local.model(candidate).map_err(|error| ProviderError::Unsupported(error.to_string()))?,
    };
    Ok(model)
}
