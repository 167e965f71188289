//! A scripted LLM server: speaks OpenAI, Anthropic and Ollama, streaming and not.
//!
//! Each test starts its own on 127.0.0.1:0, pushes the replies it wants (`Reply::text`,
//! `Reply::tool_call`, errors, hangs, dropped connections) and afterwards reads what reached the
//! wire (`requests()`). The wire format of a reply follows the path it is asked on:
//! `/v1/chat/completions` and `/chat/completions` (OpenAI), `/v1/messages` (Anthropic),
//! `/api/chat` (Ollama); `/v1/models`, `/models` and `/api/tags` answer health checks.
//! Streams are split into several frames (text in pieces, tool-call arguments in fragments) so
//! clients really assemble them. With an empty queue the server answers the default reply.
//!
//! It serves with hyper directly, not `axum::serve`: dropping a connection on purpose needs a
//! per-connection signal to the connection's task, which `axum::serve` does not expose.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// What one call to the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    kind: ReplyKind,
    usage: (u64, u64),
    cached_tokens: u64,
    delay: Duration,
    chunk_delay: Duration,
    interrupt_after: Option<usize>,
    reasoning: Option<String>,
    model: Option<String>,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    Answer { text: String, tool_calls: Vec<(String, Value)> },
    Status(u16, String),
    Malformed(String),
    Hang,
    Drop,
}

impl Reply {
    fn of(kind: ReplyKind) -> Reply {
        Reply {
            kind,
            usage: (10, 5),
            cached_tokens: 0,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            interrupt_after: None,
            reasoning: None,
            model: None,
        }
    }

    /// A plain text answer.
    pub fn text(text: &str) -> Reply {
        Reply::of(ReplyKind::Answer { text: text.to_string(), tool_calls: Vec::new() })
    }

    /// An answer that calls one tool with `arguments` (a JSON object).
    pub fn tool_call(name: &str, arguments: Value) -> Reply {
        Reply::of(ReplyKind::Answer { text: String::new(), tool_calls: vec![(name.to_string(), arguments)] })
    }

    /// Adds another tool call to an answer.
    pub fn and_tool_call(mut self, name: &str, arguments: Value) -> Reply {
        if let ReplyKind::Answer { tool_calls, .. } = &mut self.kind {
            tool_calls.push((name.to_string(), arguments));
        }
        self
    }

    /// Sets the text of an answer (e.g. text that accompanies tool calls).
    pub fn with_text(mut self, new_text: &str) -> Reply {
        if let ReplyKind::Answer { text, .. } = &mut self.kind {
            *text = new_text.to_string();
        }
        self
    }

    /// An HTTP error status with this body.
    pub fn status(code: u16, body: &str) -> Reply {
        Reply::of(ReplyKind::Status(code, body.to_string()))
    }

    /// 200 with this body, which is not what the protocol promises (streams: as one frame).
    pub fn malformed(body: &str) -> Reply {
        Reply::of(ReplyKind::Malformed(body.to_string()))
    }

    /// Accepts the request and never answers.
    pub fn hang() -> Reply {
        Reply::of(ReplyKind::Hang)
    }

    /// Closes the connection without answering.
    pub fn drop_connection() -> Reply {
        Reply::of(ReplyKind::Drop)
    }

    /// Token counts reported by the answer (default 10 in, 5 out).
    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Reply {
        self.usage = (input_tokens, output_tokens);
        self
    }

    pub fn with_cached_tokens(mut self, cached_tokens: u64) -> Reply {
        self.cached_tokens = cached_tokens;
        self
    }

    pub fn with_reasoning(mut self, reasoning: &str) -> Reply {
        self.reasoning = Some(reasoning.to_string());
        self
    }

    /// The model name in the answer (default: the one requested).
    pub fn with_model(mut self, model: &str) -> Reply {
        self.model = Some(model.to_string());
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, millis: u64) -> Reply {
        self.delay = Duration::from_millis(millis);
        self
    }

    /// Streams: waits this long between frames.
    pub fn chunk_delay(mut self, millis: u64) -> Reply {
        self.chunk_delay = Duration::from_millis(millis);
        self
    }

    /// Streams: sends this many frames, then drops the connection. Non-streaming: drops it.
    pub fn interrupt_after(mut self, frames: usize) -> Reply {
        self.interrupt_after = Some(frames);
        self
    }
}

/// One request as it reached the server.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    pub raw_body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Whether this is a chat call (not a health check).
    pub fn is_chat(&self) -> bool {
        protocol(&self.path).is_some()
    }

    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool).unwrap_or(false)
    }
}

/// A poisoned lock only means another test thread panicked; the data is still fine to read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    health: Mutex<Reply>,
    log: Mutex<Vec<Recorded>>,
    /// False after `stop_recording`: arrivals are counted, requests not kept.
    recording: std::sync::atomic::AtomicBool,
    arrived: watch::Sender<usize>,
    /// Numbers the ids in answers (`chatcmpl-N`, `call_N_i`, `toolu_N_i`).
    next_id: AtomicU64,
}

/// The server. Dropping it stops the server and all its connections.
pub struct ScriptedLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Tells a connection's task to drop the connection.
#[derive(Clone)]
struct ConnectionKill(Arc<Notify>);

impl ScriptedLlm {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub async fn start() -> ScriptedLlm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::text("Hello from the scripted LLM.")),
            health: Mutex::new(Reply::text("")),
            log: Mutex::new(Vec::new()),
            recording: std::sync::atomic::AtomicBool::new(true),
            arrived: watch::channel(0).0,
            next_id: AtomicU64::new(1),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(accept_loop(listener, app));
        ScriptedLlm { addr, shared, server }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for the next chat call.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).extend(replies);
    }

    /// What chat calls get once the queue is empty (initially a short text).
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.shared.default) = reply;
    }

    /// How health checks (`/models`, `/api/tags`) answer: a status, a hang, a delay, or any
    /// answer for 200 (the default).
    pub fn set_health(&self, reply: Reply) {
        *lock(&self.shared.health) = reply;
    }

    /// Replies still queued.
    pub fn queued(&self) -> usize {
        lock(&self.shared.script).len()
    }

    /// Every request so far, health checks included, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    /// Chat calls only.
    pub fn chat_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_chat).collect()
    }

    /// Keeps no more requests (arrivals are still counted): a benchmark's memory is then the
    /// daemon's, not this log's.
    pub fn stop_recording(&self) {
        self.shared.recording.store(false, Ordering::Relaxed);
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Waits (up to 10 s) until at least `count` requests have arrived; a readiness signal for
    /// tests whose client call does not return (a hang, a cancelled run).
    pub async fn wait_for_requests(&self, count: usize) -> Vec<Recorded> {
        let mut arrived = self.shared.arrived.subscribe();
        let wait = arrived.wait_for(|seen| *seen >= count);
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("expected {count} requests, got {}", self.request_count()))
            .expect("the server is running");
        self.requests()
    }
}

async fn accept_loop(listener: TcpListener, app: Router) {
    // Connection tasks live in this set, so aborting the accept loop ends them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => continue,
        };
        while connections.try_join_next().is_some() {}
        let kill = Arc::new(Notify::new());
        let service = app.clone().layer(Extension(ConnectionKill(kill.clone())));
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper_util::service::TowerToHyperService::new(service);
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            tokio::select! {
                _ = connection => {}
                _ = kill.notified() => {} // dropping the connection closes the socket
            }
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    OpenAi,
    Anthropic,
    Ollama,
}

fn protocol(path: &str) -> Option<Protocol> {
    match path {
        "/v1/chat/completions" | "/chat/completions" => Some(Protocol::OpenAi),
        "/v1/messages" => Some(Protocol::Anthropic),
        "/api/chat" => Some(Protocol::Ollama),
        _ => None,
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(kill): Extension<ConnectionKill>,
    request: Request,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    // Copies, not slices: a slice of hyper's read buffer would keep the whole buffer alive for
    // as long as the log holds the request (which inflates a long benchmark's memory).
    let headers: HeaderMap = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), HeaderValue::from_bytes(value.as_bytes()).ok()?)))
        .collect();
    let raw_body = axum::body::to_bytes(request.into_body(), 64 * 1024 * 1024).await.unwrap_or_default();
    let raw_body = Bytes::copy_from_slice(&raw_body);
    let body: Value = serde_json::from_slice(&raw_body).unwrap_or(Value::Null);
    let recorded = Recorded { method, path: path.clone(), headers, body: body.clone(), raw_body };
    if shared.recording.load(Ordering::Relaxed) {
        let count = {
            let mut log = lock(&shared.log);
            log.push(recorded);
            log.len()
        };
        shared.arrived.send_replace(count);
    } else {
        shared.arrived.send_modify(|count| *count += 1);
    }

    let protocol = protocol(&path);
    let reply = match protocol {
        Some(_) => {
            let queued = lock(&shared.script).pop_front();
            queued.unwrap_or_else(|| lock(&shared.default).clone())
        }
        None if matches!(path.as_str(), "/v1/models" | "/models" | "/api/tags") => lock(&shared.health).clone(),
        None => return (StatusCode::NOT_FOUND, format!("scripted LLM: no route for {path}")).into_response(),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match &reply.kind {
        ReplyKind::Hang => return std::future::pending::<Response>().await,
        ReplyKind::Drop => return drop_connection(&kill).await,
        ReplyKind::Status(code, text) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type =
                if serde_json::from_str::<Value>(text).is_ok() { "application/json" } else { "text/plain" };
            return (status, [(header::CONTENT_TYPE, content_type)], text.clone()).into_response();
        }
        ReplyKind::Malformed(_) | ReplyKind::Answer { .. } => {}
    }
    let Some(protocol) = protocol else {
        let models = if path == "/api/tags" {
            json!({"models": [{"name": "llama3"}]})
        } else {
            json!({"object": "list", "data": [{"id": "scripted"}]})
        };
        return axum::Json(models).into_response();
    };
    let model = reply
        .model
        .clone()
        .or_else(|| body.get("model").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        if reply.interrupt_after.is_some() {
            return drop_connection(&kill).await;
        }
        let text = match &reply.kind {
            ReplyKind::Malformed(text) => text.clone(),
            _ => whole_body(protocol, &reply, &model, &shared).to_string(),
        };
        return ([(header::CONTENT_TYPE, "application/json")], text).into_response();
    }
    let frames = match &reply.kind {
        ReplyKind::Malformed(text) if protocol == Protocol::Ollama => vec![format!("{text}\n")],
        ReplyKind::Malformed(text) => vec![format!("data: {text}\n\n")],
        _ => stream_frames(protocol, &reply, &model, &shared),
    };
    let content_type = if protocol == Protocol::Ollama { "application/x-ndjson" } else { "text/event-stream" };
    let body = stream_body(frames, reply.chunk_delay, reply.interrupt_after);
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn drop_connection(kill: &ConnectionKill) -> Response {
    kill.0.notify_one();
    std::future::pending::<Response>().await
}

fn stream_body(frames: Vec<String>, chunk_delay: Duration, interrupt_after: Option<usize>) -> Body {
    let limit = interrupt_after.unwrap_or(usize::MAX);
    let state = (frames.into_iter(), 0usize);
    let stream = futures_util::stream::unfold(state, move |(mut frames, sent)| async move {
        if sent >= limit {
            // Yield once so hyper flushes the frames already written (it flushes when the body is
            // pending), then an error ends the body: hyper closes the connection mid-stream.
            tokio::task::yield_now().await;
            let error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "scripted interruption");
            return Some((Err(error), (frames, usize::MAX - 1)));
        }
        let frame = frames.next()?;
        if sent > 0 && !chunk_delay.is_zero() {
            tokio::time::sleep(chunk_delay).await;
        }
        Some((Ok::<Bytes, std::io::Error>(Bytes::from(frame)), (frames, sent + 1)))
    });
    Body::from_stream(stream)
}

fn answer(reply: &Reply) -> (&str, &[(String, Value)]) {
    match &reply.kind {
        ReplyKind::Answer { text, tool_calls } => (text.as_str(), tool_calls.as_slice()),
        _ => ("", &[]),
    }
}

/// Splits text into up to four pieces on character boundaries.
fn pieces(text: &str, count: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(count).max(1);
    chars.chunks(size).map(|chunk| chunk.iter().collect()).collect()
}

fn whole_body(protocol: Protocol, reply: &Reply, model: &str, shared: &Shared) -> Value {
    let (text, tool_calls) = answer(reply);
    let (input_tokens, output_tokens) = reply.usage;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    match protocol {
        Protocol::OpenAi => {
            let calls: Vec<Value> = tool_calls
                .iter()
                .enumerate()
                .map(|(idx, (name, arguments))| json!({"id": format!("call_{id}_{idx}"), "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}))
                .collect();
            let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(text) }});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls);
            }
            if let Some(reasoning) = &reply.reasoning {
                message["reasoning_content"] = Value::from(reasoning.as_str());
            }
            json!({
                "id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if tool_calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
                          "prompt_tokens_details": {"cached_tokens": reply.cached_tokens}}
            })
        }
        Protocol::Anthropic => {
            let mut content = Vec::new();
            if let Some(reasoning) = &reply.reasoning {
                content.push(json!({"type": "thinking", "thinking": reasoning, "signature": "scripted"}));
            }
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            for (idx, (name, arguments)) in tool_calls.iter().enumerate() {
                content.push(
                    json!({"type": "tool_use", "id": format!("toolu_{id}_{idx}"), "name": name, "input": arguments}),
                );
            }
            json!({
                "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if tool_calls.is_empty() { "end_turn" } else { "tool_use" },
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": reply.cached_tokens}
            })
        }
        Protocol::Ollama => {
            let mut message = json!({"role": "assistant", "content": text});
            if !tool_calls.is_empty() {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|(name, arguments)| json!({"function": {"name": name, "arguments": arguments}}))
                    .collect();
                message["tool_calls"] = Value::Array(calls);
            }
            if let Some(reasoning) = &reply.reasoning {
                message["thinking"] = Value::from(reasoning.as_str());
            }
            json!({"model": model, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": true, "done_reason": "stop",
                   "prompt_eval_count": input_tokens, "eval_count": output_tokens})
        }
    }
}

fn stream_frames(protocol: Protocol, reply: &Reply, model: &str, shared: &Shared) -> Vec<String> {
    let (text, tool_calls) = answer(reply);
    let (input_tokens, output_tokens) = reply.usage;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let text_pieces = pieces(text, 4);
    let mut frames = Vec::new();
    match protocol {
        Protocol::OpenAi => {
            let sse = |data: Value| format!("data: {data}\n\n");
            let chunk = |delta: Value, finish: Value| json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            frames.push(sse(chunk(json!({"role": "assistant", "content": ""}), Value::Null)));
            if let Some(reasoning) = &reply.reasoning {
                frames.push(sse(chunk(json!({"reasoning_content": reasoning}), Value::Null)));
            }
            for piece in &text_pieces {
                frames.push(sse(chunk(json!({"content": piece}), Value::Null)));
            }
            for (idx, (name, arguments)) in tool_calls.iter().enumerate() {
                let fragments = pieces(&arguments.to_string(), 3);
                let first = fragments.first().cloned().unwrap_or_default();
                let call_id = format!("call_{id}_{idx}");
                frames.push(sse(chunk(json!({"tool_calls": [{"index": idx, "id": call_id, "type": "function", "function": {"name": name, "arguments": first}}]}), Value::Null)));
                for fragment in fragments.iter().skip(1) {
                    frames.push(sse(chunk(
                        json!({"tool_calls": [{"index": idx, "function": {"arguments": fragment}}]}),
                        Value::Null,
                    )));
                }
            }
            frames.push(sse(chunk(json!({}), Value::from(if tool_calls.is_empty() { "stop" } else { "tool_calls" }))));
            frames.push(sse(json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk", "model": model, "choices": [],
                                   "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
                                             "prompt_tokens_details": {"cached_tokens": reply.cached_tokens}}})));
            frames.push("data: [DONE]\n\n".to_string());
        }
        Protocol::Anthropic => {
            let sse = |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap_or("message"));
            frames.push(sse(json!({"type": "message_start", "message": {"id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model, "content": [],
                                    "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": reply.cached_tokens}}})));
            let mut index = 0;
            if let Some(reasoning) = &reply.reasoning {
                frames.push(sse(json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}})));
                frames.push(sse(json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": reasoning}})));
                frames.push(sse(json!({"type": "content_block_stop", "index": index})));
                index += 1;
            }
            if !text_pieces.is_empty() {
                frames.push(sse(json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                frames.push(sse(json!({"type": "ping"})));
                for piece in &text_pieces {
                    frames.push(sse(json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
                }
                frames.push(sse(json!({"type": "content_block_stop", "index": index})));
                index += 1;
            }
            for (idx, (name, arguments)) in tool_calls.iter().enumerate() {
                frames.push(sse(json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{id}_{idx}"), "name": name, "input": {}}})));
                for fragment in pieces(&arguments.to_string(), 3) {
                    frames.push(sse(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": fragment}})));
                }
                frames.push(sse(json!({"type": "content_block_stop", "index": index})));
                index += 1;
            }
            frames.push(sse(json!({"type": "message_delta", "delta": {"stop_reason": if tool_calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null},
                                    "usage": {"output_tokens": output_tokens}})));
            frames.push(sse(json!({"type": "message_stop"})));
        }
        Protocol::Ollama => {
            let line = |message: Value, done: bool| {
                format!(
                    "{}\n",
                    json!({"model": model, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": done})
                )
            };
            if let Some(reasoning) = &reply.reasoning {
                frames.push(line(json!({"role": "assistant", "content": "", "thinking": reasoning}), false));
            }
            for piece in &text_pieces {
                frames.push(line(json!({"role": "assistant", "content": piece}), false));
            }
            if !tool_calls.is_empty() {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|(name, arguments)| json!({"function": {"name": name, "arguments": arguments}}))
                    .collect();
                frames.push(line(json!({"role": "assistant", "content": "", "tool_calls": calls}), false));
            }
            frames.push(format!(
                "{}\n",
                json!({"model": model, "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": ""}, "done": true,
                       "done_reason": "stop", "prompt_eval_count": input_tokens, "eval_count": output_tokens})
            ));
        }
    }
    frames
}
