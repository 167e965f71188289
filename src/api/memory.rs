//! `GET`/`DELETE /v1/memory/{agent}/history/{session}`: a session's conversation.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiPath;
use super::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/memory/{agent}/history/{session}", get(history).delete(clear))
}

fn known_agent(app: &AppState, agent: &str) -> Result<(), ApiError> {
    match app.runtime.agent(agent) {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("Agent '{agent}' not found"))),
    }
}

async fn history(
    State(app): State<AppState>,
    ApiPath((agent, session)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    known_agent(&app, &agent)?;
    let ttl = app.runtime.agent(&agent).and_then(|entry| entry.config()).and_then(|config| config.memory.ttl);
    let history = app
        .runtime
        .conversations()
        .load(&agent, &session, ttl)
        .await
        .map_err(|error| ApiError::Internal(Box::new(error)))?;
    let messages: Vec<Value> =
        history.turns.iter().map(|(_, turn)| json!({"role": turn.role, "content": turn.content})).collect();
    Ok(Json(json!({ "agent": agent, "session_id": session, "messages": messages })))
}

async fn clear(
    State(app): State<AppState>,
    ApiPath((agent, session)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    known_agent(&app, &agent)?;
    app.runtime.conversations().clear(&agent, &session).await.map_err(|error| ApiError::Internal(Box::new(error)))?;
    Ok(Json(json!({ "status": "cleared", "agent": agent, "session_id": session })))
}
