//! `rag_query` and `rag_ingest`: the agent's knowledge collection, through the RAG module.
//!
//! The collection is the tool's `config.collection` when set, else the calling agent's
//! `spec.knowledge.collection`. Ingested text is chunked with the defaults (recursive, 512/50).

use serde_json::{json, Value};

use super::{opt_u64, str_arg, BuiltinCall, ToolFailure};
use crate::rag::{ChunkOptions, Document, RagError};

fn collection(call: &BuiltinCall<'_>) -> Result<String, ToolFailure> {
    call.config
        .get("collection")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| call.ctx.collection.clone())
        .ok_or_else(|| {
            ToolFailure::failed(format!(
                "{} needs a collection: set `spec.knowledge.collection` on the agent or `config.collection` on the tool",
                call.name
            ))
        })
}

pub(super) async fn rag_query(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let collection = collection(call)?;
    let query = str_arg(call.input, "query")?;
    let top_k = opt_u64(call.input, "top_k").unwrap_or(5).clamp(1, 100) as usize;
    let hits = match call.rag.query(&collection, query, top_k, 0.0).await {
        Ok(hits) => hits,
        // Nothing ingested yet: an empty result, not a failure.
        Err(RagError::UnknownCollection(_)) => Vec::new(),
        Err(error) => return Err(ToolFailure::failed(error.to_string())),
    };
    let results: Vec<Value> =
        hits.into_iter().map(|hit| json!({"text": hit.text, "score": hit.score, "metadata": hit.metadata})).collect();
    Ok(json!({ "collection": collection, "results": results }))
}

pub(super) async fn rag_ingest(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let collection = collection(call)?;
    let text = str_arg(call.input, "document")?;
    let metadata = call.input.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let document = Document { id: None, text: text.to_string(), metadata };
    let report = call
        .rag
        .ingest(&collection, vec![document], &ChunkOptions::default())
        .await
        .map_err(|error| ToolFailure::failed(error.to_string()))?;
    Ok(json!({ "ingested": true, "collection": collection, "chunks": report.chunks_created }))
}
