//! Test support: start the real daemon on 127.0.0.1:0 with its own temp dirs, and talk HTTP.
//!
//! The configuration is written as YAML files into a temp config dir and loaded through the
//! real loader; nothing reads /etc/astromesh, ./config or `ASTROMESH_*`.

#![allow(dead_code)]

pub mod llm;

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

    /// Starts on an existing data dir (e.g. one a stopped app left, to test restarts).
    pub async fn start_with_data(
        config_dir: ConfigDir,
        data_dir: TempDir,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let overrides = Overrides { data_dir: Some(data_dir.path().to_path_buf()), ..Overrides::default() };
        let mut config =
            Config::load(ConfigSource::Dir(config_dir.path().to_path_buf()), &overrides).expect("config loads");
        adjust(&mut config);
        let app = tokio::task::spawn_blocking(move || astromesh::App::build(config))
            .await
            .expect("build task")
            .expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.serve(listener, shutdown.clone()));
        TestApp { url, config_dir, data_dir, shutdown, server: Some(server) }
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
        self.shut_down().await;
        self.data_dir.path().to_path_buf()
    }

    /// Stops cleanly, then starts a new daemon on the same config and data dirs.
    pub async fn restart(mut self) -> TestApp {
        self.shut_down().await;
        let placeholder = || tempfile::tempdir().expect("temp dir");
        let data_dir = std::mem::replace(&mut self.data_dir, placeholder());
        let config_dir = std::mem::replace(&mut self.config_dir, ConfigDir { dir: placeholder() });
        Self::start_with_data(config_dir, data_dir, |_| {}).await
    }

    async fn shut_down(&mut self) {
        self.shutdown.cancel();
        let server = self.server.take().expect("server running");
        let result = tokio::time::timeout(Duration::from_secs(15), server).await.expect("shutdown completes in time");
        result.expect("server task").expect("server shuts down cleanly");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Sends one HTTP request with ureq on a blocking thread.
pub async fn send(method: &str, url: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Answer {
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
        let mut response = sent.expect("request sent");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_string()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, headers, text, json }
    })
    .await
    .expect("request task")
}
