//! `WS /v1/ws/agent/{name}`: a run's events as they happen, then `done` or `error`.
//!
//! Client frames `{query, session_id?}` (the session may also come as `?session_id=`). Server
//! frames: `token{content}`, `tool_call{tool,input}`, `tool_result{tool,output}`, then
//! `done{usage,timing,session_id}` or `error{message}`. Queries on one socket run one after
//! another; bad frames get an `error` frame and the socket stays open; a client that goes away
//! cancels its run; shutdown sends a close frame.

use std::collections::VecDeque;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::extract::{ApiPath, ApiQuery};
use super::forward;
use super::AppState;
use crate::mesh::transport::FORWARDED_HEADER;
use crate::mesh::Route;
use crate::runtime::{RunEvent, RunRequest};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/ws/agent/{name}", get(upgrade))
}

#[derive(Debug, Deserialize, Default)]
struct SocketQuery {
    session_id: Option<String>,
}

/// Frames a client may queue while a run is in flight.
const MAX_PENDING: usize = 16;
/// Events buffered between the run and the socket.
const EVENT_BUFFER: usize = 256;

async fn upgrade(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<SocketQuery>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    socket: WebSocketUpgrade,
) -> Response {
    let session = query.session_id;
    let forwarded = headers.contains_key(FORWARDED_HEADER);
    let api_key = forward::socket_api_key(&headers, &uri);
    socket.on_upgrade(move |socket| serve(app, name, session, forwarded, api_key, socket))
}

type Sender = SplitSink<WebSocket, Message>;

async fn send(sender: &mut Sender, frame: Value) -> bool {
    sender.send(Message::Text(frame.to_string().into())).await.is_ok()
}

async fn serve(
    app: AppState,
    agent: String,
    default_session: Option<String>,
    forwarded: bool,
    api_key: Option<axum::http::HeaderValue>,
    socket: WebSocket,
) {
    let mut socket = socket;
    let mut message = format!("Agent '{agent}' not found");
    if let (None, Some(mesh)) = (app.runtime.agent(&agent), app.mesh.clone()) {
        // Hosted elsewhere in the mesh: proxy the whole socket to one hosting node.
        message = format!("Agent '{agent}' not found in cluster");
        let key = default_session.clone().unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        if let (false, Route::Remote(targets)) = (forwarded, mesh.route(&agent, &key)) {
            match forward::proxy_socket(
                &app,
                &mesh,
                &targets,
                &agent,
                default_session.as_deref(),
                api_key.as_ref(),
                socket,
            )
            .await
            {
                None => return,
                Some(unproxied) => {
                    socket = unproxied;
                    message = "No node hosting this agent is reachable".to_string();
                }
            }
        }
    }
    let (mut sender, mut receiver) = socket.split();
    if app.runtime.agent(&agent).is_none() {
        send(&mut sender, json!({"type": "error", "message": message})).await;
        let _ = sender.send(Message::Close(Some(CloseFrame { code: 1008, reason: "unknown agent".into() }))).await; // Best effort: the client may be gone.
        return;
    }
    let mut pending: VecDeque<String> = VecDeque::new();
    loop {
        let text = match pending.pop_front() {
            Some(text) => text,
            None => tokio::select! {
                frame = receiver.next() => match frame {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                },
                () = app.shutdown.cancelled() => {
                    let _ = sender.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await; // Best effort.
                    return;
                }
            },
        };
        let request = match parse_frame(&text, &agent, default_session.as_deref()) {
            Ok(request) => request,
            Err(message) => {
                if !send(&mut sender, json!({"type": "error", "message": message})).await {
                    return;
                }
                continue;
            }
        };
        if !run_one(&app, request, &mut sender, &mut receiver, &mut pending).await {
            return;
        }
    }
}

fn parse_frame(text: &str, agent: &str, default_session: Option<&str>) -> Result<RunRequest, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("invalid JSON: {error}"))?;
    let Value::Object(frame) = value else { return Err("a frame must be a JSON object with `query`".to_string()) };
    let query = match frame.get("query") {
        Some(Value::String(query)) if !query.trim().is_empty() => query.clone(),
        Some(Value::String(_)) => return Err("`query` must not be empty".to_string()),
        Some(_) => return Err("`query` must be a string".to_string()),
        None => return Err("Field required: query".to_string()),
    };
    let session_id = match frame.get("session_id") {
        Some(Value::String(session)) => Some(session.clone()),
        Some(Value::Null) | None => default_session.map(str::to_string),
        Some(_) => return Err("`session_id` must be a string".to_string()),
    };
    let context = match frame.get("context") {
        Some(Value::Object(context)) => context.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err("`context` must be an object".to_string()),
    };
    Ok(RunRequest { agent: agent.to_string(), query, session_id, context, history: None })
}

fn event_frame(event: RunEvent) -> Value {
    match event {
        RunEvent::Token(content) => json!({"type": "token", "content": content}),
        RunEvent::ToolCall { tool, input } => json!({"type": "tool_call", "tool": tool, "input": input}),
        RunEvent::ToolResult { tool, output } => json!({"type": "tool_result", "tool": tool, "output": output}),
    }
}

/// Runs one query, forwarding its events. Returns false when the socket is finished.
async fn run_one(
    app: &AppState,
    request: RunRequest,
    sender: &mut Sender,
    receiver: &mut SplitStream<WebSocket>,
    pending: &mut VecDeque<String>,
) -> bool {
    // In mesh mode the run counts as in flight; a leaving node takes no more.
    let _in_flight = match app.mesh.as_ref().map(|mesh| mesh.begin_run()).transpose() {
        Ok(guard) => guard,
        Err(error) => return send(sender, json!({"type": "error", "message": error.to_string()})).await,
    };
    let (events, mut received) = tokio::sync::mpsc::channel(EVENT_BUFFER);
    let run = app.runtime.run(request, Some(events));
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            biased;
            // Once the run drops its sender, `recv` yields `None` at once: the pattern disables
            // the branch then, so the loop cannot spin on it.
            Some(event) = received.recv() => {
                if !send(sender, event_frame(event)).await {
                    return false; // Dropping `run` cancels it.
                }
            }
            result = &mut run => break result,
            frame = receiver.next() => match frame {
                Some(Ok(Message::Text(text))) if pending.len() < MAX_PENDING => pending.push_back(text.to_string()),
                Some(Ok(Message::Text(_))) => {
                    if !send(sender, json!({"type": "error", "message": "too many queued queries; wait for `done`"})).await {
                        return false;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return false, // The client went away: cancel the run.
            },
            () = app.shutdown.cancelled() => return false,
        }
    };
    // The run is over and its sender dropped: deliver what is still buffered, in order.
    while let Some(event) = received.recv().await {
        if !send(sender, event_frame(event)).await {
            return false;
        }
    }
    let frame = match result {
        Ok(outcome) => json!({
            "type": "done",
            "usage": outcome.usage,
            "timing": {"total_ms": outcome.timing.total_ms, "model_ms": outcome.timing.model_ms, "tool_ms": outcome.timing.tool_ms},
            "session_id": outcome.session_id,
            "model": outcome.model,
        }),
        Err(error) => json!({"type": "error", "message": error.to_string()}),
    };
    send(sender, frame).await
}
