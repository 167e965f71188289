//! Local GGUF models run inside the daemon with candle: `provider: local` / `source: local`.
//!
//! `LocalModels` is the registry: one entry (header summary + generation worker) per canonical
//! file path, so agents naming the same file share one loaded model. `LocalModel` is the
//! `ChatModel` adapter: it renders the family's chat template (with tool schemas), hands the
//! prompt to the worker, streams tokens back and parses tool calls out of the answer.
//! Not here: file formats (`gguf`), tokenizers (`tokenizer`), templates and tool-call parsing
//! (`template`), the generation loop and its queue (`worker`).

mod gguf;
mod template;
mod tokenizer;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub use gguf::convert;
use gguf::{Family, GgufSummary};
use worker::{GenerationEvent, Job, LoadState, SamplingSettings, Worker};

use super::{Capabilities, ChatModel, ChatRequest, ChatResponse, ModelCall, ProviderError, TokenSink, Usage};
use crate::config::model::ModelCandidate;

/// Generated tokens when neither the YAML nor the request sets `max_tokens`.
const DEFAULT_MAX_TOKENS: usize = 512;
/// llama.cpp's and Ollama's default.
const DEFAULT_TEMPERATURE: f64 = 0.8;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("model file \"{name}\" not found (looked for {looked})")]
    NotFound { name: String, looked: String },
    #[error("unusable GGUF file: {0}")]
    Format(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("the prompt has {tokens} tokens; the model's context holds {context_length}")]
    PromptTooLong { tokens: usize, context_length: usize },
    #[error("the local model is busy: a generation is running and {queue_size} more are queued (queue_size); try again later")]
    Busy { queue_size: usize },
    #[error("the local model's worker has stopped")]
    WorkerGone,
    #[error("invalid parameter {key}: {reason}")]
    Parameter { key: String, reason: String },
}

struct Entry {
    path: PathBuf,
    summary: GgufSummary,
    worker: Worker,
}

/// What `/v1/system/doctor` says about one model file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModelReport {
    pub file: String,
    pub size_bytes: u64,
    pub family: String,
    pub quantisation: String,
    pub loaded: bool,
    /// Load time and tokenizer origin once loaded, the error if loading failed.
    pub detail: Option<String>,
}

/// The registry of local models, keyed by canonical path. Cheap to share (`Arc`).
pub struct LocalModels {
    models_dir: PathBuf,
    entries: Mutex<BTreeMap<PathBuf, Arc<Entry>>>,
}

impl LocalModels {
    /// `models_dir` is where bare names (`qwen2.5-0.5b-instruct-q4_0.gguf`) are looked up.
    pub fn new(models_dir: PathBuf) -> LocalModels {
        LocalModels { models_dir, entries: Mutex::new(BTreeMap::new()) }
    }

    fn resolve(&self, name: &str) -> Result<PathBuf, LocalError> {
        let given = Path::new(name);
        let mut looked = Vec::new();
        let mut candidates = Vec::new();
        if given.is_absolute() {
            candidates.push(given.to_path_buf());
        } else {
            candidates.push(self.models_dir.join(given));
            if given.extension().is_none() {
                candidates.push(self.models_dir.join(format!("{name}.gguf")));
            }
        }
        for candidate in candidates {
            if let Ok(path) = candidate.canonicalize() {
                return Ok(path);
            }
            looked.push(candidate.display().to_string());
        }
        Err(LocalError::NotFound { name: name.to_string(), looked: looked.join(", ") })
    }

    /// The adapter for a candidate; reads the file's header (not its weights) the first time
    /// a path is seen. Blocking: called while the runtime is built.
    pub(crate) fn model(&self, candidate: &ModelCandidate) -> Result<Arc<dyn ChatModel>, LocalError> {
        let name = candidate.model_path.as_deref().unwrap_or(candidate.model.as_str());
        let path = self.resolve(name)?;
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = match entries.get(&path) {
            Some(entry) => Arc::clone(entry),
            None => {
                let summary = gguf::summarise(&path)?;
                if summary.needs_requantise() {
                    tracing::warn!(file = %path.display(), "the model has Q5_0/Q5_1 tensors; they will be re-quantised to Q8_0 at load");
                }
                let worker = Worker::start(path.clone(), summary.clone(), candidate.queue_size)?;
                let entry = Arc::new(Entry { path: path.clone(), summary, worker });
                entries.insert(path, Arc::clone(&entry));
                entry
            }
        };
        Ok(Arc::new(LocalModel {
            entry,
            provider: candidate.provider.clone(),
            model: candidate.model.clone(),
            parameters: candidate.parameters.clone(),
            timeout: candidate.timeout,
            next_call: AtomicU64::new(0),
        }))
    }

    /// One report per distinct file.
    pub fn report(&self) -> Vec<LocalModelReport> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .values()
            .map(|entry| {
                let state = entry.worker.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
                let (loaded, detail) = match state {
                    LoadState::NotLoaded => (false, None),
                    LoadState::Loaded { tokenizer, load_ms } => {
                        (true, Some(format!("loaded in {load_ms} ms; tokenizer from {tokenizer}")))
                    }
                    LoadState::Failed(reason) => (false, Some(reason)),
                };
                LocalModelReport {
                    file: entry.path.display().to_string(),
                    size_bytes: entry.summary.size_bytes,
                    family: entry.summary.family.as_str().to_string(),
                    quantisation: entry.summary.quantisation(),
                    loaded,
                    detail,
                }
            })
            .collect()
    }
}

struct LocalModel {
    entry: Arc<Entry>,
    provider: String,
    model: String,
    parameters: Map<String, Value>,
    timeout: Duration,
    next_call: AtomicU64,
}

fn number(parameters: &Map<String, Value>, key: &str) -> Result<Option<f64>, LocalError> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or_else(|| LocalError::Parameter {
            key: key.to_string(),
            reason: format!("expected a number, got {value}"),
        }),
    }
}

fn count(parameters: &Map<String, Value>, key: &str) -> Result<Option<u64>, LocalError> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| LocalError::Parameter {
            key: key.to_string(),
            reason: format!("expected a non-negative integer, got {value}"),
        }),
    }
}

/// temperature, top_p, top_k, seed, max_tokens (or num_predict), stop (a string or a list).
pub(crate) fn sampling_settings(parameters: &Map<String, Value>) -> Result<SamplingSettings, LocalError> {
    let stop = match parameters.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| LocalError::Parameter { key: "stop".into(), reason: "expected strings".into() })?,
        Some(other) => {
            return Err(LocalError::Parameter {
                key: "stop".into(),
                reason: format!("expected a string or a list, got {other}"),
            })
        }
    };
    let top_p = number(parameters, "top_p")?;
    if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(LocalError::Parameter { key: "top_p".into(), reason: "must be in (0, 1]".into() });
    }
    let max_tokens = match count(parameters, "max_tokens")? {
        Some(max) => Some(max),
        None => count(parameters, "num_predict")?,
    };
    Ok(SamplingSettings {
        temperature: number(parameters, "temperature")?.unwrap_or(DEFAULT_TEMPERATURE),
        top_p,
        top_k: count(parameters, "top_k")?.filter(|k| *k > 0).map(|k| k as usize),
        seed: count(parameters, "seed")?.unwrap_or_else(rand::random),
        max_tokens: max_tokens.map_or(DEFAULT_MAX_TOKENS, |max| max as usize),
        stop,
    })
}

impl LocalModel {
    fn describe_error(&self, error: LocalError) -> ProviderError {
        match error {
            LocalError::Busy { .. } => ProviderError::Busy(error.to_string()),
            other => ProviderError::Unsupported(format!("{}: {other}", self.entry.path.display())),
        }
    }

    /// Generates on the worker thread and awaits its events; dropping this future (a caller
    /// that gave up) closes the channel, and the worker stops at its next token.
    async fn run(
        &self,
        request: &ChatRequest,
        timeout: Duration,
        mut tokens: Option<&mut TokenSink>,
    ) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        let family = self.entry.summary.family;
        let settings = sampling_settings(&request.merged_parameters(&self.parameters))
            .map_err(|error| self.describe_error(error))?;
        let prompt = template::render(family, &request.messages, &request.tools);
        let hold_from = match (family, request.tools.is_empty()) {
            (_, true) => None,
            (Family::Qwen2, false) => Some("<tool_call>"),
            (Family::Llama, false) => Some("{\""),
        };
        // Tokens flow back through a small bounded channel: a slow reader slows the worker.
        let (events, mut received) = tokio::sync::mpsc::channel(64);
        let job = Job { prompt, settings, hold_from, events };
        self.entry.worker.submit(job).map_err(|error| self.describe_error(error))?;
        let limit = timeout.min(self.timeout);
        let deadline = tokio::time::Instant::from_std(started + limit);
        let generation = loop {
            match tokio::time::timeout_at(deadline, received.recv()).await {
                Ok(Some(GenerationEvent::Token(text))) => {
                    if let Some(tokens) = tokens.as_deref_mut() {
                        tokens.send(&text).await;
                    }
                }
                Ok(Some(GenerationEvent::Done(result))) => break result.map_err(|error| self.describe_error(error))?,
                // Returning drops `received`: the worker sees the channel closed and stops.
                Err(_) => {
                    return Err(ProviderError::Timeout { url: self.entry.path.display().to_string(), timeout: limit })
                }
                Ok(None) => return Err(self.describe_error(LocalError::WorkerGone)),
            }
        };
        tracing::debug!(
            prompt_tokens = generation.prompt_tokens,
            generated_tokens = generation.generated_tokens,
            prompt_seconds = generation.prompt_seconds,
            generation_seconds = generation.generation_seconds,
            "local generation finished"
        );
        let mut next_id = || format!("call_local_{}", self.next_call.fetch_add(1, Ordering::Relaxed));
        let (content, tool_calls) = if request.tools.is_empty() {
            (generation.text, Vec::new())
        } else {
            template::parse_tool_calls(family, &generation.text, &mut next_id)
        };
        let finish_reason = if tool_calls.is_empty() { generation.finish_reason } else { "tool_calls" };
        Ok(ChatResponse {
            content,
            tool_calls,
            usage: Usage {
                input_tokens: generation.prompt_tokens as u64,
                output_tokens: generation.generated_tokens as u64,
                cached_tokens: 0,
            },
            model: self.model.clone(),
            provider: self.provider.clone(),
            reasoning_content: None,
            finish_reason: Some(finish_reason.to_string()),
            latency: started.elapsed(),
        })
    }
}

impl ChatModel for LocalModel {
    fn complete<'a>(&'a self, request: &'a ChatRequest, timeout: Duration) -> ModelCall<'a, ChatResponse> {
        Box::pin(self.run(request, timeout, None))
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
        timeout: Duration,
        tokens: &'a mut TokenSink,
    ) -> ModelCall<'a, ChatResponse> {
        Box::pin(self.run(request, timeout, Some(tokens)))
    }

    /// The file was readable when the adapter was built; loading is reported by the doctor.
    fn health(&self, _timeout: Duration) -> ModelCall<'_, ()> {
        let state = match &*self.entry.worker.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) {
            LoadState::Failed(reason) => Err(ProviderError::Unsupported(reason.clone())),
            _ => Ok(()),
        };
        Box::pin(std::future::ready(state))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { tools: true, vision: false }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// Figures of one benchmark generation (benches/local.rs).
#[derive(Debug, Clone)]
pub struct BenchFigures {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_seconds: f64,
    pub generation_seconds: f64,
}

/// Loads `path` and generates greedily, outside any worker, so a benchmark can choose the
/// thread pool it runs in.
pub fn bench_generate(path: &Path, user_message: &str, max_tokens: usize) -> Result<BenchFigures, LocalError> {
    let summary = gguf::summarise(path)?;
    let worker = Worker::start(path.to_path_buf(), summary.clone(), 0)?;
    let prompt = template::render(summary.family, &[crate::providers::ChatMessage::user(user_message)], &[]);
    let settings =
        SamplingSettings { temperature: 0.0, top_p: None, top_k: None, seed: 0, max_tokens, stop: Vec::new() };
    let (events, mut received) = tokio::sync::mpsc::channel(1024);
    let job = Job { prompt, settings, hold_from: None, events };
    worker.submit(job)?;
    loop {
        match received.blocking_recv() {
            Some(GenerationEvent::Token(_)) => {}
            Some(GenerationEvent::Done(result)) => {
                let generation = result?;
                return Ok(BenchFigures {
                    prompt_tokens: generation.prompt_tokens,
                    generated_tokens: generation.generated_tokens,
                    prompt_seconds: generation.prompt_seconds,
                    generation_seconds: generation.generation_seconds,
                });
            }
            None => return Err(LocalError::WorkerGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parameters(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_sampling_parameter_is_read() {
        let settings = sampling_settings(&parameters(
            json!({"temperature": 0.3, "top_p": 0.9, "top_k": 40, "seed": 7, "max_tokens": 12, "stop": ["\n\n", "END"]}),
        ))
        .unwrap();
        assert_eq!(
            settings,
            SamplingSettings {
                temperature: 0.3,
                top_p: Some(0.9),
                top_k: Some(40),
                seed: 7,
                max_tokens: 12,
                stop: vec!["\n\n".into(), "END".into()]
            }
        );
        let single = sampling_settings(&parameters(json!({"stop": "END", "num_predict": 3}))).unwrap();
        assert_eq!(
            (single.stop, single.max_tokens, single.temperature),
            (vec!["END".to_string()], 3, DEFAULT_TEMPERATURE)
        );
    }

    #[test]
    fn bad_sampling_parameters_are_refused_with_their_key() {
        let error = sampling_settings(&parameters(json!({"top_p": 1.5}))).unwrap_err();
        assert_eq!(error.to_string(), "invalid parameter top_p: must be in (0, 1]");
        let error = sampling_settings(&parameters(json!({"max_tokens": "many"}))).unwrap_err();
        assert_eq!(error.to_string(), "invalid parameter max_tokens: expected a non-negative integer, got \"many\"");
    }

    #[test]
    fn bare_names_are_looked_up_in_the_models_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tiny.gguf"), b"not really").unwrap();
        let models = LocalModels::new(dir.path().to_path_buf());
        let expected = dir.path().join("tiny.gguf").canonicalize().unwrap();
        assert_eq!(models.resolve("tiny.gguf").unwrap(), expected);
        assert_eq!(models.resolve("tiny").unwrap(), expected);
        let missing = models.resolve("absent").unwrap_err().to_string();
        assert!(missing.starts_with("model file \"absent\" not found"), "{missing}");
    }
}
