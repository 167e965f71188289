//! Runs for agents hosted elsewhere in the mesh: the decision, the HTTP relay, the WebSocket
//! proxy.
//!
//! A run for an agent hosted here runs here (counted as in flight, refused while leaving).
//! Otherwise `Mesh::route` ranks the hosting peers (session affinity, load, suspicion) and the
//! request is relayed to the first that answers, with `x-astromesh-forwarded-by` set; a request
//! that already carries that header is never forwarded again, so a stale view cannot make runs
//! loop. The client's `Authorization` and `traceparent` travel with it. WebSocket sockets are
//! proxied frame by frame to one node, chosen by the socket's `?session_id=`.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio_tungstenite::tungstenite;

use super::error::ApiError;
use super::AppState;
use crate::mesh::transport::FORWARDED_HEADER;
use crate::mesh::{Mesh, Route, RunGuard};

/// Hosting peers tried before giving up (the next ones are fallbacks for unreachable nodes).
const MAX_ATTEMPTS: usize = 3;
/// Headers of the client's request that travel with a forwarded run.
const PASSED_HEADERS: [&str; 4] = ["authorization", "x-api-key", "traceparent", "x-request-id"];

pub(crate) enum Decision {
    /// Run here; the guard counts the run as in flight (none outside mesh mode).
    Local(Option<RunGuard>),
    /// Relay to these peers, best first: `(node_id, address)`.
    Remote(Arc<Mesh>, Vec<(String, String)>),
}

pub(crate) fn not_in_cluster(agent: &str) -> ApiError {
    ApiError::NotFound(format!("Agent '{agent}' not found in cluster"))
}

/// Where a run for `agent` goes. `key` is the session id, if the client gave one.
pub(crate) fn decide(
    app: &AppState,
    agent: &str,
    key: Option<&str>,
    headers: &HeaderMap,
) -> Result<Decision, ApiError> {
    let Some(mesh) = &app.mesh else { return Ok(Decision::Local(None)) };
    if app.runtime.agent(agent).is_some() {
        return Ok(Decision::Local(Some(mesh.begin_run()?)));
    }
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(not_in_cluster(agent));
    }
    let random_key;
    let key = match key {
        Some(key) => key,
        None => {
            random_key = format!("{:016x}", rand::random::<u64>());
            &random_key
        }
    };
    match mesh.route(agent, key) {
        Route::Local => Ok(Decision::Local(Some(mesh.begin_run()?))),
        Route::Remote(targets) => Ok(Decision::Remote(Arc::clone(mesh), targets)),
        Route::NotFound => Err(not_in_cluster(agent)),
    }
}

pub(crate) fn agent_path(agent: &str, suffix: &str) -> String {
    format!("/v1/agents/{}{suffix}", utf8_percent_encode(agent, NON_ALPHANUMERIC))
}

fn passed_headers(mesh: &Mesh, headers: &HeaderMap) -> Vec<(String, String)> {
    let mut passed = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (FORWARDED_HEADER.to_string(), mesh.node_id().to_string()),
    ];
    for name in PASSED_HEADERS {
        if let Some(value) = headers.get(name).and_then(|value| value.to_str().ok()) {
            passed.push((name.to_string(), value.to_string()));
        }
    }
    passed
}

/// Relays a request to the first reachable target and answers with its response as is.
pub(crate) async fn relay(
    mesh: &Mesh,
    targets: &[(String, String)],
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let passed = passed_headers(mesh, headers);
    for (node, address) in targets.iter().take(MAX_ATTEMPTS) {
        match mesh.transport().relay(address, method, path, &passed, body.clone()).await {
            Ok(relayed) => {
                tracing::debug!(%node, path, status = relayed.status, "forwarded");
                let status = StatusCode::from_u16(relayed.status).unwrap_or(StatusCode::BAD_GATEWAY);
                let content_type = relayed.content_type.unwrap_or_else(|| "application/json".to_string());
                return Ok((status, [(axum::http::header::CONTENT_TYPE, content_type)], relayed.body).into_response());
            }
            Err(error) => tracing::warn!(%node, "cannot forward to a hosting peer: {error}"),
        }
    }
    Err(ApiError::Unavailable("No node hosting this agent is reachable".to_string()))
}

/// Proxies a client's socket to the first reachable peer's `/v1/ws/agent/{name}`. Returns the
/// client socket when no peer could be reached, so the caller can answer with an error frame.
pub(crate) async fn proxy_socket(
    app: &AppState,
    mesh: &Mesh,
    targets: &[(String, String)],
    agent: &str,
    session: Option<&str>,
    api_key: Option<&axum::http::HeaderValue>,
    client: WebSocket,
) -> Option<WebSocket> {
    let query = session.map(|session| format!("?session_id={}", utf8_percent_encode(session, NON_ALPHANUMERIC)));
    let path = format!("/v1/ws/agent/{}{}", utf8_percent_encode(agent, NON_ALPHANUMERIC), query.unwrap_or_default());
    for (node, address) in targets.iter().take(MAX_ATTEMPTS) {
        if mesh.transport().is_blocked(address) {
            continue;
        }
        let Ok(mut request) =
            tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{address}{path}"))
        else {
            continue;
        };
        if let Ok(value) = mesh.node_id().parse() {
            request.headers_mut().insert(FORWARDED_HEADER, value);
        }
        if let Some(key) = api_key {
            request.headers_mut().insert("x-api-key", key.clone());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((upstream, _)) => {
                tracing::debug!(%node, "websocket forwarded");
                pump(app, client, upstream).await;
                return None;
            }
            Err(error) => tracing::warn!(%node, "cannot forward a websocket to a hosting peer: {error}"),
        }
    }
    Some(client)
}

type Upstream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Copies frames both ways until either side closes (or the daemon shuts down).
async fn pump(app: &AppState, client: WebSocket, upstream: Upstream) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    loop {
        tokio::select! {
            frame = client_rx.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if upstream_tx.send(tungstenite::Message::Text(text.as_str().into())).await.is_err() { break; }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if upstream_tx.send(tungstenite::Message::Binary(bytes)).await.is_err() { break; }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    let _ = upstream_tx.send(tungstenite::Message::Close(None)).await; // Best effort.
                    break;
                }
            },
            frame = upstream_rx.next() => match frame {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    if client_tx.send(Message::Text(text.as_str().into())).await.is_err() { break; }
                }
                Some(Ok(tungstenite::Message::Binary(bytes))) => {
                    if client_tx.send(Message::Binary(bytes)).await.is_err() { break; }
                }
                Some(Ok(tungstenite::Message::Close(close))) => {
                    let frame = close.map(|close| CloseFrame { code: close.code.into(), reason: close.reason.as_str().into() });
                    let _ = client_tx.send(Message::Close(frame)).await; // Best effort.
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = client_tx.send(Message::Close(Some(CloseFrame { code: 1011, reason: "peer went away".into() }))).await; // Best effort.
                    break;
                }
            },
            () = app.shutdown.cancelled() => {
                let _ = client_tx.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await; // Best effort.
                let _ = upstream_tx.send(tungstenite::Message::Close(None)).await; // Best effort.
                break;
            }
        }
    }
}

/// The API key a socket's client presented (as `auth` reads it: `Authorization: Bearer`,
/// `X-API-Key` or the upgrade's `?api_key=`), to present as `X-API-Key` to the peer the socket
/// is proxied to: the peer checks the same keys.
pub(crate) fn socket_api_key(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<axum::http::HeaderValue> {
    super::auth::presented_key_in(headers, uri).and_then(|key| axum::http::HeaderValue::from_bytes(&key).ok())
}
