//! Run throughput: the whole pipeline (HTTP → run → model call → history persisted) against the
//! scripted upstream at zero delay, with 16 concurrent clients on keep-alive connections.
//!
//! Run with `cargo bench --bench runs`. Prints runs/s and the p50/p99 latency of a run as the
//! client sees it; the upstream answers at once, so that latency is what Astromesh adds.
//!
//! Measured on the 2-core reference machine (release, 51 runs over an hour, on a VM whose speed
//! varies from minute to minute): 3,450-5,050 runs/s, p50 3.2-4.4 ms, p99 4.6-9.2 ms; peak RSS
//! of the whole process (daemon, clients and upstream) ~110-116 MB, levelling off in longer
//! runs (`ASTROMESH_BENCH_RUNS=2400`: ~152 MB). History: 636 runs/s (p99 72 ms) when each
//! run awaited two writer commits; ~2,900 runs/s (p99 ~14 ms) before ureq's per-call resolver thread was removed (`net.rs`),
//! lazy trace writes joined the batch's transaction and mimalloc came in; 3,110-3,730 runs/s
//! (p99 8.9-15.6 ms) while provider calls were blocking ureq calls on the blocking pool, one
//! runnable thread per run in flight. What is left of the p99 follows the durable commit's
//! fdatasync on this disk (~0.85 ms median, ~4 ms at p99, now and then 15-100 ms, stalling
//! every run in flight) and the clients and scripted upstream sharing the two cores.

#[path = "../tests/support/llm.rs"]
#[allow(dead_code)]
mod llm;

use std::time::{Duration, Instant};

use astromesh::config::{Config, ConfigSource, Overrides};
use http_body_util::BodyExt;
use hyper::Request;
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 16;
/// Runs per client, unless `ASTROMESH_BENCH_RUNS` says otherwise (a longer run shows whether
/// memory keeps growing).
const RUNS_PER_CLIENT: usize = 400;

fn runs_per_client() -> usize {
    std::env::var("ASTROMESH_BENCH_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(RUNS_PER_CLIENT)
}

async fn client(address: String, client_idx: usize, runs: usize) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
    tokio::spawn(connection);
    let mut latencies = Vec::with_capacity(runs);
    for run_idx in 0..runs {
        // Each client keeps one session: history grows and is persisted on every run.
        let body = format!(r#"{{"query": "question {run_idx}", "session_id": "bench-{client_idx}-{}"}}"#, run_idx / 20);
        let request = Request::post("/v1/agents/bench/run")
            .header("host", &address)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        let started = Instant::now();
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), 200);
        let _ = response.into_body().collect().await.expect("body");
        latencies.push(started.elapsed());
    }
    latencies
}

/// Where a run's time goes, from the traces of the last 100 runs: mean and max per span name.
async fn print_span_breakdown(address: &str) {
    let stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::get("/v1/traces?agent=bench&limit=100")
        .header("host", address)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let body = sender.send_request(request).await.expect("traces").into_body().collect().await.expect("body");
    let traces: serde_json::Value = serde_json::from_slice(&body.to_bytes()).expect("traces json");
    let mut by_name: std::collections::BTreeMap<String, Vec<f64>> = std::collections::BTreeMap::new();
    for span in traces["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|trace| trace["spans"].as_array().into_iter().flatten())
    {
        if let (Some(name), Some(duration)) = (span["name"].as_str(), span["duration_ms"].as_f64()) {
            by_name.entry(name.to_owned()).or_default().push(duration);
        }
    }
    let parts: Vec<String> = by_name
        .iter()
        .map(|(name, durations)| {
            let mean = durations.iter().sum::<f64>() / durations.len() as f64;
            let max = durations.iter().copied().fold(0.0, f64::max);
            format!("{name} {mean:.2}/{max:.2}")
        })
        .collect();
    println!("spans of the last 100 runs, mean/max ms: {}", parts.join(", "));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let upstream = llm::ScriptedLlm::start().await;
        upstream.set_default(llm::Reply::text("A short answer.").with_usage(20, 5));
        upstream.stop_recording();
        let config_dir = tempfile::tempdir().expect("config dir");
        std::fs::create_dir_all(config_dir.path().join("agents")).expect("agents dir");
        let agent = format!(
            "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: bench}}\nspec:\n  model:\n    primary: {{provider: openai_compat, model: bench, endpoint: \"{}/v1\"}}\n  prompts:\n    system: \"You are a benchmark.\"\n  memory:\n    conversational: {{strategy: sliding_window, max_turns: 10}}\n",
            upstream.url()
        );
        std::fs::write(config_dir.path().join("agents/bench.agent.yaml"), agent).expect("agent file");
        let data_dir = tempfile::tempdir().expect("data dir");
        let overrides = Overrides { data_dir: Some(data_dir.path().to_path_buf()), ..Overrides::default() };
        let config = Config::load(ConfigSource::Dir(config_dir.path().to_path_buf()), &overrides).expect("config");
        let app = astromesh::App::build(config).expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.serve(listener, shutdown.clone()));

        // Warm-up: connections, allocator, the first history writes.
        let runs = runs_per_client();
        let _ = client(address.clone(), 999, RUNS_PER_CLIENT).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS).map(|idx| tokio::spawn(client(address.clone(), idx, runs))).collect();
        let mut latencies = Vec::with_capacity(CLIENTS * runs);
        for task in tasks {
            latencies.extend(task.await.expect("client"));
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
        println!(
            "runs: {CLIENTS} clients, {} runs in {:.2} s: {:.0} runs/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (upstream at zero delay, history persisted)",
            latencies.len(),
            elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(0.50),
            percentile(0.90),
            percentile(0.99),
        );
        print_span_breakdown(&address).await;
        shutdown.cancel();
        let _ = server.await;
    });
}
