//! Which embedder turns text into vectors: `spec.rag.embedder` (the default for every
//! collection) and `spec.rag.collections.<name>.embedder` (one collection), resolved.
//!
//! `provider: local` (the default) is the MiniLM model inside the binary; `ollama` calls an
//! Ollama server's `/api/embed`; `openai` (also `openai_compat`) calls an OpenAI-compatible
//! `/embeddings`. Not here: the HTTP calls (`embed::remote`) or which collection uses what
//! (`rag`).

use std::time::Duration;

use indexmap::IndexMap;

use super::file::{EmbedderFile, RagCollectionFile};
use super::{Problems, Secret};

/// Texts per remote request unless `batch_size` says otherwise.
const DEFAULT_REMOTE_BATCH: usize = 64;
const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The wire protocol of a remote embedder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// `POST {endpoint}/api/embed` with `{"model", "input": [...]}` → `{"embeddings": [[...]]}`.
    Ollama,
    /// `POST {endpoint}/embeddings` with `{"model", "input": [...]}` → `{"data": [{"index", "embedding"}]}`.
    OpenAi,
}

impl RemoteKind {
    pub fn name(self) -> &'static str {
        match self {
            RemoteKind::Ollama => "ollama",
            RemoteKind::OpenAi => "openai",
        }
    }
}

/// A remote embedding service, validated.
#[derive(Debug, Clone)]
pub struct RemoteEmbedderConfig {
    pub kind: RemoteKind,
    /// Base URL without a trailing slash (`http://localhost:11434`, `https://api.openai.com/v1`).
    pub endpoint: String,
    pub model: String,
    pub api_key: Option<Secret>,
    /// Environment variable holding the key, read when a request is sent.
    pub api_key_env: Option<String>,
    /// Bound on one HTTP request (connect + answer).
    pub timeout: Duration,
    /// Texts per request; an ingest of more texts makes several requests.
    pub batch_size: usize,
}

/// The embedder of a collection.
#[derive(Debug, Clone, Default)]
pub enum EmbedderConfig {
    /// all-MiniLM-L6-v2, inside the binary.
    #[default]
    Local,
    Remote(RemoteEmbedderConfig),
}

/// Resolves `spec.rag.embedder` and `spec.rag.collections`; problems are pushed under their keys.
pub(crate) fn resolve(
    default: Option<&EmbedderFile>,
    collections: Option<&IndexMap<String, RagCollectionFile>>,
    problems: &mut Problems,
) -> (EmbedderConfig, IndexMap<String, EmbedderConfig>) {
    let default = default.map_or(EmbedderConfig::Local, |file| resolve_one(file, "spec.rag.embedder", problems));
    let mut per_collection = IndexMap::new();
    for (name, collection) in collections.into_iter().flatten() {
        if name.is_empty() {
            problems.push("spec.rag.collections", "a collection name must not be empty");
            continue;
        }
        if let Some(file) = &collection.embedder {
            let key = format!("spec.rag.collections.{name}.embedder");
            per_collection.insert(name.clone(), resolve_one(file, &key, problems));
        }
    }
    (default, per_collection)
}

fn resolve_one(file: &EmbedderFile, key: &str, problems: &mut Problems) -> EmbedderConfig {
    let provider = file.provider.as_deref().unwrap_or("local");
    let (kind, default_endpoint) = match provider {
        "local" => {
            for (field, set) in [
                ("model", file.model.is_some()),
                ("endpoint", file.endpoint.is_some()),
                ("api_key", file.api_key.is_some()),
                ("api_key_env", file.api_key_env.is_some()),
            ] {
                if set {
                    problems.push(&format!("{key}.{field}"), "only applies to a remote embedder (ollama or openai)");
                }
            }
            return EmbedderConfig::Local;
        }
        "ollama" => (RemoteKind::Ollama, "http://localhost:11434"),
        "openai" | "openai_compat" => (RemoteKind::OpenAi, "https://api.openai.com/v1"),
        other => {
            problems.push(
                &format!("{key}.provider"),
                format!("unknown embedder provider \"{other}\" (expected local, ollama or openai)"),
            );
            return EmbedderConfig::Local;
        }
    };
    let Some(model) = file.model.clone().filter(|model| !model.trim().is_empty()) else {
        problems.push(&format!("{key}.model"), format!("an {provider} embedder needs a model name"));
        return EmbedderConfig::Local;
    };
    let endpoint = file.endpoint.clone().unwrap_or_else(|| default_endpoint.to_string());
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        problems.push(&format!("{key}.endpoint"), format!("\"{endpoint}\" is not an http(s) URL"));
        return EmbedderConfig::Local;
    }
    let timeout = problems.seconds(file.timeout, &format!("{key}.timeout")).unwrap_or(DEFAULT_REMOTE_TIMEOUT);
    let batch_size = match file.batch_size {
        Some(0) => {
            problems.push(&format!("{key}.batch_size"), "must be at least 1");
            DEFAULT_REMOTE_BATCH
        }
        Some(size) => size,
        None => DEFAULT_REMOTE_BATCH,
    };
    let api_key_env = file.api_key_env.clone().or_else(|| match kind {
        RemoteKind::OpenAi => Some("OPENAI_API_KEY".to_string()),
        RemoteKind::Ollama => None,
    });
    EmbedderConfig::Remote(RemoteEmbedderConfig {
        kind,
        endpoint: endpoint.trim_end_matches('/').to_string(),
        model,
        api_key: file.api_key.clone().map(Secret::new),
        api_key_env,
        timeout,
        batch_size,
    })
}
