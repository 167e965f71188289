//! `GET /v1/system/status`: version, uptime, agents and provider health.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::runtime::ProviderState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/system/status", get(status))
}

async fn status(State(app): State<AppState>) -> Json<Value> {
    let states = app.runtime.provider_states();
    let count = |wanted: ProviderState| states.iter().filter(|(_, state)| *state == wanted).count();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "status": "running",
        "mode": "standalone",
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
