//! Providers and the router against the scripted LLM server, over real HTTP.
//!
//! Candidates are built the way the daemon builds them: YAML files in a temp dir, loaded with
//! `Config::load`, so every YAML field is followed all the way to the wire. (YAML is a superset
//! of JSON, so the files are written with `json!`.)

use std::sync::Arc;
use std::time::Duration;

use astromesh::config::model::{ModelCandidate, RoleConfig};
use astromesh::config::{Config, ConfigSource, Overrides};
use astromesh::providers::{
    build_model, ChatMessage, ChatModel, ChatRequest, ChatResponse, ProviderError, TokenSink, ToolCall, ToolSpec,
};
use serde_json::{json, Value};

use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::web::WebServer;

mod router;

/// Loads an agent `t` whose `spec.model` is `model`, with an optional providers.yaml.
pub(crate) fn load(model: Value, providers: Option<Value>) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("agents")).expect("agents dir");
    let agent = format!("apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: t\nspec:\n  model: {model}\n");
    std::fs::write(dir.path().join("agents/t.agent.yaml"), agent).expect("write agent");
    if let Some(providers) = providers {
        std::fs::write(dir.path().join("providers.yaml"), providers.to_string()).expect("write providers");
    }
    let config =
        Config::load(ConfigSource::Dir(dir.path().to_path_buf()), &Overrides::default()).expect("config loads");
    let entry = config.agent("t").expect("agent t");
    assert!(entry.config().is_some(), "agent did not load: {:?}", entry.state);
    config
}

pub(crate) fn role(config: &Config) -> RoleConfig {
    config.agent("t").and_then(|entry| entry.config()).expect("agent t is ready").model.default.clone()
}

pub(crate) fn candidate(model: Value) -> ModelCandidate {
    role(&load(model, None)).candidates[0].clone()
}

pub(crate) fn adapter(block: Value) -> Arc<dyn ChatModel> {
    build_model(&candidate(json!({"primary": block}))).expect("adapter builds")
}

pub(crate) fn hello() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::system("Be brief."), ChatMessage::user("Hello?")])
}

pub(crate) fn lookup_tool() -> ToolSpec {
    ToolSpec {
        name: "lookup".into(),
        description: "Looks things up".into(),
        parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    }
}

pub(crate) async fn complete(model: &Arc<dyn ChatModel>, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
    model.complete(&request, Duration::from_secs(10)).await
}

pub(crate) async fn stream(
    model: &Arc<dyn ChatModel>,
    request: ChatRequest,
) -> (Vec<String>, Result<ChatResponse, ProviderError>) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let mut sink = TokenSink::new(Some(sender));
    let result = model.stream(&request, Duration::from_secs(10), &mut sink).await;
    drop(sink);
    let mut tokens = Vec::new();
    while let Some(token) = receiver.recv().await {
        tokens.push(token);
    }
    (tokens, result)
}

/// A port nobody listens on: bound, then released.
pub(crate) fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

// ---- Adapters -------------------------------------------------------------------------------

#[tokio::test]
async fn openai_compat_answers_text_with_usage_and_cached_tokens() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Hi there!").with_usage(12, 3).with_cached_tokens(2).with_model("gpt-4o-2024-08-06"));
    let model = adapter(
        json!({"provider": "openai", "model": "gpt-4o", "endpoint": format!("{}/v1", llm.url()), "api_key": "sk-test"}),
    );
    let response = complete(&model, hello()).await.unwrap();
    assert_eq!(response.content, "Hi there!");
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens, response.usage.cached_tokens), (12, 3, 2));
    assert_eq!(response.model, "gpt-4o-2024-08-06");
    assert_eq!(response.provider, "openai");
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    let sent = &llm.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o", "stream": false, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]})
    );
}

#[tokio::test]
async fn openai_compat_tool_calls_complete_and_stream() {
    let llm = ScriptedLlm::start().await;
    let reply = Reply::tool_call("lookup", json!({"q": "rust ü"})).and_tool_call("lookup", json!({"q": "tokio"}));
    llm.push_all([reply.clone(), reply]);
    let model = adapter(json!({"provider": "openai_compat", "model": "local", "endpoint": llm.url()}));
    let mut request = hello();
    request.tools.push(lookup_tool());

    let whole = complete(&model, request.clone()).await.unwrap();
    let (tokens, streamed) = stream(&model, request).await;
    let streamed = streamed.unwrap();
    assert!(tokens.is_empty());
    for response in [&whole, &streamed] {
        let arguments: Vec<&Value> = response.tool_calls.iter().map(|call| &call.arguments).collect();
        assert_eq!(arguments, [&json!({"q": "rust ü"}), &json!({"q": "tokio"})]);
        assert!(response.tool_calls.iter().all(|call| !call.id.is_empty() && call.name == "lookup"));
    }
    let sent = llm.requests();
    assert_eq!(sent[0].path, "/chat/completions");
    assert_eq!(sent[0].body["tools"][0]["function"]["name"], "lookup");
    assert_eq!(sent[1].body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn openai_compat_streams_text_deltas() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("The quick brown fox jumps").with_usage(9, 4));
    let model = adapter(json!({"provider": "vllm", "model": "m", "endpoint": llm.url()}));
    let (tokens, response) = stream(&model, hello()).await;
    let response = response.unwrap();
    assert!(tokens.len() > 1, "expected several deltas, got {tokens:?}");
    assert_eq!(tokens.concat(), "The quick brown fox jumps");
    assert_eq!(response.content, "The quick brown fox jumps");
    assert_eq!(response.usage.output_tokens, 4);
    // vLLM's bare endpoint gets /v1 appended, as the reference adapter did.
    assert_eq!(llm.requests()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn anthropic_speaks_the_messages_api_complete_and_stream() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Bonjour").with_usage(20, 2).with_cached_tokens(5));
    llm.push(Reply::tool_call("lookup", json!({"q": "paris"})).with_text("Let me check."));
    let model = adapter(
        json!({"provider": "anthropic", "model": "claude-sonnet-4-20250514", "endpoint": format!("{}/v1", llm.url()), "api_key": "sk-ant-test"}),
    );
    let response = complete(&model, hello()).await.unwrap();
    assert_eq!(response.content, "Bonjour");
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens, response.usage.cached_tokens), (20, 2, 5));

    let mut request = hello();
    request.tools.push(lookup_tool());
    let (tokens, streamed) = stream(&model, request).await;
    let streamed = streamed.unwrap();
    assert_eq!(tokens.concat(), "Let me check.");
    assert!(tokens.len() > 1);
    assert_eq!(streamed.tool_calls.len(), 1);
    assert_eq!(streamed.tool_calls[0].arguments, json!({"q": "paris"}));
    assert!(streamed.tool_calls[0].id.starts_with("toolu_"));
    assert_eq!(streamed.finish_reason.as_deref(), Some("tool_use"));

    let sent = llm.requests();
    assert_eq!(sent[0].path, "/v1/messages");
    assert_eq!(sent[0].header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent[0].body["system"], "Be brief.");
    assert_eq!(sent[0].body["max_tokens"], 4096);
    assert_eq!(sent[0].body["messages"], json!([{"role": "user", "content": "Hello?"}]));
    assert_eq!(sent[1].body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(sent[1].body["stream"], true);
}

#[tokio::test]
async fn anthropic_history_sends_tool_use_and_merged_tool_results() {
    let llm = ScriptedLlm::start().await;
    let model =
        adapter(json!({"provider": "anthropic", "model": "claude-3-5-haiku", "endpoint": llm.url(), "api_key": "k"}));
    let calls = vec![
        ToolCall { id: "toolu_a".into(), name: "lookup".into(), arguments: json!({"q": "a"}), raw_arguments: None },
        ToolCall { id: "toolu_b".into(), name: "lookup".into(), arguments: json!({"q": "b"}), raw_arguments: None },
    ];
    let request = ChatRequest::new(vec![
        ChatMessage::user("look up a and b"),
        ChatMessage::assistant_tool_calls("", calls),
        ChatMessage::tool_result("toolu_a", "lookup", "A"),
        ChatMessage::tool_result("toolu_b", "lookup", "B"),
    ]);
    complete(&model, request).await.unwrap();
    let messages = &llm.requests()[0].body["messages"];
    assert_eq!(messages.as_array().unwrap().len(), 3);
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "tool_use", "id": "toolu_a", "name": "lookup", "input": {"q": "a"}})
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(messages[2]["content"][1], json!({"type": "tool_result", "tool_use_id": "toolu_b", "content": "B"}));
}

#[tokio::test]
async fn ollama_speaks_api_chat_with_options_and_synthesised_tool_ids() {
    let llm = ScriptedLlm::start().await;
    llm.push(
        Reply::tool_call("lookup", json!({"q": "x"})).and_tool_call("lookup", json!({"q": "y"})).with_usage(30, 6),
    );
    llm.push(Reply::text("streamed answer here").with_usage(31, 7));
    let model = adapter(
        json!({"provider": "ollama", "model": "llama3.1:8b", "endpoint": llm.url(), "max_tokens": 64, "temperature": 0.2,
                             "parameters": {"num_ctx": 8192, "keep_alive": "5m"}}),
    );
    let mut request = hello();
    request.tools.push(lookup_tool());
    let response = complete(&model, request).await.unwrap();
    assert_eq!(response.tool_calls.len(), 2);
    assert!(response.tool_calls.iter().all(|call| call.id.starts_with("call_")));
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (30, 6));

    let (tokens, streamed) = stream(&model, hello()).await;
    let streamed = streamed.unwrap();
    assert!(tokens.len() > 1);
    assert_eq!(streamed.content, "streamed answer here");
    assert_eq!(streamed.usage.output_tokens, 7);

    let sent = llm.requests();
    assert_eq!(sent[0].path, "/api/chat");
    assert_eq!(sent[0].body["options"], json!({"num_predict": 64, "temperature": 0.2, "num_ctx": 8192}));
    assert_eq!(sent[0].body["keep_alive"], "5m");
    assert_eq!(sent[0].body["tools"][0]["function"]["name"], "lookup");
    assert_eq!(sent[1].body["stream"], true);
    assert!(sent[1].body.get("tools").is_none());
}

#[tokio::test]
async fn health_checks_hit_each_protocols_model_list() {
    let llm = ScriptedLlm::start().await;
    for (provider, endpoint) in
        [("openai_compat", format!("{}/v1", llm.url())), ("anthropic", llm.url()), ("ollama", llm.url())]
    {
        let model = adapter(json!({"provider": provider, "model": "m", "endpoint": endpoint, "api_key": "k"}));
        let checked = model.health(Duration::from_secs(5)).await;
        assert_eq!(checked, Ok(()));
    }
    let paths: Vec<String> = llm.requests().into_iter().map(|request| request.path).collect();
    assert_eq!(paths, ["/v1/models", "/v1/models", "/api/tags"]);
}

// ---- Every YAML field reaches the wire --------------------------------------------------------

#[tokio::test]
async fn parameters_and_shorthand_reach_the_wire_and_per_call_overrides_win() {
    let llm = ScriptedLlm::start().await;
    let model = adapter(
        json!({"provider": "openai_compat", "model": "m", "endpoint": llm.url(), "temperature": 0.3, "max_tokens": 77,
                             "parameters": {"top_p": 0.5, "seed": 1, "temperature": 0.1}}),
    );
    complete(&model, hello()).await.unwrap();
    let mut request = hello();
    request.parameters.insert("seed".into(), json!(2));
    complete(&model, request).await.unwrap();
    let sent = llm.requests();
    // An explicit `parameters.temperature` wins over the shorthand.
    assert_eq!(
        (&sent[0].body["temperature"], &sent[0].body["max_tokens"], &sent[0].body["top_p"]),
        (&json!(0.1), &json!(77), &json!(0.5))
    );
    assert_eq!(sent[0].body["seed"], 1);
    assert_eq!(sent[1].body["seed"], 2);
}

#[tokio::test]
async fn anthropic_max_tokens_shorthand_replaces_the_default() {
    let llm = ScriptedLlm::start().await;
    let model = adapter(
        json!({"provider": "anthropic", "model": "claude-3-haiku", "endpoint": llm.url(), "api_key": "k", "max_tokens": 300, "temperature": 0.5}),
    );
    complete(&model, hello()).await.unwrap();
    let body = &llm.requests()[0].body;
    assert_eq!((&body["max_tokens"], &body["temperature"]), (&json!(300), &json!(0.5)));
}

#[tokio::test]
async fn timeout_bounds_the_whole_call() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::hang());
    let model = adapter(json!({"provider": "openai_compat", "model": "m", "endpoint": llm.url(), "timeout": 0.3}));
    let started = std::time::Instant::now();
    let error = complete(&model, hello()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("0.300s"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The run's remaining time bounds it too, when it is shorter than the candidate's timeout.
    llm.push(Reply::hang());
    let patient = build_model(&candidate(
        json!({"primary": {"provider": "openai_compat", "model": "m", "endpoint": llm.url(), "timeout": 60}}),
    ))
    .unwrap();
    let started = std::time::Instant::now();
    let error = patient.complete(&hello(), Duration::from_millis(300)).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn transport_failures_name_their_cause() {
    let refused = adapter(json!({"provider": "openai_compat", "model": "m", "endpoint": dead_url()}));
    let error = complete(&refused, hello()).await.unwrap_err();
    assert!(matches!(error, ProviderError::ConnectionRefused { .. }), "{error:?}");
    assert_eq!(error.code(), "model_connection_refused");

    // RFC 6761: `.invalid` never resolves. Generous limits: a slow resolver still fails as DNS.
    let unknown = adapter(
        json!({"provider": "openai_compat", "model": "m", "endpoint": "http://no-such-host.invalid:8080/v1", "connect_timeout": 60}),
    );
    let error = unknown.complete(&hello(), Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Dns { .. }), "{error:?}");
    assert_eq!(error.to_string(), "could not resolve the host of http://no-such-host.invalid:8080/v1/chat/completions");
}

#[tokio::test]
async fn an_endless_response_is_cut_off_with_a_clear_error() {
    let llm = ScriptedLlm::start().await;
    let huge = "x".repeat(65 * 1024 * 1024);
    llm.push(Reply::malformed(&huge));
    llm.push(Reply::malformed(&huge));
    let model = adapter(json!({"provider": "openai_compat", "model": "m", "endpoint": llm.url()}));
    for streaming in [false, true] {
        let result = if streaming { stream(&model, hello()).await.1 } else { complete(&model, hello()).await };
        let error = result.unwrap_err();
        assert!(matches!(error, ProviderError::Malformed { .. }), "{error:?}");
        assert!(error.to_string().ends_with("the response is larger than 64 MiB"), "streaming {streaming}: {error}");
    }
}

#[tokio::test]
async fn a_key_never_follows_a_redirect_to_another_host() {
    let llm = ScriptedLlm::start().await;
    let target = format!("{}/v1/messages", llm.url());
    let moved = axum::Router::new().fallback(move || async move { axum::response::Redirect::temporary(&target) });
    let elsewhere = WebServer::start(moved).await;
    let model = adapter(
        json!({"provider": "anthropic", "model": "claude-3-haiku", "endpoint": elsewhere.url, "api_key": "sk-ant-secret"}),
    );
    let error = complete(&model, hello()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Status { status: 307, .. }), "{error:?}");
    assert_eq!(llm.request_count(), 0, "the request (and its x-api-key) went to the other host");
}

#[tokio::test]
async fn api_key_and_custom_headers_reach_the_wire() {
    let llm = ScriptedLlm::start().await;
    let model =
        adapter(json!({"provider": "openai", "model": "gpt-4o", "endpoint": llm.url(), "api_key": "sk-from-yaml",
                             "headers": {"X-Tenant": "acme", "OpenAI-Organization": "org-1"}}));
    complete(&model, hello()).await.unwrap();
    let sent = &llm.requests()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer sk-from-yaml"));
    assert_eq!(sent.header("x-tenant"), Some("acme"));
    assert_eq!(sent.header("openai-organization"), Some("org-1"));
}

#[tokio::test]
async fn api_key_env_is_read_at_call_time_and_a_missing_explicit_one_is_named() {
    let llm = ScriptedLlm::start().await;
    // PATH is set in every test environment; its value stands in for a key.
    let path = std::env::var("PATH").unwrap();
    let model = adapter(json!({"provider": "openai", "model": "gpt-4o", "endpoint": llm.url(), "api_key_env": "PATH"}));
    complete(&model, hello()).await.unwrap();
    assert_eq!(llm.requests()[0].header("authorization"), Some(format!("Bearer {path}").as_str()));

    let variable = "ASTROMESH_TEST_NEVER_SET_KEY";
    let missing =
        adapter(json!({"provider": "openai", "model": "gpt-4o", "endpoint": llm.url(), "api_key_env": variable}));
    let error = complete(&missing, hello()).await.unwrap_err();
    assert_eq!(error, ProviderError::MissingApiKey { env: variable.to_string() });
    assert!(error.to_string().contains(variable));
    assert_eq!(llm.request_count(), 1, "no request is sent without the key");
}

#[tokio::test]
async fn local_servers_need_no_key_when_none_is_configured() {
    let llm = ScriptedLlm::start().await;
    let model = adapter(json!({"provider": "llamacpp", "model": "m", "endpoint": llm.url()}));
    complete(&model, hello()).await.unwrap();
    let sent = &llm.requests()[0];
    match std::env::var("OPENAI_API_KEY") {
        // The default variable is still used when the environment happens to have it.
        Ok(key) if !key.trim().is_empty() => {
            assert_eq!(sent.header("authorization"), Some(format!("Bearer {}", key.trim()).as_str()))
        }
        _ => assert_eq!(sent.header("authorization"), None),
    }
}

#[tokio::test]
async fn provider_ref_defaults_come_from_providers_yaml() {
    let llm = ScriptedLlm::start().await;
    let providers = json!({"apiVersion": "astromesh/v1", "kind": "ProviderConfig", "spec": {"providers": {
        "house-ollama": {"type": "ollama", "endpoint": llm.url(), "models": ["qwen2.5:7b"], "timeout": 5},
        "gateway": {"type": "openai_compat", "endpoint": format!("{}/v1", llm.url()), "api_key": "sk-gateway", "models": ["gpt-4o-mini"]}
    }}});
    let config = load(
        json!({"primary": {"providerRef": "house-ollama"}, "fallback": {"providerRef": "gateway", "model": "gpt-4.1", "temperature": 0.7}}),
        Some(providers),
    );
    let role = role(&config);
    assert_eq!(role.candidates[0].timeout, Duration::from_secs(5));
    for candidate in &role.candidates {
        complete(&build_model(candidate).unwrap(), hello()).await.unwrap();
    }
    let sent = llm.requests();
    assert_eq!((sent[0].path.as_str(), &sent[0].body["model"]), ("/api/chat", &json!("qwen2.5:7b")));
    assert_eq!((sent[1].path.as_str(), &sent[1].body["model"]), ("/v1/chat/completions", &json!("gpt-4.1")));
    assert_eq!(sent[1].header("authorization"), Some("Bearer sk-gateway"));
    assert_eq!(sent[1].body["temperature"], 0.7);
}

#[tokio::test]
async fn error_text_quotes_the_body_but_never_the_key() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::status(401, r#"{"error": {"message": "Incorrect API key provided: sk-secret-123"}}"#));
    let model =
        adapter(json!({"provider": "openai", "model": "gpt-4o", "endpoint": llm.url(), "api_key": "sk-secret-123"}));
    let error = complete(&model, hello()).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ProviderError::Status { status: 401, .. }), "{text}");
    assert!(text.contains("Incorrect API key provided: ***"), "{text}");
    assert!(!text.contains("sk-secret-123"));
}

#[tokio::test]
async fn reasoning_is_read_from_each_protocol_streaming_or_not() {
    let llm = ScriptedLlm::start().await;
    for provider in ["openai_compat", "anthropic", "ollama"] {
        llm.push_all([Reply::text("42").with_reasoning("because"), Reply::text("42").with_reasoning("because")]);
        let model = adapter(json!({"provider": provider, "model": "m", "endpoint": llm.url(), "api_key": "k"}));
        let whole = complete(&model, hello()).await.unwrap();
        let (_, streamed) = stream(&model, hello()).await;
        for response in [whole, streamed.unwrap()] {
            assert_eq!(
                (response.content.as_str(), response.reasoning_content.as_deref()),
                ("42", Some("because")),
                "{provider}"
            );
        }
    }
}
