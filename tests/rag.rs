//! `/v1/rag/*` through the real daemon: retrieval quality, chunking, atomic ingest, restarts,
//! the HNSW path, and the 422/404 answers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{ConfigDir, TestApp};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The retrieval fixture's documents as an ingest body for `collection`.
fn retrieval_ingest(collection: &str) -> (Value, Vec<(String, String)>) {
    let set = fixture("retrieval-mini.json");
    let documents: Vec<Value> = set["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|doc| json!({"id": doc["id"], "text": doc["text"], "metadata": {"source": "fixture"}}))
        .collect();
    let queries = set["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|query| (query["query"].as_str().unwrap().to_string(), query["expected"].as_str().unwrap().to_string()))
        .collect();
    (json!({"collection": collection, "documents": documents}), queries)
}

async fn query(app: &TestApp, collection: &str, text: &str, top_k: usize) -> Vec<Value> {
    let answer = app.post("/v1/rag/query", &json!({"collection": collection, "query": text, "top_k": top_k})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn retrieval_mini_puts_the_expected_document_first() {
    let app = TestApp::start(&[]).await;
    let (body, queries) = retrieval_ingest("support");
    let answer = app.post("/v1/rag/ingest", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json, json!({"collection": "support", "documents_ingested": 16, "chunks_created": 16}));
    let mut first = 0;
    for (text, expected) in &queries {
        let results = query(&app, "support", text, 3).await;
        assert_eq!(results.len(), 3);
        let scores: Vec<f64> = results.iter().map(|hit| hit["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "best first: {scores:?}");
        if results[0]["metadata"]["id"] == json!(expected) {
            first += 1;
        }
    }
    assert!(first >= 19, "expected document first for {first} of {} queries", queries.len());
    let hit = &query(&app, "support", &queries[0].0, 1).await[0];
    assert_eq!(hit["metadata"], json!({"source": "fixture", "chunk_index": 0, "id": "returns"}));
    app.stop().await;
}

#[tokio::test]
async fn fixed_chunks_overlap_and_thresholds_filter() {
    let app = TestApp::start(&[]).await;
    let text: String = (0..25).map(|n| format!("word{n:02}xx ")).collect(); // 250 chars
    let body = json!({"collection": "chunks", "documents": [{"text": text, "metadata": {"page": 1}}],
        "chunk_size": 100, "chunk_overlap": 20, "strategy": "fixed"});
    let answer = app.post("/v1/rag/ingest", &body).await;
    assert_eq!(answer.json["chunks_created"], 3, "{}", answer.text); // 0..100, 80..180, 160..250
    let mut hits = query(&app, "chunks", "word05xx", 10).await;
    assert_eq!(hits.len(), 3);
    hits.sort_by_key(|hit| hit["metadata"]["chunk_index"].as_u64().unwrap());
    let texts: Vec<&str> = hits.iter().map(|hit| hit["text"].as_str().unwrap()).collect();
    assert_eq!(texts[0], &text[..100]);
    assert_eq!(texts[1], &text[80..180]);
    assert_eq!(texts[2], &text[160..]);
    assert_eq!(hits[0]["metadata"], json!({"page": 1, "chunk_index": 0}));
    let strict =
        app.post("/v1/rag/query", &json!({"collection": "chunks", "query": "word05xx", "score_threshold": 0.99})).await;
    assert_eq!(strict.json, json!({"results": []}));
    app.stop().await;
}

#[tokio::test]
async fn collections_are_listed_replaced_by_id_and_deleted() {
    let app = TestApp::start(&[]).await;
    let ingest = |collection: &str, docs: Value| json!({"collection": collection, "documents": docs});
    app.post("/v1/rag/ingest", &ingest("b.docs", json!([{"text": "Alpha."}, {"text": "Beta.", "id": "b"}]))).await;
    app.post("/v1/rag/ingest", &ingest("a-docs", json!([{"text": "Gamma."}]))).await;
    let replaced = app.post("/v1/rag/ingest", &ingest("b.docs", json!([{"text": "Beta two.", "id": "b"}]))).await;
    assert_eq!(replaced.json["documents_ingested"], 1);
    let listed = app.get("/v1/rag/collections").await;
    assert_eq!(
        listed.json,
        json!({"collections": [
            {"name": "a-docs", "embedder": "local:all-MiniLM-L6-v2", "documents": 1, "chunks": 1, "indexed": 0},
            {"name": "b.docs", "embedder": "local:all-MiniLM-L6-v2", "documents": 2, "chunks": 2, "indexed": 0},
        ]})
    );
    let texts: Vec<Value> = query(&app, "b.docs", "beta", 10).await.iter().map(|hit| hit["text"].clone()).collect();
    assert!(texts.contains(&json!("Beta two.")) && !texts.contains(&json!("Beta.")), "{texts:?}");
    let deleted = app.delete("/v1/rag/collections/b.docs").await;
    assert_eq!((deleted.status, deleted.json), (200, json!({"status": "deleted", "collection": "b.docs"})));
    let again = app.delete("/v1/rag/collections/b.docs").await;
    assert_eq!((again.status, again.json), (404, json!({"detail": "Collection 'b.docs' not found"})));
    assert_eq!(app.get("/v1/rag/collections").await.json["collections"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_422_and_leaves_nothing_behind() {
    let app = TestApp::start(&[("runtime.yaml", "kind: RuntimeConfig\nspec:\n  rag: {max_ingest_chunks: 3}\n")]).await;
    let cases = [
        // An invalid document after valid ones: the whole ingest is refused (atomic).
        (
            json!({"collection": "c", "documents": [{"text": "fine"}, {"text": "also fine"}, {"text": "  "}]}),
            json!(["body", "documents", 2, "text"]),
        ),
        (
            json!({"collection": "c", "documents": [{"text": "x"}], "chunk_size": 10, "chunk_overlap": 10}),
            json!(["body", "chunk_overlap"]),
        ),
        (json!({"collection": "c", "documents": [{"text": "x"}], "chunk_size": 0}), json!(["body", "chunk_size"])),
        (
            json!({"collection": "c", "documents": [{"text": "x"}], "strategy": "semantic-ish"}),
            json!(["body", "strategy"]),
        ),
        (json!({"collection": "no spaces", "documents": [{"text": "x"}]}), json!(["body", "collection"])),
        (json!({"collection": "semantic:agent", "documents": [{"text": "x"}]}), json!(["body", "collection"])),
        (json!({"collection": "c", "documents": []}), json!(["body", "documents"])),
        (json!({"collection": "c"}), json!(["body", "documents"])),
        (json!({"collection": "c", "documents": [{"metadata": {}}]}), json!(["body", "documents", 0, "text"])),
        (json!({"collection": "c", "documents": [{"text": "x"}], "chunk_size": -5}), json!(["body", "chunk_size"])),
        // spec.rag.max_ingest_chunks: 3 reaches the limit check.
        (
            json!({"collection": "c", "documents": [{"text": "one"}, {"text": "two"}, {"text": "three"}, {"text": "four"}]}),
            json!(["body", "documents"]),
        ),
    ];
    for (body, loc) in cases {
        let answer = app.post("/v1/rag/ingest", &body).await;
        assert_eq!(answer.status, 422, "{body} -> {}", answer.text);
        assert_eq!(answer.json["detail"][0]["loc"], loc, "{body} -> {}", answer.text);
    }
    assert_eq!(app.get("/v1/rag/collections").await.json, json!({"collections": []}));
    let missing = app.post("/v1/rag/query", &json!({"collection": "c", "query": "anything"})).await;
    assert_eq!((missing.status, missing.json), (404, json!({"detail": "Collection 'c' not found"})));
    app.post("/v1/rag/ingest", &json!({"collection": "c", "documents": [{"text": "x"}]})).await;
    for (body, loc) in [
        (json!({"collection": "c", "query": "q", "top_k": 0}), json!(["body", "top_k"])),
        (json!({"collection": "c", "query": "q", "top_k": 101}), json!(["body", "top_k"])),
        (json!({"collection": "c", "query": ""}), json!(["body", "query"])),
        (json!({"collection": "c"}), json!(["body", "query"])),
    ] {
        let answer = app.post("/v1/rag/query", &body).await;
        assert_eq!((answer.status, answer.json["detail"][0]["loc"].clone()), (422, loc), "{body}");
    }
    let bad_name = app.delete("/v1/rag/collections/bad%20name").await;
    assert_eq!(bad_name.status, 422);
    app.stop().await;
}

#[tokio::test]
async fn collections_survive_a_restart() {
    let app = TestApp::start(&[]).await;
    let (body, queries) = retrieval_ingest("kept");
    assert_eq!(app.post("/v1/rag/ingest", &body).await.status, 200);
    let before = query(&app, "kept", &queries[3].0, 5).await;
    let app = app.restart().await;
    let listed = app.get("/v1/rag/collections").await;
    assert_eq!(
        listed.json["collections"],
        json!([{"name": "kept", "embedder": "local:all-MiniLM-L6-v2", "documents": 16, "chunks": 16, "indexed": 0}])
    );
    assert_eq!(query(&app, "kept", &queries[3].0, 5).await, before);
    // Ids keep growing after a restart: a re-ingested document replaces its old chunk.
    let replace = json!({"collection": "kept", "documents": [{"id": "returns", "text": "Returns are not accepted."}]});
    assert_eq!(app.post("/v1/rag/ingest", &replace).await.status, 200);
    assert_eq!(app.get("/v1/rag/collections").await.json["collections"][0]["chunks"], 16);
    app.stop().await;
}

#[tokio::test]
async fn the_hnsw_path_answers_like_exact_search() {
    let exact = TestApp::start(&[]).await;
    let runtime = "kind: RuntimeConfig\nspec:\n  rag: {hnsw_threshold: 10}\n";
    let hnsw = TestApp::start_in(ConfigDir::new(&[("runtime.yaml", runtime)]), |_| {}).await;
    let (body, queries) = retrieval_ingest("docs");
    assert_eq!(exact.post("/v1/rag/ingest", &body).await.status, 200);
    assert_eq!(hnsw.post("/v1/rag/ingest", &body).await.status, 200);
    // The graph is built in the background; wait until it covers all 16 chunks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let listed = hnsw.get("/v1/rag/collections").await;
        if listed.json["collections"][0]["indexed"] == 16 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "snapshot built: {}", listed.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(exact.get("/v1/rag/collections").await.json["collections"][0]["indexed"], 0);
    for (text, _) in &queries {
        let from_exact = query(&exact, "docs", text, 5).await;
        let from_hnsw = query(&hnsw, "docs", text, 5).await;
        let texts = |hits: &[Value]| hits.iter().map(|hit| hit["text"].clone()).collect::<Vec<_>>();
        assert_eq!(texts(&from_hnsw), texts(&from_exact), "{text}");
    }
    // Chunks added after the snapshot are searched exactly in the tail.
    let extra = json!({"collection": "docs", "documents": [{"text": "Penguins live in Antarctica.", "id": "penguin"}]});
    assert_eq!(hnsw.post("/v1/rag/ingest", &extra).await.status, 200);
    let hit = &query(&hnsw, "docs", "Where do penguins live?", 1).await[0];
    assert_eq!(hit["metadata"]["id"], "penguin");
    exact.stop().await;
    hnsw.stop().await;
}
