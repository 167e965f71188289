//! `/v1/mesh/*`: state, join, leave, heartbeat, gossip and election, in API.md's shapes.
//!
//! Each handler checks that mesh mode is on (503 otherwise) and, when `ASTROMESH_MESH_SECRET`
//! is set, that the request carries it as a bearer token (401 otherwise, compared in constant
//! time; `GET /v1/mesh/state` also admits an API key, see `auth::MeshReader`), then calls one
//! `Mesh` method. Not here: membership, election or routing logic.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use subtle::ConstantTimeEq;

use super::auth::MeshReader;
use super::error::ApiError;
use super::extract::ApiJson;
use super::AppState;
use crate::mesh::{
    ElectionMessage, Gossip, HeartbeatReply, HeartbeatRequest, JoinReply, JoinRequest, LeaveReply, LeaveRequest, Mesh,
    MeshError, MeshState,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/mesh/state", get(state))
        .route("/v1/mesh/join", post(join))
        .route("/v1/mesh/leave", post(leave))
        .route("/v1/mesh/heartbeat", post(heartbeat))
        .route("/v1/mesh/gossip", post(gossip))
        .route("/v1/mesh/election", post(election))
}

impl From<MeshError> for ApiError {
    fn from(error: MeshError) -> ApiError {
        match error {
            MeshError::DuplicateId(_) => ApiError::Conflict(error.to_string()),
            MeshError::Leaving => ApiError::Unavailable(error.to_string()),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// The mesh, if on.
fn enabled(app: &AppState) -> Result<Arc<Mesh>, ApiError> {
    app.mesh.clone().ok_or_else(|| ApiError::Unavailable("Mesh not enabled on this node".to_string()))
}

/// The mesh, if on and if the caller knows the secret.
fn authorised(app: &AppState, headers: &HeaderMap) -> Result<Arc<Mesh>, ApiError> {
    let mesh = enabled(app)?;
    if let Some(secret) = mesh.secret() {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(secret.expose().as_bytes())) {
            return Err(ApiError::Unauthorized("Invalid or missing mesh secret".to_string()));
        }
    }
    Ok(mesh)
}

/// Peers read it with the secret; operators may with an API key (`auth::MeshReader`).
async fn state(
    State(app): State<AppState>,
    reader: Option<Extension<MeshReader>>,
    headers: HeaderMap,
) -> Result<Json<MeshState>, ApiError> {
    let mesh = match reader {
        Some(_) => enabled(&app)?,
        None => authorised(&app, &headers)?,
    };
    Ok(Json(mesh.state()))
}

async fn join(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<JoinRequest>,
) -> Result<Json<JoinReply>, ApiError> {
    Ok(Json(authorised(&app, &headers)?.join(body)?))
}

async fn leave(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LeaveRequest>,
) -> Result<Json<LeaveReply>, ApiError> {
    let mesh = authorised(&app, &headers)?;
    Ok(Json(mesh.leave(&body.node_id, app.config.runtime.shutdown_timeout).await))
}

async fn heartbeat(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    Ok(Json(authorised(&app, &headers)?.heartbeat(&body)))
}

async fn gossip(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Gossip>,
) -> Result<Json<Gossip>, ApiError> {
    Ok(Json(authorised(&app, &headers)?.gossip(&body)))
}

async fn election(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ElectionMessage>,
) -> Result<Json<ElectionMessage>, ApiError> {
    Ok(Json(authorised(&app, &headers)?.on_election(&body)))
}
