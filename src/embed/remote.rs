//! Remote embedders: an Ollama server (`/api/embed`) or an OpenAI-compatible service
//! (`/embeddings`), for collections configured to use one instead of the local model.
//!
//! Calls are async reqwest requests on one pooled client, `batch_size` texts at a time, each
//! bounded by the configured timeout (body included); redirects stay within the endpoint's
//! origin, so the key never travels elsewhere. Every answer is checked (one vector per text, in order,
//! one dimension throughout, finite numbers) and L2-normalised, because the vector index scores
//! by dot product. The key is read at call time from `api_key` or `api_key_env`, so rotating the
//! variable needs no restart. Not here: which collection uses which embedder (`rag`).

use serde_json::{json, Value};

use super::EmbedError;
use crate::config::{RemoteEmbedderConfig, RemoteKind};
use crate::net::BodyError;

/// Answers are read up to this many bytes (64 texts of 4,096 floats as JSON fit easily).
const BODY_LIMIT: u64 = 256 * 1024 * 1024;

/// A configured remote embedder. Cheap to share (`Arc`).
pub struct RemoteEmbedder {
    config: RemoteEmbedderConfig,
    /// `Err(reason)`: the client could not be built (TLS setup); every call fails with it.
    client: Result<reqwest::Client, String>,
}

impl RemoteEmbedder {
    pub fn new(config: RemoteEmbedderConfig) -> RemoteEmbedder {
        let client =
            crate::net::client(|builder| builder.timeout(config.timeout).redirect(crate::net::same_origin_redirects()));
        RemoteEmbedder { config, client }
    }

    /// `ollama:<model>` or `openai:<model>`: what a collection records as its embedder.
    pub fn id(&self) -> String {
        format!("{}:{}", self.config.kind.name(), self.config.model)
    }

    /// Embeds `texts` in order, `batch_size` per request; L2-normalised vectors.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size) {
            let mut answer = self.request(batch).await?;
            if let Some(first) = vectors.first() {
                if let Some(other) = answer.iter().find(|vector| vector.len() != first.len()) {
                    return Err(self.fault(format!(
                        "returned vectors of {} and {} dimensions in one ingest",
                        first.len(),
                        other.len()
                    )));
                }
            }
            vectors.append(&mut answer);
        }
        Ok(vectors)
    }

    /// One request for `batch`; the vectors in order, normalised.
    async fn request(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (path, body) = match self.config.kind {
            RemoteKind::Ollama => ("/api/embed", json!({ "model": self.config.model, "input": batch })),
            RemoteKind::OpenAi => {
                ("/embeddings", json!({ "model": self.config.model, "input": batch, "encoding_format": "float" }))
            }
        };
        let url = format!("{}{path}", self.config.endpoint);
        let client = self.client.as_ref().map_err(|reason| self.fault(format!("no HTTP client: {reason}")))?;
        let mut request = client.post(&url).json(&body);
        if let Some(key) = self.key() {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.fault(format!("{url}: {}", describe(&error, self.config.timeout))))?;
        let status = response.status().as_u16();
        let bytes = crate::net::read_body(response, BODY_LIMIT).await.map_err(|error| match error {
            BodyError::Transport { error, .. } => {
                self.fault(format!("{url}: reading the answer: {}", describe(&error, self.config.timeout)))
            }
            BodyError::TooLarge => self.fault(format!("{url}: the answer is larger than {} MiB", BODY_LIMIT >> 20)),
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            let mut quoted = crate::providers::http::excerpt(&text);
            if let Some(key) = self.key().filter(|key| key.len() >= 4) {
                quoted = quoted.replace(&key, "***");
            }
            return Err(self.fault(format!("{url} answered {status}: {quoted}")));
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|error| self.fault(format!("{url}: the answer is not JSON: {error}")))?;
        let vectors = match self.config.kind {
            RemoteKind::Ollama => parse_ollama(&value),
            RemoteKind::OpenAi => parse_openai(&value, batch.len()),
        }
        .map_err(|message| self.fault(format!("{url}: {message}")))?;
        if vectors.len() != batch.len() {
            return Err(self.fault(format!("{url}: {} vectors for {} texts", vectors.len(), batch.len())));
        }
        vectors.into_iter().map(|vector| normalise(vector).map_err(|message| self.fault(message))).collect()
    }

    fn key(&self) -> Option<String> {
        if let Some(key) = &self.config.api_key {
            return Some(key.expose().to_string());
        }
        let env = self.config.api_key_env.as_deref()?;
        std::env::var(env).ok().map(|value| value.trim().to_string()).filter(|value| !value.is_empty())
    }

    fn fault(&self, message: String) -> EmbedError {
        EmbedError::Remote(format!("embedder {}: {message}", self.id()))
    }
}

/// A transport error in words: the timeout, or its causes.
fn describe(error: &reqwest::Error, timeout: std::time::Duration) -> String {
    if error.is_timeout() {
        return format!("no complete answer within {:?}", timeout);
    }
    crate::net::causes(error)
}

/// `{"embeddings": [[f32...], ...]}`.
fn parse_ollama(value: &Value) -> Result<Vec<Vec<f32>>, String> {
    let rows = value.get("embeddings").and_then(Value::as_array).ok_or("the answer has no \"embeddings\" list")?;
    rows.iter().map(floats).collect()
}

/// `{"data": [{"index": i, "embedding": [f32...]}, ...]}`, placed by `index`.
fn parse_openai(value: &Value, expected: usize) -> Result<Vec<Vec<f32>>, String> {
    let rows = value.get("data").and_then(Value::as_array).ok_or("the answer has no \"data\" list")?;
    let mut placed: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, row) in rows.iter().enumerate() {
        let index = row.get("index").and_then(Value::as_u64).map_or(position, |index| index as usize);
        let slot = placed.get_mut(index).ok_or_else(|| format!("index {index} is out of range"))?;
        let embedding = row.get("embedding").ok_or("a data entry has no \"embedding\"")?;
        *slot = Some(floats(embedding)?);
    }
    placed
        .into_iter()
        .enumerate()
        .map(|(index, vector)| vector.ok_or_else(|| format!("no embedding for input {index}")))
        .collect()
}

fn floats(value: &Value) -> Result<Vec<f32>, String> {
    let numbers = value.as_array().ok_or("an embedding is not a list of numbers")?;
    numbers
        .iter()
        .map(|number| number.as_f64().map(|float| float as f32).ok_or_else(|| "an embedding holds a non-number".into()))
        .collect()
}

fn normalise(mut vector: Vec<f32>) -> Result<Vec<f32>, String> {
    if vector.is_empty() {
        return Err("returned an empty vector".to_string());
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err("returned a zero or non-finite vector".to_string());
    }
    vector.iter_mut().for_each(|x| *x /= norm);
    Ok(vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_answers_are_placed_by_index() {
        let value = json!({"data": [{"index": 1, "embedding": [0.0, 2.0]}, {"index": 0, "embedding": [3.0, 0.0]}]});
        assert_eq!(parse_openai(&value, 2).unwrap(), vec![vec![3.0, 0.0], vec![0.0, 2.0]]);
        assert!(parse_openai(&json!({"data": [{"index": 0, "embedding": [1.0]}]}), 2).is_err());
        assert!(parse_openai(&json!({"data": [{"index": 5, "embedding": [1.0]}]}), 1).is_err());
    }

    #[test]
    fn ollama_answers_and_normalisation() {
        let vectors = parse_ollama(&json!({"embeddings": [[3.0, 4.0]]})).unwrap();
        assert_eq!(normalise(vectors[0].clone()).unwrap(), vec![0.6, 0.8]);
        assert!(parse_ollama(&json!({"embedding": [1.0]})).is_err());
        assert!(parse_ollama(&json!({"embeddings": [["x"]]})).is_err());
        assert!(normalise(vec![0.0, 0.0]).is_err());
        assert!(normalise(Vec::new()).is_err());
    }
}
