//! `GET`/`DELETE /v1/memory/{agent}/history/{session}`: a session's conversation; and
//! `GET /v1/memory/{agent}/semantic`: semantic memory search.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::AppState;
use crate::config::AgentConfig;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/memory/{agent}/history/{session}", get(history).delete(clear))
        .route("/v1/memory/{agent}/semantic", get(semantic))
}

/// The agent's loaded config (`None` for an agent listed with errors); 404 when it is unknown.
fn known_agent(app: &AppState, agent: &str) -> Result<Option<std::sync::Arc<AgentConfig>>, ApiError> {
    match app.runtime.agent(agent) {
        Some(entry) => Ok(entry.config().cloned()),
        None => Err(ApiError::NotFound(format!("Agent '{agent}' not found"))),
    }
}

async fn history(
    State(app): State<AppState>,
    ApiPath((agent, session)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ttl = known_agent(&app, &agent)?.and_then(|config| config.memory.ttl);
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

#[derive(Debug, serde::Deserialize)]
struct SemanticQuery {
    query: String,
    #[serde(default = "default_top_k")]
    top_k: usize,
}

fn default_top_k() -> usize {
    5
}

/// `GET /v1/memory/{agent}/semantic?query=&top_k=5`: earlier turns similar to the query.
async fn semantic(
    State(app): State<AppState>,
    ApiPath(agent): ApiPath<String>,
    ApiQuery(params): ApiQuery<SemanticQuery>,
) -> Result<Json<Value>, ApiError> {
    let config = known_agent(&app, &agent)?;
    if !(1..=100).contains(&params.top_k) {
        return Err(ApiError::invalid(
            vec![json!("query"), json!("top_k")],
            "Input should be between 1 and 100",
            "value_error",
        ));
    }
    if params.query.trim().is_empty() {
        return Err(ApiError::invalid(
            vec![json!("query"), json!("query")],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    let threshold = config.map(|config| config.memory.similarity_threshold as f32).unwrap_or(0.0);
    let collection = crate::runtime::Runtime::semantic_collection(&agent);
    let hits = match app.runtime.rag().query(&collection, &params.query, params.top_k, threshold).await {
        Ok(hits) => hits,
        Err(crate::rag::RagError::UnknownCollection(_)) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let results: Vec<Value> =
        hits.into_iter().map(|hit| json!({"text": hit.text, "score": hit.score, "metadata": hit.metadata})).collect();
    Ok(Json(json!({ "results": results })))
}
