//! `GET /v1/health`: liveness with version and uptime.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/health", get(health))
}

async fn health(State(app): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
    }))
}
