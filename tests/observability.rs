//! Traces, metrics, Prometheus and OTLP export, over the real HTTP API (issue 8).

use std::time::Duration;

use serde_json::{json, Value};

use crate::runs::{agent, app_with, CLIENT_TOOLS};
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::otlp::{attribute, OtlpReceiver};
use crate::support::{ConfigDir, TestApp};

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["name"] == name)
        .unwrap_or_else(|| panic!("no {name} span"))
}

#[tokio::test]
async fn a_run_produces_a_trace_with_the_full_span_tree() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("Acme exists.").with_usage(20, 4));
    let app = app_with(&llm, &[("seller", CLIENT_TOOLS)]).await;
    let run = app.post("/v1/agents/seller/run", &json!({"query": "Check Acme", "session_id": "s1"})).await;
    assert_eq!(run.status, 200, "{}", run.text);
    let trace_id = run.json["trace_id"].as_str().unwrap().to_string();

    for path in ["/v1/traces", "/v1/traces/"] {
        let listed = app.get(path).await;
        assert_eq!(listed.status, 200, "{path}: {}", listed.text);
        assert_eq!(listed.json["traces"].as_array().unwrap().len(), 1, "{path}");
    }
    let trace = app.get(&format!("/v1/traces/{trace_id}")).await;
    assert_eq!(trace.status, 200, "{}", trace.text);
    let trace = trace.json;
    assert_eq!((trace["trace_id"].as_str(), trace["agent"].as_str()), (Some(trace_id.as_str()), Some("seller")));
    assert_eq!(trace["session_id"], "s1");
    assert!(trace["start_time"].as_f64().unwrap() <= trace["end_time"].as_f64().unwrap());
    let root = span(&trace, "agent.run");
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(root["status"], "OK");
    assert_eq!(root["attributes"]["agent"], "seller");
    let root_id = root["span_id"].as_str().unwrap();
    for name in ["memory_build", "prompt_render", "llm.complete", "tool.call", "orchestration", "memory_persist"] {
        let child = span(&trace, name);
        assert_eq!(child["parent_span_id"], root_id, "{name} hangs under agent.run");
        assert!(child["duration_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(child["status"], "OK", "{name}");
    }
    let model_calls = trace["spans"].as_array().unwrap().iter().filter(|span| span["name"] == "llm.complete").count();
    assert_eq!(model_calls, 2);
    assert_eq!(span(&trace, "tool.call")["attributes"]["tool"], "lookup_company");
    app.stop().await;
}

#[tokio::test]
async fn filters_limits_and_errors() {
    let llm = ScriptedLlm::start().await;
    let app = app_with(&llm, &[("alpha", ""), ("beta", "")]).await;
    let mut ids = Vec::new();
    for agent_name in ["alpha", "beta", "alpha", "alpha"] {
        let run = app.post(&format!("/v1/agents/{agent_name}/run"), &json!({"query": "hi"})).await;
        assert_eq!(run.status, 200, "{}", run.text);
        ids.push(run.json["trace_id"].as_str().unwrap().to_string());
    }
    let listed = app.get("/v1/traces/").await.json;
    let listed_ids: Vec<&str> =
        listed["traces"].as_array().unwrap().iter().map(|t| t["trace_id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed_ids, newest_first, "newest first");

    let alpha = app.get("/v1/traces/?agent=alpha&limit=2").await.json;
    let alpha_ids: Vec<&str> =
        alpha["traces"].as_array().unwrap().iter().map(|t| t["trace_id"].as_str().unwrap()).collect();
    assert_eq!(alpha_ids, vec![ids[3].as_str(), ids[2].as_str()]);
    assert_eq!(app.get("/v1/traces?agent=nobody").await.json, json!({"traces": []}));
    assert_eq!(app.get("/v1/traces?limit=100").await.status, 200);

    for bad in ["0", "101", "abc"] {
        let answer = app.get(&format!("/v1/traces/?limit={bad}")).await;
        assert_eq!(answer.status, 422, "limit={bad}: {}", answer.text);
        assert_eq!(answer.json["detail"][0]["loc"], json!(["query", "limit"]), "limit={bad}");
    }
    let missing = app.get("/v1/traces/nope").await;
    assert_eq!((missing.status, missing.json), (404, json!({"detail": "Trace 'nope' not found"})));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_run_is_traced_with_its_error() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let down = format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: down}}\nspec:\n  model:\n    primary: {{provider: openai_compat, model: m1, endpoint: \"{dead_url}\"}}\n"
    );
    let app = TestApp::start(&[("agents/down.agent.yaml", &down)]).await;
    let run = app.post("/v1/agents/down/run", &json!({"query": "hi"})).await;
    assert_eq!(run.status, 503);
    let traces = app.get("/v1/traces?agent=down").await.json;
    let trace = &traces["traces"][0];
    assert_eq!(trace["status"], "ERROR");
    for name in ["agent.run", "llm.complete"] {
        let failed = span(trace, name);
        assert_eq!(failed["status"], "ERROR", "{name}");
        assert!(failed["attributes"]["error_message"].as_str().unwrap().contains("m1"), "{name}: {failed}");
    }
    let metrics = app.get("/v1/metrics").await.json;
    assert_eq!(metrics["counters"]["agent.errors"], 1);
    assert_eq!(metrics["counters"]["llm.errors"], 1);
    app.stop().await;
}

#[tokio::test]
async fn retention_evicts_the_oldest_traces() {
    let llm = ScriptedLlm::start().await;
    let runtime = "kind: RuntimeConfig\nspec:\n  observability:\n    traces: {max_traces: 3, max_age_days: 1}\n";
    let agent_file = agent("keeper", &llm, "");
    let app = TestApp::start(&[("runtime.yaml", runtime), ("agents/keeper.agent.yaml", &agent_file)]).await;
    assert_eq!(app.config.runtime.trace_max_count, 3);
    assert_eq!(app.config.runtime.trace_max_age, Duration::from_secs(86_400));
    let mut ids = Vec::new();
    for _ in 0..5 {
        let run = app.post("/v1/agents/keeper/run", &json!({"query": "hi"})).await;
        ids.push(run.json["trace_id"].as_str().unwrap().to_string());
    }
    let listed = app.get("/v1/traces?limit=100").await.json;
    let listed_ids: Vec<&str> =
        listed["traces"].as_array().unwrap().iter().map(|t| t["trace_id"].as_str().unwrap()).collect();
    assert_eq!(listed_ids, vec![ids[4].as_str(), ids[3].as_str(), ids[2].as_str()]);
    for evicted in &ids[..2] {
        assert_eq!(app.get(&format!("/v1/traces/{evicted}")).await.status, 404, "evicted by id too");
    }
    app.stop().await;
}

#[tokio::test]
async fn traces_and_counters_survive_a_restart_and_reset_clears_them() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("one").with_usage(7, 2));
    let app = app_with(&llm, &[("helper", "")]).await;
    let run = app.post("/v1/agents/helper/run", &json!({"query": "hi"})).await;
    let trace_id = run.json["trace_id"].as_str().unwrap().to_string();
    let before = app.get("/v1/metrics/").await.json;
    assert_eq!(before["counters"]["agent.runs"], 1);
    assert_eq!(before["counters"]["llm.tokens.input"], 7);
    let latency = &before["histograms"]["agent.latency_ms"];
    assert_eq!(latency["count"], 1);
    for key in ["sum", "avg", "min", "max"] {
        assert!(latency[key].is_number(), "{key}");
    }

    let app = app.restart().await;
    assert_eq!(app.get(&format!("/v1/traces/{trace_id}")).await.status, 200, "the trace survives");
    let after = app.get("/v1/metrics").await.json;
    assert_eq!(after["counters"]["agent.runs"], 1, "{after}");
    assert_eq!(after["counters"]["llm.tokens.input"], 7);
    assert_eq!(after["histograms"]["agent.latency_ms"]["count"], 1);
    assert!(after["counters"]["http.requests"].as_u64().unwrap() >= 2, "{after}");

    let reset = app.post("/v1/metrics/reset", &json!({})).await;
    assert_eq!((reset.status, reset.json), (200, json!({"status": "reset"})));
    let cleared = app.get("/v1/metrics").await.json;
    assert_eq!(cleared["counters"].get("agent.runs"), None, "{cleared}");
    let app = app.restart().await;
    let still_cleared = app.get("/v1/metrics").await.json;
    assert_eq!(still_cleared["counters"].get("agent.runs"), None, "reset clears the stored snapshot too");
    app.stop().await;
}

#[tokio::test]
async fn rag_counters_are_recorded() {
    let app = TestApp::start(&[]).await;
    let ingest = app
        .post("/v1/rag/ingest", &json!({"collection": "docs", "documents": [{"text": "Rust is a language."}]}))
        .await;
    assert_eq!(ingest.status, 200, "{}", ingest.text);
    let query = app.post("/v1/rag/query", &json!({"collection": "docs", "query": "rust", "top_k": 1})).await;
    assert_eq!(query.status, 200, "{}", query.text);
    let counters = &app.get("/v1/metrics").await.json["counters"];
    assert_eq!(counters["rag.ingest.chunks"], ingest.json["chunks_created"]);
    assert_eq!(counters["rag.queries"], 1);
    app.stop().await;
}

#[tokio::test]
async fn prometheus_text_passes_promtool() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::tool_call("lookup_company", json!({"company_name": "Acme"})));
    llm.push(Reply::text("done").with_usage(5, 1));
    let app = app_with(&llm, &[("seller", CLIENT_TOOLS)]).await;
    assert_eq!(app.post("/v1/agents/seller/run", &json!({"query": "go"})).await.status, 200);
    let scrape = app.get("/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(scrape.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = &scrape.text;
    for line in [
        "astromesh_agent_runs_total{agent=\"seller\",pattern=\"react\",status=\"success\"} 1",
        "astromesh_provider_calls_total{provider=\"openai_compat\",model=\"test-model\",status=\"success\"} 2",
        "astromesh_tool_executions_total{tool=\"lookup_company\",status=\"success\"} 1",
        "astromesh_tokens_used_total{agent=\"seller\",direction=\"input\"} 15",
        "astromesh_agent_latency_seconds_count{agent=\"seller\",pattern=\"react\"} 1",
        "astromesh_provider_latency_seconds_count{provider=\"openai_compat\",model=\"test-model\"} 2",
        "astromesh_active_sessions{agent=\"seller\"} 0",
    ] {
        assert!(text.lines().any(|candidate| candidate == line), "missing {line:?} in:\n{text}");
    }
    // CI installs promtool (Debian package `prometheus`, see .ci/run); elsewhere the check is
    // skipped rather than failed.
    if std::path::Path::new("/usr/bin/promtool").exists() {
        use std::io::Write;
        let mut child = std::process::Command::new("/usr/bin/promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let problems =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "promtool: {problems}\n{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn finished_traces_are_exported_over_otlp_http() {
    let receiver = OtlpReceiver::start().await;
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("hi").with_usage(11, 3));
    let runtime =
        format!("kind: RuntimeConfig\nspec:\n  observability:\n    otlp: {{endpoint: \"{}\"}}\n", receiver.url());
    let agent_file = agent("exported", &llm, "");
    let config_dir = ConfigDir::new(&[("runtime.yaml", &runtime), ("agents/exported.agent.yaml", &agent_file)]);
    let app = TestApp::start_in(config_dir, |_| {}).await;
    assert_eq!(app.config.runtime.otlp_endpoint.as_deref(), Some(receiver.url()));
    let run = app.post("/v1/agents/exported/run", &json!({"query": "hello"})).await;
    assert_eq!(run.status, 200, "{}", run.text);
    let trace_id = run.json["trace_id"].as_str().unwrap().to_string();
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = receiver.spans();
        if !spans.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!spans.is_empty(), "the trace reached the receiver");
    assert_eq!(spans[0].0.as_deref(), Some("application/x-protobuf"));
    let hex = |bytes: &[u8]| bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
    assert!(spans.iter().all(|(_, span)| hex(&span.trace_id) == trace_id));
    let root = spans.iter().map(|(_, span)| span).find(|span| span.name == "agent.run").unwrap();
    assert!(root.parent_span_id.is_empty());
    let model = spans.iter().map(|(_, span)| span).find(|span| span.name == "llm.complete").unwrap();
    assert_eq!(model.parent_span_id, root.span_id);
    assert_eq!(attribute(model, "gen_ai.request.model").as_deref(), Some("test-model"));
    assert_eq!(attribute(model, "gen_ai.system").as_deref(), Some("openai_compat"));
    assert_eq!(attribute(model, "gen_ai.usage.input_tokens").as_deref(), Some("11"));
    assert_eq!(attribute(model, "gen_ai.usage.output_tokens").as_deref(), Some("3"));
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_collector_does_not_fail_runs() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let llm = ScriptedLlm::start().await;
    let agent_file = agent("lonely", &llm, "");
    let config_dir = ConfigDir::new(&[("agents/lonely.agent.yaml", &agent_file)]);
    let app = TestApp::start_in(config_dir, |config| config.runtime.otlp_endpoint = Some(dead_url)).await;
    for _ in 0..3 {
        assert_eq!(app.post("/v1/agents/lonely/run", &json!({"query": "hi"})).await.status, 200);
    }
    assert_eq!(app.get("/v1/traces").await.json["traces"].as_array().unwrap().len(), 3);
    app.stop().await;
}
