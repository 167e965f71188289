//! Local GGUF generation speed: prompt and generation tokens/s at 1 and 2 threads.
//! Prints figures; not pass/fail.
//!
//! Needs a real model: `ASTROMESH_BENCH_GGUF=/path/to/qwen2.5-0.5b-instruct-q4_0.gguf cargo bench
//! --bench local`. Without the variable it prints a notice and exits (no model is committed, and
//! nothing is downloaded). `ASTROMESH_BENCH_GGUF=tiny` runs the harness on the tiny random model
//! the tests use (a smoke run: its figures say nothing about real models). The thread count is
//! rayon's, fixed per process, so the bench re-runs itself once per count with
//! `RAYON_NUM_THREADS` set.
//!
//! The issue reports ~11 generated tokens/s on one thread and ~17 on two for
//! Qwen2.5-0.5B-Instruct Q4_0 on the 2-core reference machine; no real model was available
//! when this bench was written, so it has only been run with `tiny`.

use std::path::PathBuf;

#[allow(clippy::unwrap_used, dead_code)]
#[path = "../tests/support/tiny_gguf.rs"]
mod tiny_gguf;

const PROMPT: &str = "Explain in a few sentences why the sky is blue, and what changes at sunset when the \
light travels through more of the atmosphere before it reaches us.";
const GENERATE: usize = 64;

fn main() {
    let Some(given) = std::env::var_os("ASTROMESH_BENCH_GGUF") else {
        println!(
            "local: skipped (set ASTROMESH_BENCH_GGUF to a qwen2 or llama GGUF file, e.g. Qwen2.5-0.5B-Instruct Q4_0)"
        );
        return;
    };
    let mut _tiny_dir = None;
    let path = if given == "tiny" {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tiny.gguf");
        tiny_gguf::write(&path, false, None);
        _tiny_dir = Some(dir);
        path
    } else {
        PathBuf::from(given)
    };
    if std::env::var_os("ASTROMESH_BENCH_CHILD").is_some() {
        let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
        // The first call loads the weights and warms the caches; the second is measured.
        if let Err(error) = astromesh::providers::local::bench_generate(&path, PROMPT, 4) {
            println!("local: cannot run {}: {error}", path.display());
            return;
        }
        match astromesh::providers::local::bench_generate(&path, PROMPT, GENERATE) {
            Ok(figures) => println!(
                "local: {threads} thread(s): prompt {:.1} tokens/s ({} tokens), generation {:.1} tokens/s ({} tokens)",
                figures.prompt_tokens as f64 / figures.prompt_seconds,
                figures.prompt_tokens,
                figures.generated_tokens as f64 / figures.generation_seconds,
                figures.generated_tokens,
            ),
            Err(error) => println!("local: generation failed: {error}"),
        }
        return;
    }
    println!("local: {}", path.display());
    let exe = std::env::current_exe().expect("bench executable");
    for threads in ["1", "2"] {
        let status = std::process::Command::new(&exe)
            .env("ASTROMESH_BENCH_CHILD", "1")
            .env("ASTROMESH_BENCH_GGUF", &path)
            .env("RAYON_NUM_THREADS", threads)
            .status()
            .expect("child bench runs");
        assert!(status.success(), "child bench failed");
    }
}
