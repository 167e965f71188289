//! The embedder's worker thread: admits jobs, forms batches of up to `BATCH` texts, replies.
//!
//! Each admitted job is tokenized once and its texts are ordered by token count, so the texts
//! of one batch have similar lengths and padding wastes little (chunks of an ingest vary from a
//! few words to 256 tokens). A batch first gives every waiting job an equal share of its slots
//! and then fills the rest in arrival order: a short query admitted during a long ingest is
//! answered after one batch, not after the whole ingest. Jobs whose caller went away (the
//! request was cancelled) are dropped without spending inference on them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use tokenizers::Encoding;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info};

use super::model::{SentenceModel, DIMENSION};
use super::{EmbedError, Job, BATCH};

/// A job being worked on.
struct Active {
    encodings: Vec<Encoding>,
    /// Text indices, shortest first; `order[done..]` are still to embed.
    order: Vec<usize>,
    done: usize,
    /// `encodings.len() * DIMENSION` floats, filled as batches complete.
    output: Vec<f32>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

impl Active {
    fn remaining(&self) -> usize {
        self.order.len() - self.done
    }
}

/// The thread body: runs until every `Embedder` handle is dropped and the queue is drained.
pub(super) fn run(mut jobs: mpsc::Receiver<Job>, loaded: &AtomicBool) {
    let mut model: Option<Result<SentenceModel, EmbedError>> = None;
    let mut active: VecDeque<Active> = VecDeque::new();
    loop {
        if active.is_empty() {
            let Some(job) = jobs.blocking_recv() else { break };
            let model = load_once(&mut model, loaded);
            admit(model, job, &mut active);
        }
        // Take whatever else is queued while the pending texts do not fill a batch.
        while active.iter().map(Active::remaining).sum::<usize>() < BATCH {
            let Ok(job) = jobs.try_recv() else { break };
            let model = load_once(&mut model, loaded);
            admit(model, job, &mut active);
        }
        active.retain(|job| !job.reply.is_closed());
        if let Some(Ok(model)) = &model {
            run_batch(model, &mut active);
        }
    }
    debug!("embedder: queue closed and drained, exiting");
}

/// Loads the model on first use; a failure is remembered and answers every later job.
fn load_once<'m>(
    model: &'m mut Option<Result<SentenceModel, EmbedError>>,
    loaded: &AtomicBool,
) -> &'m Result<SentenceModel, EmbedError> {
    model.get_or_insert_with(|| {
        let started = std::time::Instant::now();
        let result = SentenceModel::load();
        match &result {
            Ok(_) => {
                loaded.store(true, Ordering::Release);
                info!(elapsed_ms = started.elapsed().as_millis() as u64, "embedding model loaded");
            }
            Err(error) => error!(%error, "embedding model failed to load"),
        }
        result
    })
}

/// Tokenizes a job and queues it, or answers it at once (model unusable, bad text).
fn admit(model: &Result<SentenceModel, EmbedError>, job: Job, active: &mut VecDeque<Active>) {
    let model = match model {
        Ok(model) => model,
        Err(error) => {
            // The caller may have gone; nobody to tell then.
            let _ = job.reply.send(Err(error.clone()));
            return;
        }
    };
    let encodings: Result<Vec<Encoding>, EmbedError> = job.texts.iter().map(|text| model.tokenize(text)).collect();
    match encodings {
        Ok(encodings) => {
            let mut order: Vec<usize> = (0..encodings.len()).collect();
            order.sort_by_key(|&text_idx| encodings[text_idx].get_ids().len());
            let output = vec![0.0; encodings.len() * DIMENSION];
            active.push_back(Active { encodings, order, done: 0, output, reply: job.reply });
        }
        Err(error) => {
            let _ = job.reply.send(Err(error));
        }
    }
}

/// Picks up to `BATCH` texts across the active jobs, embeds them in one pass, stores the
/// vectors and answers the jobs that are complete.
fn run_batch(model: &SentenceModel, active: &mut VecDeque<Active>) {
    if active.is_empty() {
        return;
    }
    // (job position in `active`, how many texts it contributes from `done`)
    let mut takes = vec![0usize; active.len()];
    let share = (BATCH / active.len()).max(1);
    let mut room = BATCH;
    for (job_pos, job) in active.iter().enumerate() {
        let take = job.remaining().min(share).min(room);
        takes[job_pos] = take;
        room -= take;
    }
    for (job_pos, job) in active.iter().enumerate() {
        let more = (job.remaining() - takes[job_pos]).min(room);
        takes[job_pos] += more;
        room -= more;
    }
    let mut batch: Vec<&Encoding> = Vec::with_capacity(BATCH - room);
    for (job_pos, job) in active.iter().enumerate() {
        for &text_idx in &job.order[job.done..job.done + takes[job_pos]] {
            batch.push(&job.encodings[text_idx]);
        }
    }
    match embed_split(model, &batch) {
        Ok(vectors) => {
            let mut vectors = vectors.chunks_exact(DIMENSION);
            for (job_pos, job) in active.iter_mut().enumerate() {
                for order_pos in job.done..job.done + takes[job_pos] {
                    let text_idx = job.order[order_pos];
                    if let Some(vector) = vectors.next() {
                        job.output[text_idx * DIMENSION..(text_idx + 1) * DIMENSION].copy_from_slice(vector);
                    }
                }
                job.done += takes[job_pos];
            }
        }
        Err(error) => {
            error!(%error, "embedding batch failed");
            // Answer the jobs that had a text in the failed pass, and drop them.
            let mut kept = VecDeque::with_capacity(active.len());
            for (job_pos, job) in active.drain(..).enumerate() {
                if takes[job_pos] > 0 {
                    let _ = job.reply.send(Err(error.clone()));
                } else {
                    kept.push_back(job);
                }
            }
            *active = kept;
            return;
        }
    }
    let mut kept = VecDeque::with_capacity(active.len());
    for job in active.drain(..) {
        if job.remaining() == 0 {
            let vectors = job.output.chunks_exact(DIMENSION).map(<[f32]>::to_vec).collect();
            // The caller may have gone (request cancelled); nothing to do then.
            let _ = job.reply.send(Ok(vectors));
        } else {
            kept.push_back(job);
        }
    }
    *active = kept;
}

/// Batches at least this long are split in two halves run side by side.
const SPLIT_MIN: usize = 8;

/// Runs one batch on rayon's pool, as two half-batches side by side when it has more than one
/// thread and the batch is long enough.
///
/// Why on the pool and not on this thread: candle spreads a matmul over the pool but runs GELU,
/// softmax, layer norm and the adds on the calling thread. Called from here, that meant three
/// busy threads on two cores (this one plus two pool threads spinning for work between matmuls),
/// and 2-thread throughput was half the 1-thread one. On the pool, the caller's serial ops run
/// on a pool thread and this thread sleeps until the answer is in. Two halves in `rayon::join`
/// also overlap one half's serial ops with the other's matmuls. Each half is padded to its own
/// longest text (the batch is sorted by length, so that is less padding, not more).
fn embed_split(model: &SentenceModel, batch: &[&Encoding]) -> Result<Vec<f32>, EmbedError> {
    if batch.len() < SPLIT_MIN || rayon::current_num_threads() < 2 {
        return rayon::scope(|_| model.embed(batch));
    }
    let (first, second) = batch.split_at(batch.len() / 2);
    let (first, second) = rayon::join(|| model.embed(first), || model.embed(second));
    let mut vectors = first?;
    vectors.extend(second?);
    Ok(vectors)
}
