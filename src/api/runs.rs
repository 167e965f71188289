//! `POST /v1/agents/{name}/run`: one agent run, answered with `RunOutcome`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::forward::{self, Decision};
use super::AppState;
use crate::runtime::{RunOutcome, RunRequest};

/// The request body; `query` is required.
#[derive(Debug, Deserialize, Serialize)]
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
    headers: HeaderMap,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<Response, ApiError> {
    // In mesh mode a run for an agent hosted elsewhere is relayed; one hosted here is counted
    // as in flight until it ends (a leaving node waits for it).
    let _in_flight = match forward::decide(&app, &name, body.session_id.as_deref(), &headers)? {
        Decision::Local(guard) => guard,
        Decision::Remote(mesh, targets) => {
            let bytes = serde_json::to_vec(&body).map_err(|error| ApiError::Internal(Box::new(error)))?;
            let path = forward::agent_path(&name, "/run");
            return forward::relay(&mesh, &targets, "POST", &path, &headers, bytes.into()).await;
        }
    };
    let outcome: RunOutcome = app.runtime.run(body.into_request(name), None).await?;
    Ok(Json(outcome).into_response())
}
