//! Astromesh: an AI-agent runtime in one binary.
//!
//! The library holds everything; `main.rs` is a thin CLI over it, and tests and benchmarks
//! drive the same code the daemon runs. `App::build` is the one composition root: it opens the
//! store, builds the runtime and hands each module what it needs. No module reaches for global
//! state (metrics counters aside).

/// mimalloc instead of glibc's malloc: a run allocates many small short-lived buffers (JSON,
/// HTTP, redb pages) across threads, where glibc's allocator cost ~18% of the CPU of a run under
/// load. Declared here, not in `main.rs`, so that tests and benchmarks run on the allocator the
/// daemon ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod config;
pub mod embed;
pub mod memory;
pub mod mesh;
pub mod net;
pub mod orchestration;
pub mod providers;
pub mod rag;
pub mod runtime;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod tools;
pub mod vector;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::Router;
use axum::ServiceExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use api::AppState;
use config::Config;
use embed::{Embedder, TextEmbedder};
use rag::{Rag, RagError, RagSettings};
use runtime::{ReloadError, ReloadReport, Runtime};
use store::{Store, StoreError};
use telemetry::Telemetry;
use tools::{ToolError, ToolRegistry};

/// The text of a caught panic's payload (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tools(#[from] ToolError),
    #[error("cannot load RAG collections: {0}")]
    Rag(#[from] RagError),
    #[error("mesh: {0}")]
    Mesh(#[from] mesh::MeshError),
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Embedding jobs that may wait for the worker (each job is a whole request's texts; callers
/// beyond this wait to enqueue).
const EMBED_QUEUE: usize = 64;

/// How often the metrics snapshot is saved (a crash loses at most this much of the counters).
const METRICS_SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How often traces past the age limit are swept (writes also evict, by count and age).
const TRACE_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// The daemon, assembled and ready to serve.
pub struct App {
    state: AppState,
    tasks: TaskTracker,
}

impl App {
    /// Builds every component from the configuration. Blocking (opens the store file): call it
    /// at startup, before serving.
    pub fn build(config: Config) -> Result<App, AppError> {
        let config = Arc::new(config);
        let store = Arc::new(Store::open(&config.runtime.data_dir, config.runtime.write_queue)?);
        let telemetry_settings = telemetry::TelemetrySettings {
            max_traces: config.runtime.trace_max_count,
            max_age: config.runtime.trace_max_age,
            otlp_endpoint: config.runtime.otlp_endpoint.clone(),
        };
        let telemetry = Arc::new(Telemetry::new(store.clone(), telemetry_settings));
        // The model loads on the first embedding, not here: startup stays fast.
        let embedder = Arc::new(Embedder::new(EMBED_QUEUE));
        let rag_settings = RagSettings {
            index: vector::IndexSettings { hnsw_threshold: config.runtime.rag_hnsw_threshold, ..Default::default() },
            max_ingest_chunks: config.runtime.rag_max_ingest_chunks,
            ..RagSettings::default()
        };
        let embedders = rag::Embedders {
            default: TextEmbedder::from_config(&config.runtime.rag_embedder, &embedder),
            collections: config
                .runtime
                .rag_collection_embedders
                .iter()
                .map(|(name, embedder_config)| (name.clone(), TextEmbedder::from_config(embedder_config, &embedder)))
                .collect(),
        };
        let rag = Arc::new(Rag::new(store.clone(), embedders, rag_settings)?);
        let tools = Arc::new(ToolRegistry::new(&config, store.clone(), rag.clone())?);
        let runtime = Runtime::new(config.clone(), store.clone(), telemetry.clone(), tools.clone(), rag.clone());
        let shutdown = CancellationToken::new();
        let mesh = if config.runtime.mesh.enabled {
            Some(mesh::Mesh::new(&config.runtime.mesh, runtime.ready_agent_names())?)
        } else {
            None
        };
        let state = AppState { config, runtime, store, telemetry, tools, rag, started: Instant::now(), shutdown, mesh };
        Ok(App { state, tasks: TaskTracker::new() })
    }

    /// The HTTP application without a socket (tests can drive it with `oneshot`).
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// A handle that reloads the agents (the CLI calls it on SIGHUP) while the app serves.
    pub fn reloader(&self) -> Reloader {
        Reloader::new(self.state.runtime.clone(), self.state.mesh.clone())
    }

    /// The mesh handle in mesh mode (tests reach its fault hook through it).
    pub fn mesh(&self) -> Option<&Arc<mesh::Mesh>> {
        self.state.mesh.as_ref()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.state.store
    }

    /// The tool registry (the runtime calls it; tests drive it with an agent's context).
    pub fn tools(&self) -> &Arc<ToolRegistry> {
        &self.state.tools
    }

    /// Serves until `shutdown` is cancelled, then drains: in-flight requests (bounded by the
    /// shutdown timeout), background tasks, and last the store's final durable commit.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), AppError> {
        let drain = self.state.config.runtime.shutdown_timeout;
        // Mesh: the advertised address is known only now that the port is bound.
        if let Some(mesh) = &self.state.mesh {
            let started = listener
                .local_addr()
                .map_err(AppError::Serve)
                .and_then(|bound| mesh.start(bound, &self.tasks, &shutdown).map_err(AppError::Mesh));
            if let Err(error) = started {
                self.state.store.close().await?;
                return Err(error);
            }
        }
        // MCP servers connect in the background; a slow or broken one does not delay serving.
        let tools = Arc::clone(&self.state.tools);
        let stop_connecting = shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = tools.start() => {}
                () = stop_connecting.cancelled() => {}
            }
        });
        // Metrics snapshots and trace retention, until shutdown (the last save is in the drain).
        let telemetry = Arc::clone(&self.state.telemetry);
        let stop_telemetry = shutdown.clone();
        self.tasks.spawn(async move {
            let mut save = tokio::time::interval(METRICS_SAVE_EVERY);
            let mut sweep = tokio::time::interval(TRACE_SWEEP_EVERY);
            save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = save.tick() => {
                        if let Err(error) = telemetry.save_metrics().await {
                            tracing::warn!("cannot save metrics: {error}");
                        }
                    }
                    _ = sweep.tick() => {
                        if let Err(error) = telemetry.evict_expired().await {
                            tracing::warn!("cannot evict old traces: {error}");
                        }
                    }
                    () = stop_telemetry.cancelled() => break,
                }
            }
        });
        // systemd's watchdog, when the unit has one: pings at half its timeout until shutdown.
        if let Some(interval) = systemd::watchdog_interval() {
            tracing::info!(?interval, "systemd watchdog enabled");
            self.tasks.spawn(systemd::watchdog(interval, shutdown.clone()));
        }
        // Trailing-slash variants (`/v1/traces/`) answer directly, without redirects.
        let service = NormalizePathLayer::trim_trailing_slash().layer(self.router());
        let server = axum::serve(listener, ServiceExt::<Request>::into_make_service(service))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut server = Box::pin(server.into_future());
        let app_shutdown = self.state.shutdown.clone();
        let external = shutdown.clone();
        // Long-lived connections (WebSockets) watch the app's own token.
        self.tasks.spawn(async move {
            external.cancelled().await;
            app_shutdown.cancel();
        });
        // The listener is bound and accepting (connections queue until the first poll).
        systemd::ready();
        let served = tokio::select! {
            result = &mut server => result,
            () = shutdown.cancelled() => match tokio::time::timeout(drain, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(?drain, "requests still in flight after the drain timeout; closing them");
                    Ok(())
                }
            },
        };
        systemd::stopping();
        self.tasks.close();
        // Peers drop a node that says goodbye at once, instead of suspecting it first.
        if let Some(mesh) = self.state.mesh.as_ref().filter(|mesh| !mesh.is_leaving()) {
            if tokio::time::timeout(drain, mesh.announce_departure()).await.is_err() {
                tracing::warn!("mesh peers not told of the departure within the drain timeout");
            }
        }
        if tokio::time::timeout(drain, self.tasks.wait()).await.is_err() {
            tracing::warn!("background tasks still running after the drain timeout");
        }
        // MCP children exit with the daemon, not after it.
        if tokio::time::timeout(drain, self.state.tools.shutdown()).await.is_err() {
            tracing::warn!("MCP servers still running after the drain timeout");
        }
        // Counters survive the restart: the last snapshot goes in before the store closes.
        if let Err(error) = self.state.telemetry.save_metrics().await {
            tracing::warn!("cannot save metrics at shutdown: {error}");
        }
        // Acknowledged writes are durable before we return, even when serving failed.
        let closed = self.state.store.close().await;
        served.map_err(AppError::Serve)?;
        closed?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Reloads the agents (SIGHUP, `POST /v1/system/reload`) and tells systemd around it
/// (RELOADING=1 ... READY=1). Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    runtime: Runtime,
    /// In mesh mode, told which agents this node hosts after each reload.
    mesh: Option<Arc<mesh::Mesh>>,
}

impl Reloader {
    pub fn new(runtime: Runtime, mesh: Option<Arc<mesh::Mesh>>) -> Reloader {
        Reloader { runtime, mesh }
    }

    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        systemd::reloading();
        let report = self.runtime.reload().await;
        if let (Ok(_), Some(mesh)) = (&report, &self.mesh) {
            mesh.set_agents(self.runtime.ready_agent_names());
        }
        systemd::ready();
        report
    }
}
