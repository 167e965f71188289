//! The router over real adapters and real sockets: fallback, circuit breaking, strategies,
//! errors that must not panic, streaming to a channel, and the doctor's probe.

use super::*;
use astromesh::providers::router::{probe, BreakerSettings, ModelRouter, ProviderState, RouterError};

fn router_for(config: &Config) -> ModelRouter {
    ModelRouter::new(&role(config), BreakerSettings::from_config(&config.providers))
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

fn routing(routing: Value) -> Value {
    json!({"apiVersion": "astromesh/v1", "kind": "ProviderConfig", "spec": {"routing": routing}})
}

#[tokio::test]
async fn falls_back_from_a_refused_connection() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("from the fallback"));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "dead", "endpoint": dead_url()},
               "fallback": {"provider": "ollama", "model": "llama3", "endpoint": llm.url()}}),
        None,
    );
    let router = router_for(&config);
    let response = router.complete(hello(), far(), None).await.unwrap();
    assert_eq!(response.content, "from the fallback");
    assert_eq!(response.provider, "ollama");
    let health = router.health();
    assert_eq!((health[0].state, health[0].consecutive_failures), (ProviderState::Degraded, 1));
    assert!(health[0].detail.as_deref().unwrap_or_default().contains("connection refused"), "{:?}", health[0].detail);
    assert_eq!(health[1].state, ProviderState::Healthy);
    assert!(health[1].avg_latency_ms.is_some());
}

#[tokio::test]
async fn falls_back_from_http_500() {
    let primary = ScriptedLlm::start().await;
    let fallback = ScriptedLlm::start().await;
    primary.push(Reply::status(500, "upstream exploded"));
    fallback.push(Reply::text("all good"));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "a", "endpoint": primary.url()},
               "fallback": {"provider": "anthropic", "model": "claude-3-haiku", "endpoint": fallback.url(), "api_key": "k"}}),
        None,
    );
    let response = router_for(&config).complete(hello(), far(), None).await.unwrap();
    assert_eq!(response.content, "all good");
    assert_eq!((primary.request_count(), fallback.request_count()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_stays_open_and_half_opens_after_recovery() {
    let flaky = ScriptedLlm::start().await;
    let steady = ScriptedLlm::start().await;
    flaky.set_default(Reply::status(500, "down"));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "flaky", "endpoint": flaky.url()},
               "fallback": {"provider": "openai_compat", "model": "steady", "endpoint": steady.url()}}),
        Some(routing(json!({"circuit_breaker": {"failure_threshold": 2, "recovery_timeout": 60}}))),
    );
    let router = router_for(&config);
    for _ in 0..2 {
        router.complete(hello(), far(), None).await.unwrap();
    }
    assert_eq!(flaky.request_count(), 2);
    assert!(router.health()[0].circuit_open);
    assert_eq!(router.health()[0].state, ProviderState::Unavailable);

    // Open: the flaky candidate is not called at all.
    for _ in 0..2 {
        router.complete(hello(), far(), None).await.unwrap();
    }
    assert_eq!(flaky.request_count(), 2);

    // Half-open after recovery_timeout: one probe; it fails and the circuit re-opens.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(router.health()[0].state, ProviderState::Degraded);
    router.complete(hello(), far(), None).await.unwrap();
    assert_eq!(flaky.request_count(), 3);
    router.complete(hello(), far(), None).await.unwrap();
    assert_eq!(flaky.request_count(), 3);

    // The next probe succeeds and closes it.
    flaky.set_default(Reply::text("flaky is back"));
    tokio::time::advance(Duration::from_secs(61)).await;
    let response = router.complete(hello(), far(), None).await.unwrap();
    assert_eq!(response.content, "flaky is back");
    assert_eq!(flaky.request_count(), 4);
    assert_eq!(router.health()[0].state, ProviderState::Healthy);
    assert_eq!(steady.request_count(), 6);
}

#[tokio::test]
async fn all_dead_names_each_candidate() {
    let failing = ScriptedLlm::start().await;
    failing.set_default(Reply::status(500, "model crashed"));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "gpt-4o", "endpoint": dead_url()},
               "fallback": {"provider": "ollama", "model": "llama3", "endpoint": failing.url()},
               "extra": {"spare": {"provider": "anthropic", "model": "claude-3-haiku", "endpoint": dead_url(), "api_key": "k"}}}),
        None,
    );
    let error = router_for(&config).complete(hello(), far(), None).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, RouterError::AllProvidersDown { ref failures } if failures.len() == 3), "{text}");
    assert!(text.starts_with("All providers unavailable: openai_compat/gpt-4o: connection refused"), "{text}");
    assert!(text.contains("; ollama/llama3: ") && text.contains("HTTP 500: model crashed"), "{text}");
    assert!(text.contains("; anthropic/claude-3-haiku: connection refused"), "{text}");
}

#[tokio::test]
async fn fallback_disabled_tries_only_the_first_candidate() {
    let primary = ScriptedLlm::start().await;
    let fallback = ScriptedLlm::start().await;
    primary.push(Reply::status(503, "busy"));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "a", "endpoint": primary.url()},
               "fallback": {"provider": "openai_compat", "model": "b", "endpoint": fallback.url()}}),
        Some(routing(json!({"fallback_enabled": false}))),
    );
    let error = router_for(&config).complete(hello(), far(), None).await.unwrap_err();
    assert!(matches!(error, RouterError::AllProvidersDown { ref failures } if failures.len() == 1), "{error}");
    assert_eq!(fallback.request_count(), 0);
}

#[tokio::test]
async fn malformed_upstream_json_is_a_clear_error() {
    let llm = ScriptedLlm::start().await;
    llm.push_all([Reply::malformed("{not json"), Reply::malformed("{not json"), Reply::malformed("{\"choices\": []}")]);
    let model = adapter(json!({"provider": "openai_compat", "model": "m", "endpoint": llm.url()}));
    let error = complete(&model, hello()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Malformed { .. }), "{error}");
    assert!(error.to_string().contains("malformed response") && error.to_string().contains("{not json"), "{error}");
    let (_, streamed) = stream(&model, hello()).await;
    assert!(matches!(streamed, Err(ProviderError::Malformed { .. })), "{streamed:?}");
    let error = complete(&model, hello()).await.unwrap_err();
    assert!(error.to_string().contains("no choices"), "{error}");

    for provider in ["anthropic", "ollama"] {
        llm.push(Reply::malformed("[1, 2"));
        let model = adapter(json!({"provider": provider, "model": "m", "endpoint": llm.url(), "api_key": "k"}));
        let error = complete(&model, hello()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Malformed { .. }), "{provider}: {error}");
    }
}

#[tokio::test]
async fn dropped_connections_are_errors_not_panics() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::drop_connection());
    let model = adapter(json!({"provider": "openai_compat", "model": "m", "endpoint": llm.url()}));
    let error = complete(&model, hello()).await.unwrap_err();
    assert!(error.to_string().contains(&llm.url()), "{error}");

    // Enough frames for some text to arrive (Anthropic starts with message_start,
    // content_block_start and a ping), fewer than the whole stream.
    for (provider, frames) in [("openai_compat", 3), ("anthropic", 5), ("ollama", 2)] {
        llm.push(Reply::text("one two three four five six seven eight").interrupt_after(frames));
        let model = adapter(json!({"provider": provider, "model": "m", "endpoint": llm.url(), "api_key": "k"}));
        let (tokens, streamed) = stream(&model, hello()).await;
        assert!(matches!(streamed, Err(ProviderError::StreamInterrupted { .. })), "{provider}: {streamed:?}");
        assert!(!tokens.is_empty(), "{provider}: the frames before the break were delivered");
    }
}

#[tokio::test]
async fn a_stream_that_breaks_after_tokens_does_not_fall_back() {
    let primary = ScriptedLlm::start().await;
    let fallback = ScriptedLlm::start().await;
    primary.push(Reply::text("partial answer that will break").interrupt_after(3));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "a", "endpoint": primary.url()},
               "fallback": {"provider": "openai_compat", "model": "b", "endpoint": fallback.url()}}),
        None,
    );
    let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
    let error = router_for(&config).complete(hello(), far(), Some(sender)).await.unwrap_err();
    assert!(matches!(error, RouterError::StreamFailed { .. }), "{error}");
    assert!(receiver.recv().await.is_some(), "some tokens went out before the failure");
    assert_eq!(fallback.request_count(), 0);
}

#[tokio::test]
async fn streaming_through_the_router_sends_tokens_on_the_channel() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::text("Streaming works through the router").chunk_delay(5));
    let config = load(
        json!({"primary": {"provider": "anthropic", "model": "claude-3-haiku", "endpoint": llm.url(), "api_key": "k"}}),
        None,
    );
    let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
    let router = router_for(&config);
    let (response, tokens) = tokio::join!(router.complete(hello(), far(), Some(sender)), async {
        let mut tokens = Vec::new();
        while let Some(token) = receiver.recv().await {
            tokens.push(token);
        }
        tokens
    });
    assert_eq!(response.unwrap().content, "Streaming works through the router");
    assert!(tokens.len() > 1);
    assert_eq!(tokens.concat(), "Streaming works through the router");
}

#[tokio::test]
async fn the_deadline_stops_a_hanging_candidate_without_blaming_it() {
    let llm = ScriptedLlm::start().await;
    llm.push(Reply::hang());
    let config = load(json!({"primary": {"provider": "openai_compat", "model": "m", "endpoint": llm.url()}}), None);
    let router = router_for(&config);
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let error = router.complete(hello(), deadline, None).await.unwrap_err();
    assert_eq!(error, RouterError::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(router.health()[0].consecutive_failures, 0);
}

#[tokio::test]
async fn capability_match_sends_images_only_to_a_vision_model() {
    let text_only = ScriptedLlm::start().await;
    let vision = ScriptedLlm::start().await;
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "gpt-3.5-turbo", "endpoint": text_only.url()},
               "fallback": {"provider": "openai_compat", "model": "gpt-4o", "endpoint": vision.url()},
               "routing": "capability_match"}),
        None,
    );
    let mut user = ChatMessage::user("What is in this picture?");
    user.images.push("data:image/png;base64,iVBORw0KGgo=".into());
    router_for(&config).complete(ChatRequest::new(vec![user]), far(), None).await.unwrap();
    assert_eq!(text_only.request_count(), 0);
    let content = &vision.requests()[0].body["messages"][0]["content"];
    assert_eq!(content[1], json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}));
}

#[tokio::test]
async fn round_robin_spreads_calls() {
    let first = ScriptedLlm::start().await;
    let second = ScriptedLlm::start().await;
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "a", "endpoint": first.url()},
               "fallback": {"provider": "ollama", "model": "b", "endpoint": second.url()},
               "routing": {"strategy": "round_robin"}}),
        None,
    );
    let router = router_for(&config);
    for _ in 0..4 {
        router.complete(hello(), far(), None).await.unwrap();
    }
    assert_eq!((first.request_count(), second.request_count()), (2, 2));
}

#[tokio::test]
async fn probe_answers_quickly_even_when_an_endpoint_hangs() {
    let hanging = ScriptedLlm::start().await;
    let healthy = ScriptedLlm::start().await;
    hanging.set_health(Reply::hang());
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "a", "endpoint": hanging.url()},
               "fallback": {"provider": "ollama", "model": "b", "endpoint": healthy.url()},
               "extra": {"same-endpoint": {"provider": "ollama", "model": "c", "endpoint": healthy.url()},
                         "refused": {"provider": "anthropic", "model": "d", "endpoint": dead_url(), "api_key": "k"}}}),
        None,
    );
    let started = std::time::Instant::now();
    let results = probe(&role(&config).candidates, Duration::from_secs(1)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(results.len(), 3, "one probe per distinct endpoint: {results:?}");
    assert_eq!(results[0].name, format!("openai_compat {}", hanging.url()));
    assert!(!results[0].ok);
    assert!(results[1].ok && results[1].message.starts_with("avg latency: "), "{:?}", results[1]);
    assert!(!results[2].ok && results[2].message.contains("connection refused"), "{:?}", results[2]);
    assert_eq!(healthy.requests()[0].path, "/api/tags");
}

#[tokio::test]
async fn a_candidate_that_exceeds_its_own_timeout_falls_back() {
    let slow = ScriptedLlm::start().await;
    let fast = ScriptedLlm::start().await;
    slow.push(Reply::hang());
    fast.push(Reply::text("fast answer"));
    let config = load(
        json!({"primary": {"provider": "openai_compat", "model": "slow", "endpoint": slow.url(), "timeout": 0.2},
               "fallback": {"provider": "openai_compat", "model": "fast", "endpoint": fast.url()}}),
        None,
    );
    let router = router_for(&config);
    let response = router.complete(hello(), far(), None).await.unwrap();
    assert_eq!(response.content, "fast answer");
    let health = router.health();
    assert_eq!(health[0].consecutive_failures, 1);
    assert!(health[0].detail.as_deref().unwrap_or_default().contains("within 0.200s"), "{:?}", health[0].detail);
}
