//! Remote embedders: collections configured in runtime.yaml to embed with an Ollama server or an
//! OpenAI-compatible service, against a small local server that embeds deterministically.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::web::WebServer;
use crate::support::{ConfigDir, TestApp};

const DIMENSION: usize = 64;

/// A bag-of-words vector: each word of 4+ letters adds 1 to a bucket picked by a hash of the word, so texts
/// sharing words are close. `offset` shifts buckets, standing in for a different model.
fn toy_vector(text: &str, offset: usize) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMENSION];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|word| word.len() > 3) {
        let hash =
            word.to_lowercase().bytes().fold(7usize, |acc, byte| acc.wrapping_mul(31).wrapping_add(byte as usize));
        vector[(hash + offset) % DIMENSION] += 1.0;
    }
    vector
}

fn inputs(body: &Value) -> Vec<String> {
    body["input"].as_array().unwrap().iter().map(|text| text.as_str().unwrap().to_string()).collect()
}

/// Serves Ollama's `/api/embed` and the OpenAI `/v1/embeddings`; model "broken" answers 500.
async fn embedding_server() -> WebServer {
    let router = Router::new()
        .route(
            "/api/embed",
            post(|Json(body): Json<Value>| async move {
                if body["model"] == "broken" {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "model crashed"})));
                }
                let offset = usize::from(body["model"] != "toy");
                let vectors: Vec<Vec<f32>> = inputs(&body).iter().map(|text| toy_vector(text, offset)).collect();
                (axum::http::StatusCode::OK, Json(json!({"model": body["model"], "embeddings": vectors})))
            }),
        )
        .route(
            "/v1/embeddings",
            post(|Json(body): Json<Value>| async move {
                // Answered in reverse order: the client must place vectors by `index`.
                let data: Vec<Value> = inputs(&body)
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": toy_vector(text, 3)}))
                    .collect();
                Json(json!({"object": "list", "data": data, "model": body["model"]}))
            }),
        );
    WebServer::start(router).await
}

fn runtime_yaml(server: &str, default_model: &str) -> String {
    format!(
        "kind: RuntimeConfig\nspec:\n  rag:\n    embedder: {{provider: ollama, model: {default_model}, endpoint: '{server}'}}\n    \
         collections:\n      manuals:\n        embedder: {{provider: openai, model: toy-openai, endpoint: '{server}/v1', \
         api_key: sk-test-123, batch_size: 2, timeout: 5}}\n"
    )
}

const DOCS: [&str; 3] = [
    "The battery lasts ten hours and charges over USB.",
    "Refunds are paid within five days of the return.",
    "The screen is an OLED panel with a matte finish.",
];

fn ingest_body(collection: &str) -> Value {
    json!({"collection": collection, "documents": DOCS.iter().map(|text| json!({"text": text})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn collections_embed_with_the_configured_remote_embedders() {
    let server = embedding_server().await;
    let app = TestApp::start(&[("runtime.yaml", &runtime_yaml(&server.url, "toy"))]).await;

    // Default embedder: Ollama's /api/embed with the configured model.
    let ingested = app.post("/v1/rag/ingest", &ingest_body("notes")).await;
    assert_eq!(ingested.status, 200, "{}", ingested.text);
    let ollama: Vec<_> = server.requests().into_iter().filter(|seen| seen.uri == "/api/embed").collect();
    assert_eq!(ollama.len(), 1);
    assert_eq!(ollama[0].json()["model"], "toy");
    assert_eq!(inputs(&ollama[0].json()), DOCS.to_vec());
    let found = app.post("/v1/rag/query", &json!({"collection": "notes", "query": "battery hours", "top_k": 3})).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert!(found.json["results"][0]["text"].as_str().unwrap().contains("battery"), "{}", found.text);
    let best = found.json["results"][0]["score"].as_f64().unwrap();
    assert!(best > 0.0 && best <= 1.0 + 1e-6, "cosine of normalised vectors: {best}");

    // Per-collection embedder: OpenAI-compatible, key sent, batch_size 2 → two requests for 3 texts.
    let ingested = app.post("/v1/rag/ingest", &ingest_body("manuals")).await;
    assert_eq!(ingested.status, 200, "{}", ingested.text);
    let openai: Vec<_> = server.requests().into_iter().filter(|seen| seen.uri == "/v1/embeddings").collect();
    assert_eq!(openai.len(), 2, "batch_size 2 splits 3 texts into 2 requests");
    assert_eq!(openai[0].header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(openai[0].json()["model"], "toy-openai");
    assert_eq!(inputs(&openai[0].json()).len() + inputs(&openai[1].json()).len(), 3);
    let found = app.post("/v1/rag/query", &json!({"collection": "manuals", "query": "refunds after a return"})).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert!(found.json["results"][0]["text"].as_str().unwrap().starts_with("Refunds"), "{}", found.text);

    let listed = app.get("/v1/rag/collections").await;
    let embedders: Vec<(String, String)> = listed.json["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["name"].as_str().unwrap().to_string(), entry["embedder"].as_str().unwrap().to_string()))
        .collect();
    assert!(embedders.contains(&("notes".to_string(), "ollama:toy".to_string())), "{embedders:?}");
    assert!(embedders.contains(&("manuals".to_string(), "openai:toy-openai".to_string())), "{embedders:?}");
}

#[tokio::test]
async fn a_collection_refuses_vectors_of_another_embedder_and_failures_are_502() {
    let server = embedding_server().await;
    let app = TestApp::start(&[("runtime.yaml", &runtime_yaml(&server.url, "toy"))]).await;
    assert_eq!(app.post("/v1/rag/ingest", &ingest_body("notes")).await.status, 200);

    // The configured default model changes: the old collection must not mix or compare vectors.
    std::fs::write(app.config_dir.path().join("runtime.yaml"), runtime_yaml(&server.url, "toy-v2")).unwrap();
    let app = app.restart().await;
    let before = server.requests().len();
    let query = app.post("/v1/rag/query", &json!({"collection": "notes", "query": "battery"})).await;
    assert_eq!(query.status, 409, "{}", query.text);
    let detail = query.json["detail"].as_str().unwrap();
    assert!(detail.contains("ollama:toy") && detail.contains("ollama:toy-v2"), "{detail}");
    let ingest = app.post("/v1/rag/ingest", &ingest_body("notes")).await;
    assert_eq!(ingest.status, 409, "{}", ingest.text);
    assert_eq!(server.requests().len(), before, "refused before spending any embedding call");
    // Its data is intact, and deleting it lets the new embedder start it over.
    assert_eq!(app.get("/v1/rag/collections").await.json["collections"][0]["chunks"], 3);
    assert_eq!(app.delete("/v1/rag/collections/notes").await.status, 200);
    assert_eq!(app.post("/v1/rag/ingest", &ingest_body("notes")).await.status, 200);
    assert_eq!(app.post("/v1/rag/query", &json!({"collection": "notes", "query": "battery"})).await.status, 200);

    // A failing embedding service is a 502 naming it, and the ingest stores nothing.
    std::fs::write(app.config_dir.path().join("runtime.yaml"), runtime_yaml(&server.url, "broken")).unwrap();
    let app = app.restart().await;
    let failed = app.post("/v1/rag/ingest", &ingest_body("fresh")).await;
    assert_eq!(failed.status, 502, "{}", failed.text);
    let detail = failed.json["detail"].as_str().unwrap();
    assert!(detail.contains("ollama:broken") && detail.contains("500") && detail.contains("model crashed"), "{detail}");
    let query = app.post("/v1/rag/query", &json!({"collection": "fresh", "query": "battery"})).await;
    assert_eq!(query.status, 404, "nothing was stored: {}", query.text);

    // An embedding service that is not there: a 502 that says so.
    let dead = crate::providers::dead_url();
    std::fs::write(app.config_dir.path().join("runtime.yaml"), runtime_yaml(&dead, "toy")).unwrap();
    let app = app.restart().await;
    let failed = app.post("/v1/rag/ingest", &ingest_body("fresh")).await;
    assert_eq!(failed.status, 502, "{}", failed.text);
    let detail = failed.json["detail"].as_str().unwrap();
    assert!(detail.contains("ollama:toy") && detail.contains("Connection refused"), "{detail}");
}

#[test]
fn embedder_config_problems_name_the_key() {
    let dir = ConfigDir::new(&[(
        "runtime.yaml",
        "kind: RuntimeConfig\nspec:\n  rag:\n    embedder: {provider: ollama}\n    collections:\n      a:\n        \
         embedder: {provider: cohere, model: x}\n      b:\n        embedder: {provider: openai, model: m, batch_size: 0, \
         endpoint: 'ftp://x'}\n      c:\n        embedder: {provider: local, model: x, colour: red}\n",
    )]);
    let error = astromesh::config::Config::load(
        astromesh::config::ConfigSource::Dir(dir.path().to_path_buf()),
        &astromesh::config::Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "spec.rag.embedder.model: an ollama embedder needs a model name",
        "spec.rag.collections.a.embedder.provider: unknown embedder provider \"cohere\"",
        "spec.rag.collections.b.embedder.endpoint",
        "spec.rag.collections.c.embedder.model: only applies to a remote embedder",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in:\n{error}");
    }
}
