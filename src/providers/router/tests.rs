//! Unit tests for candidate ordering, the breaker's state machine and health reporting.
//!
//! The model here is a stand-in for a provider (the outside world); the wire adapters are
//! tested against the scripted HTTP server in `tests/providers.rs`.

use super::*;
use crate::config::model::ProviderKind;
use crate::providers::{ChatMessage, ModelCall, ToolSpec, Usage};
use std::sync::atomic::{AtomicBool, AtomicUsize};

fn candidate(provider: &str, kind: ProviderKind, model: &str) -> ModelCandidate {
    ModelCandidate {
        label: model.to_string(),
        kind,
        provider: provider.to_string(),
        model: model.to_string(),
        endpoint: "http://127.0.0.1:9".to_string(),
        api_key: None,
        api_key_env: None,
        api_key_env_explicit: false,
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(1),
        parameters: Default::default(),
        headers: Vec::new(),
        model_path: None,
        queue_size: 8,
    }
}

fn openai(model: &str) -> ModelCandidate {
    candidate("openai", ProviderKind::OpenAiCompat, model)
}

fn router(strategy: RoutingStrategy, candidates: Vec<ModelCandidate>) -> ModelRouter {
    ModelRouter::new(&RoleConfig { strategy, candidates }, BreakerSettings::default())
}

fn names(router: &ModelRouter, request: &ChatRequest) -> Vec<String> {
    router.order(request).0.into_iter().map(|idx| router.slots[idx].candidate.model.clone()).collect()
}

/// A provider that answers or fails on command and counts its calls.
#[derive(Default)]
struct FakeModel {
    failing: AtomicBool,
    calls: AtomicUsize,
}

impl FakeModel {
    fn answer(&self) -> Result<ChatResponse, ProviderError> {
        self.calls.fetch_add(1, AtomicOrdering::SeqCst);
        if self.failing.load(AtomicOrdering::SeqCst) {
            return Err(ProviderError::ConnectionRefused { url: "http://fake".into() });
        }
        Ok(ChatResponse {
            content: "ok".into(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            model: "fake".into(),
            provider: "fake".into(),
            reasoning_content: None,
            finish_reason: None,
            latency: Duration::from_millis(10),
        })
    }
}

impl ChatModel for FakeModel {
    fn complete<'a>(&'a self, _request: &'a ChatRequest, _timeout: Duration) -> ModelCall<'a, ChatResponse> {
        Box::pin(std::future::ready(self.answer()))
    }

    fn stream<'a>(
        &'a self,
        _request: &'a ChatRequest,
        _timeout: Duration,
        tokens: &'a mut TokenSink,
    ) -> ModelCall<'a, ChatResponse> {
        Box::pin(async move {
            tokens.send("o").await;
            if self.failing.load(AtomicOrdering::SeqCst) {
                self.calls.fetch_add(1, AtomicOrdering::SeqCst);
                return Err(ProviderError::StreamInterrupted {
                    url: "http://fake".into(),
                    received_bytes: 1,
                    reason: "reset".into(),
                });
            }
            self.answer()
        })
    }

    fn health(&self, _timeout: Duration) -> ModelCall<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { tools: true, vision: false }
    }

    fn describe(&self) -> String {
        "fake/fake".into()
    }
}

fn fake_router(breaker: BreakerSettings) -> (ModelRouter, Arc<FakeModel>, Arc<FakeModel>) {
    let first = Arc::new(FakeModel::default());
    let second = Arc::new(FakeModel::default());
    let models: Vec<(ModelCandidate, Arc<dyn ChatModel>)> = vec![
        (candidate("fake", ProviderKind::OpenAiCompat, "first"), first.clone()),
        (candidate("fake", ProviderKind::OpenAiCompat, "second"), second.clone()),
    ];
    (ModelRouter::with_models(RoutingStrategy::QualityFirst, models, breaker), first, second)
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[test]
fn cost_optimized_ranks_by_real_prices_and_puts_unknown_models_last() {
    let candidates = vec![
        openai("gpt-4"),
        openai("my-finetune"),
        candidate("anthropic", ProviderKind::Anthropic, "claude-3-haiku-20240307"),
        openai("gpt-4o-mini"),
        candidate("ollama", ProviderKind::Ollama, "llama3"),
    ];
    let router = router(RoutingStrategy::CostOptimized, candidates);
    let order = names(&router, &ChatRequest::default());
    assert_eq!(order, ["llama3", "gpt-4o-mini", "claude-3-haiku-20240307", "gpt-4", "my-finetune"]);
}

#[test]
fn latency_optimized_tries_untried_first_then_the_fastest_average() {
    let router = router(RoutingStrategy::LatencyOptimized, vec![openai("a"), openai("b"), openai("c")]);
    router.record_success(0, Duration::from_millis(100));
    router.record_success(1, Duration::from_millis(50));
    assert_eq!(names(&router, &ChatRequest::default()), ["c", "b", "a"]);
    // EMA: 0.8 * 50 + 0.2 * 300 = 100, and a is also 100: the stable sort keeps declaration order.
    router.record_success(1, Duration::from_millis(300));
    router.record_success(2, Duration::from_millis(10));
    assert_eq!(router.health()[1].avg_latency_ms, Some(100.0));
    assert_eq!(names(&router, &ChatRequest::default()), ["c", "a", "b"]);
}

#[test]
fn round_robin_rotates_per_call() {
    let router = router(RoutingStrategy::RoundRobin, vec![openai("a"), openai("b"), openai("c")]);
    let request = ChatRequest::default();
    assert_eq!(names(&router, &request), ["a", "b", "c"]);
    assert_eq!(names(&router, &request), ["b", "c", "a"]);
    assert_eq!(names(&router, &request), ["c", "a", "b"]);
}

#[test]
fn capability_match_filters_by_vision_and_reports_why() {
    let router = router(RoutingStrategy::CapabilityMatch, vec![openai("gpt-3.5-turbo"), openai("gpt-4o")]);
    let mut user = ChatMessage::user("what is this");
    user.images.push("iVBOR".into());
    let (order, ineligible) = router.order(&ChatRequest::new(vec![user]));
    assert_eq!(order, [1]);
    assert_eq!(ineligible, [("openai/gpt-3.5-turbo".to_string(), "does not support vision".to_string())]);
    let mut with_tools = ChatRequest::new(vec![ChatMessage::user("hi")]);
    with_tools.tools.push(ToolSpec { name: "t".into(), description: String::new(), parameters: serde_json::json!({}) });
    assert_eq!(router.order(&with_tools).0, [0, 1]);
}

#[test]
fn fallback_disabled_keeps_only_the_first_candidate() {
    let breaker = BreakerSettings { fallback_enabled: false, ..BreakerSettings::default() };
    let router = ModelRouter::new(
        &RoleConfig { strategy: RoutingStrategy::QualityFirst, candidates: vec![openai("a"), openai("b")] },
        breaker,
    );
    assert_eq!(router.order(&ChatRequest::default()).0, [0]);
}

#[test]
fn candidates_that_cannot_be_built_are_unavailable_with_their_reason() {
    let mut local = candidate("local", ProviderKind::Local, "model.gguf");
    local.model_path = Some("model.gguf".into());
    let router = router(RoutingStrategy::QualityFirst, vec![local, openai("gpt-4o")]);
    let health = router.health();
    assert_eq!(health[0].state, ProviderState::Unavailable);
    // See: issue #12 — a local model whose file is missing is unusable, and says where it looked.
    assert!(health[0].detail.as_deref().unwrap_or_default().contains("model file \"model.gguf\" not found"));
    assert_eq!(health[1].state, ProviderState::Degraded);
    assert_eq!(health[1].detail.as_deref(), Some("unprobed"));
}

#[test]
fn all_providers_down_names_each_candidate() {
    let error = RouterError::AllProvidersDown {
        failures: vec![("openai/a".into(), "connection refused".into()), ("ollama/b".into(), "HTTP 500".into())],
    };
    assert_eq!(error.to_string(), "All providers unavailable: openai/a: connection refused; ollama/b: HTTP 500");
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_stays_open_and_half_opens_after_the_recovery_timeout() {
    let breaker =
        BreakerSettings { failure_threshold: 2, recovery_timeout: Duration::from_secs(30), fallback_enabled: true };
    let (router, first, second) = fake_router(breaker);
    first.failing.store(true, AtomicOrdering::SeqCst);
    for _ in 0..2 {
        let response = router.complete(ChatRequest::default(), far(), None).await.unwrap();
        assert_eq!(response.content, "ok");
    }
    assert_eq!(first.calls.load(AtomicOrdering::SeqCst), 2);
    assert!(router.health()[0].circuit_open);
    assert_eq!(router.health()[0].state, ProviderState::Unavailable);

    // Open: the first candidate is not called at all.
    router.complete(ChatRequest::default(), far(), None).await.unwrap();
    assert_eq!(first.calls.load(AtomicOrdering::SeqCst), 2);

    // Half-open after the recovery timeout: one probe, which fails and re-opens at once.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(router.health()[0].state, ProviderState::Degraded);
    router.complete(ChatRequest::default(), far(), None).await.unwrap();
    assert_eq!(first.calls.load(AtomicOrdering::SeqCst), 3);
    router.complete(ChatRequest::default(), far(), None).await.unwrap();
    assert_eq!(first.calls.load(AtomicOrdering::SeqCst), 3);

    // The next probe succeeds and closes the circuit.
    tokio::time::advance(Duration::from_secs(31)).await;
    first.failing.store(false, AtomicOrdering::SeqCst);
    router.complete(ChatRequest::default(), far(), None).await.unwrap();
    assert_eq!(first.calls.load(AtomicOrdering::SeqCst), 4);
    let health = router.health();
    assert_eq!(health[0].state, ProviderState::Healthy);
    assert_eq!(health[0].consecutive_failures, 0);
    assert_eq!(second.calls.load(AtomicOrdering::SeqCst), 5);
}

#[tokio::test]
async fn a_failure_after_tokens_were_streamed_does_not_fall_back() {
    let (router, first, second) = fake_router(BreakerSettings::default());
    first.failing.store(true, AtomicOrdering::SeqCst);
    let (sender, mut receiver) = tokio::sync::mpsc::channel(8);
    let error = router.complete(ChatRequest::default(), far(), Some(sender)).await.unwrap_err();
    assert!(matches!(error, RouterError::StreamFailed { .. }), "{error}");
    assert_eq!(receiver.recv().await.as_deref(), Some("o"));
    assert_eq!(second.calls.load(AtomicOrdering::SeqCst), 0);
}

#[tokio::test]
async fn a_closed_token_receiver_does_not_fail_the_call() {
    let (router, _first, _second) = fake_router(BreakerSettings::default());
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    drop(receiver);
    let response = router.complete(ChatRequest::default(), far(), Some(sender)).await.unwrap();
    assert_eq!(response.content, "ok");
}

#[tokio::test]
async fn a_passed_deadline_is_reported_as_such() {
    let (router, first, _second) = fake_router(BreakerSettings::default());
    let error = router.complete(ChatRequest::default(), Instant::now(), None).await.unwrap_err();
    assert_eq!(error, RouterError::DeadlineExceeded);
    assert_eq!(first.calls.load(AtomicOrdering::SeqCst), 0);
}

#[test]
fn only_timeouts_shorter_than_the_candidates_own_are_blamed_on_the_deadline() {
    let candidate = openai("m"); // timeout 30 s, connect timeout 1 s
    let timeout = |secs| ProviderError::Timeout { url: "u".into(), timeout: Duration::from_secs(secs) };
    assert!(caused_by_deadline(&timeout(2), &candidate));
    assert!(!caused_by_deadline(&timeout(30), &candidate));
    let connect = ProviderError::ConnectTimeout { url: "u".into(), timeout: Duration::from_secs(1) };
    assert!(!caused_by_deadline(&connect, &candidate));
}
