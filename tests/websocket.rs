//! `WS /v1/ws/agent/{name}`: event order, bad frames, unknown agents, disconnects.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::runs::{app_with, CLIENT_TOOLS};
use crate::support::llm::{Reply, ScriptedLlm};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, path: &str) -> Socket {
    let ws_url = format!("{}{path}", url.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(ws_url).await.expect("websocket connects").0
}

async fn send(socket: &mut Socket, frame: &str) {
    socket.send(Message::Text(frame.to_string().into())).await.unwrap();
}

/// Reads frames until (and including) `done` or `error`.
pub(crate) async fn until_end(socket: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message.unwrap() else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        let end = frame["type"] == "done" || frame["type"] == "error";
        frames.push(frame);
        if end {
            break;
        }
    }
    frames
}

#[tokio::test]
async fn tokens_then_done_and_tools_in_order() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("Acme is a fine company indeed.").with_usage(20, 6));
    let app = app_with(&llm, &[("seller", CLIENT_TOOLS)]).await;
    let mut socket = connect(&app.url, "/v1/ws/agent/seller?session_id=ws1").await;
    send(&mut socket, r#"{"query": "Tell me about Acme"}"#).await;
    let frames = until_end(&mut socket).await;
    let kinds: Vec<&str> = frames.iter().map(|frame| frame["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "tool_call");
    assert_eq!(frames[0]["tool"], "lookup_company");
    assert_eq!(frames[0]["input"], json!({"company_name": "Acme"}));
    assert_eq!(kinds[1], "tool_result");
    assert_eq!(frames[1]["output"], json!({"ok": true}));
    assert!(kinds[2..kinds.len() - 1].iter().all(|kind| *kind == "token"));
    assert!(kinds.len() > 4, "the answer streams in several tokens: {kinds:?}");
    let text: String = frames
        .iter()
        .filter(|frame| frame["type"] == "token")
        .map(|frame| frame["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Acme is a fine company indeed.");
    let done = frames.last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(
        done["usage"]["total_tokens"],
        done["usage"]["input_tokens"].as_u64().unwrap() + done["usage"]["output_tokens"].as_u64().unwrap()
    );
    assert!(done["timing"]["total_ms"].is_u64());
    assert_eq!(done["session_id"], "ws1");
    assert!(llm.chat_requests().iter().all(|request| request.is_stream()), "websocket runs stream from the provider");

    // A second query on the same socket runs next and sees the first as history.
    llm.push(Reply::text("Still Acme."));
    send(&mut socket, r#"{"query": "And again?"}"#).await;
    let frames = until_end(&mut socket).await;
    assert_eq!(frames.last().unwrap()["type"], "done");
    let history = app.get("/v1/memory/seller/history/ws1").await;
    assert_eq!(history.json["messages"].as_array().unwrap().len(), 4);
    drop(socket);
    app.stop().await;
}

#[tokio::test]
async fn bad_frames_keep_the_socket_open() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("fine"));
    let app = app_with(&llm, &[("helper", "")]).await;
    let mut socket = connect(&app.url, "/v1/ws/agent/helper").await;
    send(&mut socket, "{not json").await;
    let error = until_end(&mut socket).await;
    assert_eq!(error[0]["type"], "error");
    assert!(error[0]["message"].as_str().unwrap().starts_with("invalid JSON"));
    send(&mut socket, r#"{"session_id": "x"}"#).await;
    let error = until_end(&mut socket).await;
    assert_eq!(error[0], json!({"type": "error", "message": "Field required: query"}));
    send(&mut socket, r#"{"query": "now a real one", "session_id": "s"}"#).await;
    let frames = until_end(&mut socket).await;
    assert_eq!(frames.last().unwrap()["type"], "done");
    assert_eq!(frames.last().unwrap()["session_id"], "s");
    drop(socket);
    app.stop().await;
}

#[tokio::test]
async fn unknown_agent_gets_an_error_then_close() {
    let llm = ScriptedLlm::start().await;
    let app = app_with(&llm, &[("helper", "")]).await;
    let mut socket = connect(&app.url, "/v1/ws/agent/nobody").await;
    let first = socket.next().await.unwrap().unwrap();
    let Message::Text(text) = first else { panic!("an error frame first") };
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"type": "error", "message": "Agent 'nobody' not found"})
    );
    let next = socket.next().await;
    assert!(matches!(next, Some(Ok(Message::Close(_))) | None), "then the socket closes: {next:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_provider_failure_is_an_error_frame() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::status(500, "boom"));
    let app = app_with(&llm, &[("helper", "")]).await;
    let mut socket = connect(&app.url, "/v1/ws/agent/helper").await;
    send(&mut socket, r#"{"query": "hi"}"#).await;
    let frames = until_end(&mut socket).await;
    let last = frames.last().unwrap();
    assert_eq!(last["type"], "error");
    assert!(last["message"].as_str().unwrap().starts_with("All providers unavailable"), "{last}");
    drop(socket);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_run() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::hang());
    let app = app_with(&llm, &[("helper", "")]).await;
    let mut socket = connect(&app.url, "/v1/ws/agent/helper").await;
    send(&mut socket, r#"{"query": "hang", "session_id": "gone"}"#).await;
    llm.wait_for_requests(1).await;
    socket.close(None).await.unwrap();
    drop(socket);
    // The run was cancelled: nothing is persisted, and the daemon still serves and stops cleanly.
    let history = app.get("/v1/memory/helper/history/gone").await;
    assert_eq!(history.json["messages"], json!([]));
    app.stop().await;
}
