//! `GET /v1/system/status` (version, uptime, agents, provider health) and
//! `GET /v1/system/doctor` (live checks of the runtime, the store and every provider endpoint),
//! `POST /v1/system/reload` (re-read the agent files; the body is `runtime::ReloadReport`).

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::mesh::membership::NodeState;
use crate::mesh::MeshState;
use crate::providers::router::probe;
use crate::runtime::{ProviderState, ReloadError, ReloadReport};

/// Each provider probe gets this long; they run in parallel, so doctor answers within ~3 s
/// even when an endpoint hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/system/status", get(status))
        .route("/v1/system/doctor", get(doctor))
        .route("/v1/system/reload", post(reload))
}

/// 200 with the report even when some files have errors (they are listed); 503 when the agent
/// files could not be read at all (nothing was changed then).
async fn reload(State(app): State<AppState>) -> Result<Json<ReloadReport>, ApiError> {
    match crate::Reloader::new(app.runtime.clone(), app.mesh.clone()).reload().await {
        Ok(report) => Ok(Json(report)),
        Err(error @ ReloadError::Read(_)) => {
            Err(ApiError::Unavailable(format!("{error}; the agents loaded before are unchanged")))
        }
        Err(error) => Err(ApiError::Internal(Box::new(error))),
    }
}

async fn status(State(app): State<AppState>) -> Json<Value> {
    let states = app.runtime.provider_states();
    let count = |wanted: ProviderState| states.iter().filter(|(_, state)| *state == wanted).count();
    let mesh = app.mesh.as_ref().map(|mesh| {
        let state = mesh.state();
        let alive = state.nodes.iter().filter(|node| node.state != NodeState::Dead).count();
        json!({
            "enabled": true,
            "node_id": state.this_node,
            "node_name": state.this_node,
            "leader": state.leader,
            "cluster_size": alive,
            "status": if mesh.is_leaving() { "left" } else { "active" },
        })
    });
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "status": "running",
        "mode": if mesh.is_some() { "mesh" } else { "standalone" },
        "mesh": mesh,
        "pid": std::process::id(),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "agents_loaded": app.runtime.ready_count(),
        "providers": {
            "healthy": count(ProviderState::Healthy),
            "degraded": count(ProviderState::Degraded),
            "unavailable": count(ProviderState::Unavailable),
        },
    }))
}

async fn doctor(State(app): State<AppState>) -> Json<Value> {
    let mut checks = Vec::new();
    let broken: Vec<String> =
        app.runtime.agents().iter().filter(|entry| entry.config().is_none()).map(|entry| entry.name.clone()).collect();
    let runtime = if broken.is_empty() {
        json!({"name": "runtime", "status": "healthy", "message": format!("{} agent(s) ready", app.runtime.ready_count())})
    } else {
        json!({"name": "runtime", "status": "degraded", "message": format!("agents with errors: {}", broken.join(", "))})
    };
    checks.push(runtime);
    let store = app.store.clone();
    let store_check = tokio::task::spawn_blocking(move || store.check()).await;
    checks.push(match store_check {
        Ok(Ok(())) => json!({"name": "store", "status": "healthy", "message": null}),
        Ok(Err(error)) => json!({"name": "store", "status": "failing", "message": error.to_string()}),
        Err(error) => json!({"name": "store", "status": "failing", "message": error.to_string()}),
    });
    if let Some(mesh) = &app.mesh {
        checks.extend(mesh_checks(&mesh.state()));
    }
    let mut candidates = Vec::new();
    for entry in app.runtime.agents() {
        if let Some(config) = entry.config() {
            let roles = std::iter::once(&config.model.default).chain(config.model.roles.values());
            candidates.extend(roles.flat_map(|role| role.candidates.iter().cloned()));
        }
    }
    for result in probe(&candidates, PROBE_TIMEOUT).await {
        let status = if result.ok { "healthy" } else { "failing" };
        checks.push(json!({"name": result.name, "status": status, "message": result.message}));
    }
    for model in app.runtime.local_models() {
        checks.push(local_model_check(&model));
    }
    let count = |wanted: &str| checks.iter().filter(|check| check["status"] == wanted).count();
    let summary = json!({"healthy": count("healthy"), "degraded": count("degraded"), "failing": count("failing")});
    Json(json!({ "checks": checks, "summary": summary }))
}

/// A local GGUF model: healthy once loaded, degraded until its first use, failing if it cannot
/// load. The file, its size and quantisation come from the header, read at startup.
fn local_model_check(model: &crate::providers::local::LocalModelReport) -> Value {
    let status = match (model.loaded, &model.detail) {
        (true, _) => "healthy",
        (false, None) => "degraded",
        (false, Some(_)) => "failing",
    };
    let state = if model.loaded { "loaded" } else { "not loaded" };
    let mut message = format!(
        "{state}: {} ({} {}, {:.1} MiB)",
        model.file,
        model.family,
        model.quantisation,
        model.size_bytes as f64 / (1024.0 * 1024.0)
    );
    if let Some(detail) = &model.detail {
        message.push_str("; ");
        message.push_str(detail);
    }
    json!({
        "name": format!("local {}", model.file),
        "status": status,
        "message": message,
        "loaded": model.loaded,
        "file": model.file,
        "size_bytes": model.size_bytes,
        "family": model.family,
        "quantisation": model.quantisation,
    })
}

/// Doctor's view of the mesh: one check for the cluster (leader, peer count) and one per peer
/// (alive: healthy, suspect: degraded, dead: failing).
fn mesh_checks(state: &MeshState) -> Vec<Value> {
    let peers: Vec<_> = state.nodes.iter().filter(|node| node.node_id != state.this_node).collect();
    let cluster = match &state.leader {
        Some(leader) => json!({"name": "mesh", "status": "healthy",
            "message": format!("node {}, leader {leader}, {} peer(s)", state.this_node, peers.len())}),
        None => {
            json!({"name": "mesh", "status": "degraded", "message": format!("node {}: no leader yet", state.this_node)})
        }
    };
    let per_peer = peers.into_iter().map(|peer| {
        let status = match peer.state {
            NodeState::Alive => "healthy",
            NodeState::Suspect => "degraded",
            NodeState::Dead => "failing",
        };
        json!({"name": format!("mesh peer {}", peer.node_id), "status": status,
            "message": format!("{} at {}, heartbeat {}, {} active request(s)",
                serde_json::to_value(peer.state).unwrap_or_default().as_str().unwrap_or_default(),
                peer.address, peer.heartbeat, peer.active_requests)})
    });
    std::iter::once(cluster).chain(per_peer).collect()
}
