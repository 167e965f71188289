//! Agents and RAG: `spec.knowledge` in the prompt, the rag tools, and semantic memory.

use serde_json::json;

use crate::runs::app_with;
use crate::support::llm::{Reply, ScriptedLlm};

const DOCS: &[&str] = &[
    "The Zephyr-9 router supports a maximum throughput of 40 gigabits per second.",
    "Our office cafeteria serves vegetarian lasagna every Thursday.",
    "Warranty claims must be filed within 24 months of purchase.",
];

async fn ingest(app: &crate::support::TestApp, collection: &str) {
    let documents: Vec<_> = DOCS.iter().map(|text| json!({"text": text, "metadata": {"source": "kb"}})).collect();
    let answer = app.post("/v1/rag/ingest", &json!({"collection": collection, "documents": documents})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn knowledge_is_retrieved_into_the_prompt() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("40 Gbps."));
    let spec = "  knowledge: {collection: products, top_k: 1}\n  tools:\n    - {name: rag_query, type: builtin}\n    - {name: rag_ingest, type: builtin}\n";
    let app = app_with(&llm, &[("support", spec)]).await;
    // Before anything is ingested the run still works, with empty knowledge.
    let empty = app.post("/v1/agents/support/run", &json!({"query": "hello"})).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    ingest(&app, "products").await;
    let answer = app.post("/v1/agents/support/run", &json!({"query": "How fast is the Zephyr-9 router?"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let requests = llm.chat_requests();
    let system = requests.last().unwrap().body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("You are support."), "{system}");

    // The prompt template sees `knowledge`: prove it with a template that prints it.
    let llm2 = ScriptedLlm::start().await;
    llm2.set_default(Reply::text("ok"));
    let yaml = format!(
        "apiVersion: astromesh/v1\nkind: Agent\nmetadata: {{name: kb}}\nspec:\n  model:\n    primary: {{provider: openai_compat, model: m, endpoint: \"{}/v1\"}}\n  prompts:\n    system: \"Facts: {{{{ knowledge }}}}\"\n  knowledge: {{collection: products, top_k: 1}}\n",
        llm2.url()
    );
    let app2 = crate::support::TestApp::start(&[("agents/kb.agent.yaml", &yaml)]).await;
    ingest(&app2, "products").await;
    app2.post("/v1/agents/kb/run", &json!({"query": "How fast is the Zephyr-9 router?"})).await;
    let system = llm2.chat_requests()[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert_eq!(system, format!("Facts: {}", DOCS[0]));
    app2.stop().await;

    // The rag tools use the agent's collection.
    llm.push(Reply::tool_call(
        "rag_ingest",
        json!({"document": "The Zephyr-10 router reaches 100 gigabits per second."}),
    ));
    llm.push(Reply::tool_call("rag_query", json!({"query": "Zephyr-10 speed", "top_k": 1})));
    llm.push(Reply::text("100 Gbps."));
    let answer = app.post("/v1/agents/support/run", &json!({"query": "learn and answer"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let calls = answer.json["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["output"]["ingested"], true);
    assert_eq!(calls[0]["output"]["collection"], "products");
    assert!(calls[1]["output"]["results"][0]["text"].as_str().unwrap().contains("Zephyr-10"), "{}", calls[1]);
    app.stop().await;
}

#[tokio::test]
async fn semantic_memory_stores_turns_and_answers_searches() {
    let llm = ScriptedLlm::start().await;
    llm.set_default(Reply::text("Noted."));
    let spec = "  memory:\n    semantic: {backend: chromadb, similarity_threshold: 0.3, max_results: 3}\n";
    let app = app_with(&llm, &[("rememberer", spec), ("plain", "")]).await;
    app.post(
        "/v1/agents/rememberer/run",
        &json!({"query": "My favourite colour is deep ocean blue.", "session_id": "s1"}),
    )
    .await;
    app.post("/v1/agents/rememberer/run", &json!({"query": "I was born in Lisbon in 1990.", "session_id": "s2"})).await;
    let answer = app.get("/v1/memory/rememberer/semantic?query=what%20colour%20do%20I%20like&top_k=2").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let results = answer.json["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 2);
    assert_eq!(results[0]["text"], "My favourite colour is deep ocean blue.");
    assert_eq!(results[0]["metadata"]["session_id"], "s1");
    assert!(results[0]["metadata"]["timestamp"].is_string());
    assert!(results[0]["score"].as_f64().unwrap() >= 0.3);
    // The third run's prompt sees the earlier turn through memory.semantic (the run works).
    let third =
        app.post("/v1/agents/rememberer/run", &json!({"query": "Which colour do I like?", "session_id": "s3"})).await;
    assert_eq!(third.status, 200);

    let none = app.get("/v1/memory/plain/semantic?query=anything").await;
    assert_eq!((none.status, none.json.clone()), (200, json!({"results": []})));
    let missing = app.get("/v1/memory/rememberer/semantic").await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.json["detail"][0]["loc"], json!(["query", "query"]));
    let bad_k = app.get("/v1/memory/rememberer/semantic?query=x&top_k=0").await;
    assert_eq!(bad_k.status, 422);
    let unknown = app.get("/v1/memory/nobody/semantic?query=x").await;
    assert_eq!(unknown.status, 404);
    app.stop().await;
}
