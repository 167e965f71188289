//! The OpenAI-compatible endpoint: `/v1/models`, `/v1/chat/completions` (plain and SSE), its
//! error envelope, and the official `openai` Python package as a client.

use serde_json::{json, Value};

use crate::runs::{agent, app_with};
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::{python, send, TestApp};

fn sent_messages(llm: &ScriptedLlm, index: usize) -> Vec<Value> {
    llm.chat_requests()[index].body["messages"].as_array().cloned().unwrap_or_default()
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(text: &str) -> Vec<String> {
    text.lines().filter_map(|line| line.strip_prefix("data:")).map(|data| data.trim().to_string()).collect()
}

#[tokio::test]
async fn models_lists_the_ready_agents() {
    let llm = ScriptedLlm::start().await;
    let broken = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: broken}\nspec:\n  model:\n    primary: {provider: nope, model: x}\n";
    let alpha = agent("alpha", &llm, "");
    let beta = agent("beta", &llm, "");
    let app = TestApp::start(&[
        ("agents/alpha.agent.yaml", &alpha),
        ("agents/beta.agent.yaml", &beta),
        ("agents/broken.agent.yaml", broken),
    ])
    .await;
    let answer = app.get("/v1/models").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["object"], "list");
    let data = answer.json["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|model| model["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alpha", "beta"], "only ready agents are models");
    assert_eq!(data[0]["object"], "model");
    assert_eq!(data[0]["owned_by"], "astromesh");
    assert!(data[0]["created"].as_u64().unwrap() > 1_600_000_000);
    app.stop().await;
}

#[tokio::test]
async fn a_completion_has_the_openai_shape_and_earlier_messages_are_history() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Your name is Ada.").with_usage(20, 4));
    let app = app_with(&llm, &[("helper", "")]).await;
    let answer = app
        .post(
            "/v1/chat/completions",
            &json!({
                "model": "helper",
                "temperature": 0.2,
                "messages": [
                    {"role": "system", "content": "dropped: the agent has its own prompt"},
                    {"role": "user", "content": "My name is Ada."},
                    {"role": "assistant", "content": "Hello Ada."},
                    {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}
                ]
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = &answer.json;
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "helper");
    assert!(body["created"].is_u64());
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Your name is Ada."}, "finish_reason": "stop", "logprobs": null}])
    );
    assert_eq!(body["usage"], json!({"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}));
    assert_eq!(
        sent_messages(&llm, 0),
        vec![
            json!({"role": "system", "content": "You are helper."}),
            json!({"role": "user", "content": "My name is Ada."}),
            json!({"role": "assistant", "content": "Hello Ada."}),
            json!({"role": "user", "content": "What is my name?"}),
        ]
    );
    // Caller-supplied history is not stored under the session the run was given.
    let session = answer.header("x-session-id").unwrap().to_string();
    let stored = app.get(&format!("/v1/memory/helper/history/{session}")).await;
    assert_eq!(stored.json["messages"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_session_uses_stored_memory_instead_of_messages() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let app = app_with(&llm, &[("helper", "")]).await;
    let first = send(
        "POST",
        &format!("{}/v1/chat/completions", app.url),
        Some(
            json!({"model": "helper", "messages": [{"role": "user", "content": "I am Ada"}]}).to_string().into_bytes(),
        ),
        &[("x-session-id", "chat-1")],
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-session-id"), Some("chat-1"));
    // The `user` field names the same session; only the new message is sent.
    let second = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "helper", "user": "chat-1", "messages": [{"role": "user", "content": "Who am I?"}]}),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    let sent = sent_messages(&llm, 1);
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(sent[1], json!({"role": "user", "content": "I am Ada"}));
    assert_eq!(sent[2], json!({"role": "assistant", "content": "ok"}));
    let stored = app.get("/v1/memory/helper/history/chat-1").await;
    assert_eq!(stored.json["messages"].as_array().unwrap().len(), 4, "both runs were persisted");
    app.stop().await;
}

#[tokio::test]
async fn streaming_answers_with_chunks_then_done() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Streaming works fine today.").with_usage(9, 6));
    let app = app_with(&llm, &[("helper", "")]).await;
    let answer = app
        .post(
            "/v1/chat/completions",
            &json!({"model": "helper", "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.header("content-type").unwrap().starts_with("text/event-stream"));
    let data = sse_data(&answer.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|chunk| serde_json::from_str(chunk).unwrap()).collect();
    let id = chunks[0]["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "helper");
        assert_eq!(chunk["id"], id, "one id for the whole stream");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let content_chunks: Vec<&Value> = chunks
        .iter()
        .filter(|chunk| chunk["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()))
        .collect();
    assert!(content_chunks.len() > 1, "the answer arrives in several deltas: {chunks:?}");
    let text: String =
        content_chunks.iter().map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Streaming works fine today.");
    let stop = &chunks[chunks.len() - 2];
    assert_eq!(stop["choices"][0]["finish_reason"], "stop");
    assert_eq!(stop["choices"][0]["delta"], json!({}));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json!({"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}));
    app.stop().await;
}

#[tokio::test]
async fn errors_use_the_openai_envelope() {
    let llm = ScriptedLlm::start().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let down = format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: down}}\nspec:\n  model:\n    primary: {{provider: openai_compat, model: m1, endpoint: \"{dead_url}\"}}\n"
    );
    let slow = agent("slow", &llm, "  orchestration: {timeout_seconds: 0.5}\n");
    let app = TestApp::start(&[("agents/down.agent.yaml", &down), ("agents/slow.agent.yaml", &slow)]).await;
    let hi = json!([{"role": "user", "content": "hi"}]);

    let missing = app.post("/v1/chat/completions", &json!({"model": "nobody", "messages": hi})).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json,
        json!({"error": {"message": "Agent 'nobody' not found", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
    );
    let streamed_missing =
        app.post("/v1/chat/completions", &json!({"model": "nobody", "stream": true, "messages": hi})).await;
    assert_eq!((streamed_missing.status, &streamed_missing.json["error"]["code"]), (404, &json!("model_not_found")));

    let not_json = app.post_raw("/v1/chat/completions", "{not json").await;
    assert!(matches!(not_json.status, 400 | 422), "{}", not_json.text);
    assert_eq!(not_json.json["error"]["type"], "invalid_request_error");
    let no_messages = app.post("/v1/chat/completions", &json!({"model": "slow"})).await;
    assert_eq!(no_messages.status, 422);
    assert_eq!(no_messages.json["error"]["type"], "invalid_request_error");
    assert_eq!(no_messages.json["error"]["param"], "messages");
    let no_user = app
        .post("/v1/chat/completions", &json!({"model": "slow", "messages": [{"role": "system", "content": "x"}]}))
        .await;
    assert_eq!((no_user.status, &no_user.json["error"]["type"]), (400, &json!("invalid_request_error")));

    let unavailable = app.post("/v1/chat/completions", &json!({"model": "down", "messages": hi})).await;
    assert_eq!(unavailable.status, 503, "{}", unavailable.text);
    assert_eq!(unavailable.json["error"]["type"], "service_unavailable_error");
    assert_eq!(unavailable.json["error"]["code"], "provider_unavailable");

    llm.push(Reply::hang());
    let timeout = app.post("/v1/chat/completions", &json!({"model": "slow", "messages": hi})).await;
    assert_eq!(timeout.status, 408);
    assert_eq!(timeout.json["error"]["code"], "timeout");

    // A failure after the stream started is an error event, then [DONE].
    let streamed_down =
        app.post("/v1/chat/completions", &json!({"model": "down", "stream": true, "messages": hi})).await;
    assert_eq!(streamed_down.status, 200);
    let data = sse_data(&streamed_down.text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "provider_unavailable");

    // The rest of the API keeps its own envelope.
    let other = app.post("/v1/agents/nobody/run", &json!({"query": "hi"})).await;
    assert_eq!(other.json, json!({"detail": "Agent 'nobody' not found"}));
    app.stop().await;
}

#[tokio::test]
async fn the_official_openai_python_client_works() {
    let Some(python) = python::python().await else { return };
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Your name is Ada.").with_usage(20, 4));
    llm.push(Reply::text("Here it comes in pieces.").with_usage(7, 5));
    let app = app_with(&llm, &[("helper", "")]).await;
    let seen = python::run_script(&python, "openai_client.py", &[&format!("{}/v1", app.url), "helper"]).await;
    assert_eq!(seen["models"], json!(["helper"]));
    assert_eq!(seen["object"], "chat.completion");
    assert_eq!(seen["content"], "Your name is Ada.");
    assert_eq!(seen["role"], "assistant");
    assert_eq!(seen["finish_reason"], "stop");
    assert_eq!(seen["usage"]["prompt_tokens"], 20);
    assert_eq!(seen["usage"]["completion_tokens"], 4);
    assert_eq!(seen["usage"]["total_tokens"], 24);
    assert_eq!(sent_messages(&llm, 0).len(), 4, "system prompt, two history messages, the query");
    assert_eq!(seen["roles"], json!(["assistant"]));
    let deltas = seen["deltas"].as_array().unwrap();
    assert!(deltas.len() > 1, "{deltas:?}");
    let text: String = deltas.iter().map(|delta| delta.as_str().unwrap()).collect();
    assert_eq!(text, "Here it comes in pieces.");
    assert_eq!(seen["finish_reasons"], json!(["stop"]));
    assert_eq!(seen["stream_usage"]["total_tokens"], 12);
    assert_eq!(seen["error"], json!({"class": "NotFoundError", "status": 404, "code": "model_not_found"}));
    app.stop().await;
}
