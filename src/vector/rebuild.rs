//! The background HNSW builder: one named thread, a bounded queue, its own rayon pool.
//!
//! Indexes send a `Weak` handle of themselves when they want a snapshot (`VectorIndex::
//! maybe_rebuild`); a dropped collection's request then builds nothing. The builds run on a
//! dedicated rayon pool (`astromesh-index-N`, `threads` workers, default 1) rather than the
//! global one, because candle's matmuls use the global pool: a 9-minute build of 100k vectors
//! must not take the cores the embedder needs to answer queries.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};

use tracing::{info, warn};

use super::VectorIndex;

/// Handle to the builder thread. Cheap to clone; the thread exits when every handle is gone.
#[derive(Clone)]
pub struct Rebuilder {
    requests: SyncSender<Weak<VectorIndex>>,
}

impl Rebuilder {
    /// Starts the thread: `queue` pending requests at most, builds on `threads` cores.
    pub fn start(queue: usize, threads: usize) -> std::io::Result<Rebuilder> {
        let (requests, receiver) = sync_channel(queue.max(1));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|worker| format!("astromesh-index-{worker}"))
            .build()
            .map_err(std::io::Error::other)?;
        std::thread::Builder::new().name("astromesh-index".to_owned()).spawn(move || run(&receiver, &pool))?;
        Ok(Rebuilder { requests })
    }

    /// Queues a build; false when the queue is full (the caller retries on its next change).
    pub(super) fn request(&self, index: Weak<VectorIndex>) -> bool {
        match self.requests.try_send(index) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                warn!("index builder thread has stopped; collections stay on exact search");
                false
            }
        }
    }
}

fn run(requests: &Receiver<Weak<VectorIndex>>, pool: &rayon::ThreadPool) {
    while let Ok(index) = requests.recv() {
        let Some(index) = index.upgrade() else { continue };
        let started = std::time::Instant::now();
        let index: Arc<VectorIndex> = index;
        if pool.install(|| index.build_snapshot()) {
            let stats = index.stats();
            info!(
                vectors = stats.indexed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "hnsw snapshot swapped in"
            );
        }
        // Changes made during the build may already call for the next one.
        index.maybe_rebuild();
    }
}
