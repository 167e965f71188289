//! The generation worker: one named thread per model file, owning the weights and a bounded queue.
//!
//! A forward pass is CPU-bound for tens of milliseconds, and the weights hold a KV cache, so a
//! model serves one generation at a time on its own thread (not the blocking pool, which would
//! oversubscribe the cores candle's matmuls already use). Callers beyond `1 + queue_size`
//! in flight are refused at once (`LocalError::Busy`, a 503) instead of waiting without bound.
//! The model loads on the first job, so startup stays fast. Not here: prompts (`template`),
//! the `ChatModel` adapter (`mod.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_transformers::generation::{LogitsProcessor, Sampling};
use tokio::sync::mpsc::Sender;

use super::gguf::{self, GgufSummary, Weights};
use super::tokenizer::{self, ModelTokenizer};
use super::LocalError;

/// Sampling settings of one call, from the candidate's parameters and the request's overrides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SamplingSettings {
    /// 0 (or less): greedy.
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub seed: u64,
    pub max_tokens: usize,
    pub stop: Vec<String>,
}

impl SamplingSettings {
    fn sampling(&self) -> Sampling {
        if self.temperature <= 0.0 {
            return Sampling::ArgMax;
        }
        let temperature = self.temperature;
        match (self.top_k, self.top_p) {
            (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
            (Some(k), None) => Sampling::TopK { k, temperature },
            (None, Some(p)) => Sampling::TopP { p, temperature },
            (None, None) => Sampling::All { temperature },
        }
    }
}

/// One request for the worker.
pub(crate) struct Job {
    pub prompt: String,
    pub settings: SamplingSettings,
    /// Text that, once generated, stops further streaming (held back, then parsed by the caller).
    pub hold_from: Option<&'static str>,
    /// Awaited by the adapter; this thread sends with `blocking_send` (it is no runtime thread).
    /// A caller that gives up (deadline, dropped call) drops the receiver: once the channel is
    /// closed the worker stops at the next token, or skips the job if it has not started.
    pub events: Sender<GenerationEvent>,
}

pub(crate) enum GenerationEvent {
    Token(String),
    Done(Result<Generation, LocalError>),
}

/// A finished generation.
#[derive(Debug, Clone)]
pub(crate) struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// "stop" (stop token or string) or "length" (max_tokens or the context ran out).
    pub finish_reason: &'static str,
    pub prompt_seconds: f64,
    pub generation_seconds: f64,
}

/// What the doctor reports about a model's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LoadState {
    NotLoaded,
    Loaded { tokenizer: &'static str, load_ms: u64 },
    Failed(String),
}

/// The handle callers hold: admission counter, queue, shared load state.
pub(crate) struct Worker {
    jobs: SyncSender<Job>,
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    pub state: Arc<Mutex<LoadState>>,
}

impl Worker {
    /// Starts the thread; the model loads on the first job.
    pub fn start(path: PathBuf, summary: GgufSummary, queue_size: usize) -> Result<Worker, LocalError> {
        let capacity = queue_size + 1;
        let (jobs, receiver) = std::sync::mpsc::sync_channel(capacity);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(LoadState::NotLoaded));
        let thread_state = Arc::clone(&state);
        let thread_in_flight = Arc::clone(&in_flight);
        std::thread::Builder::new()
            .name("local-model".to_string())
            .spawn(move || serve(path, summary, receiver, thread_state, thread_in_flight))
            .map_err(|error| LocalError::Io { path: "thread".to_string(), reason: error.to_string() })?;
        Ok(Worker { jobs, in_flight, capacity, state })
    }

    /// Queues a job, or refuses it when `capacity` jobs are already running or waiting.
    pub fn submit(&self, job: Job) -> Result<(), LocalError> {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(LocalError::Busy { queue_size: self.capacity - 1 });
        }
        // Admission keeps at most `capacity` jobs in the channel, so this never blocks long.
        self.jobs.send(job).map_err(|_| {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            LocalError::WorkerGone
        })
    }
}

struct Loaded {
    weights: Weights,
    tokenizer: ModelTokenizer,
}

fn lock(state: &Mutex<LoadState>) -> std::sync::MutexGuard<'_, LoadState> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serve(
    path: PathBuf,
    summary: GgufSummary,
    jobs: Receiver<Job>,
    state: Arc<Mutex<LoadState>>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut loaded: Option<Loaded> = None;
    while let Ok(job) = jobs.recv() {
        if loaded.is_none() {
            let started = Instant::now();
            let attempt = gguf::open(&path)
                .and_then(|(content, _)| tokenizer::load(&path, &content))
                .and_then(|tokenizer| Ok(Loaded { weights: gguf::load_weights(&path, &summary)?, tokenizer }));
            match attempt {
                Ok(model) => {
                    let load_ms = started.elapsed().as_millis() as u64;
                    tracing::info!(file = %path.display(), load_ms, "local model loaded");
                    *lock(&state) = LoadState::Loaded { tokenizer: model.tokenizer.origin, load_ms };
                    loaded = Some(model);
                }
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "cannot load the local model");
                    *lock(&state) = LoadState::Failed(error.to_string());
                    // Nobody waiting is fine: the caller gave up.
                    let _ = job.events.blocking_send(GenerationEvent::Done(Err(error)));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
            }
        }
        let Some(model) = loaded.as_mut() else { continue };
        if job.events.is_closed() {
            // Its caller gave up while it waited in the queue.
            in_flight.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let result = generate(model, &job, summary.context_length);
        // The caller may have gone (deadline); the answer is then dropped.
        let _ = job.events.blocking_send(GenerationEvent::Done(result));
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bytes at the end of `text` that could be the start of a stop string (held back from the
/// stream until the next token says whether the stop string completes).
fn partial_stop_len(text: &str, stops: &[&str]) -> usize {
    let mut longest = 0;
    for stop in stops {
        for len in (1..stop.len()).rev() {
            if len > longest && text.ends_with(&stop[..len]) && stop.is_char_boundary(len) {
                longest = len;
                break;
            }
        }
    }
    longest
}

fn generate(model: &mut Loaded, job: &Job, context_length: usize) -> Result<Generation, LocalError> {
    let started = Instant::now();
    let tokenizer = &model.tokenizer.tokenizer;
    let encoding =
        tokenizer.encode(job.prompt.as_str(), false).map_err(|error| LocalError::Tokenizer(error.to_string()))?;
    let prompt = encoding.get_ids();
    if prompt.is_empty() || prompt.len() >= context_length {
        return Err(LocalError::PromptTooLong { tokens: prompt.len(), context_length });
    }
    let budget = job.settings.max_tokens.min(context_length - prompt.len());
    let mut logits = model.weights.forward(prompt, 0).map_err(|error| LocalError::Inference(error.to_string()))?;
    let prompt_seconds = started.elapsed().as_secs_f64();
    let generation_started = Instant::now();
    let mut sampler = LogitsProcessor::from_sampling(job.settings.seed, job.settings.sampling());
    let stops: Vec<&str> = job.settings.stop.iter().map(String::as_str).filter(|stop| !stop.is_empty()).collect();
    let mut held: Vec<&str> = stops.clone();
    held.extend(job.hold_from);
    let mut generated: Vec<u32> = Vec::with_capacity(budget);
    let mut text = String::new();
    let mut emitted = 0;
    let mut finish_reason = "length";
    let mut streaming = true;
    while generated.len() < budget {
        // The caller gave up: its deadline passed, or it dropped the call (the channel closed).
        if job.events.is_closed() {
            break;
        }
        let next = sampler.sample(&logits).map_err(|error| LocalError::Inference(error.to_string()))?;
        if model.tokenizer.stop_ids.contains(&next) {
            finish_reason = "stop";
            break;
        }
        generated.push(next);
        text = tokenizer.decode(&generated, false).map_err(|error| LocalError::Tokenizer(error.to_string()))?;
        if let Some(cut) = stops.iter().filter_map(|stop| text.find(stop)).min() {
            text.truncate(cut);
            finish_reason = "stop";
            break;
        }
        if streaming {
            if let Some(marker) = job.hold_from.filter(|marker| text.contains(marker)) {
                let start = text.find(marker).unwrap_or(text.len());
                if start > emitted && send_token(job, &text[emitted..start]) {
                    emitted = start;
                }
                streaming = false;
            } else if !text.ends_with('\u{FFFD}') {
                let safe_end = text.len() - partial_stop_len(&text, &held);
                if safe_end > emitted {
                    if !send_token(job, &text[emitted..safe_end]) {
                        // The caller gave up (deadline): nobody will read the rest.
                        break;
                    }
                    emitted = safe_end;
                }
            }
        }
        if generated.len() < budget {
            let position = prompt.len() + generated.len() - 1;
            logits =
                model.weights.forward(&[next], position).map_err(|error| LocalError::Inference(error.to_string()))?;
        }
    }
    if streaming && text.len() > emitted && !job.hold_from.is_some_and(|marker| text.contains(marker)) {
        send_token(job, &text[emitted..]);
    }
    Ok(Generation {
        text,
        prompt_tokens: prompt.len(),
        generated_tokens: generated.len(),
        finish_reason,
        prompt_seconds,
        generation_seconds: generation_started.elapsed().as_secs_f64(),
    })
}

/// False when the caller stopped listening.
fn send_token(job: &Job, text: &str) -> bool {
    job.events.blocking_send(GenerationEvent::Token(text.to_string())).is_ok()
}
