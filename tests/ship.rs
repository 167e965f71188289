//! Shipping: API keys, the per-key rate limit, the non-loopback refusal, reload (SIGHUP and
//! `POST /v1/system/reload`) and systemd's notify protocol, against the real daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::llm::{Reply, ScriptedLlm};
use crate::support::{agent_yaml, send, ConfigDir, TestApp};

const KEYS_RUNTIME: &str =
    "apiVersion: astromesh/v1\nkind: RuntimeConfig\nspec:\n  api:\n    auth:\n      api_keys: [key-one, key-two]\n";

/// A started binary: its child process and the stderr lines read so far (on a thread).
struct Process {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// `astromesh serve --config DIR --data-dir DIR ARGS`, away from the user's `ASTROMESH_*`.
    fn spawn(config_dir: &Path, data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_astromesh"));
        command.args(["serve", "--port", "0", "--config"]).arg(config_dir).arg("--data-dir").arg(data_dir).args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("ASTROMESH_") || name == "NOTIFY_SOCKET" || name.starts_with("WATCHDOG_") {
                command.env_remove(name);
            }
        }
        command.envs(envs.iter().copied());
        let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn the daemon");
        let stderr = child.stderr.take().expect("stderr piped");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines }
    }

    /// Waits for the "listening" log line; `None` when the process exits first.
    fn wait_listening(&mut self) -> Option<String> {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(60)).ok()?;
            if let Some(rest) = line.split("listening address=").nth(1) {
                return Some(format!("http://{}", rest.split_whitespace().next()?));
            }
        }
    }

    /// Everything it wrote to stderr until it exited, and its exit code. A process still
    /// running after 90 s is killed (the test then fails on its code, not by hanging).
    fn wait_exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut text = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => text.push(line),
                // stderr closed: the process has exited.
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill(); // An error means it exited meanwhile.
                    text.push("<still running after 90 s: killed>".to_string());
                    break;
                }
            }
        }
        let status = self.child.wait().expect("wait for the daemon");
        (status.code(), text.join("\n"))
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal sent");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill(); // An error means it already exited.
        let _ = self.child.wait();
    }
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> crate::support::Answer {
    send("GET", url, None, headers).await
}

#[tokio::test]
async fn api_keys_guard_every_endpoint_but_health_and_the_ui() {
    let config_dir = ConfigDir::new(&[("runtime.yaml", KEYS_RUNTIME)]);
    // Keys live in a file the daemon's group may read, not everyone: mode 640 must load.
    let runtime_path = config_dir.path().join("runtime.yaml");
    std::fs::set_permissions(&runtime_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let app = TestApp::start_in(config_dir, |_| {}).await;
    let url = |path: &str| format!("{}{path}", app.url);

    assert_eq!(app.get("/v1/health").await.status, 200, "health stays open");
    let ui = app.get("/").await;
    assert_eq!(ui.status, 200, "the UI's page loads without a key, so it can ask for one");
    assert_eq!(app.get("/agents").await.status, 200, "a client-side route of the UI");

    for path in ["/v1/agents", "/v1/system/status", "/v1/traces", "/metrics", "/v1/models"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 401, "{path} without a key: {}", answer.text);
        assert!(answer.json["detail"].as_str().is_some_and(|detail| detail.contains("API key")), "{}", answer.text);
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
    let reload = app.post("/v1/system/reload", &json!({})).await;
    assert_eq!(reload.status, 401, "reload needs a key: {}", reload.text);

    let wrong = get_with(&url("/v1/agents"), &[("authorization", "Bearer key-three")]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json["detail"], "Invalid API key");
    let prefix = get_with(&url("/v1/agents"), &[("x-api-key", "key-on")]).await;
    assert_eq!(prefix.status, 401, "a prefix of a key is not the key");

    let bearer = get_with(&url("/v1/agents"), &[("authorization", "Bearer key-one")]).await;
    assert_eq!(bearer.status, 200, "{}", bearer.text);
    assert!(bearer.json["agents"].is_array());
    let header = get_with(&url("/v1/system/status"), &[("x-api-key", "key-two")]).await;
    assert_eq!(header.status, 200, "{}", header.text);
    let query_on_plain_request = get_with(&url("/v1/agents?api_key=key-one"), &[]).await;
    assert_eq!(query_on_plain_request.status, 401, "the query form is for WebSocket upgrades only");

    // WebSocket: browsers cannot set headers, so the upgrade may carry `?api_key=`.
    let ws_base = app.url.replace("http://", "ws://");
    let refused = tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws/agent/nobody")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401 refusal, got {other:?}"),
    }
    let wrong_key = tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws/agent/nobody?api_key=nope")).await;
    assert!(matches!(wrong_key, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401));
    let accepted = tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws/agent/nobody?api_key=key-two")).await;
    match accepted {
        // Past authentication: the upgrade reaches the route, which reports the unknown agent.
        Ok((mut socket, _)) => {
            let _ = socket.next().await;
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_ne!(response.status(), 401, "the key in the query was accepted")
        }
        Err(other) => panic!("WebSocket failed: {other}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit_with_retry_after() {
    let runtime = "apiVersion: astromesh/v1\nkind: RuntimeConfig\nspec:\n  api:\n    auth:\n      api_keys: [key-one, key-two]\n      rate_limit: {requests_per_minute: 3}\n";
    let app = TestApp::start(&[("runtime.yaml", runtime)]).await;
    let url = format!("{}/v1/agents", app.url);
    for attempt in 1..=3 {
        let answer = get_with(&url, &[("x-api-key", "key-one")]).await;
        assert_eq!(answer.status, 200, "request {attempt} is within the budget");
    }
    let limited = get_with(&url, &[("x-api-key", "key-one")]).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert!(limited.json["detail"].as_str().is_some_and(|detail| detail.contains("Rate limit")), "{}", limited.text);
    let retry_after: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&retry_after), "one request per 20 s is refilled: {retry_after}");
    let other_key = get_with(&url, &[("x-api-key", "key-two")]).await;
    assert_eq!(other_key.status, 200, "the budget is per key");
    assert_eq!(app.get("/v1/health").await.status, 200, "health is not limited");
    app.stop().await;
}

#[test]
fn keys_come_from_runtime_yaml_or_replace_it_from_the_environment() {
    let dir = ConfigDir::new(&[("runtime.yaml", KEYS_RUNTIME)]);
    let config = dir.load();
    let keys: Vec<&str> = config.runtime.api_keys.iter().map(|key| key.expose()).collect();
    assert_eq!(keys, ["key-one", "key-two"]);
    assert_eq!(format!("{:?}", config.runtime.api_keys), "[***, ***]", "keys never print");
    let overrides = astromesh::config::Overrides { api_keys: Some(vec!["from-env".into()]), ..Default::default() };
    let config =
        astromesh::config::Config::load(astromesh::config::ConfigSource::Dir(dir.path().to_path_buf()), &overrides)
            .unwrap();
    let keys: Vec<&str> = config.runtime.api_keys.iter().map(|key| key.expose()).collect();
    assert_eq!(keys, ["from-env"], "ASTROMESH_API_KEYS replaces the file's list");

    let bad = ConfigDir::new(&[(
        "runtime.yaml",
        "spec:\n  api:\n    auth:\n      api_keys: [\"\"]\n      rate_limit: {requests_per_minute: 0}\n",
    )]);
    let error = astromesh::config::Config::load(
        astromesh::config::ConfigSource::Dir(bad.path().to_path_buf()),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("runtime.yaml: spec.api.auth.api_keys[0]: must not be empty"), "{error}");
    assert!(
        error.contains("runtime.yaml: spec.api.auth.rate_limit.requests_per_minute: must be at least 1"),
        "{error}"
    );
}

#[tokio::test]
async fn a_non_loopback_address_without_keys_refuses_to_start() {
    let config_dir = ConfigDir::new(&[("runtime.yaml", "")]);
    let data_dir = tempfile::tempdir().unwrap();
    let refused = Process::spawn(config_dir.path(), data_dir.path(), &["--host", "0.0.0.0"], &[]);
    let (code, stderr) = tokio::task::spawn_blocking(move || refused.wait_exit()).await.unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("not a loopback address and no API key"), "{stderr}");
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");

    for (args, envs) in [
        (&["--host", "0.0.0.0", "--allow-unauthenticated"][..], &[][..]),
        (&["--host", "0.0.0.0"][..], &[("ASTROMESH_API_KEYS", "k1,k2")][..]),
        (&["--host", "0.0.0.0"][..], &[("ASTROMESH_MESH_SECRET", "s3cret")][..]),
    ] {
        let data_dir = tempfile::tempdir().unwrap();
        let mut started = Process::spawn(config_dir.path(), data_dir.path(), args, envs);
        let url = tokio::task::spawn_blocking(move || {
            let url = started.wait_listening();
            (started, url)
        })
        .await
        .unwrap();
        let (started, url) = url;
        let url = url.unwrap_or_else(|| panic!("started with {args:?} {envs:?}"));
        let port = url.rsplit(':').next().unwrap();
        let health = send("GET", &format!("http://127.0.0.1:{port}/v1/health"), None, &[]).await;
        assert_eq!(health.status, 200);
        if envs.iter().any(|(name, _)| *name == "ASTROMESH_API_KEYS") {
            let agents = send("GET", &format!("http://127.0.0.1:{port}/v1/agents"), None, &[]).await;
            assert_eq!(agents.status, 401, "ASTROMESH_API_KEYS is honoured");
            let agents = send("GET", &format!("http://127.0.0.1:{port}/v1/agents"), None, &[("x-api-key", "k2")]).await;
            assert_eq!(agents.status, 200);
        }
        drop(started);
    }
}

fn agent_with_description(name: &str, description: &str, endpoint: &str) -> String {
    agent_yaml(name, endpoint).replace(&format!("Test agent {name}"), description)
}

async fn agents_list(url: &str) -> Vec<Value> {
    let answer = send("GET", &format!("{url}/v1/agents"), None, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["agents"].as_array().cloned().unwrap_or_default()
}

/// Polls the agent list until `done` holds (a reload is asynchronous to the signal).
async fn wait_for_agents(url: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..300 {
        let agents = agents_list(url).await;
        if done(&agents) {
            return agents;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}: {:?}", agents_list(url).await);
}

fn find<'a>(agents: &'a [Value], name: &str) -> Option<&'a Value> {
    agents.iter().find(|agent| agent["name"] == name)
}

#[tokio::test]
async fn sighup_reloads_the_agent_files_and_keeps_an_agent_whose_new_file_is_broken() {
    let endpoint = "http://127.0.0.1:9/v1";
    let config_dir = ConfigDir::new(&[
        ("runtime.yaml", ""),
        ("agents/alpha.agent.yaml", &agent_with_description("alpha", "first version", endpoint)),
    ]);
    let data_dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::spawn(config_dir.path(), data_dir.path(), &[], &[]);
    let (daemon_back, url) = tokio::task::spawn_blocking(move || {
        let url = daemon.wait_listening();
        (daemon, url)
    })
    .await
    .unwrap();
    let daemon = daemon_back;
    let url = url.expect("daemon listening");
    let agents = agents_list(&url).await;
    assert_eq!(find(&agents, "alpha").unwrap()["description"], "first version");

    let alpha_path = config_dir.path().join("agents/alpha.agent.yaml");
    std::fs::write(&alpha_path, agent_with_description("alpha", "second version", endpoint)).unwrap();
    std::fs::write(config_dir.path().join("agents/beta.agent.yaml"), agent_yaml("beta", endpoint)).unwrap();
    daemon.signal(libc::SIGHUP);
    let agents = wait_for_agents(&url, "the SIGHUP reload", |agents| {
        find(agents, "alpha").is_some_and(|alpha| alpha["description"] == "second version")
    })
    .await;
    assert_eq!(find(&agents, "beta").map(|beta| beta["status"].clone()), Some(json!("ready")), "new file, new agent");

    std::fs::write(
        &alpha_path,
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {name: alpha}\nspec: [not, a, map]\n",
    )
    .unwrap();
    std::fs::remove_file(config_dir.path().join("agents/beta.agent.yaml")).unwrap();
    daemon.signal(libc::SIGHUP);
    let agents = wait_for_agents(&url, "the broken-file reload", |agents| find(agents, "beta").is_none()).await;
    let alpha = find(&agents, "alpha").expect("alpha is kept");
    assert_eq!(alpha["status"], "ready", "the previous definition still runs: {alpha}");
    assert_eq!(alpha["description"], "second version");
    let error = alpha["error"].as_str().expect("the list reports the refused file");
    assert!(error.contains("agents/alpha.agent.yaml"), "{error}");
    let (_, stderr) = {
        daemon.signal(libc::SIGTERM);
        tokio::task::spawn_blocking(move || daemon.wait_exit()).await.unwrap()
    };
    assert!(stderr.contains("reload refused the new definition"), "{stderr}");
}

const AGENT_WITH_CLOCK: &str = "  tools:\n    - {name: datetime_now, type: builtin}\n";

#[tokio::test]
async fn post_reload_reports_errors_and_runs_in_flight_finish_on_the_old_definition() {
    let llm = ScriptedLlm::start().await;
    let endpoint = format!("{}/v1", llm.url());
    let old = format!("{}{AGENT_WITH_CLOCK}", agent_yaml("clock", &endpoint)).replace("You are clock.", "You are OLD.");
    let app = TestApp::start(&[("agents/clock.agent.yaml", &old)]).await;

    // The run's first model call is answered late; the reload happens while it waits.
    llm.push(Reply::tool_call("datetime_now", json!({})).delay(3000));
    llm.push(Reply::text("It is now."));
    let run_url = format!("{}/v1/agents/clock/run", app.url);
    let run = tokio::spawn(async move {
        send("POST", &run_url, Some(json!({"query": "What time is it?"}).to_string().into_bytes()), &[]).await
    });
    llm.wait_for_requests(1).await;
    let new = old.replace("You are OLD.", "You are NEW.");
    std::fs::write(app.config_dir.path().join("agents/clock.agent.yaml"), &new).unwrap();
    std::fs::write(app.config_dir.path().join("agents/broken.agent.yaml"), "spec: {model: 3}\n").unwrap();
    let reload = app.post("/v1/system/reload", &json!({})).await;
    assert_eq!(reload.status, 200, "{}", reload.text);
    assert_eq!(reload.json["status"], "reloaded");
    assert_eq!(reload.json["agents"], 1);
    let errors = reload.json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", reload.text);
    assert_eq!(errors[0]["agent"], "broken");
    assert_eq!(errors[0]["source"], "agents/broken.agent.yaml");
    assert_eq!(errors[0]["kept_previous"], false);
    assert!(errors[0]["error"].as_str().is_some_and(|error| error.contains("agents/broken.agent.yaml")));

    let finished = run.await.unwrap();
    assert_eq!(finished.status, 200, "{}", finished.text);
    assert_eq!(finished.json["response"], "It is now.");
    let system_prompt = |idx: usize| llm.chat_requests()[idx].body["messages"][0]["content"].clone();
    assert_eq!(system_prompt(0), "You are OLD.");
    assert_eq!(system_prompt(1), "You are OLD.", "the run in flight kept its definition after the reload");

    llm.push(Reply::text("Fresh."));
    let next = app.post("/v1/agents/clock/run", &json!({"query": "Again?"})).await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(system_prompt(2), "You are NEW.", "new runs use the reloaded file");
    let broken = app.get("/v1/agents/broken").await;
    assert_eq!(broken.json["status"], "error", "{}", broken.text);
    app.stop().await;
}

/// A unix datagram socket standing in for systemd's notify socket.
fn notify_socket(dir: &Path) -> (std::os::unix::net::UnixDatagram, PathBuf) {
    let path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    (socket, path)
}

/// Reads notify messages until one contains `wanted`; returns all read so far.
fn read_until(socket: &std::os::unix::net::UnixDatagram, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let size = match socket.recv(&mut buffer) {
            Ok(size) => size,
            Err(error) => panic!("no {wanted:?} on the notify socket ({error}); saw {seen:?}"),
        };
        let message = String::from_utf8_lossy(&buffer[..size]).into_owned();
        let found = message.lines().any(|line| line == wanted);
        seen.push(message);
        if found {
            return seen;
        }
    }
}

#[tokio::test]
async fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let config_dir = ConfigDir::new(&[("runtime.yaml", "")]);
    let data_dir = tempfile::tempdir().unwrap();
    let socket_dir = tempfile::tempdir().unwrap();
    let (socket, socket_path) = notify_socket(socket_dir.path());
    let socket_path = socket_path.to_str().unwrap().to_string();
    // A 400 ms watchdog: the daemon must ping every 200 ms.
    let daemon = Process::spawn(
        config_dir.path(),
        data_dir.path(),
        &[],
        &[("NOTIFY_SOCKET", socket_path.as_str()), ("WATCHDOG_USEC", "400000")],
    );
    let (daemon, socket) = tokio::task::spawn_blocking(move || {
        let seen = read_until(&socket, "READY=1");
        assert!(seen.iter().all(|message| !message.contains("STOPPING=1")), "{seen:?}");
        read_until(&socket, "WATCHDOG=1");
        read_until(&socket, "WATCHDOG=1");
        daemon.signal(libc::SIGHUP);
        let seen = read_until(&socket, "RELOADING=1");
        assert!(seen.last().unwrap().contains("MONOTONIC_USEC="), "systemd wants the time with RELOADING: {seen:?}");
        read_until(&socket, "READY=1");
        daemon.signal(libc::SIGTERM);
        read_until(&socket, "STOPPING=1");
        (daemon, socket)
    })
    .await
    .unwrap();
    drop(socket);
    let (code, stderr) = tokio::task::spawn_blocking(move || daemon.wait_exit()).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("systemd watchdog enabled"), "{stderr}");
}
