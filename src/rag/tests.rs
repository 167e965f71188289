//! Rag tests on a real store and the real embedder: ids replace, names with `:`, reload.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::*;

fn metadata(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn document(id: Option<&str>, text: &str) -> Document {
    Document { id: id.map(str::to_string), text: text.to_string(), metadata: metadata(json!({"source": "test"})) }
}

fn open(dir: &std::path::Path, embedder: &Arc<Embedder>) -> (Arc<Store>, Rag) {
    let store = Arc::new(Store::open(dir, 16).unwrap());
    let rag = Rag::new(Arc::clone(&store), Arc::clone(embedder), RagSettings::default()).unwrap();
    (store, rag)
}

#[tokio::test]
async fn internal_names_replacement_by_id_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = Arc::new(Embedder::new(8));
    let (store, rag) = open(dir.path(), &embedder);
    let options = ChunkOptions::default();
    // `semantic:a` and `semantic:ab` must not see each other's keys.
    rag.ingest("semantic:a", vec![document(Some("one"), "The cat sits on the mat.")], &options).await.unwrap();
    rag.ingest("semantic:ab", vec![document(None, "Stock markets fell sharply today.")], &options).await.unwrap();
    let report = rag
        .ingest("semantic:a", vec![document(Some("one"), "Dogs love long walks in the park.")], &options)
        .await
        .unwrap();
    assert_eq!(report, IngestReport { documents_ingested: 1, chunks_created: 1 });
    let hits = rag.query("semantic:a", "a dog walking", 5, 0.0).await.unwrap();
    assert_eq!(hits.len(), 1, "the replaced chunk is gone");
    assert_eq!(hits[0].text, "Dogs love long walks in the park.");
    assert_eq!(hits[0].metadata, metadata(json!({"source": "test", "chunk_index": 0, "id": "one"})));
    let names: Vec<(String, usize, usize)> =
        rag.collections().into_iter().map(|info| (info.name, info.documents, info.chunks)).collect();
    assert_eq!(names, [("semantic:a".to_string(), 1, 1), ("semantic:ab".to_string(), 1, 1)]);

    drop(rag);
    store.close().await.unwrap();
    drop(store);
    let (store, rag) = open(dir.path(), &embedder);
    assert_eq!(rag.collections().len(), 2);
    let hits = rag.query("semantic:ab", "finance news", 5, 0.0).await.unwrap();
    assert_eq!(hits[0].text, "Stock markets fell sharply today.");
    // Replacing after a reload still finds the document's old chunks.
    rag.ingest("semantic:a", vec![document(Some("one"), "Birds sing in the morning.")], &options).await.unwrap();
    assert_eq!(rag.query("semantic:a", "birds", 5, 0.0).await.unwrap().len(), 1);
    assert!(rag.delete_collection("semantic:a").await.unwrap());
    assert!(!rag.delete_collection("semantic:a").await.unwrap());
    assert!(matches!(rag.query("semantic:a", "x", 1, 0.0).await, Err(RagError::UnknownCollection(_))));
    assert_eq!(store.scan_prefix(Table::Chunks, b"semantic:a\0", false, 10).unwrap().len(), 0);
    assert_eq!(store.scan_prefix(Table::Chunks, b"semantic:ab\0", false, 10).unwrap().len(), 1);
    store.close().await.unwrap();
}

#[tokio::test]
async fn invalid_input_is_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = Arc::new(Embedder::new(8));
    let (store, rag) = open(dir.path(), &embedder);
    let options = ChunkOptions::default();
    let documents = vec![document(None, "valid text"), document(None, "   ")];
    let error = rag.ingest("docs", documents, &options).await.unwrap_err();
    assert!(matches!(error, RagError::InvalidDocument { index: 1, field: "text", .. }), "{error:?}");
    let twice = vec![document(Some("x"), "a"), document(Some("x"), "b")];
    assert!(matches!(rag.ingest("docs", twice, &options).await, Err(RagError::InvalidDocument { index: 1, .. })));
    let overlap = ChunkOptions { chunk_size: 10, chunk_overlap: 10, ..options };
    assert!(matches!(
        rag.ingest("docs", vec![document(None, "a")], &overlap).await,
        Err(RagError::OverlapTooLarge { .. })
    ));
    assert!(matches!(
        rag.ingest("bad\0name", vec![document(None, "a")], &options).await,
        Err(RagError::InvalidName(_))
    ));
    assert!(rag.collections().is_empty());
    assert!(!embedder.is_loaded(), "validation happens before embedding");
    assert_eq!(store.stats().writes, 0);
    store.close().await.unwrap();
}
