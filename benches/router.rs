//! Router overhead and adapter throughput (figures, not pass/fail).
//!
//! 1. `ModelRouter::complete` over an in-process model that answers at once: what the router
//!    itself costs per call (ordering, breaker bookkeeping, the boxed adapter future). Target:
//!    under 50 µs.
//! 2. The openai_compat adapter against the scripted LLM server at zero delay, over loopback
//!    HTTP: sequential and 4-way concurrent calls (tasks), non-streaming and streaming.
//!
//! Run with `cargo bench --bench router`. Measured on the 2-core dev machine: router 0.36 µs
//! per call, 1.1 µs when streaming to a channel (7.5 µs and 13.5 µs when each call hopped to
//! the blocking pool); openai_compat (reqwest) ~12.5k calls/s sequential (80 µs each), ~30k
//! calls/s from 4 tasks; streaming ~7.9k calls/s sequential, ~20k from 4 tasks (a stream's
//! connection is not reused after its final frame). On ureq in 4 blocking threads it was ~10k,
//! ~13k and ~5.5k.

#[path = "../tests/support/llm.rs"]
#[allow(dead_code)]
mod llm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use astromesh::config::model::{ModelCandidate, ProviderKind, RoutingStrategy};
use astromesh::providers::router::{BreakerSettings, ModelRouter};
use astromesh::providers::{
    build_model, Capabilities, ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelCall, TokenSink, Usage,
};

/// A model that answers immediately, so only the router's own work is measured.
struct InstantModel {
    answer: ChatResponse,
}

impl ChatModel for InstantModel {
    fn complete<'a>(&'a self, _request: &'a ChatRequest, _timeout: Duration) -> ModelCall<'a, ChatResponse> {
        Box::pin(std::future::ready(Ok(self.answer.clone())))
    }

    fn stream<'a>(
        &'a self,
        _request: &'a ChatRequest,
        _timeout: Duration,
        tokens: &'a mut TokenSink,
    ) -> ModelCall<'a, ChatResponse> {
        Box::pin(async move {
            tokens.send(&self.answer.content).await;
            Ok(self.answer.clone())
        })
    }

    fn health(&self, _timeout: Duration) -> ModelCall<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { tools: true, vision: false }
    }

    fn describe(&self) -> String {
        "bench/instant".to_string()
    }
}

fn candidate(model: &str, endpoint: &str) -> ModelCandidate {
    ModelCandidate {
        label: model.to_string(),
        kind: ProviderKind::OpenAiCompat,
        provider: "openai_compat".to_string(),
        model: model.to_string(),
        endpoint: endpoint.to_string(),
        api_key: None,
        api_key_env: None,
        api_key_env_explicit: false,
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        parameters: Default::default(),
        headers: Vec::new(),
        model_path: None,
        queue_size: 8,
    }
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::system("You are terse."), ChatMessage::user("Say hi.")])
}

fn instant_router(strategy: RoutingStrategy, n_candidates: usize) -> ModelRouter {
    let answer = ChatResponse {
        content: "hi".to_string(),
        tool_calls: Vec::new(),
        usage: Usage { input_tokens: 10, output_tokens: 1, cached_tokens: 0 },
        model: "instant".to_string(),
        provider: "bench".to_string(),
        reasoning_content: None,
        finish_reason: Some("stop".to_string()),
        latency: Duration::from_micros(1),
    };
    let models = (0..n_candidates)
        .map(|idx| {
            let model: Arc<dyn ChatModel> = Arc::new(InstantModel { answer: answer.clone() });
            (candidate(&format!("gpt-4o-mini-{idx}"), "http://127.0.0.1:9"), model)
        })
        .collect();
    ModelRouter::with_models(strategy, models, BreakerSettings::default())
}

async fn router_overhead(label: &str, router: &ModelRouter, calls: u32, stream: bool) {
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..200 {
        router.complete(request(), deadline(), None).await.expect("warm-up call");
    }
    let started = Instant::now();
    for _ in 0..calls {
        let tokens = if stream {
            let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move { while receiver.recv().await.is_some() {} });
            Some(sender)
        } else {
            None
        };
        router.complete(request(), deadline(), tokens).await.expect("router call");
    }
    let per_call = started.elapsed() / calls;
    println!("  {label:<48} {:>8.2} µs/call", per_call.as_secs_f64() * 1e6);
}

async fn adapter_throughput(server: &llm::ScriptedLlm, calls: usize, threads: usize, stream: bool, report: bool) {
    let model = build_model(&candidate("gpt-4o-mini", &format!("{}/v1", server.url()))).expect("adapter builds");
    let per_thread = calls / threads;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let model = Arc::clone(&model);
            tokio::spawn(async move {
                for _ in 0..per_thread {
                    let result = if stream {
                        model.stream(&request(), Duration::from_secs(10), &mut TokenSink::default()).await
                    } else {
                        model.complete(&request(), Duration::from_secs(10)).await
                    };
                    result.expect("adapter call");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    if !report {
        return;
    }
    let total = per_thread * threads;
    let mode = if stream { "stream" } else { "complete" };
    println!(
        "  openai_compat {mode:<8} x{threads} task(s)   {:>10.0} calls/s   {:>8.1} µs/call mean latency",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 * threads as f64 / total as f64
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!("router overhead (in-process model that answers at once; target < 50 µs):");
        router_overhead("1 candidate, quality_first", &instant_router(RoutingStrategy::QualityFirst, 1), 20_000, false)
            .await;
        router_overhead(
            "3 candidates, cost_optimized",
            &instant_router(RoutingStrategy::CostOptimized, 3),
            20_000,
            false,
        )
        .await;
        router_overhead(
            "3 candidates, latency_optimized",
            &instant_router(RoutingStrategy::LatencyOptimized, 3),
            20_000,
            false,
        )
        .await;
        router_overhead(
            "1 candidate, streaming to a channel",
            &instant_router(RoutingStrategy::QualityFirst, 1),
            20_000,
            true,
        )
        .await;

        println!("adapter throughput against the scripted server (loopback, zero delay):");
        let server = llm::ScriptedLlm::start().await;
        server.set_default(llm::Reply::text("Hello from the scripted LLM, at full speed."));
        adapter_throughput(&server, 200, 1, false, false).await; // warm-up
        adapter_throughput(&server, 3_000, 1, false, true).await;
        adapter_throughput(&server, 3_000, 4, false, true).await;
        adapter_throughput(&server, 3_000, 1, true, true).await;
        adapter_throughput(&server, 3_000, 4, true, true).await;
    });
}
