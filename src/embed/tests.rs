//! Embedder tests: parity with sentence-transformers, batching, ordering, laziness.

use std::sync::Arc;

use super::Embedder;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm_a: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norm_b: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm_a * norm_b)
}

fn reference() -> Vec<(String, Vec<f32>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm-reference.json");
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fixture["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let text = item["text"].as_str().unwrap().to_string();
            let vector = item["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            (text, vector)
        })
        .collect()
}

#[tokio::test]
async fn matches_sentence_transformers_on_the_reference_fixture() {
    let embedder = Embedder::new(8);
    assert!(!embedder.is_loaded(), "the model loads lazily");
    let items = reference();
    assert!(items.len() >= 10);
    let texts = items.iter().map(|(text, _)| text.clone()).collect();
    let vectors = embedder.embed(texts).await.unwrap();
    assert!(embedder.is_loaded());
    for ((text, expected), ours) in items.iter().zip(&vectors) {
        assert_eq!(ours.len(), embedder.dimension());
        let similarity = cosine(ours, expected);
        assert!(similarity >= 0.9999, "cosine {similarity} for {text:?}");
        let norm: f32 = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
}

#[tokio::test]
async fn concurrent_callers_get_their_own_vectors_in_order() {
    let embedder = Arc::new(Embedder::new(4));
    let items = reference();
    let alone: Vec<Vec<f32>> = embedder.embed(items.iter().map(|(text, _)| text.clone()).collect()).await.unwrap();
    let mut tasks = Vec::new();
    for (item_idx, (text, _)) in items.iter().enumerate().take(6) {
        let embedder = Arc::clone(&embedder);
        let texts = vec![text.clone(), "a second text to batch with".to_string(), text.clone()];
        tasks.push(tokio::spawn(async move { (item_idx, embedder.embed(texts).await.unwrap()) }));
    }
    for task in tasks {
        let (item_idx, vectors) = task.await.unwrap();
        assert_eq!(vectors.len(), 3);
        assert!(cosine(&vectors[0], &alone[item_idx]) > 0.99999);
        assert!(cosine(&vectors[2], &alone[item_idx]) > 0.99999);
    }
}

#[tokio::test]
async fn long_texts_are_truncated_and_empty_input_is_free() {
    let embedder = Embedder::new(2);
    assert!(embedder.embed(Vec::new()).await.unwrap().is_empty());
    assert!(!embedder.is_loaded(), "an empty call does not load the model");
    let long = "word ".repeat(2000);
    let vectors = embedder.embed(vec![long, String::new()]).await.unwrap();
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().all(|vector| vector.len() == 384 && vector.iter().all(|x| x.is_finite())));
}
