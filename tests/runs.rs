//! Agent runs end to end: `POST /v1/agents/{name}/run`, history, errors, guardrails.

use serde_json::{json, Value};

use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::TestApp;

/// An agent on the scripted server, with extra YAML appended under `spec:`.
pub fn agent(name: &str, llm: &ScriptedLlm, spec_extra: &str) -> String {
    format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: {name}\nspec:\n  identity:\n    description: \"{name}\"\n  model:\n    primary:\n      provider: openai_compat\n      model: test-model\n      endpoint: \"{}/v1\"\n  prompts:\n    system: \"You are {name}.{{% if user_name %}} The user is {{{{ user_name }}}}.{{% endif %}}\"\n{spec_extra}",
        llm.url()
    )
}

pub async fn app_with(llm: &ScriptedLlm, agents: &[(&str, &str)]) -> TestApp {
    let files: Vec<(String, String)> =
        agents.iter().map(|(name, extra)| (format!("agents/{name}.agent.yaml"), agent(name, llm, extra))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(path, text)| (path.as_str(), text.as_str())).collect();
    TestApp::start(&refs).await
}

fn messages(request: &crate::support::llm::Recorded) -> Vec<Value> {
    request.body["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_plain_answer_has_the_api_md_shape() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Hello there!").with_usage(12, 3));
    let app = app_with(&llm, &[("helper", "")]).await;
    let answer = app.post("/v1/agents/helper/run", &json!({"query": "Hi", "context": {"user_name": "Ada"}})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = &answer.json;
    assert_eq!(body["response"], "Hello there!");
    assert!(body["session_id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(body["tool_calls"], json!([]));
    assert_eq!(body["usage"], json!({"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}));
    for key in ["total_ms", "model_ms", "tool_ms"] {
        assert!(body["timing"][key].is_u64(), "timing.{key}");
    }
    assert_eq!(body["model"], "openai_compat/test-model");
    assert_eq!(body["provider"], "openai_compat");
    let sent = messages(&llm.chat_requests()[0]);
    assert_eq!(sent[0], json!({"role": "system", "content": "You are helper. The user is Ada."}));
    assert_eq!(sent.last().unwrap()["content"], "Hi");
    assert!(llm.chat_requests()[0].body.get("tools").is_none(), "no tools: the field is omitted");
    app.stop().await;
}

pub const CLIENT_TOOLS: &str = "  tools:
    - name: lookup_company
      type: client
      description: Look up a company
      parameters:
        company_name: {type: string, description: Name, required: true}
    - name: check_stock
      type: client
      description: Check stock
";

#[tokio::test]
async fn tool_calls_are_executed_and_fed_back() {
    let llm = ScriptedLlm::start().await;
    llm.push(
        Reply::tool_call("lookup_company", json!({"company_name": "Acme"}))
            .and_tool_call("check_stock", json!({"sku": "A1"})),
    );
    llm.push(Reply::text("Acme is real and in stock.").with_usage(30, 8));
    let app = app_with(&llm, &[("seller", CLIENT_TOOLS)]).await;
    let answer = app.post("/v1/agents/seller/run", &json!({"query": "Check Acme"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "Acme is real and in stock.");
    assert_eq!(
        answer.json["tool_calls"],
        json!([
            {"tool": "lookup_company", "input": {"company_name": "Acme"}, "output": {"ok": true}},
            {"tool": "check_stock", "input": {"sku": "A1"}, "output": {"ok": true}}
        ])
    );
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 2);
    let tools = requests[0].body["tools"].as_array().unwrap();
    assert_eq!(tools[0]["function"]["name"], "lookup_company");
    assert_eq!(tools[0]["function"]["parameters"]["required"], json!(["company_name"]));
    let second = messages(&requests[1]);
    let assistant = &second[second.len() - 3];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"].as_array().unwrap().len(), 2, "one assistant message carries all calls");
    let ids: Vec<&str> =
        assistant["tool_calls"].as_array().unwrap().iter().map(|call| call["id"].as_str().unwrap()).collect();
    assert_eq!(second[second.len() - 2]["role"], "tool");
    assert_eq!(second[second.len() - 2]["tool_call_id"], ids[0]);
    assert_eq!(second[second.len() - 1]["tool_call_id"], ids[1]);
    app.stop().await;
}

#[tokio::test]
async fn max_iterations_ends_the_loop_with_a_clear_answer() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::tool_call("check_stock", json!({})));
    let app = app_with(&llm, &[("looper", &format!("{CLIENT_TOOLS}  orchestration: {{max_iterations: 2}}\n"))]).await;
    let answer = app.post("/v1/agents/looper/run", &json!({"query": "loop"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json["response"].as_str().unwrap().contains("limit of 2 iterations"));
    assert_eq!(answer.json["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(llm.chat_requests().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn history_continues_within_a_session_and_is_isolated() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let app = app_with(&llm, &[("alpha", ""), ("beta", "")]).await;
    llm.push(Reply::text("Nice to meet you, Ada."));
    let first = app.post("/v1/agents/alpha/run", &json!({"query": "I am Ada", "session_id": "s1"})).await;
    assert_eq!(first.json["session_id"], "s1");
    app.post("/v1/agents/alpha/run", &json!({"query": "Who am I?", "session_id": "s1"})).await;
    let sent = messages(&llm.chat_requests()[1]);
    let contents: Vec<&str> = sent.iter().map(|message| message["content"].as_str().unwrap_or_default()).collect();
    assert_eq!(&contents[1..], &["I am Ada", "Nice to meet you, Ada.", "Who am I?"]);

    // Another session of the same agent, and the same session of another agent, start empty.
    app.post("/v1/agents/alpha/run", &json!({"query": "fresh", "session_id": "s2"})).await;
    app.post("/v1/agents/beta/run", &json!({"query": "other agent", "session_id": "s1"})).await;
    for request in &llm.chat_requests()[2..] {
        assert_eq!(messages(request).len(), 2, "system + the new query only");
    }

    let history = app.get("/v1/memory/alpha/history/s1").await;
    assert_eq!(history.status, 200);
    assert_eq!(
        history.json,
        json!({"agent": "alpha", "session_id": "s1", "messages": [
            {"role": "user", "content": "I am Ada"},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "Who am I?"},
            {"role": "assistant", "content": "ok"}
        ]})
    );
    let cleared = app.delete("/v1/memory/alpha/history/s1").await;
    assert_eq!(cleared.json, json!({"status": "cleared", "agent": "alpha", "session_id": "s1"}));
    assert_eq!(app.get("/v1/memory/alpha/history/s1").await.json["messages"], json!([]));
    assert_eq!(app.get("/v1/memory/beta/history/s1").await.json["messages"].as_array().unwrap().len(), 2);
    let unknown = app.get("/v1/memory/nobody/history/s1").await;
    assert_eq!((unknown.status, unknown.json.clone()), (404, json!({"detail": "Agent 'nobody' not found"})));
    app.stop().await;
}

#[tokio::test]
async fn sliding_window_limits_the_history_sent() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let memory = "  memory:\n    conversational: {backend: redis, strategy: sliding_window, max_turns: 2}\n";
    let app = app_with(&llm, &[("short", memory)]).await;
    for query in ["one", "two", "three"] {
        app.post("/v1/agents/short/run", &json!({"query": query, "session_id": "w"})).await;
    }
    let sent = messages(&llm.chat_requests()[2]);
    let contents: Vec<&str> = sent.iter().map(|message| message["content"].as_str().unwrap()).collect();
    assert_eq!(&contents[1..], &["two", "ok", "three"]);
    app.stop().await;
}

#[tokio::test]
async fn summary_strategy_folds_old_turns_with_the_agents_model() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let memory = "  memory:\n    conversational: {strategy: summary, max_turns: 2}\n";
    let app = app_with(&llm, &[("summ", memory)]).await;
    app.post("/v1/agents/summ/run", &json!({"query": "my name is Ada", "session_id": "x"})).await;
    app.post("/v1/agents/summ/run", &json!({"query": "I like tea", "session_id": "x"})).await;
    llm.push(Reply::text("Ada likes tea."));
    app.post("/v1/agents/summ/run", &json!({"query": "what do you know?", "session_id": "x"})).await;
    let requests = llm.chat_requests();
    let summarise = messages(&requests[2]);
    assert!(summarise[1]["content"].as_str().unwrap().contains("my name is Ada"));
    let sent = messages(&requests[3]);
    assert!(sent.iter().any(|message| message["content"].as_str().unwrap().contains("Ada likes tea.")));
    assert_eq!(sent.last().unwrap()["content"], "what do you know?");
    app.stop().await;
}

#[tokio::test]
async fn error_paths_use_the_right_status() {
    let llm = ScriptedLlm::start().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let down = format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: down}}\nspec:\n  model:\n    primary: {{provider: openai_compat, model: m1, endpoint: \"{dead_url}\"}}\n    fallback: {{provider: openai_compat, model: m2, endpoint: \"{dead_url}\"}}\n"
    );
    let slow = agent("slow", &llm, "  orchestration: {timeout_seconds: 0.5}\n");
    let guarded = agent(
        "guarded",
        &llm,
        "  guardrails:\n    input:\n      - {type: topic_filter, blocked_topics: [weapons], action: block}\n",
    );
    let broken = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: broken}\nspec:\n  model:\n    primary: {provider: nope, model: x}\n";
    let app = TestApp::start(&[
        ("agents/down.agent.yaml", &down),
        ("agents/slow.agent.yaml", &slow),
        ("agents/guarded.agent.yaml", &guarded),
        ("agents/broken.agent.yaml", broken),
    ])
    .await;

    let missing = app.post("/v1/agents/nobody/run", &json!({"query": "hi"})).await;
    assert_eq!((missing.status, missing.json.clone()), (404, json!({"detail": "Agent 'nobody' not found"})));

    let invalid = app.post("/v1/agents/broken/run", &json!({"query": "hi"})).await;
    assert_eq!(invalid.status, 409);
    assert!(invalid.json["detail"].as_str().unwrap().contains("unknown provider \"nope\""));

    let unavailable = app.post("/v1/agents/down/run", &json!({"query": "hi", "session_id": "d"})).await;
    assert_eq!(unavailable.status, 503);
    let detail = unavailable.json["detail"].as_str().unwrap();
    assert!(detail.starts_with("All providers unavailable: openai_compat/m1: "), "{detail}");
    assert!(detail.contains("; openai_compat/m2: "), "{detail}");
    assert_eq!(
        app.get("/v1/memory/down/history/d").await.json["messages"],
        json!([]),
        "a failed run leaves no history"
    );

    llm.push(Reply::hang());
    let timeout = app.post("/v1/agents/slow/run", &json!({"query": "hi"})).await;
    assert_eq!(
        (timeout.status, timeout.json.clone()),
        (408, json!({"detail": "Orchestration timeout exceeded (0.5s)"}))
    );

    let blocked = app.post("/v1/agents/guarded/run", &json!({"query": "Tell me about WEAPONS"})).await;
    assert_eq!(
        (blocked.status, blocked.json.clone()),
        (400, json!({"detail": "Blocked by guardrail topic_filter: Blocked topic detected: weapons"}))
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_422_and_large_bodies_413() {
    let llm = ScriptedLlm::start().await;
    let runtime = "kind: RuntimeConfig\nspec:\n  api: {max_body_bytes: 1024}\n";
    let helper = agent("helper", &llm, "");
    let app = TestApp::start(&[("runtime.yaml", runtime), ("agents/helper.agent.yaml", &helper)]).await;
    let path = "/v1/agents/helper/run";
    let missing = app.post(path, &json!({"session_id": "x"})).await;
    assert_eq!(
        (missing.status, missing.json.clone()),
        (422, json!({"detail": [{"loc": ["body", "query"], "msg": "Field required", "type": "missing"}]}))
    );
    let wrong_type = app.post(path, &json!({"query": 5})).await;
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.json["detail"][0]["loc"], json!(["body", "query"]));
    assert_eq!(wrong_type.json["detail"][0]["type"], "string_type");
    let not_json = app.post_raw(path, "{not json").await;
    assert_eq!(not_json.status, 422);
    assert_eq!(not_json.json["detail"][0]["type"], "json_invalid");
    let not_object = app.post(path, &json!(["query"])).await;
    assert_eq!(not_object.status, 422);
    let empty = app.post(path, &json!({"query": "  "})).await;
    assert_eq!(empty.status, 422);
    assert_eq!(empty.json["detail"][0]["loc"], json!(["body", "query"]));
    let control = app.post(path, &json!({"query": "hi", "session_id": "a\u{0}b"})).await;
    assert_eq!(control.status, 422);
    let large = app.post(path, &json!({"query": "x".repeat(4096)})).await;
    assert_eq!((large.status, large.json.clone()), (413, json!({"detail": "Request body too large"})));
    assert_eq!(llm.request_count(), 0, "no bad request reached the model");
    app.stop().await;
}

#[tokio::test]
async fn pii_is_redacted_before_the_model_and_in_history() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Contact me at help@example.com"));
    let rails = "  guardrails:\n    input:\n      - {type: pii_detection, action: redact}\n    output:\n      - {type: pii_detection, action: redact}\n";
    let app = app_with(&llm, &[("private", rails)]).await;
    let answer = app.post("/v1/agents/private/run", &json!({"query": "I am bob@example.com", "session_id": "p"})).await;
    assert_eq!(answer.json["response"], "Contact me at [REDACTED_EMAIL]");
    assert_eq!(messages(&llm.chat_requests()[0]).last().unwrap()["content"], "I am [REDACTED_EMAIL]");
    let history = app.get("/v1/memory/private/history/p").await;
    assert_eq!(history.json["messages"][0]["content"], "I am [REDACTED_EMAIL]");
    app.stop().await;
}

#[tokio::test]
async fn runs_update_status_and_record_metrics() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let app = app_with(&llm, &[("helper", "")]).await;
    app.post("/v1/agents/helper/run", &json!({"query": "hi"})).await;
    let status = app.get("/v1/system/status").await;
    assert_eq!(status.json["providers"], json!({"healthy": 1, "degraded": 0, "unavailable": 0}));
    let doctor = app.get("/v1/system/doctor").await;
    assert_eq!(doctor.status, 200);
    let checks = doctor.json["checks"].as_array().unwrap();
    assert!(checks.iter().any(|check| check["name"] == "runtime" && check["status"] == "healthy"));
    assert!(checks.iter().any(|check| check["name"] == "store" && check["status"] == "healthy"));
    let healthy = checks.iter().filter(|check| check["status"] == "healthy").count();
    assert_eq!(doctor.json["summary"]["healthy"], healthy);
    assert_eq!(doctor.json["summary"]["failing"], 0, "{}", doctor.text);
    app.stop().await;
}

#[tokio::test]
async fn doctor_and_status_answer_quickly_when_an_endpoint_hangs() {
    let llm = ScriptedLlm::start().await;
    llm.set_health(Reply::hang());
    let app = app_with(&llm, &[("helper", "")]).await;
    let started = std::time::Instant::now();
    let doctor = app.get("/v1/system/doctor").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "doctor took {:?}", started.elapsed());
    assert_eq!(doctor.status, 200);
    let failing: Vec<_> =
        doctor.json["checks"].as_array().unwrap().iter().filter(|check| check["status"] == "failing").collect();
    assert_eq!(failing.len(), 1, "{}", doctor.text);
    assert_eq!(doctor.json["summary"]["failing"], 1);
    let status = app.get("/v1/system/status").await;
    assert_eq!(status.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn ttl_expires_a_sessions_history() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("ok"));
    let memory = "  memory:\n    conversational: {backend: redis, ttl: 0.2}\n";
    let app = app_with(&llm, &[("brief", memory)]).await;
    app.post("/v1/agents/brief/run", &json!({"query": "remember me", "session_id": "t"})).await;
    assert_eq!(app.get("/v1/memory/brief/history/t").await.json["messages"].as_array().unwrap().len(), 2);
    // The TTL is time itself: wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.get("/v1/memory/brief/history/t").await.json["messages"], json!([]));
    app.post("/v1/agents/brief/run", &json!({"query": "again", "session_id": "t"})).await;
    assert_eq!(messages(&llm.chat_requests()[1]).len(), 2, "expired turns are not sent to the model");
    app.stop().await;
}

#[tokio::test]
async fn an_agent_calls_another_agent_as_a_tool_in_the_same_session() {
    let llm = ScriptedLlm::start().await;
    let boss = "  tools:\n    - {name: ask_worker, type: agent, agent: worker, description: Delegate to the worker}\n";
    let app = app_with(&llm, &[("boss", boss), ("worker", "")]).await;
    llm.push(Reply::tool_call("ask_worker", json!({"query": "compute 2+2"})));
    llm.push(Reply::text("4"));
    llm.push(Reply::text("The worker says 4."));
    let answer = app.post("/v1/agents/boss/run", &json!({"query": "what is 2+2?", "session_id": "team"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["response"], "The worker says 4.");
    assert_eq!(answer.json["tool_calls"][0]["tool"], "ask_worker");
    assert_eq!(answer.json["tool_calls"][0]["output"]["response"], "4");
    let worker_request = &llm.chat_requests()[1];
    assert_eq!(messages(worker_request)[0]["content"], "You are worker.");
    assert_eq!(messages(worker_request).last().unwrap()["content"], "compute 2+2");
    // The sub-run shares the session: the worker's turns are in its history under "team".
    let history = app.get("/v1/memory/worker/history/team").await;
    assert_eq!(history.json["messages"][1]["content"], "4");
    // Both runs are in one trace: the worker's agent.run hangs under the boss's tool.call.
    let trace = app.get(&format!("/v1/traces/{}", answer.json["trace_id"].as_str().unwrap())).await;
    assert_eq!(trace.status, 200, "{}", trace.text);
    let spans = trace.json["spans"].as_array().unwrap();
    let runs: Vec<&serde_json::Value> = spans.iter().filter(|span| span["name"] == "agent.run").collect();
    assert_eq!(runs.len(), 2, "{}", trace.text);
    let tool_span = spans.iter().find(|span| span["name"] == "tool.call").unwrap();
    let nested = runs.iter().find(|span| span["attributes"]["agent"] == "worker").unwrap();
    assert_eq!(nested["parent_span_id"], tool_span["span_id"]);
    app.stop().await;
}
