//! The HTTP skeleton: health, agents, status, the error envelope, CORS and shutdown.

use serde_json::json;

use crate::support::{agent_yaml, ConfigDir, TestApp};

const BROKEN: &str = "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: broken}\nspec:\n  orchestration: {pattern: reactt}\n  model:\n    primary: {provider: ollama, model: llama3}\n";

async fn two_agents() -> TestApp {
    let good = agent_yaml("good", "http://127.0.0.1:9/v1");
    TestApp::start(&[("agents/good.agent.yaml", &good), ("agents/broken.agent.yaml", BROKEN)]).await
}

#[tokio::test]
async fn health_reports_version_and_uptime() {
    let app = TestApp::start(&[]).await;
    let answer = app.get("/v1/health").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "healthy");
    assert_eq!(answer.json["version"], env!("CARGO_PKG_VERSION"));
    assert!(answer.json["uptime_seconds"].is_u64());
    assert_eq!(answer.json.as_object().unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn agents_are_listed_with_status_and_errors() {
    let app = two_agents().await;
    let answer = app.get("/v1/agents").await;
    assert_eq!(answer.status, 200);
    let agents = answer.json["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2);
    let good = agents.iter().find(|agent| agent["name"] == "good").unwrap();
    assert_eq!(
        good,
        &json!({"name": "good", "description": "Test agent good", "model": "openai_compat/test-model", "orchestration": "react", "status": "ready"})
    );
    let broken = agents.iter().find(|agent| agent["name"] == "broken").unwrap();
    assert_eq!(broken["status"], "error");
    assert!(broken["error"].as_str().unwrap().contains("spec.orchestration.pattern: unknown pattern \"reactt\""));
    app.stop().await;
}

#[tokio::test]
async fn agent_detail_has_the_api_md_shape() {
    let yaml = "apiVersion: astromesh/v1
kind: Agent
metadata: {name: assistant}
spec:
  identity: {description: General-purpose assistant}
  model:
    primary: {provider: openai, model: gpt-4o}
    fallback: {provider: anthropic, model: claude-sonnet-4-20250514}
    routing: cost_optimized
  orchestration: {pattern: react, max_iterations: 10, timeout: 120}
  tools:
    - {name: web_search, type: builtin}
    - {name: knowledge_base, type: client}
  memory:
    conversational: {backend: redis}
    semantic: {backend: chroma}
";
    let app = TestApp::start(&[("agents/assistant.agent.yaml", yaml)]).await;
    let answer = app.get("/v1/agents/assistant").await;
    assert_eq!(answer.status, 200);
    let body = &answer.json;
    assert_eq!(body["name"], "assistant");
    assert_eq!(body["description"], "General-purpose assistant");
    assert_eq!(body["model"]["primary"], json!({"provider": "openai", "model": "gpt-4o"}));
    assert_eq!(body["model"]["fallback"], json!({"provider": "anthropic", "model": "claude-sonnet-4-20250514"}));
    assert_eq!(body["model"]["routing"], "cost_optimized");
    assert_eq!(body["orchestration"], json!({"pattern": "react", "max_iterations": 10, "timeout": 120.0}));
    assert_eq!(body["tools"], json!(["web_search", "knowledge_base"]));
    assert_eq!(body["memory"], json!({"conversational": "redis", "semantic": "chroma"}));
    assert_eq!(body["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn unknown_agent_unknown_route_and_wrong_method_use_the_envelope() {
    let app = two_agents().await;
    let missing = app.get("/v1/agents/nobody").await;
    assert_eq!((missing.status, missing.json.clone()), (404, json!({"detail": "Agent 'nobody' not found"})));
    let route = app.get("/v1/nothing/here").await;
    assert_eq!((route.status, route.json.clone()), (404, json!({"detail": "Not Found"})));
    let method = app.delete("/v1/health").await;
    assert_eq!((method.status, method.json.clone()), (405, json!({"detail": "Method Not Allowed"})));
    let broken = app.get("/v1/agents/broken").await;
    assert_eq!(broken.status, 200);
    assert_eq!(broken.json["status"], "error");
    app.stop().await;
}

#[tokio::test]
async fn trailing_slashes_answer_directly() {
    let app = two_agents().await;
    for path in ["/v1/agents/", "/v1/health/", "/v1/system/status/", "/v1/agents/good/"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path} answers without a redirect");
    }
    app.stop().await;
}

#[tokio::test]
async fn system_status_counts_agents_and_unprobed_providers() {
    let app = two_agents().await;
    let answer = app.get("/v1/system/status").await;
    assert_eq!(answer.status, 200);
    let body = &answer.json;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["status"], "running");
    assert_eq!(body["mode"], "standalone");
    assert_eq!(body["pid"], std::process::id());
    assert_eq!(body["agents_loaded"], 1, "the broken agent is not loaded");
    assert_eq!(body["providers"], json!({"healthy": 0, "degraded": 1, "unavailable": 0}));
    assert!(body["uptime_seconds"].is_u64());
    app.stop().await;
}

#[tokio::test]
async fn cors_is_off_by_default_and_on_when_configured() {
    let app = TestApp::start(&[]).await;
    let plain =
        crate::support::send("GET", &format!("{}/v1/health", app.url), None, &[("origin", "https://ui.example.com")])
            .await;
    assert_eq!(plain.header("access-control-allow-origin"), None);
    app.stop().await;

    let runtime = "kind: RuntimeConfig\nspec:\n  api: {cors_origins: [\"https://ui.example.com\"]}\n";
    let app = TestApp::start(&[("runtime.yaml", runtime)]).await;
    let allowed =
        crate::support::send("GET", &format!("{}/v1/health", app.url), None, &[("origin", "https://ui.example.com")])
            .await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://ui.example.com"));
    let other =
        crate::support::send("GET", &format!("{}/v1/health", app.url), None, &[("origin", "https://evil.example.com")])
            .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    app.stop().await;
}

#[tokio::test]
async fn an_unwritable_data_dir_is_a_clear_startup_error() {
    let config_dir = ConfigDir::new(&[]);
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let mut config = config_dir.load();
    config.runtime.data_dir = blocker.path().join("data");
    let error = match tokio::task::spawn_blocking(move || astromesh::App::build(config)).await.unwrap() {
        Ok(_) => panic!("a data dir under a regular file cannot be created"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains(&blocker.path().join("data").display().to_string()), "names the path: {error}");
}
