//! Startup benchmark: time from spawning `astromesh serve` to a healthy `/v1/health`, and idle RSS.
//!
//! Run: `cargo bench --bench startup`. Each round starts the real binary with the embedded default
//! config on a free port and a fresh data dir, polls /v1/health until it answers 200, reads
//! VmRSS from /proc, then stops the daemon with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;

fn healthy(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else { return false };
    let request = format!("GET /v1/health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response); // A partial read just means "not yet".
    response.starts_with("HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let binary = env!("CARGO_BIN_EXE_astromesh");
    let empty_cwd = tempfile::tempdir().expect("temp cwd");
    let mut startup = Vec::with_capacity(ROUNDS);
    let mut rss = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let data = tempfile::tempdir().expect("temp data dir");
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data.path())
            .current_dir(empty_cwd.path())
            .env_remove("ASTROMESH_CONFIG_DIR")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().expect("daemon exited early").expect("read stderr");
            if let Some(rest) = line.split("listening address=").nth(1) {
                break rest.split_whitespace().next().expect("address").to_string();
            }
        };
        while !healthy(&address) {
            std::thread::yield_now();
        }
        startup.push(started.elapsed());
        // Let the first request's allocations settle before reading idle RSS.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_millis(200) {
            std::thread::yield_now();
        }
        rss.push(rss_kib(child.id()));
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
    startup.sort();
    rss.sort_unstable();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!(
        "startup to healthy /v1/health ({ROUNDS} rounds, embedded default config): p50 {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(startup[ROUNDS / 2]),
        ms(startup[0]),
        ms(startup[ROUNDS - 1])
    );
    println!("idle RSS after first request: p50 {:.1} MiB", rss[ROUNDS / 2] as f64 / 1024.0);
}
