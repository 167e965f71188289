//! Mesh clusters for tests and the mesh benchmark: real nodes on loopback ports, each in its own
//! thread with its own tokio runtime, so `kill` is a crash (the runtime is dropped with every
//! task and socket, and nobody is told) while `stop` is a graceful shutdown.
//!
//! Self-contained (only the library, tokio and tempfile) so `benches/mesh.rs` includes it too.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use astromesh::config::{Config, ConfigSource, Overrides, Secret};
use astromesh::mesh::membership::NodeState;
use astromesh::mesh::{Mesh, MeshState};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Mesh timings in seconds, written into runtime.yaml's `spec.mesh`.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub gossip: f64,
    pub heartbeat: f64,
    pub failure: f64,
    pub dead: f64,
    pub cleanup: f64,
}

impl Timings {
    /// Short timings for tests.
    pub const FAST: Timings = Timings { gossip: 0.25, heartbeat: 0.15, failure: 1.5, dead: 3.0, cleanup: 60.0 };
}

pub struct NodeSpec {
    pub name: String,
    pub seeds: Vec<String>,
    /// Extra config files (agents), relative to the config dir.
    pub files: Vec<(String, String)>,
    pub timings: Timings,
    pub secret: Option<String>,
    pub fanout: Option<usize>,
    /// API keys clients must present (`spec.api.auth.api_keys`).
    pub api_keys: Vec<String>,
}

impl NodeSpec {
    pub fn new(name: &str, seeds: &[&str], timings: Timings) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            seeds: seeds.iter().map(|seed| seed.to_string()).collect(),
            files: Vec::new(),
            timings,
            secret: None,
            fanout: None,
            api_keys: Vec::new(),
        }
    }
}

/// One running node.
pub struct MeshNode {
    pub name: String,
    pub url: String,
    /// `host:port` as peers see it.
    pub address: String,
    pub mesh: Arc<Mesh>,
    shutdown: CancellationToken,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    pub config_dir: TempDir,
    _data_dir: TempDir,
}

fn runtime_yaml(spec: &NodeSpec) -> String {
    let timings = spec.timings;
    let seeds: Vec<String> = spec.seeds.iter().map(|seed| format!("\"{seed}\"")).collect();
    let fanout = spec.fanout.map(|fanout| format!("    gossip_fanout: {fanout}\n")).unwrap_or_default();
    format!(
        "apiVersion: astromesh/v1\nkind: RuntimeConfig\nspec:\n  api:\n    shutdown_timeout: 5\n  mesh:\n    enabled: true\n    node_name: {}\n    seeds: [{}]\n    gossip_interval: {}\n    heartbeat_interval: {}\n    failure_timeout: {}\n    dead_timeout: {}\n    cleanup_timeout: {}\n{fanout}",
        spec.name,
        seeds.join(", "),
        timings.gossip,
        timings.heartbeat,
        timings.failure,
        timings.dead,
        timings.cleanup
    )
}

impl MeshNode {
    pub async fn start(spec: NodeSpec) -> MeshNode {
        let config_dir = tempfile::tempdir().expect("temp config dir");
        let data_dir = tempfile::tempdir().expect("temp data dir");
        std::fs::write(config_dir.path().join("runtime.yaml"), runtime_yaml(&spec)).expect("write runtime.yaml");
        for (relative, text) in &spec.files {
            let path = config_dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("config subdir");
            std::fs::write(path, text).expect("write config file");
        }
        let overrides = Overrides { data_dir: Some(data_dir.path().to_path_buf()), ..Overrides::default() };
        let mut config: Config =
            Config::load(ConfigSource::Dir(config_dir.path().to_path_buf()), &overrides).expect("config loads");
        assert!(config.warnings.is_empty(), "unexpected warnings: {:?}", config.warnings);
        config.runtime.mesh.secret = spec.secret.clone().map(Secret::new);
        config.runtime.api_keys = spec.api_keys.iter().cloned().map(Secret::new).collect();
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let token = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("node-{}", spec.name))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|error| error.to_string())?;
                let result = runtime.block_on(async move {
                    let app = astromesh::App::build(config).map_err(|error| error.to_string())?;
                    let listener =
                        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|error| error.to_string())?;
                    let bound = listener.local_addr().map_err(|error| error.to_string())?;
                    let mesh = app.mesh().cloned().ok_or("mesh mode is off")?;
                    let _ = ready_tx.send((bound, mesh)); // The test may have given up.
                    tokio::select! {
                        served = app.serve(listener, token) => served.map_err(|error| error.to_string()),
                        _ = kill_rx => Err("killed".to_string()),
                    }
                });
                // A crash: every task and socket of this node goes away without a word.
                runtime.shutdown_background();
                result
            })
            .expect("spawn node thread");
        let (bound, mesh) = ready_rx.await.expect("node starts");
        MeshNode {
            name: spec.name,
            url: format!("http://{bound}"),
            address: bound.to_string(),
            mesh,
            shutdown,
            kill: Some(kill_tx),
            thread: Some(thread),
            config_dir,
            _data_dir: data_dir,
        }
    }

    /// This node's view, in-process (the same value `GET /v1/mesh/state` serves).
    pub fn state(&self) -> MeshState {
        self.mesh.state()
    }

    pub fn leader(&self) -> Option<String> {
        self.mesh.leader()
    }

    /// How this node sees `node_id` (`None`: not in its table).
    pub fn sees(&self, node_id: &str) -> Option<NodeState> {
        self.state().nodes.iter().find(|node| node.node_id == node_id).map(|node| node.state)
    }

    /// Nodes this node holds alive (itself included).
    pub fn alive(&self) -> Vec<String> {
        self.state().nodes.into_iter().filter(|node| node.state == NodeState::Alive).map(|node| node.node_id).collect()
    }

    /// A crash: the node vanishes without telling anyone.
    pub fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(()); // Already gone is fine.
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join(); // Its result is "killed".
        }
    }

    /// A graceful shutdown; asserts it completes cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let thread = self.thread.take().expect("node running");
        let result = tokio::task::spawn_blocking(move || thread.join()).await.expect("join task");
        result.expect("node thread").expect("node shuts down cleanly");
    }
}

impl Drop for MeshNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `count` nodes named `{prefix}-0`.. where every node joins through the first.
pub async fn cluster(prefix: &str, count: usize, timings: Timings) -> Vec<MeshNode> {
    let first = MeshNode::start(NodeSpec::new(&format!("{prefix}-00"), &[], timings)).await;
    let seed = first.address.clone();
    let mut nodes = vec![first];
    for index in 1..count {
        let spec = NodeSpec::new(&format!("{prefix}-{index:02}"), &[seed.as_str()], timings);
        nodes.push(MeshNode::start(spec).await);
    }
    nodes
}

/// Polls `check` until it holds or `limit` passes; returns how long it took.
pub async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls without failing: how long until `check` held, or `None` after `limit`.
pub async fn time_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
