//! The OpenAI-compatible front door: `GET /v1/models` and `POST /v1/chat/completions`.
//!
//! Agents are the models (`model` = agent name), so any OpenAI SDK or chat client can run them.
//! The last `user` message is the query. Without a session, the earlier `user`/`assistant`
//! messages are the history and nothing is stored (the client owns the conversation, as with
//! OpenAI); a session named by `X-Session-Id` or the `user` field uses stored memory instead and
//! the client sends only the new message. `system`/`developer` messages are dropped: the agent's
//! own prompt is the system prompt. Errors use OpenAI's envelope (`OpenAiError`), on these two
//! routes only. Not here: the run itself (`Runtime::run`).

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::error::{ApiError, OpenAiError};
use super::extract::ApiJson;
use super::AppState;
use crate::memory::Turn;
use crate::runtime::{RunEvent, RunOutcome, RunRequest};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/models", get(models)).route("/v1/chat/completions", post(chat_completions))
}

/// Events buffered between the run and the SSE response.
const EVENT_BUFFER: usize = 256;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or_default()
}

async fn models(State(app): State<AppState>) -> Json<Value> {
    // Agents are loaded at startup, so "created" is when the daemon started.
    let created = unix_now().saturating_sub(app.started.elapsed().as_secs());
    let data: Vec<Value> = app
        .runtime
        .agents()
        .iter()
        .filter(|entry| entry.config().is_some())
        .map(|entry| json!({"id": entry.name, "object": "model", "created": created, "owned_by": "astromesh"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The subset of OpenAI's request body we use; other fields (temperature, tools, ...) are
/// accepted and ignored, since the agent's YAML decides them.
#[derive(Debug, Deserialize)]
struct ChatBody {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    /// A string, an array of content parts (`{type: "text", text}`), or null.
    #[serde(default)]
    content: Value,
}

impl ChatMessage {
    fn text(&self) -> String {
        match &self.content {
            Value::String(text) => text.clone(),
            Value::Array(parts) => {
                parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
            }
            _ => String::new(),
        }
    }
}

/// Splits the messages into the query and (without a session) the history.
fn into_request(body: &ChatBody, session: Option<String>) -> Result<RunRequest, OpenAiError> {
    let Some(last_user) = body.messages.iter().rposition(|message| message.role == "user") else {
        return Err(ApiError::BadRequest("messages must contain a message with role 'user'".to_string()).into());
    };
    let history = match session {
        Some(_) => None,
        None => Some(
            body.messages[..last_user]
                .iter()
                .filter(|message| matches!(message.role.as_str(), "user" | "assistant"))
                .map(|message| Turn::new(&message.role, &message.text()))
                .collect(),
        ),
    };
    Ok(RunRequest {
        agent: body.model.clone(),
        query: body.messages[last_user].text(),
        session_id: session,
        context: Map::new(),
        history,
    })
}

async fn chat_completions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<ChatBody>, ApiError>,
) -> Result<Response, OpenAiError> {
    let ApiJson(body) = body?;
    let session = headers
        .get("x-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or_else(|| body.user.clone())
        .filter(|session| !session.is_empty());
    let request = into_request(&body, session)?;
    if app.runtime.agent(&request.agent).is_none() {
        return Err(crate::runtime::RunError::UnknownAgent(request.agent).into());
    }
    if body.stream {
        let include_usage = body.stream_options.as_ref().is_some_and(|options| options.include_usage);
        return Ok(stream(app, request, include_usage));
    }
    let outcome = app.runtime.run(request, None).await?;
    let mut response = Json(completion(&body.model, &outcome)).into_response();
    if let Ok(value) = HeaderValue::from_str(&outcome.session_id) {
        response.headers_mut().insert("x-session-id", value);
    }
    Ok(response)
}

fn usage(outcome: &RunOutcome) -> Value {
    json!({
        "prompt_tokens": outcome.usage.input_tokens,
        "completion_tokens": outcome.usage.output_tokens,
        "total_tokens": outcome.usage.total_tokens,
    })
}

fn completion(model: &str, outcome: &RunOutcome) -> Value {
    json!({
        "id": format!("chatcmpl-{}", outcome.trace_id),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": outcome.response},
            "finish_reason": "stop",
            "logprobs": null,
        }],
        "usage": usage(outcome),
        "system_fingerprint": null,
    })
}

/// One `chat.completion.chunk` frame.
struct Chunks {
    id: String,
    model: String,
    created: u64,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        Event::default().data(
            json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}],
            })
            .to_string(),
        )
    }

    fn usage(&self, outcome: &RunOutcome) -> Event {
        Event::default().data(
            json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage(outcome),
            })
            .to_string(),
        )
    }
}

/// Answers as SSE: a role delta, content deltas as tokens arrive, a `stop` chunk, `[DONE]`.
/// The run is driven by a task that stops (cancelling the run) when the client goes away or
/// the daemon shuts down.
fn stream(app: AppState, request: RunRequest, include_usage: bool) -> Response {
    let mut rng = rand::rng();
    let id = format!("chatcmpl-{}", (0..12).map(|_| format!("{:02x}", rng.random::<u8>())).collect::<String>());
    let chunks = Chunks { id, model: request.agent.clone(), created: unix_now() };
    let (frames, received_frames) = mpsc::channel::<Event>(EVENT_BUFFER);
    tokio::spawn(async move {
        if frames.send(chunks.chunk(json!({"role": "assistant", "content": ""}), None)).await.is_err() {
            return;
        }
        let (events, mut received) = mpsc::channel(EVENT_BUFFER);
        let run = app.runtime.run(request, Some(events));
        tokio::pin!(run);
        let mut streamed_any = false;
        let result = loop {
            tokio::select! {
                biased;
                // Once the run drops its sender, `recv` yields `None` and the branch is disabled.
                Some(event) = received.recv() => {
                    if let RunEvent::Token(token) = event {
                        streamed_any = true;
                        if frames.send(chunks.chunk(json!({"content": token}), None)).await.is_err() {
                            return; // The client went away: dropping `run` cancels it.
                        }
                    }
                }
                result = &mut run => break result,
                () = app.shutdown.cancelled() => return,
            }
        };
        while let Some(event) = received.recv().await {
            if let RunEvent::Token(token) = event {
                streamed_any = true;
                if frames.send(chunks.chunk(json!({"content": token}), None)).await.is_err() {
                    return;
                }
            }
        }
        let mut tail = Vec::with_capacity(4);
        match result {
            Ok(outcome) => {
                if !streamed_any && !outcome.response.is_empty() {
                    // The provider answered without streaming: send the answer as one delta.
                    tail.push(chunks.chunk(json!({"content": outcome.response}), None));
                }
                tail.push(chunks.chunk(json!({}), Some("stop")));
                if include_usage {
                    tail.push(chunks.usage(&outcome));
                }
            }
            Err(error) => tail.push(Event::default().data(OpenAiError::from(error).body().to_string())),
        }
        tail.push(Event::default().data("[DONE]"));
        for frame in tail {
            if frames.send(frame).await.is_err() {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(received_frames, |mut received| async move {
        received.recv().await.map(|frame| (Ok::<Event, Infallible>(frame), received))
    });
    Sse::new(body).into_response()
}
