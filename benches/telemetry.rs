//! Trace overhead per run: recording the spans a run records, and persisting the finished trace
//! through the store's writer (durable group commit, retention enforced in the same commit).
//!
//! Run with `cargo bench --bench telemetry`. "without" is the same loop with telemetry doing
//! nothing; the difference is what tracing adds to a run, sequentially (one run at a time: the
//! commit's fsync is paid in full) and with 16 concurrent runs (group commit shares it).
//!
//! Measured on the 2-core reference machine (idle, nice -20): recording 0.008 ms/run; persisting
//! adds 0.015 ms sequential and 0.025 ms at 16 concurrent runs (a run only queues its trace's
//! lazy write; reads see it among the pending traces until the writer commits it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use astromesh::store::Store;
use astromesh::telemetry::{Telemetry, TelemetrySettings, TraceRecorder};

const SEQUENTIAL_RUNS: usize = 2_000;
const CONCURRENT: usize = 16;
const RUNS_PER_TASK: usize = 500;

/// The spans and attributes of a one-model-call run, as `runtime::run` records them.
fn record_run() -> Arc<TraceRecorder> {
    let trace = TraceRecorder::new("bench", "sess_bench");
    let mut root = trace.span("agent.run", None);
    root.set("agent", "bench");
    root.set("session", "sess_bench");
    root.set("query", "What is the capital of France? ".repeat(4));
    let root_id = root.id().to_string();
    for name in ["memory_build", "prompt_render"] {
        trace.span(name, Some(&root_id)).finish();
    }
    let mut model = trace.span("llm.complete", Some(&root_id));
    for (key, value) in [("provider", "openai_compat"), ("model", "bench"), ("role", "default")] {
        model.set(key, value);
    }
    model.set("input_tokens", 20);
    model.set("output_tokens", 5);
    model.set("prompt", "You are a benchmark.");
    model.set("response", "A short answer.");
    model.finish();
    let mut orchestration = trace.span("orchestration", Some(&root_id));
    orchestration.set("pattern", "react");
    orchestration.finish();
    trace.span("memory_persist", Some(&root_id)).finish();
    root.finish();
    trace
}

async fn one_run(telemetry: &Telemetry, persist: bool) {
    let trace = record_run();
    if persist {
        telemetry.finish(&trace).await;
    }
}

async fn measure(telemetry: &Arc<Telemetry>, persist: bool) -> (Duration, Duration) {
    let started = Instant::now();
    for _ in 0..SEQUENTIAL_RUNS {
        one_run(telemetry, persist).await;
    }
    let sequential = started.elapsed() / SEQUENTIAL_RUNS as u32;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let telemetry = telemetry.clone();
            tokio::spawn(async move {
                for _ in 0..RUNS_PER_TASK {
                    one_run(&telemetry, persist).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    // Wall time per run at 16 in flight: the throughput cost each run adds.
    let concurrent = started.elapsed() / (CONCURRENT * RUNS_PER_TASK) as u32;
    (sequential, concurrent)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let data_dir = tempfile::tempdir().expect("data dir");
        let store = Arc::new(Store::open(data_dir.path(), 1024).expect("store"));
        // A small cap so eviction runs on nearly every write, as it does at steady state.
        let settings = TelemetrySettings { max_traces: 1_000, ..TelemetrySettings::default() };
        let telemetry = Arc::new(Telemetry::new(store.clone(), settings));
        let _ = measure(&telemetry, true).await; // warm-up: fills to the cap
        let (without_seq, without_conc) = measure(&telemetry, false).await;
        let (with_seq, with_conc) = measure(&telemetry, true).await;
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        println!(
            "telemetry: recording only {:.4} ms/run; record+persist sequential {:.3} ms/run, {CONCURRENT} concurrent {:.4} ms/run (wall per run); persisting adds {:.3} ms sequential, {:.4} ms at {CONCURRENT} concurrent",
            ms(without_seq),
            ms(with_seq),
            ms(with_conc),
            ms(with_seq.saturating_sub(without_seq)),
            ms(with_conc.saturating_sub(without_conc)),
        );
        store.close().await.expect("close");
    });
}
