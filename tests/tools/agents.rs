//! Tools called with an agent's context, as the runtime calls them: the declared order of
//! `specs_for`, client, webhook and agent tools, per-agent config, rate limits, timeouts and
//! the run's deadline, and text_summarize through the agent's model router.

use std::sync::Arc;
use std::time::Duration;

use astromesh::providers::router::{BreakerSettings, ModelRouter};
use astromesh::tools::{ToolContext, ToolOutcome};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::direct::agent_with_tools;
use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::web::WebServer;
use crate::support::TestApp;

fn context(agent: &str, within: Duration) -> ToolContext {
    ToolContext {
        agent: agent.to_string(),
        session_id: "sess".to_string(),
        model: None,
        deadline: tokio::time::Instant::now() + within,
        collection: None,
    }
}

async fn call(app: &TestApp, agent: &str, tool: &str, input: Value) -> ToolOutcome {
    let config = app.agent(agent);
    app.tools().execute(&config, tool, input, &context(agent, Duration::from_secs(30))).await
}

async fn hooks() -> WebServer {
    WebServer::start(
        Router::new()
            .route("/hook", post(|Json(body): Json<Value>| async move { Json(json!({"ticket": 42, "got": body})) }))
            .route("/text", post(|| async { "plain answer" }))
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/json", get(|| async { Json(json!({"ok": 1})) })),
    )
    .await
}

#[tokio::test]
async fn specs_follow_the_declared_order_with_builtin_schemas() {
    let tools = "    - {name: ask_user, type: client, description: Ask the user, parameters: {question: {type: string, required: true}}}\n    - {name: web_search, type: builtin, description: Find things}\n    - {name: not_a_builtin, type: internal}\n    - {name: helper, type: agent, agent: other}\n    - {name: datetime_now}\n";
    let other = agent_with_tools("other", "    []\n");
    let app = TestApp::start(&[
        ("agents/main.agent.yaml", &agent_with_tools("main", tools)),
        ("agents/other.agent.yaml", &other),
    ])
    .await;
    let specs = app.tools().specs_for(&app.agent("main")).await;
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, ["ask_user", "web_search", "helper", "datetime_now"]);
    assert_eq!(
        specs[0].parameters,
        json!({"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]})
    );
    assert_eq!(specs[1].description, "Find things");
    assert_eq!(specs[1].parameters["required"], json!(["query"]));
    assert_eq!(specs[2].parameters["required"], json!(["query"]));
    assert_eq!(specs[3].description, "Get the current date and time with optional timezone");
    let unknown = call(&app, "main", "not_a_builtin", json!({})).await;
    assert!(unknown.error.unwrap().contains("not found"));
    app.stop().await;
}

#[tokio::test]
async fn client_agent_and_unknown_tools() {
    let tools = "    - {name: ask_user, type: client, parameters: {question: {type: string, required: true}}}\n    - {name: helper, type: agent, agent: other}\n";
    let other = agent_with_tools("other", "    []\n");
    let app = TestApp::start(&[
        ("agents/main.agent.yaml", &agent_with_tools("main", tools)),
        ("agents/other.agent.yaml", &other),
    ])
    .await;
    let client = call(&app, "main", "ask_user", json!({"question": "Which one?"})).await;
    assert_eq!((client.output, client.error), (json!({"ok": true}), None));
    let invalid = call(&app, "main", "ask_user", json!({})).await;
    assert_eq!(invalid.error.as_deref(), Some("invalid input for 'ask_user': question: Field required"));
    assert_eq!(invalid.output, json!({"error": "invalid input for 'ask_user': question: Field required"}));
    let agent = call(&app, "main", "helper", json!({"query": "help"})).await;
    assert_eq!(agent.error.as_deref(), Some("agent tools are run by the runtime"));
    let unknown = call(&app, "main", "nope", json!({})).await;
    assert_eq!(unknown.error.as_deref(), Some("Tool 'nope' not found"));
    app.stop().await;
}

#[tokio::test]
async fn webhook_tools_post_their_arguments_with_headers() {
    let server = hooks().await;
    let tools = format!(
        "    - name: open_ticket\n      type: webhook\n      url: \"{url}/hook\"\n      headers: {{x-api-key: secret-1}}\n      config: {{allow_localhost: true}}\n      parameters: {{title: {{type: string, required: true}}}}\n    - {{name: plain, type: webhook, url: \"{url}/text\", config: {{allow_localhost: true}}}}\n    - {{name: guarded, type: webhook, url: \"{url}/hook\"}}\n    - {{name: lookup, type: webhook, method: GET, url: \"{url}/json\", config: {{allow_localhost: true}}}}\n",
        url = server.url
    );
    let app = TestApp::start(&[("agents/main.agent.yaml", &agent_with_tools("main", &tools))]).await;
    let outcome = call(&app, "main", "open_ticket", json!({"title": "Printer on fire"})).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.output, json!({"ticket": 42, "got": {"title": "Printer on fire"}}));
    let seen = &server.requests()[0];
    assert_eq!(seen.header("x-api-key"), Some("secret-1"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let plain = call(&app, "main", "plain", json!({})).await;
    assert_eq!(plain.output, json!("plain answer"));
    let guarded = call(&app, "main", "guarded", json!({})).await;
    assert!(guarded.error.unwrap().contains("loopback address"));
    assert_eq!(server.requests().len(), 2);
    let lookup = call(&app, "main", "lookup", json!({"q": "rust lang", "n": 2})).await;
    assert_eq!(lookup.output, json!({"ok": 1}));
    assert_eq!(server.requests()[2].uri, "/json?n=2&q=rust+lang");
    app.stop().await;
}

#[tokio::test]
async fn builtins_use_the_agents_tool_config() {
    let server = hooks().await;
    let tools = "    - {name: http_request, config: {allow_localhost: true}}\n";
    let closed = "    - {name: http_request}\n";
    let app = TestApp::start(&[
        ("agents/open.agent.yaml", &agent_with_tools("open", tools)),
        ("agents/closed.agent.yaml", &agent_with_tools("closed", closed)),
    ])
    .await;
    let input = json!({"method": "GET", "url": format!("{}/json", server.url)});
    let open = call(&app, "open", "http_request", input.clone()).await;
    assert_eq!(open.error, None);
    assert_eq!(open.output["body"], json!({"ok": 1}));
    let closed = call(&app, "closed", "http_request", input).await;
    assert!(closed.error.unwrap().contains("loopback address"));
    app.stop().await;
}

#[tokio::test]
async fn rate_limits_are_per_agent_and_tool() {
    let tools = "    - {name: datetime_now, rate_limit: {max_calls: 2, window_seconds: 60}}\n";
    let app = TestApp::start(&[
        ("agents/a.agent.yaml", &agent_with_tools("a", tools)),
        ("agents/b.agent.yaml", &agent_with_tools("b", tools)),
    ])
    .await;
    assert_eq!(call(&app, "a", "datetime_now", json!({})).await.error, None);
    assert_eq!(call(&app, "a", "datetime_now", json!({})).await.error, None);
    let third = call(&app, "a", "datetime_now", json!({})).await;
    assert_eq!(third.error.as_deref(), Some("Rate limit exceeded for 'datetime_now'"));
    assert_eq!(call(&app, "b", "datetime_now", json!({})).await.error, None, "agent b has its own window");
    app.stop().await;
}

#[tokio::test]
async fn tool_timeouts_and_the_run_deadline_stop_calls() {
    let server = hooks().await;
    let tools = format!(
        "    - {{name: slow, type: webhook, url: \"{}/slow\", timeout_seconds: 1, config: {{allow_localhost: true}}}}\n",
        server.url
    );
    let app = TestApp::start(&[("agents/main.agent.yaml", &agent_with_tools("main", &tools))]).await;
    let started = std::time::Instant::now();
    let timed_out = call(&app, "main", "slow", json!({})).await;
    assert_eq!(timed_out.error.as_deref(), Some("Tool 'slow' timed out after 1.0s"));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(timed_out.duration >= Duration::from_millis(900));
    let config = app.agent("main");
    let deadline = app.tools().execute(&config, "slow", json!({}), &context("main", Duration::from_millis(300))).await;
    assert_eq!(deadline.error.as_deref(), Some("Tool 'slow' stopped at the run's deadline"));
    app.stop().await;
}

#[tokio::test]
async fn text_summarize_asks_the_agents_model() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text(" A short summary. "));
    let yaml = format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: writer\nspec:\n  model:\n    primary:\n      provider: openai_compat\n      model: test-model\n      endpoint: \"{}/v1\"\n  tools:\n    - {{name: text_summarize}}\n",
        llm.url()
    );
    let app = TestApp::start(&[("agents/writer.agent.yaml", &yaml)]).await;
    let agent = app.agent("writer");
    let router = Arc::new(ModelRouter::new(&agent.model.default, BreakerSettings::default()));
    let mut ctx = context("writer", Duration::from_secs(30));
    ctx.model = Some(router);
    let text = "Rust is a language. ".repeat(40);
    let outcome = app.tools().execute(&agent, "text_summarize", json!({"text": text, "max_length": 50}), &ctx).await;
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.output["summary"], "A short summary.");
    assert_eq!(outcome.output["summarized"], true);
    let sent = llm.chat_requests();
    assert_eq!(sent.len(), 1);
    let prompt = sent[0].body["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.starts_with("Summarize in ~50 words:\n\nRust is a language."), "{prompt}");
    app.stop().await;
}
