//! Test support: start the real daemon on 127.0.0.1:0 with its own temp dirs, and talk HTTP.
//!
//! The configuration is written as YAML files into a temp config dir and loaded through the
//! real loader; nothing reads /etc/astromesh, ./config or `ASTROMESH_*`.

#![allow(dead_code)]

pub mod cdp;
pub mod llm;
pub mod mesh;
pub mod otlp;
pub mod python;
pub mod tiny_gguf;
pub mod web;

use std::path::{Path, PathBuf};
use std::time::Duration;

use astromesh::config::{Config, ConfigSource, Overrides};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A minimal valid agent file whose model points at `endpoint` (OpenAI-compatible).
pub fn agent_yaml(name: &str, endpoint: &str) -> String {
    format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata:\n  name: {name}\nspec:\n  identity:\n    description: \"Test agent {name}\"\n  model:\n    primary:\n      provider: openai_compat\n      model: test-model\n      endpoint: \"{endpoint}\"\n  prompts:\n    system: \"You are {name}.\"\n"
    )
}

/// A config dir in a temp folder, filled with the given files (paths relative to it).
pub struct ConfigDir {
    pub dir: TempDir,
}

impl ConfigDir {
    pub fn new(files: &[(&str, &str)]) -> ConfigDir {
        let dir = tempfile::tempdir().expect("temp config dir");
        for (relative, text) in files {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("create config subdir");
            std::fs::write(&path, text).expect("write config file");
        }
        ConfigDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn load(&self) -> Config {
        Config::load(ConfigSource::Dir(self.path().to_path_buf()), &Overrides::default()).expect("config loads")
    }
}

/// One HTTP answer: status and the body parsed as JSON (Null when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// The real daemon, serving on a free loopback port.
pub struct TestApp {
    pub url: String,
    pub config_dir: ConfigDir,
    pub data_dir: TempDir,
    /// The configuration it was started with.
    pub config: Config,
    /// Its tool registry (it holds the store open: dropped before a restart).
    tools: Option<std::sync::Arc<astromesh::tools::ToolRegistry>>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<Result<(), astromesh::AppError>>>,
}

impl TestApp {
    /// Starts with the given config files (e.g. `("agents/a.agent.yaml", yaml)`).
    pub async fn start(files: &[(&str, &str)]) -> TestApp {
        let config_dir = ConfigDir::new(files);
        Self::start_in(config_dir, |_| {}).await
    }

    /// Starts with a config dir, letting the test adjust the loaded `Config` first.
    pub async fn start_in(config_dir: ConfigDir, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        Self::start_with_data(config_dir, data_dir, adjust).await
    }

    /// Starts over an existing data dir (a restart keeps what was written).
    pub async fn start_with_data(
        config_dir: ConfigDir,
        data_dir: TempDir,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let overrides = Overrides { data_dir: Some(data_dir.path().to_path_buf()), ..Overrides::default() };
        let mut config =
            Config::load(ConfigSource::Dir(config_dir.path().to_path_buf()), &overrides).expect("config loads");
        adjust(&mut config);
        let kept = config.clone();
        let app = tokio::task::spawn_blocking(move || astromesh::App::build(config))
            .await
            .expect("build task")
            .expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shutdown = CancellationToken::new();
        let tools = app.tools().clone();
        let server = tokio::spawn(app.serve(listener, shutdown.clone()));
        TestApp { url, config_dir, data_dir, config: kept, tools: Some(tools), shutdown, server: Some(server) }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.request("POST", path, Some(body.to_string().into_bytes())).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> Answer {
        self.request("POST", path, Some(body.into())).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.request("DELETE", path, None).await
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        send(method, &format!("{}{path}", self.url), body, &[]).await
    }

    /// Cancels the daemon and asserts that it shuts down cleanly and promptly.
    pub async fn stop(mut self) -> PathBuf {
        self.shutdown_and_wait().await;
        self.data_dir.path().to_path_buf()
    }

    /// The tool registry, for tests that call tools with an agent's context.
    pub fn tools(&self) -> &astromesh::tools::ToolRegistry {
        self.tools.as_deref().expect("app running")
    }

    async fn shutdown_and_wait(&mut self) {
        self.tools = None;
        self.shutdown.cancel();
        let server = self.server.take().expect("server running");
        let result = tokio::time::timeout(Duration::from_secs(15), server).await.expect("shutdown completes in time");
        result.expect("server task").expect("server shuts down cleanly");
    }

    /// Stops cleanly and starts again with the same config and data dirs.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown_and_wait().await;
        let config_dir = ConfigDir { dir: tempfile::tempdir().expect("temp config dir") };
        let config_dir = std::mem::replace(&mut self.config_dir, config_dir);
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp data dir"));
        TestApp::start_with_data(config_dir, data_dir, |_| {}).await
    }

    /// The configuration of a loaded agent.
    pub fn agent(&self, name: &str) -> std::sync::Arc<astromesh::config::AgentConfig> {
        self.config.agent(name).and_then(|entry| entry.config()).expect("agent loaded").clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Sends one HTTP request with ureq on a blocking thread; a transport failure panics.
pub async fn send(method: &str, url: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Answer {
    try_send(method, url, body, headers).await.expect("request sent")
}

/// Sends one HTTP request; `Err` when it could not be sent or answered (e.g. the daemon died).
pub async fn try_send(
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let method = method.to_string();
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let request = ureq::http::Request::builder().method(method.as_str()).uri(&url);
        let request = headers.iter().fold(request, |request, (name, value)| request.header(name, value));
        let request = if body.is_some() { request.header("content-type", "application/json") } else { request };
        let sent = match body {
            Some(body) => agent.run(request.body(body).expect("request builds")),
            None => agent.run(request.body(()).expect("request builds")),
        };
        let mut response = sent.map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_string()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, headers, text, json })
    })
    .await
    .expect("request task")
}

/// The real binary, started as a separate process on a free port.
pub struct Daemon {
    pub child: std::process::Child,
    pub url: String,
}

impl Daemon {
    /// Starts `astromesh serve --port 0` and waits until it logs its address.
    pub async fn spawn(config_dir: &Path, data_dir: &Path) -> Daemon {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_astromesh"))
            .args(["serve", "--port", "0", "--log-level", "info", "--config"])
            .arg(config_dir)
            .arg("--data-dir")
            .arg(data_dir)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn the daemon");
        let stderr = child.stderr.take().expect("stderr piped");
        let address = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            let address = loop {
                let line = lines.next().expect("daemon exited before listening").expect("read stderr");
                if let Some(rest) = line.split("listening address=").nth(1) {
                    break rest.split_whitespace().next().expect("address").to_string();
                }
            };
            // Keep draining so the daemon never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            address
        })
        .await
        .expect("reader task");
        Daemon { child, url: format!("http://{address}") }
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill(); // SIGKILL; an error means it already exited.
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
