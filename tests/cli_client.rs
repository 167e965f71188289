//! The CLI client: the real binary against a real daemon (TestApp + ScriptedLlm), one test per
//! command group, asserting on stdout, stderr and exit codes.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::runs::app_with;
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_astromesh");

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("--json output parses ({error}): {}", self.stdout))
    }
}

/// Runs `astromesh --url URL ARGS...`, feeding `stdin` when given, away from the user's env.
async fn astromesh_with_input(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("ASTROMESH_URL")
        .env_remove("ASTROMESH_API_KEY")
        .env_remove("ASTROMESH_CONFIG_DIR")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("binary starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = child.wait_with_output().await.unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn astromesh(url: &str, args: &[&str]) -> Output {
    astromesh_with_input(url, args, None).await
}

fn session_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|line| line.strip_prefix("session_id: "))
        .unwrap_or_else(|| panic!("a session id on stderr: {stderr}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn status_doctor_and_metrics() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let app = app_with(&llm, &[("helper", "")]).await;

    let status = astromesh(&app.url, &["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("running") && status.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("agents_loaded"), "{}", status.stdout);
    let status = astromesh(&app.url, &["status", "--json"]).await;
    assert_eq!(status.json()["agents_loaded"], 1);

    let doctor = astromesh(&app.url, &["doctor"]).await;
    assert_eq!(doctor.code, 0, "{}{}", doctor.stdout, doctor.stderr);
    assert!(doctor.stdout.lines().any(|line| line.contains("store") && line.contains("healthy")), "{}", doctor.stdout);
    assert!(doctor.stdout.contains("0 failing"), "{}", doctor.stdout);
    assert_eq!(astromesh(&app.url, &["--json", "doctor"]).await.json()["summary"]["failing"], 0);

    let run = app.post("/v1/agents/helper/run", &json!({"query": "hi"})).await;
    assert_eq!(run.status, 200);
    let metrics = astromesh(&app.url, &["metrics"]).await;
    assert_eq!(metrics.code, 0, "{}", metrics.stderr);
    assert!(
        metrics.stdout.lines().any(|line| line.starts_with("agent.runs") && line.ends_with(" 1")),
        "{}",
        metrics.stdout
    );
    assert!(metrics.stdout.contains("HISTOGRAM"), "{}", metrics.stdout);
    assert_eq!(astromesh(&app.url, &["metrics", "--json"]).await.json()["counters"]["agent.runs"], 1);
}

#[tokio::test]
async fn doctor_exits_1_when_a_check_fails() {
    let llm = ScriptedLlm::start().await;
    llm.set_health(Reply::status(500, "down"));
    let app = app_with(&llm, &[("helper", "")]).await;
    let doctor = astromesh(&app.url, &["doctor"]).await;
    assert_eq!(doctor.code, 1, "{}{}", doctor.stdout, doctor.stderr);
    assert!(doctor.stdout.contains("failing"), "{}", doctor.stdout);
    assert!(doctor.stderr.contains("check(s) failing"), "{}", doctor.stderr);
}

#[tokio::test]
async fn agents_list_show_and_unknown_agent_exits_3() {
    let llm = ScriptedLlm::start().await;
    let app = app_with(&llm, &[("helper", ""), ("second", "")]).await;

    let list = astromesh(&app.url, &["agents", "list"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.starts_with("NAME"), "{}", list.stdout);
    for name in ["helper", "second"] {
        assert!(
            list.stdout.lines().any(|line| line.starts_with(name)
                && line.contains("ready")
                && line.contains("openai_compat/test-model")),
            "{}",
            list.stdout
        );
    }
    // `agents` alone lists too.
    assert_eq!(astromesh(&app.url, &["agents"]).await.stdout, list.stdout);
    let listed = astromesh(&app.url, &["agents", "list", "--json"]).await.json();
    assert_eq!(listed["agents"].as_array().unwrap().len(), 2);

    let show = astromesh(&app.url, &["agents", "show", "helper"]).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.lines().any(|line| line.starts_with("pattern") && line.contains("react")), "{}", show.stdout);
    assert_eq!(astromesh(&app.url, &["--json", "agents", "show", "helper"]).await.json()["name"], "helper");

    let missing = astromesh(&app.url, &["agents", "show", "nope"]).await;
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert_eq!(missing.stderr.trim(), "error: Agent 'nope' not found");
    assert!(missing.stdout.is_empty());

    // With --config the listing is offline: it works with the daemon's URL pointing nowhere.
    let offline = astromesh(
        "http://127.0.0.1:9",
        &["agents", "show", "helper", "--config", app.config_dir.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert!(offline.stdout.contains("helper") && !offline.stdout.contains("second"), "{}", offline.stdout);
    let offline = astromesh(
        "http://127.0.0.1:9",
        &["agents", "show", "nope", "--config", app.config_dir.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(offline.code, 3, "{}", offline.stderr);
}

#[tokio::test]
async fn run_streams_the_answer_and_a_second_run_continues_the_session() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("The capital of France is Paris."));
    llm.push(Reply::text("You asked about France."));
    let app = app_with(&llm, &[("helper", "")]).await;

    let first = astromesh(&app.url, &["run", "helper", "What is the capital of France?"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, "The capital of France is Paris.\n");
    let session = session_of(&first.stderr);
    assert!(session.starts_with("sess_"), "{session}");

    let second = astromesh(&app.url, &["run", "helper", "What did I ask?", "--session", &session]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, "You asked about France.\n");
    assert_eq!(session_of(&second.stderr), session);
    // The model saw the first turn, and the memory endpoint holds both.
    let messages = llm.chat_requests()[1].body["messages"].to_string();
    assert!(messages.contains("The capital of France is Paris."), "{messages}");
    let history = app.get(&format!("/v1/memory/helper/history/{session}")).await;
    let contents: Vec<&str> = history.json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "What is the capital of France?",
            "The capital of France is Paris.",
            "What did I ask?",
            "You asked about France."
        ]
    );

    llm.push(Reply::text("Machine readable."));
    let json = astromesh(&app.url, &["--json", "run", "helper", "hello"]).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let body = json.json();
    assert_eq!(body["response"], "Machine readable.");
    assert!(body["session_id"].as_str().unwrap().starts_with("sess_"));
    assert!(body["usage"]["total_tokens"].is_u64(), "{body}");

    let missing = astromesh(&app.url, &["run", "nope", "hi"]).await;
    assert_eq!(missing.code, 3);
    assert_eq!(missing.stderr.trim(), "error: Agent 'nope' not found");
}

#[tokio::test]
async fn chat_keeps_one_session_over_two_turns() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Hello Ada."));
    llm.push(Reply::text("Your name is Ada."));
    let app = app_with(&llm, &[("helper", "")]).await;
    let chat = astromesh_with_input(
        &app.url,
        &["chat", "helper"],
        Some("My name is Ada\n\nWhat is my name?\n/exit\nnot sent\n"),
    )
    .await;
    assert_eq!(chat.code, 0, "{}", chat.stderr);
    assert_eq!(chat.stdout, "Hello Ada.\nYour name is Ada.\n");
    let session = session_of(&chat.stderr);
    assert_eq!(llm.chat_requests().len(), 2, "/exit stops before the third line");
    let history = app.get(&format!("/v1/memory/helper/history/{session}")).await;
    assert_eq!(history.json["messages"].as_array().unwrap().len(), 4, "{}", history.text);

    // End of input ends the chat too.
    llm.push(Reply::text("Bye."));
    let chat = astromesh_with_input(&app.url, &["chat", "helper"], Some("bye")).await;
    assert_eq!(chat.code, 0, "{}", chat.stderr);
    assert_eq!(chat.stdout, "Bye.\n");
}

#[tokio::test]
async fn traces_list_and_show_a_span_tree() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("traced"));
    let app = app_with(&llm, &[("helper", ""), ("second", "")]).await;
    let run = app.post("/v1/agents/helper/run", &json!({"query": "hi", "session_id": "s-trace"})).await;
    assert_eq!(run.status, 200);
    let trace_id = app.get("/v1/traces?agent=helper").await.json["traces"][0]["trace_id"].as_str().unwrap().to_string();

    let list = astromesh(&app.url, &["traces", "list"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout
            .lines()
            .any(|line| line.starts_with(&trace_id) && line.contains("helper") && line.contains("s-trace")),
        "{}",
        list.stdout
    );
    let other = astromesh(&app.url, &["traces", "list", "--agent", "second", "--limit", "5"]).await;
    assert_eq!(other.stdout.trim(), "no traces");
    let bad_limit = astromesh(&app.url, &["traces", "list", "--limit", "500"]).await;
    assert_eq!(bad_limit.code, 1);
    assert!(bad_limit.stderr.contains("query.limit: Input should be between 1 and 100"), "{}", bad_limit.stderr);

    let show = astromesh(&app.url, &["traces", "show", &trace_id]).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    let lines: Vec<&str> = show.stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("trace {trace_id}")), "{}", show.stdout);
    assert!(lines[1].starts_with("agent.run "), "{}", show.stdout);
    assert!(lines.iter().any(|line| line.contains("─ llm.complete")), "{}", show.stdout);
    assert!(lines.last().unwrap().starts_with("└─ "), "{}", show.stdout);
    assert_eq!(
        astromesh(&app.url, &["--json", "traces", "show", &trace_id]).await.json()["trace_id"],
        trace_id.as_str()
    );

    let missing = astromesh(&app.url, &["traces", "show", "nope"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(missing.stderr.trim(), "error: Trace 'nope' not found");
}

#[tokio::test]
async fn tools_list_and_exec() {
    let llm = ScriptedLlm::start().await;
    let app = app_with(&llm, &[("helper", "  tools:\n    - {name: datetime_now, type: builtin}\n")]).await;
    let list = astromesh(&app.url, &["tools", "list"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.lines().any(|line| line.starts_with("datetime_now") && line.contains("helper")),
        "{}",
        list.stdout
    );
    assert_eq!(astromesh(&app.url, &["tools", "list", "--json"]).await.json()["tools"][0]["name"], "datetime_now");

    let exec = astromesh(&app.url, &["tools", "exec", "datetime_now", "--args", r#"{"timezone": "UTC"}"#]).await;
    assert_eq!(exec.code, 0, "{}", exec.stderr);
    let expected = app.post("/v1/tools/execute", &json!({"tool": "datetime_now", "input": {"timezone": "UTC"}})).await;
    let keys = |value: &Value| value.as_object().map(|map| map.keys().cloned().collect::<Vec<_>>());
    let printed: Value =
        serde_json::from_str(&exec.stdout).unwrap_or_else(|_| Value::String(exec.stdout.trim().to_string()));
    assert_eq!(keys(&printed), keys(&expected.json["output"]), "{}", exec.stdout);
    let json = astromesh(&app.url, &["--json", "tools", "exec", "datetime_now"]).await.json();
    assert_eq!(json["tool"], "datetime_now");

    let unknown = astromesh(&app.url, &["tools", "exec", "no_such_tool"]).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("error: ") && unknown.stderr.contains("no_such_tool"), "{}", unknown.stderr);
    let bad = astromesh(&app.url, &["tools", "exec", "datetime_now", "--args", "{not json"]).await;
    assert_eq!(bad.code, 2, "a usage error: {}", bad.stderr);
    assert!(bad.stderr.contains("not valid JSON"), "{}", bad.stderr);
}

#[tokio::test]
async fn rag_ingest_two_files_then_query_finds_the_right_one() {
    let app = TestApp::start(&[]).await;
    let files = tempfile::tempdir().unwrap();
    let cats = files.path().join("cats.md");
    let rust = files.path().join("rust.txt");
    std::fs::write(&cats, "# Cats\nCats are small furry pets that purr, chase mice and sleep most of the day.")
        .unwrap();
    std::fs::write(&rust, "Rust is a systems programming language with ownership, borrowing and no garbage collector.")
        .unwrap();
    let ingest = astromesh(
        &app.url,
        &["rag", "ingest", "--collection", "notes", cats.to_str().unwrap(), rust.to_str().unwrap()],
    )
    .await;
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    assert!(ingest.stdout.starts_with("ingested 2 file(s), 2 chunk(s) into notes"), "{}", ingest.stdout);
    assert!(ingest.stderr.is_empty(), "no progress bar when stderr is not a terminal: {}", ingest.stderr);

    let query = astromesh(
        &app.url,
        &["rag", "query", "--collection", "notes", "Which language has a borrow checker?", "--top-k", "1"],
    )
    .await;
    assert_eq!(query.code, 0, "{}", query.stderr);
    let lines: Vec<&str> = query.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "header and one hit: {}", query.stdout);
    assert!(lines[1].contains("rust.txt") && lines[1].contains("systems programming"), "{}", query.stdout);
    let json = astromesh(&app.url, &["--json", "rag", "query", "--collection", "notes", "purring pets"]).await.json();
    assert_eq!(json["results"][0]["metadata"]["filename"], "cats.md");

    // Re-ingesting a file replaces its chunks (the path is the document id).
    let again =
        astromesh(&app.url, &["--json", "rag", "ingest", "--collection", "notes", cats.to_str().unwrap()]).await;
    assert_eq!(again.json()["chunks_created"], 1);
    let collections = app.get("/v1/rag/collections").await;
    assert_eq!(collections.json["collections"][0]["chunks"], 2, "{}", collections.text);

    let missing = astromesh(&app.url, &["rag", "ingest", "--collection", "notes", "/definitely/not/here.md"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("error: /definitely/not/here.md: "), "{}", missing.stderr);
    let unknown = astromesh(&app.url, &["rag", "query", "--collection", "nothing", "hi"]).await;
    assert_eq!(unknown.code, 1);
    assert_eq!(unknown.stderr.trim(), "error: Collection 'nothing' not found");
}

#[tokio::test]
async fn mesh_status_without_mesh_exits_4_with_the_detail() {
    let app = TestApp::start(&[]).await;
    let direct = app.get("/v1/mesh/state").await;
    assert!(direct.status >= 400, "this node has no mesh");
    let detail = direct.json["detail"].as_str().unwrap();
    let mesh = astromesh(&app.url, &["mesh", "status"]).await;
    assert_eq!(mesh.code, 4, "{}", mesh.stderr);
    assert_eq!(mesh.stderr.trim(), format!("error: {detail}"));
    let unreachable = astromesh("http://127.0.0.1:9", &["mesh", "status"]).await;
    assert_eq!(unreachable.code, 4, "{}", unreachable.stderr);
}

#[tokio::test]
async fn completions_bash_produces_a_script() {
    let output = astromesh("http://127.0.0.1:9", &["completions", "bash"]).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.contains("complete -F") && output.stdout.contains("astromesh"), "{}", output.stdout);
    for command in ["status", "doctor", "traces", "rag", "mesh", "chat"] {
        assert!(output.stdout.contains(command), "completes {command}");
    }
}

#[tokio::test]
async fn connection_refused_exits_1_with_a_clear_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    for args in [&["status"][..], &["run", "helper", "hi"][..]] {
        let output = astromesh(&url, args).await;
        assert_eq!(output.code, 1, "{args:?}: {}", output.stderr);
        assert!(output.stderr.starts_with(&format!("error: cannot reach the daemon at {url}/")), "{}", output.stderr);
        assert!(output.stderr.lines().count() == 1, "one line, no debug dump: {}", output.stderr);
    }
    let invalid = astromesh("localhost:8000", &["status"]).await;
    assert_eq!(invalid.code, 2, "{}", invalid.stderr);
    assert!(invalid.stderr.starts_with("error: invalid --url"), "{}", invalid.stderr);
}

/// A tiny HTTP server that records each request's path and Authorization header and answers
/// `{}` (so `run` gets past its agent check and then fails the WebSocket upgrade).
async fn recording_server() -> (String, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let recorded = recorded.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let authorization =
                    request.headers().get("authorization").map(|value| value.to_str().unwrap().to_string());
                recorded.lock().unwrap().push((request.uri().path().to_string(), authorization));
                async move {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(b"{}")))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn api_key_is_sent_as_a_bearer_header() {
    let (url, seen) = recording_server().await;
    let status = astromesh(&url, &["--api-key", "k-123", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let run = astromesh(&url, &["run", "helper", "hi", "--api-key", "k-123"]).await;
    assert_eq!(run.code, 1, "the server does not upgrade: {}", run.stderr);
    let without = astromesh(&url, &["status"]).await;
    assert_eq!(without.code, 0);
    let seen = seen.lock().unwrap().clone();
    let bearer = Some("Bearer k-123".to_string());
    assert_eq!(
        seen,
        [
            ("/v1/system/status".to_string(), bearer.clone()),
            ("/v1/agents/helper".to_string(), bearer.clone()),
            ("/v1/ws/agent/helper".to_string(), bearer),
            ("/v1/system/status".to_string(), None),
        ]
    );
}

/// `run` prints each token as it arrives: the first words are on stdout while the model is
/// still sending the rest (each later frame is held back by the scripted server).
#[tokio::test]
async fn run_prints_tokens_before_the_answer_is_complete() {
    use tokio::io::AsyncReadExt;
    let llm = ScriptedLlm::start().await;
    let answer = "Streaming arrives piece by piece over the socket.";
    llm.push(Reply::text(answer).chunk_delay(300));
    let app = app_with(&llm, &[("helper", "")]).await;
    let mut child = tokio::process::Command::new(BIN)
        .args(["--url", &app.url, "run", "helper", "stream please"])
        .env_remove("ASTROMESH_URL")
        .env_remove("ASTROMESH_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; 256];
    let read = stdout.read(&mut first).await.unwrap();
    let first = String::from_utf8_lossy(&first[..read]).into_owned();
    assert!(child.try_wait().unwrap().is_none(), "the run is still going when the first token is printed");
    assert!(!first.is_empty() && answer.starts_with(&first) && first.len() < answer.len(), "{first:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(format!("{first}{rest}"), format!("{answer}\n"));
    assert!(child.wait().await.unwrap().success());
}
