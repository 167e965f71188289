//! `GET /v1/metrics` (counters and histograms as JSON), `POST /v1/metrics/reset`, the
//! Prometheus scrape at `GET /metrics`, and the middleware that counts `http.requests`.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::telemetry::MetricsSnapshot;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/metrics", get(snapshot))
        .route("/v1/metrics/reset", post(reset))
        .route("/metrics", get(prometheus))
}

async fn snapshot(State(app): State<AppState>) -> Json<Value> {
    let MetricsSnapshot { counters, histograms, .. } = app.telemetry.metrics().snapshot();
    Json(json!({ "counters": counters, "histograms": histograms }))
}

async fn reset(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    app.telemetry.reset_metrics().await?;
    Ok(Json(json!({ "status": "reset" })))
}

async fn prometheus(State(app): State<AppState>) -> Response {
    let text = app.telemetry.metrics().prometheus();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Counts every request that reaches the app (`http.requests`).
pub(crate) async fn count_requests(State(app): State<AppState>, request: Request, next: Next) -> Response {
    app.telemetry.metrics().incr("http.requests", 1);
    next.run(request).await
}
