//! `POST /v1/agents/{name}/run`: one agent run, answered with `RunOutcome`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::runtime::{RunOutcome, RunRequest};

/// The request body; `query` is required.
#[derive(Debug, Deserialize)]
pub(crate) struct RunBody {
    pub query: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

impl RunBody {
    pub(crate) fn into_request(self, agent: String) -> RunRequest {
        RunRequest {
            agent,
            query: self.query,
            session_id: self.session_id,
            context: self.context.unwrap_or_default(),
            history: None,
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/agents/{name}/run", post(run))
}

async fn run(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<Json<RunOutcome>, ApiError> {
    let outcome = app.runtime.run(body.into_request(name), None).await?;
    Ok(Json(outcome))
}
