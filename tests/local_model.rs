//! `provider: local`: a tiny random qwen2 GGUF (written here with candle's GGUF writer) run by
//! the real daemon — load, tokenizer from metadata, sampling parameters, streaming, stop tokens
//! and strings, the bounded generation queue, the doctor, and `astromesh model convert`.

use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{tiny_gguf, TestApp};

/// An agent on the local model at `path`, with extra model keys (YAML flow-map entries).
fn agent(name: &str, path: &Path, model_keys: &str) -> String {
    agent_with(name, path, model_keys, "")
}

/// The same, with more `spec` lines.
fn agent_with(name: &str, path: &Path, model_keys: &str, spec_lines: &str) -> String {
    format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: {name}\nspec:\n  identity:\n    description: Local {name}\n  model:\n    primary: {{provider: local, model: tiny, model_path: \"{}\", {model_keys}}}\n  prompts:\n    system: \"You are tiny.\"\n{spec_lines}",
        path.display()
    )
}

struct Model {
    dir: TempDir,
    path: PathBuf,
}

fn model(slow_formats: bool, favour: Option<&str>) -> Model {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny_gguf::write(&path, slow_formats, favour);
    Model { dir, path }
}

async fn start(agents: &[(&str, String)]) -> TestApp {
    let files: Vec<(String, String)> =
        agents.iter().map(|(name, text)| (format!("agents/{name}.agent.yaml"), text.clone())).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(path, text)| (path.as_str(), text.as_str())).collect();
    TestApp::start(&refs).await
}

async fn run(app: &TestApp, agent: &str) -> Value {
    let answer = app.post(&format!("/v1/agents/{agent}/run"), &json!({"query": "Say something about the sea"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

#[tokio::test]
async fn generates_max_tokens_with_the_tokenizer_from_metadata_and_reports_in_the_doctor() {
    let tiny = model(false, None);
    let app = start(&[("tiny", agent("tiny", &tiny.path, "temperature: 0, max_tokens: 9"))]).await;
    let doctor = app.get("/v1/system/doctor").await;
    let check =
        doctor.json["checks"].as_array().unwrap().iter().find(|check| check["file"].is_string()).cloned().unwrap();
    assert_eq!((check["loaded"].clone(), check["status"].clone()), (json!(false), json!("degraded")), "{check}");
    let outcome = run(&app, "tiny").await;
    assert_eq!(outcome["usage"]["output_tokens"], 9, "{outcome}");
    // ChatML prompt through the metadata tokenizer: the special tokens are single ids, so the
    // prompt is far shorter than its byte count.
    let input_tokens = outcome["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input_tokens > 10 && input_tokens < 60, "{outcome}");
    let text = outcome["response"].as_str().unwrap();
    assert!(!text.is_empty() && text.chars().all(|c| c.is_ascii() && !c.is_ascii_control()), "{text:?}");
    assert_eq!(outcome["model"], "local/tiny");
    let doctor = app.get("/v1/system/doctor").await;
    let check =
        doctor.json["checks"].as_array().unwrap().iter().find(|check| check["file"].is_string()).cloned().unwrap();
    assert_eq!(check["loaded"], true, "{check}");
    assert_eq!(check["status"], "healthy");
    assert_eq!(check["family"], "qwen2");
    assert_eq!(check["quantisation"], "F32");
    assert_eq!(check["size_bytes"], std::fs::metadata(&tiny.path).unwrap().len());
    assert!(check["message"].as_str().unwrap().contains("tokenizer from gguf metadata"), "{check}");
    drop(tiny.dir);
}

#[tokio::test]
async fn seed_temperature_top_k_and_top_p_reach_the_sampler_and_agents_share_the_model() {
    let tiny = model(false, None);
    let hot = "temperature: 5.0, max_tokens: 24";
    let app = start(&[
        ("greedy", agent("greedy", &tiny.path, "temperature: 0, max_tokens: 24")),
        ("seed1", agent("seed1", &tiny.path, &format!("{hot}, seed: 1"))),
        ("seed1b", agent("seed1b", &tiny.path, &format!("{hot}, seed: 1"))),
        ("seed2", agent("seed2", &tiny.path, &format!("{hot}, seed: 2"))),
        ("topk", agent("topk", &tiny.path, &format!("{hot}, seed: 3, top_k: 1"))),
        ("topp", agent("topp", &tiny.path, &format!("{hot}, seed: 4, top_p: 0.000001"))),
    ])
    .await;
    let greedy = run(&app, "greedy").await["response"].clone();
    let first = run(&app, "seed1").await["response"].clone();
    assert_eq!(run(&app, "seed1b").await["response"], first, "same seed, same text");
    assert_ne!(run(&app, "seed2").await["response"], first, "another seed, another text");
    assert_ne!(first, greedy, "temperature 5 is not greedy");
    assert_eq!(run(&app, "topk").await["response"], greedy, "top_k 1 is greedy at any temperature");
    assert_eq!(run(&app, "topp").await["response"], greedy, "a tiny top_p is greedy at any temperature");
    let doctor = app.get("/v1/system/doctor").await;
    let local_checks =
        doctor.json["checks"].as_array().unwrap().iter().filter(|check| check["file"].is_string()).count();
    assert_eq!(local_checks, 1, "six agents, one file, one loaded model");
}

#[tokio::test]
async fn stop_strings_cut_the_answer_and_stop_tokens_end_it() {
    let tiny = model(false, None);
    let base = "temperature: 0, max_tokens: 30";
    let app = start(&[("free", agent("free", &tiny.path, base))]).await;
    let full = run(&app, "free").await;
    let text = full["response"].as_str().unwrap().to_string();
    app.stop().await;
    assert!(text.len() > 8, "{text:?}");
    let stop = text[4..7].to_string();
    let expected = &text[..text.find(&stop).unwrap()];
    let yaml_stop = serde_json::to_string(&stop).unwrap();
    let app = start(&[("stopped", agent("stopped", &tiny.path, &format!("{base}, stop: [{yaml_stop}]")))]).await;
    let cut = run(&app, "stopped").await;
    assert_eq!(cut["response"].as_str().unwrap().trim(), expected.trim(), "{cut}");
    app.stop().await;

    // A model whose weights always pick <|im_end|> (its eos) answers nothing, at once.
    let ending = model(false, Some("<|im_end|>"));
    let app = start(&[("ending", agent("ending", &ending.path, base))]).await;
    let ended = run(&app, "ending").await;
    assert_eq!((ended["response"].clone(), ended["usage"]["output_tokens"].clone()), (json!(""), json!(0)), "{ended}");
}

#[tokio::test]
async fn tokens_stream_over_the_websocket_and_add_up_to_the_answer() {
    let tiny = model(false, None);
    let app = start(&[("tiny", agent("tiny", &tiny.path, "temperature: 0, max_tokens: 16"))]).await;
    let expected = run(&app, "tiny").await["response"].as_str().unwrap().to_string();
    let ws_url = format!("{}/v1/ws/agent/tiny", app.url.replacen("http://", "ws://", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    socket.send(Message::Text(r#"{"query": "Say something about the sea"}"#.into())).await.unwrap();
    let mut tokens = Vec::new();
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message.unwrap() else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        match frame["type"].as_str() {
            Some("token") => tokens.push(frame["content"].as_str().unwrap().to_string()),
            Some("done") => break,
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }
    assert!(tokens.len() > 3, "several token frames: {tokens:?}");
    assert_eq!(tokens.concat().trim(), expected.trim());
}

/// Starts `long` (3500 tokens, `timeout_seconds`) beside `tiny` (4 tokens) on one model file,
/// both with `queue_size`, and starts a long generation over the WebSocket; returns once its
/// first token proves the worker is generating.
async fn busy_with_a_long_generation(
    tiny: &Model,
    queue_size: usize,
    timeout_seconds: u64,
) -> (TestApp, WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>) {
    let long = agent_with(
        "long",
        &tiny.path,
        &format!("temperature: 0, max_tokens: 3500, queue_size: {queue_size}"),
        &format!("  orchestration: {{timeout_seconds: {timeout_seconds}}}\n"),
    );
    let tiny_agent = agent("tiny", &tiny.path, &format!("temperature: 0, max_tokens: 4, queue_size: {queue_size}"));
    let app = start(&[("long", long), ("tiny", tiny_agent)]).await;
    let ws_url = format!("{}/v1/ws/agent/long", app.url.replacen("http://", "ws://", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    socket.send(Message::Text(r#"{"query": "Go on"}"#.into())).await.unwrap();
    loop {
        let Message::Text(text) = socket.next().await.unwrap().unwrap() else { continue };
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame["type"], "token", "{frame}");
        break;
    }
    (app, socket)
}

#[tokio::test]
async fn a_full_queue_answers_503_with_a_clear_detail() {
    let tiny = model(false, None);
    // A long generation keeps the worker busy while the others arrive; its run's deadline
    // then cancels it, so the queued one gets its turn.
    let (app, _socket) = busy_with_a_long_generation(&tiny, 1, 3).await;
    let body = json!({"query": "And again"});
    let (second, third) = tokio::join!(app.post("/v1/agents/tiny/run", &body), app.post("/v1/agents/tiny/run", &body));
    let mut statuses = [second.status, third.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503], "one queued, one refused: {} / {}", second.text, third.text);
    let refused = if second.status == 503 { &second } else { &third };
    let detail = refused.json["detail"].as_str().unwrap();
    assert!(detail.contains("the local model is busy") && detail.contains("1 more are queued"), "{detail}");
}

#[tokio::test]
async fn q5_tensors_are_requantised_at_load_and_by_model_convert() {
    let slow = model(true, None);
    let app = start(&[("slow", agent("slow", &slow.path, "temperature: 0, max_tokens: 5"))]).await;
    let doctor = app.get("/v1/system/doctor").await;
    let check =
        doctor.json["checks"].as_array().unwrap().iter().find(|check| check["file"].is_string()).cloned().unwrap();
    assert_eq!(check["quantisation"], "Q5_0", "{check}");
    assert_eq!(run(&app, "slow").await["usage"]["output_tokens"], 5);

    let converted = slow.dir.path().join("converted.gguf");
    let count = astromesh::providers::local::convert(&slow.path, &converted).unwrap();
    assert_eq!(count, 3 * tiny_gguf::LAYERS, "ffn_gate, ffn_up, ffn_down per layer");
    let mut file = std::fs::File::open(&converted).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let formats: std::collections::BTreeSet<String> =
        content.tensor_infos.values().map(|info| format!("{:?}", info.ggml_dtype)).collect();
    assert_eq!(formats.into_iter().collect::<Vec<_>>(), ["F32", "Q8_0"]);
}

#[tokio::test]
async fn a_missing_model_file_makes_runs_fail_with_where_it_looked() {
    let app = start(&[("gone", agent("gone", Path::new("/nonexistent/tiny.gguf"), "max_tokens: 5"))]).await;
    let answer = app.post("/v1/agents/gone/run", &json!({"query": "hi"})).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(
        answer.json["detail"].as_str().unwrap().contains("model file \"/nonexistent/tiny.gguf\" not found"),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn a_client_that_disconnects_frees_the_local_model() {
    let tiny = model(false, None);
    // One generation at a time and no queue: while the long one runs, others are refused. It
    // would take ~12 s (debug build) if nobody stopped it.
    let (app, socket) = busy_with_a_long_generation(&tiny, 0, 120).await;
    let busy = app.post("/v1/agents/tiny/run", &json!({"query": "Hi"})).await;
    assert_eq!(busy.status, 503, "the long generation holds the model: {}", busy.text);
    drop(socket);
    // The worker notices at its next token; poll until the model takes work again.
    let mut answer = None;
    for _ in 0..100 {
        let attempt = app.post("/v1/agents/tiny/run", &json!({"query": "Hi"})).await;
        if attempt.status != 503 {
            answer = Some(attempt);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let answer = answer.expect("the model was still busy 5 s after its client left");
    assert_eq!(answer.status, 200, "{}", answer.text);
}
