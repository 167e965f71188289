//! `GET /v1/traces` (newest first, `?agent=&limit=`), `GET /v1/traces/{trace_id}`.
//!
//! Traces are served as the telemetry module stores them (`TraceRecord`): API.md's
//! `{trace_id, agent, session_id, spans[...]}` plus start/end times, duration and status.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::AppState;
use crate::telemetry::TraceRecord;

const MAX_LIMIT: i64 = 100;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/traces", get(list)).route("/v1/traces/{trace_id}", get(one))
}

#[derive(Deserialize)]
struct ListQuery {
    agent: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    20
}

async fn list(State(app): State<AppState>, ApiQuery(query): ApiQuery<ListQuery>) -> Result<Json<Value>, ApiError> {
    if !(1..=MAX_LIMIT).contains(&query.limit) {
        return Err(ApiError::invalid(
            vec![json!("query"), json!("limit")],
            format!("Input should be between 1 and {MAX_LIMIT}"),
            "value_error",
        ));
    }
    let agent = query.agent.filter(|agent| !agent.is_empty());
    let traces = app.telemetry.traces(agent, query.limit as usize).await?;
    Ok(Json(json!({ "traces": traces })))
}

async fn one(State(app): State<AppState>, ApiPath(trace_id): ApiPath<String>) -> Result<Json<TraceRecord>, ApiError> {
    match app.telemetry.trace(&trace_id).await? {
        Some(trace) => Ok(Json(trace)),
        None => Err(ApiError::NotFound(format!("Trace '{trace_id}' not found"))),
    }
}
