//! Embedding and ingest throughput of the local MiniLM embedder. Prints figures; not pass/fail.
//!
//! - sentences/s at 1 and 2 threads, batches of 32 sentences of ~15 tokens. The thread count is
//!   rayon's (candle's matmuls use its global pool), fixed per process, so the bench re-runs
//!   itself once per count with `RAYON_NUM_THREADS` set.
//! - ingest chunks/s: `Rag::ingest` of 512 short documents (chunk, embed, one durable commit,
//!   index), with all cores.
//!
//! Run with `cargo bench --bench embed` (about a minute).
//!
//! Measured on the 2-core reference machine (bench at nice -20 while builds shared it): 122
//! sentences/s at 1 thread, 238 at 2 (before `CANDLE_NUM_THREADS=1` and running batches on
//! rayon's pool: 118 and 59).

use std::sync::Arc;
use std::time::{Duration, Instant};

use astromesh::embed::Embedder;
use astromesh::rag::{ChunkOptions, Document, Rag, RagSettings};
use astromesh::store::Store;

const BATCH: usize = 32;
const MEASURE: Duration = Duration::from_secs(12);
const WORDS: [&str; 24] = [
    "customer", "order", "shipping", "refund", "battery", "warranty", "password", "account", "invoice", "delivery",
    "device", "settings", "support", "payment", "plan", "screen", "update", "network", "storage", "price", "quickly",
    "today", "never", "always",
];

/// Deterministic sentences of 12 words (~15 tokens with [CLS]/[SEP]).
fn sentences(count: usize, seed: usize) -> Vec<String> {
    (0..count)
        .map(|sentence_idx| {
            let words: Vec<&str> =
                (0..12).map(|word_idx| WORDS[(sentence_idx * 7 + word_idx * 13 + seed * 3) % WORDS.len()]).collect();
            format!("The {}.", words.join(" "))
        })
        .collect()
}

async fn sentences_per_second() -> f64 {
    let embedder = Embedder::new(4);
    embedder.embed(sentences(BATCH, 0)).await.expect("warm-up loads the model");
    let started = Instant::now();
    let mut embedded = 0;
    let mut round = 1;
    while started.elapsed() < MEASURE {
        embedded += embedder.embed(sentences(BATCH, round)).await.expect("embeds").len();
        round += 1;
    }
    embedded as f64 / started.elapsed().as_secs_f64()
}

async fn ingest_chunks_per_second() -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path(), 64).expect("store opens"));
    let embedder = Arc::new(Embedder::new(4));
    embedder.embed(sentences(1, 0)).await.expect("warm-up loads the model");
    let rag = Rag::new(Arc::clone(&store), embedder, RagSettings::default()).expect("rag starts");
    let documents: Vec<Document> = sentences(512, 99)
        .into_iter()
        .map(|text| Document { id: None, text, metadata: serde_json::Map::new() })
        .collect();
    let started = Instant::now();
    let report = rag.ingest("bench", documents, &ChunkOptions::default()).await.expect("ingest");
    let elapsed = started.elapsed().as_secs_f64();
    store.close().await.expect("store closes");
    report.chunks_created as f64 / elapsed
}

fn main() {
    // As the daemon does (src/main.rs, tune_candle_threads): candle's elementwise pool on the
    // calling thread, matmuls on rayon's. Set before any thread exists; children inherit it.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if std::env::var_os("ASTROMESH_BENCH_CHILD").is_some() {
        let rate = runtime.block_on(sentences_per_second());
        let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
        println!("embed: {rate:.0} sentences/s with {threads} thread(s) (batches of {BATCH}, ~15 tokens)");
        return;
    }
    let exe = std::env::current_exe().expect("bench executable");
    for threads in ["1", "2"] {
        let status = std::process::Command::new(&exe)
            .env("ASTROMESH_BENCH_CHILD", "1")
            .env("RAYON_NUM_THREADS", threads)
            .status()
            .expect("child bench runs");
        assert!(status.success(), "child bench failed");
    }
    let rate = runtime.block_on(ingest_chunks_per_second());
    println!("ingest: {rate:.0} chunks/s (512 one-sentence documents, one commit, all cores)");
}
