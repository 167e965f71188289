//! The endpoints: `GET /v1/tools/builtin`, `GET /v1/tools`, `POST /v1/tools/execute` and its
//! error answers (404 unknown, 422 invalid input naming the field, 502 tool failure).

use serde_json::{json, Value};

use super::{app_with, detail, execute, runtime_yaml};
use crate::support::{ConfigDir, TestApp};

/// An agent file with `tools` (YAML list items, indented for `spec.tools`).
pub fn agent_with_tools(name: &str, tools: &str) -> String {
    format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: {name}\nspec:\n  identity:\n    description: Agent {name}\n  model:\n    primary:\n      provider: openai_compat\n      model: test-model\n      endpoint: \"http://127.0.0.1:9/v1\"\n  tools:\n{tools}"
    )
}

#[tokio::test]
async fn builtin_catalogue_has_the_17_in_order_with_their_schemas() {
    let app = TestApp::start(&[]).await;
    let answer = app.get("/v1/tools/builtin").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["count"], 17);
    let tools = answer.json["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "datetime_now",
            "json_transform",
            "cache_store",
            "http_request",
            "graphql_query",
            "web_search",
            "web_scrape",
            "wikipedia",
            "read_file",
            "write_file",
            "sql_query",
            "send_webhook",
            "send_slack",
            "send_email",
            "text_summarize",
            "rag_query",
            "rag_ingest"
        ]
    );
    for tool in tools {
        assert_eq!(tool.as_object().unwrap().len(), 3, "{tool}");
        assert_eq!(tool["parameters"]["type"], "object");
    }
    assert_eq!(
        tools[0],
        json!({"name": "datetime_now", "description": "Get the current date and time with optional timezone",
               "parameters": {"type": "object", "properties": {"timezone": {"type": "string", "description": "Timezone name (e.g. 'UTC', 'US/Eastern')"}}}})
    );
    let pretty = serde_json::to_string_pretty(&answer.json).unwrap();
    expect_test::expect_file!["snapshots/builtin_tools.json"].assert_eq(&format!("{pretty}\n"));
    app.stop().await;
}

#[tokio::test]
async fn tools_are_listed_across_agents_with_type_and_agents() {
    let first = agent_with_tools(
        "first",
        "    - {name: web_search, type: builtin}\n    - {name: datetime_now}\n    - {name: ask_user, type: client, description: Ask the user, parameters: {question: {type: string}}}\n    - {name: notify, type: webhook, url: \"http://127.0.0.1:9/hook\", description: Notify ops}\n    - {name: helper, type: agent, agent: second, description: Ask the helper}\n    - {name: no_such_builtin}\n",
    );
    let second = agent_with_tools("second", "    - {name: web_search, type: internal, description: Search it}\n");
    let app = TestApp::start(&[("agents/first.agent.yaml", &first), ("agents/second.agent.yaml", &second)]).await;
    let answer = app.get("/v1/tools").await;
    assert_eq!(answer.status, 200);
    let tools = answer.json["tools"].as_array().unwrap();
    let find = |name: &str| tools.iter().find(|tool| tool["name"] == name).cloned().unwrap_or(Value::Null);
    assert_eq!(
        find("web_search"),
        json!({"name": "web_search", "type": "builtin", "description": "Search the web for current information", "agents": ["first", "second"]})
    );
    assert_eq!(find("datetime_now")["type"], "internal");
    assert_eq!(
        find("ask_user"),
        json!({"name": "ask_user", "type": "client", "description": "Ask the user", "agents": ["first"]})
    );
    assert_eq!(find("notify")["type"], "webhook");
    assert_eq!(
        find("helper"),
        json!({"name": "helper", "type": "agent", "description": "Ask the helper", "agents": ["first"]})
    );
    assert_eq!(tools.len(), 5);
    app.stop().await;
}

#[tokio::test]
async fn unknown_tools_are_404() {
    let app = TestApp::start(&[]).await;
    let answer = execute(&app, "nope", json!({})).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json, json!({"detail": "Tool 'nope' not found"}));
    app.stop().await;
}

#[tokio::test]
async fn invalid_input_is_422_naming_the_field() {
    let app = TestApp::start(&[]).await;
    let missing = execute(&app, "http_request", json!({"method": "GET"})).await;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json,
        json!({"detail": [{"loc": ["body", "input", "url"], "msg": "Field required", "type": "missing"}]})
    );
    let wrong = execute(&app, "web_scrape", json!({"url": "http://x", "max_length": "long"})).await;
    assert_eq!(wrong.status, 422);
    assert_eq!(wrong.json["detail"][0]["loc"], json!(["body", "input", "max_length"]));
    assert!(wrong.json["detail"][0]["msg"].as_str().unwrap().contains("integer"), "{}", wrong.text);
    let not_in_enum = execute(&app, "cache_store", json!({"action": "explode", "key": "k"})).await;
    assert_eq!(not_in_enum.json["detail"][0]["loc"], json!(["body", "input", "action"]));
    let not_object = execute(&app, "datetime_now", json!([1, 2])).await;
    assert_eq!(not_object.status, 422);
    assert_eq!(not_object.json["detail"][0]["loc"], json!(["body", "input"]));
    let no_tool = app.post("/v1/tools/execute", &json!({"input": {}})).await;
    assert_eq!(no_tool.status, 422);
    assert_eq!(no_tool.json["detail"][0]["loc"], json!(["body", "tool"]));
    app.stop().await;
}

#[tokio::test]
async fn a_tool_that_runs_and_fails_is_502_with_its_message() {
    let app = TestApp::start(&[]).await;
    // Run directly there is no agent, so no knowledge collection: a clear failure.
    for tool in ["rag_query", "rag_ingest"] {
        let field = if tool == "rag_query" { "query" } else { "document" };
        let answer = execute(&app, tool, json!({ field: "x" })).await;
        assert_eq!(answer.status, 502, "{}", answer.text);
        assert_eq!(
            answer.json,
            json!({"detail": format!("Tool '{tool}' failed: {tool} needs a collection: set `spec.knowledge.collection` on the agent or `config.collection` on the tool")})
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn success_has_the_api_md_shape() {
    let app = app_with(json!({})).await;
    let answer = execute(&app, "datetime_now", json!({"timezone": "UTC"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = answer.json.as_object().unwrap();
    assert_eq!(body.keys().collect::<Vec<_>>(), ["output", "timing_ms", "tool"]);
    assert_eq!(body["tool"], "datetime_now");
    assert!(body["timing_ms"].is_u64());
    assert!(detail(&answer).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn direct_settings_must_name_a_builtin() {
    let config_dir = ConfigDir::new(&[("runtime.yaml", &runtime_yaml(&json!({"http_requests": {}})))]);
    let data = tempfile::tempdir().unwrap();
    let mut config = config_dir.load();
    config.runtime.data_dir = data.path().to_path_buf();
    let built = tokio::task::spawn_blocking(move || astromesh::App::build(config).map(|_| ())).await.unwrap();
    let error = built.unwrap_err().to_string();
    assert!(error.contains("spec.tools.http_requests: not a built-in tool"), "{error}");
}
