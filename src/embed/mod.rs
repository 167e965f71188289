//! The local sentence embedder: all-MiniLM-L6-v2 run by candle, weights inside the binary.
//!
//! `Embedder` is a handle to one worker thread (`astromesh-embed`) that owns the model and a
//! bounded job queue. `embed` sends a job and awaits the answer, so the async runtime never
//! runs inference; a full queue makes callers wait (backpressure). The worker batches: it takes
//! one job, `try_recv`s more while fewer than `BATCH` texts are pending, and runs one forward
//! pass per batch of up to 32 texts padded to the batch's longest. Batches share out their
//! slots among the jobs waiting, so a one-sentence query is not stuck behind a 10,000-chunk
//! ingest. Why a thread and not `spawn_blocking`: inference already uses every core (candle's
//! matmuls run on rayon's pool), and the blocking pool could start hundreds of competing calls.
//!
//! The model is loaded on the first job, not at startup: a daemon that never embeds never pays
//! the ~90 MB of f32 weights. The thread itself also starts on the first `embed`.
//!
//! Output: 384 floats per text, mean-pooled over the attention mask and L2-normalised, equal to
//! sentence-transformers' `encode(normalize_embeddings=True)` (cosine ≥ 0.9999, tested against
//! `tests/fixtures/minilm-reference.json`). Texts longer than 256 tokens are truncated.
//!
//! `TextEmbedder` is what callers hold: this local model, or a remote embedder (`remote`: Ollama
//! or OpenAI-compatible) when runtime.yaml configures one for a collection.
//!
//! Not here: chunking (`rag`), vector search (`vector`).

mod model;
pub mod remote;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// Texts per forward pass. 32 is where candle's throughput on 2 cores stops improving (larger
/// batches only add padding and latency).
pub(crate) const BATCH: usize = 32;

/// Everything that can go wrong while embedding. Cloneable: one failed forward pass answers
/// every job that had a text in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot load the embedding model: {0}")]
    Load(String),
    #[error("cannot tokenize a text: {0}")]
    Tokenize(String),
    #[error("embedding inference failed: {0}")]
    Inference(String),
    #[error("cannot start the embedder thread: {0}")]
    Spawn(String),
    #[error("the embedder has stopped")]
    Closed,
    /// A remote embedder failed (unreachable, error status, malformed answer); the text names it.
    #[error("{0}")]
    Remote(String),
}

/// The id a collection records for vectors made by the local model.
pub const LOCAL_EMBEDDER_ID: &str = "local:all-MiniLM-L6-v2";

/// An embedder a collection can use: the local model or a remote service.
#[derive(Clone)]
pub enum TextEmbedder {
    Local(Arc<Embedder>),
    Remote(Arc<remote::RemoteEmbedder>),
}

impl TextEmbedder {
    /// The id stored with a collection (`local:all-MiniLM-L6-v2`, `ollama:<model>`, ...): a
    /// collection's vectors are only comparable with vectors from the same embedder.
    pub fn id(&self) -> String {
        match self {
            TextEmbedder::Local(_) => LOCAL_EMBEDDER_ID.to_string(),
            TextEmbedder::Remote(remote) => remote.id(),
        }
    }

    /// Embeds `texts` in order: L2-normalised vectors of one dimension.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            TextEmbedder::Local(local) => local.embed(texts).await,
            TextEmbedder::Remote(remote) => remote.embed(texts).await,
        }
    }

    /// Builds the embedder `config` describes; `local` is shared (one model per process).
    pub fn from_config(config: &crate::config::EmbedderConfig, local: &Arc<Embedder>) -> TextEmbedder {
        match config {
            crate::config::EmbedderConfig::Local => TextEmbedder::Local(Arc::clone(local)),
            crate::config::EmbedderConfig::Remote(remote) => {
                TextEmbedder::Remote(Arc::new(remote::RemoteEmbedder::new(remote.clone())))
            }
        }
    }
}

impl std::fmt::Debug for TextEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

/// One `embed` call: its texts and where to send their vectors.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// Handle to the embedding worker. Share it with `Arc<Embedder>`; dropping the last handle lets
/// the worker finish its queue and exit.
pub struct Embedder {
    jobs: mpsc::Sender<Job>,
    /// The receiving end until the worker thread starts (on the first `embed`). A `std` mutex:
    /// held only to take it, never across an await.
    pending_receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    loaded: Arc<AtomicBool>,
}

impl Embedder {
    /// A handle with a job queue of `queue` entries (at least 1). Does not load the model, and
    /// does not start the thread yet.
    pub fn new(queue: usize) -> Embedder {
        let (jobs, receiver) = mpsc::channel(queue.max(1));
        Embedder { jobs, pending_receiver: Mutex::new(Some(receiver)), loaded: Arc::new(AtomicBool::new(false)) }
    }

    /// Embeds `texts` (in order): 384 floats each, L2-normalised. The first call loads the model.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.start_worker()?;
        let (reply, answer) = oneshot::channel();
        // A full queue makes the caller wait here: that is the backpressure.
        self.jobs.send(Job { texts, reply }).await.map_err(|_| EmbedError::Closed)?;
        answer.await.map_err(|_| EmbedError::Closed)?
    }

    /// The length of every vector `embed` returns.
    pub fn dimension(&self) -> usize {
        model::DIMENSION
    }

    /// Whether the model has been loaded (by a first `embed`).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Starts the worker thread if this is the first call.
    fn start_worker(&self) -> Result<(), EmbedError> {
        let mut pending = self.pending_receiver.lock().map_err(|_| EmbedError::Closed)?;
        let Some(receiver) = pending.take() else {
            return Ok(());
        };
        let loaded = Arc::clone(&self.loaded);
        // The receiver moves into the closure; if spawning fails we cannot get it back, so the
        // error is permanent for this handle (the process is out of threads anyway).
        std::thread::Builder::new()
            .name("astromesh-embed".to_owned())
            .spawn(move || worker::run(receiver, &loaded))
            .map(drop)
            .map_err(|error| EmbedError::Spawn(error.to_string()))
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("loaded", &self.is_loaded()).finish_non_exhaustive()
    }
}
