//! The WebSocket a run streams over (`WS /v1/ws/agent/{name}`), with tungstenite (sync).
//!
//! One `AgentSocket` carries any number of turns (`chat` keeps one open); each turn sends
//! `{query, session_id?}` and reads `token` / `tool_call` / `tool_result` frames until `done`
//! (which carries the session id) or `error`. Events are handed to the caller as they arrive,
//! so printing stays in the command. Sync tungstenite suits a CLI that waits on one socket;
//! `wss://` goes through rustls (ring, webpki roots), the TLS stack the binary already has.
//! Not here: printing, or deciding what a failure means for the exit code.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

use super::client::{detail_of, segment, Client};
use super::CliError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a turn reports while it runs.
pub(crate) enum Event<'frame> {
    Token(&'frame str),
    ToolCall { tool: &'frame str, input: &'frame Value },
    ToolResult { tool: &'frame str, output: &'frame Value },
}

/// One finished turn: the streamed answer and the `done` frame.
pub(crate) struct Turn {
    pub(crate) text: String,
    pub(crate) session_id: Option<String>,
    /// `{tool, input, output}` for each tool the run called, in order.
    pub(crate) tool_calls: Vec<Value>,
    pub(crate) done: Value,
}

trait Transport: Read + Write {}
impl<T: Read + Write> Transport for T {}

pub(crate) struct AgentSocket {
    socket: WebSocket<Box<dyn Transport>>,
}

impl AgentSocket {
    /// Opens the socket for `agent`, sending the API key in the handshake when there is one.
    pub(crate) fn connect(client: &Client, agent: &str) -> Result<AgentSocket, CliError> {
        let base = client.base();
        let unreachable = |reason: String| CliError::Unreachable { url: base.to_string(), reason };
        let host = base.host_str().unwrap_or_default().to_string();
        let secure = base.scheme() == "https";
        let port = base.port_or_known_default().unwrap_or(if secure { 443 } else { 80 });
        let ws_url = client.url(&format!("/v1/ws/agent/{}", segment(agent))).replacen("http", "ws", 1);
        let mut request = ws_url.as_str().into_client_request().map_err(|error| CliError::Stream(error.to_string()))?;
        if let Some(key) = client.api_key() {
            let value = format!("Bearer {key}")
                .parse()
                .map_err(|_| CliError::Stream("the API key is not a valid header value".to_string()))?;
            request.headers_mut().insert("authorization", value);
        }
        let address = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|error| unreachable(error.to_string()))?
            .next()
            .ok_or_else(|| unreachable("host not found".to_string()))?;
        let tcp =
            TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(|error| unreachable(error.to_string()))?;
        // Tokens are small frames sent one by one; waiting to coalesce them would delay them.
        tcp.set_nodelay(true).map_err(|error| unreachable(error.to_string()))?;
        let transport: Box<dyn Transport> = if secure { Box::new(tls(tcp, &host)?) } else { Box::new(tcp) };
        match tungstenite::client(request, transport) {
            Ok((socket, _response)) => Ok(AgentSocket { socket }),
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                Err(CliError::Api { status, detail: detail_of(status, &body) })
            }
            Err(HandshakeError::Failure(error)) => Err(unreachable(error.to_string())),
            Err(HandshakeError::Interrupted(_)) => Err(unreachable("the handshake was interrupted".to_string())),
        }
    }

    /// Runs one query and returns when the daemon sends `done` (or fails on `error`).
    pub(crate) fn ask(
        &mut self,
        query: &str,
        session_id: Option<&str>,
        mut on_event: impl FnMut(Event<'_>) -> Result<(), CliError>,
    ) -> Result<Turn, CliError> {
        let frame = json!({"query": query, "session_id": session_id});
        self.socket.send(Message::Text(frame.to_string().into())).map_err(stream_error)?;
        let mut turn = Turn { text: String::new(), session_id: None, tool_calls: Vec::new(), done: Value::Null };
        loop {
            let text = match self.socket.read().map_err(stream_error)? {
                Message::Text(text) => text.as_str().to_string(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Message::Close(close) => {
                    let reason = close.map(|frame| frame.reason.to_string()).filter(|reason| !reason.is_empty());
                    let reason = reason.unwrap_or_else(|| "no reason given".to_string());
                    return Err(CliError::Stream(format!("the daemon closed the connection ({reason})")));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            let frame: Value = serde_json::from_str(&text)
                .map_err(|error| CliError::Stream(format!("a frame is not JSON: {error}")))?;
            let tool = frame["tool"].as_str().unwrap_or_default();
            match frame["type"].as_str().unwrap_or_default() {
                "token" => {
                    let content = frame["content"].as_str().unwrap_or_default();
                    turn.text.push_str(content);
                    on_event(Event::Token(content))?;
                }
                "tool_call" => {
                    turn.tool_calls.push(json!({"tool": tool, "input": frame["input"], "output": null}));
                    on_event(Event::ToolCall { tool, input: &frame["input"] })?;
                }
                "tool_result" => {
                    let pending =
                        turn.tool_calls.iter_mut().find(|call| call["tool"] == tool && call["output"].is_null());
                    if let Some(call) = pending {
                        call["output"] = frame["output"].clone();
                    }
                    on_event(Event::ToolResult { tool, output: &frame["output"] })?;
                }
                "done" => {
                    turn.session_id = frame["session_id"].as_str().map(str::to_string);
                    turn.done = frame;
                    return Ok(turn);
                }
                "error" => {
                    let message = frame["message"].as_str().unwrap_or("the run failed").to_string();
                    return Err(CliError::RunFailed(message));
                }
                _ => {} // A frame type newer than this client: nothing to show.
            }
        }
    }

    /// Says goodbye; the daemon may already be gone, which changes nothing for us.
    pub(crate) fn close(mut self) {
        let _ = self.socket.close(None); // Best effort: the process ends next.
        let _ = self.socket.flush(); // Same.
    }
}

fn stream_error(error: tungstenite::Error) -> CliError {
    match error {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            CliError::Stream("the daemon closed the connection".to_string())
        }
        other => CliError::Stream(other.to_string()),
    }
}

/// A TLS client stream with the public web roots.
fn tls(tcp: TcpStream, host: &str) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, CliError> {
    let tls_error = |reason: String| CliError::Stream(format!("TLS: {reason}"));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|error| tls_error(error.to_string()))?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|error| tls_error(error.to_string()))?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}
