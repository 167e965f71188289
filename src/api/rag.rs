//! `/v1/rag/*`: ingest, query, list and delete collections, in API.md's shapes.
//!
//! Wire-only types live here. User-created collection names are restricted to
//! `[A-Za-z0-9_.-]{1,128}` (the library accepts more, for internal collections such as
//! `semantic:<agent>`, which these routes can still list and query but not create or delete).
//! `GET /v1/rag/collections` adds `embedder` (what made its vectors) and `indexed` (chunks in the
//! HNSW snapshot, 0 = exact search) to API.md's `{name, documents, chunks}`. A collection whose
//! configured embedder differs from the one that made it answers 409; a failing remote embedder
//! answers 502.

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::embed::EmbedError;
use crate::rag::{ChunkOptions, ChunkStrategy, Document, RagError};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/rag/ingest", post(ingest))
        .route("/v1/rag/query", post(query))
        .route("/v1/rag/collections", get(list))
        .route("/v1/rag/collections/{name}", delete(remove))
}

/// Largest `top_k` a query may ask for.
const MAX_TOP_K: usize = 100;

#[derive(Deserialize)]
struct IngestBody {
    collection: String,
    documents: Vec<DocumentBody>,
    #[serde(default = "default_chunk_size")]
    chunk_size: usize,
    #[serde(default = "default_chunk_overlap")]
    chunk_overlap: usize,
    #[serde(default)]
    strategy: Option<String>,
}

fn default_chunk_size() -> usize {
    ChunkOptions::default().chunk_size
}

fn default_chunk_overlap() -> usize {
    ChunkOptions::default().chunk_overlap
}

#[derive(Deserialize)]
struct DocumentBody {
    text: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct QueryBody {
    collection: String,
    query: String,
    #[serde(default = "default_top_k")]
    top_k: i64,
    #[serde(default)]
    score_threshold: f32,
}

fn default_top_k() -> i64 {
    5
}

fn body_loc(fields: &[Value]) -> Vec<Value> {
    std::iter::once(json!("body")).chain(fields.iter().cloned()).collect()
}

/// `^[A-Za-z0-9_.-]{1,128}$`, as a 422 at `loc`.
fn check_user_name(name: &str, loc: Vec<Value>) -> Result<(), ApiError> {
    let valid = (1..=128).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(loc, "Collection names must match ^[A-Za-z0-9_.-]{1,128}$", "string_pattern_mismatch"))
    }
}

async fn ingest(State(app): State<AppState>, ApiJson(body): ApiJson<IngestBody>) -> Result<Json<Value>, ApiError> {
    check_user_name(&body.collection, body_loc(&[json!("collection")]))?;
    let strategy = match body.strategy.as_deref() {
        None => ChunkStrategy::default(),
        Some(name) => ChunkStrategy::parse(name).ok_or_else(|| {
            ApiError::invalid(
                body_loc(&[json!("strategy")]),
                format!("Input should be one of: {}", ChunkStrategy::NAMES),
                "enum",
            )
        })?,
    };
    let options = ChunkOptions { strategy, chunk_size: body.chunk_size, chunk_overlap: body.chunk_overlap };
    let documents = body
        .documents
        .into_iter()
        .map(|document| Document {
            id: document.id,
            text: document.text,
            metadata: document.metadata.unwrap_or_default(),
        })
        .collect();
    let report = app.rag.ingest(&body.collection, documents, &options).await?;
    app.telemetry.metrics().incr("rag.ingest.chunks", report.chunks_created as u64);
    Ok(Json(json!({
        "collection": body.collection,
        "documents_ingested": report.documents_ingested,
        "chunks_created": report.chunks_created,
    })))
}

async fn query(State(app): State<AppState>, ApiJson(body): ApiJson<QueryBody>) -> Result<Json<Value>, ApiError> {
    if !(1..=MAX_TOP_K as i64).contains(&body.top_k) {
        return Err(ApiError::invalid(
            body_loc(&[json!("top_k")]),
            format!("Input should be between 1 and {MAX_TOP_K}"),
            "value_error",
        ));
    }
    if body.query.trim().is_empty() {
        return Err(ApiError::invalid(
            body_loc(&[json!("query")]),
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    if !body.score_threshold.is_finite() {
        return Err(ApiError::invalid(
            body_loc(&[json!("score_threshold")]),
            "Input should be a finite number",
            "finite_number",
        ));
    }
    let hits = app.rag.query(&body.collection, &body.query, body.top_k as usize, body.score_threshold).await?;
    app.telemetry.metrics().incr("rag.queries", 1);
    Ok(Json(json!({ "results": hits })))
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "collections": app.rag.collections() }))
}

async fn remove(State(app): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<Json<Value>, ApiError> {
    check_user_name(&name, vec![json!("path"), json!("name")])?;
    if !app.rag.delete_collection(&name).await? {
        return Err(RagError::UnknownCollection(name).into());
    }
    Ok(Json(json!({ "status": "deleted", "collection": name })))
}

impl From<RagError> for ApiError {
    fn from(error: RagError) -> ApiError {
        match error {
            RagError::UnknownCollection(name) => ApiError::NotFound(format!("Collection '{name}' not found")),
            error @ RagError::InvalidName(_) => {
                ApiError::invalid(body_loc(&[json!("collection")]), error.to_string(), "value_error")
            }
            error @ RagError::NoDocuments => {
                ApiError::invalid(body_loc(&[json!("documents")]), error.to_string(), "too_short")
            }
            RagError::InvalidDocument { index, field, message } => {
                let kind = if field == "text" { "string_too_short" } else { "value_error" };
                ApiError::invalid(body_loc(&[json!("documents"), json!(index), json!(field)]), message, kind)
            }
            error @ RagError::InvalidChunkSize => {
                ApiError::invalid(body_loc(&[json!("chunk_size")]), error.to_string(), "greater_than_equal")
            }
            error @ RagError::OverlapTooLarge { .. } => {
                ApiError::invalid(body_loc(&[json!("chunk_overlap")]), error.to_string(), "value_error")
            }
            error @ RagError::TooManyChunks { .. } => {
                ApiError::invalid(body_loc(&[json!("documents")]), error.to_string(), "too_long")
            }
            error @ RagError::EmbedderMismatch { .. } => ApiError::Conflict(error.to_string()),
            RagError::Embed(EmbedError::Remote(message)) => ApiError::BadGateway(message),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}
