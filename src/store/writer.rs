//! The store's single writer: group commit with per-job failure isolation.
//!
//! The thread `blocking_recv`s one job, `try_recv`s whatever else is queued (up to
//! `MAX_BATCH_OPS` ops), applies the batch, makes one durable commit and only then acks every
//! job. Why: one fsync (~0.15 ms) per batch instead of per write.
//!
//! A failing job must not take the rest of its batch with it. redb savepoints cannot help: they
//! can only be taken before a transaction touches any table. So data-only jobs (`Put`, `Delete`,
//! `DeletePrefix`) share a transaction and are *replayed* into a fresh one when a later job in
//! it fails; a job with a `Custom` closure cannot be replayed (the closure runs once), so right
//! after it succeeds its transaction is committed with `Durability::None` (~0.014 ms, visible
//! but not yet on disk). The batch ends with one `Durability::Immediate` commit, which makes
//! every earlier non-durable commit durable too; acks are sent after it. If that commit fails
//! (an I/O error), every job of the batch gets `BatchFailed`, although readers may already have
//! seen the non-durable part: an unacknowledged write may or may not survive, as after a crash.
//!
//! Lazy jobs (`Store::enqueue_lazy`, for telemetry) are committed with `Durability::None` as soon
//! as they are applied and acknowledged at once: visible to readers, durable with the next
//! durable commit. A batch of lazy jobs only owes a durable commit, which the thread makes as
//! soon as its queue is empty (or closes), so lazy writes never wait for an fsync and never
//! stay volatile for longer than the queue stays busy.
//!
//! Not here: the public API and the reads (`store`).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use super::{prefix_end, prefix_range, Counters, StoreError, WriteOp};

/// A batch stops growing at this many ops: it bounds the latency of the first job in it and the
/// size of a transaction. 1024 ops of a few hundred bytes commit in a few milliseconds.
const MAX_BATCH_OPS: usize = 1024;

/// One `write`/`write_all` call: ops applied atomically, then one reply.
pub(super) struct Job {
    pub(super) ops: Vec<WriteOp>,
    pub(super) reply: oneshot::Sender<Result<(), StoreError>>,
    /// False for a lazy job: acknowledged once visible, made durable by a later commit.
    pub(super) durable: bool,
}

/// Marks the writer dead when the thread ends, by return or by panic.
struct AliveGuard<'a>(&'a AtomicBool);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The writer thread's body: runs until every sender is dropped and the queue is drained.
pub(super) fn run(db: &Database, mut jobs: mpsc::Receiver<Job>, counters: &Counters, alive: &AtomicBool) {
    let _alive = AliveGuard(alive);
    // Lazy jobs have been committed non-durably and no durable commit has followed yet.
    let mut owed = false;
    loop {
        let first = if owed {
            match jobs.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Empty) => {
                    owed = !make_durable(db, counters);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    make_durable(db, counters);
                    break;
                }
            }
        } else {
            match jobs.blocking_recv() {
                Some(job) => job,
                None => break,
            }
        };
        let mut n_ops = first.ops.len();
        let mut batch = vec![first];
        while n_ops < MAX_BATCH_OPS {
            match jobs.try_recv() {
                Ok(job) => {
                    n_ops += job.ops.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let (made_durable, lazy_committed) = commit_batch(db, batch, counters);
        // A durable commit covers every earlier non-durable one.
        owed = !made_durable && (owed || lazy_committed);
    }
    debug!("store writer: queue closed and drained, exiting");
}

/// An empty durable commit: makes every earlier non-durable commit durable. False on failure.
fn make_durable(db: &Database, counters: &Counters) -> bool {
    match db.begin_write().map_err(StoreError::from).and_then(|txn| commit(txn, Durability::Immediate)) {
        Ok(()) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(err) => {
            error!(error = %err, "store writer: durable commit after lazy writes failed");
            false
        }
    }
}

/// Applies `batch`, makes it durable and acks every job (with its own error if it failed).
/// Returns (whether it ended with a durable commit, whether lazy jobs were committed).
fn commit_batch(db: &Database, batch: Vec<Job>, counters: &Counters) -> (bool, bool) {
    let mut lazy_committed = false;
    let mut replies: Vec<Option<oneshot::Sender<Result<(), StoreError>>>> = Vec::with_capacity(batch.len());
    let mut op_counts = Vec::with_capacity(batch.len());
    let mut failures: Vec<Option<StoreError>> = Vec::with_capacity(batch.len());
    let mut txn: Option<WriteTransaction> = None;
    // Data-only jobs applied in `txn`, kept so they can be replayed if a later job fails.
    let mut segment: VecDeque<(usize, Vec<WriteOp>)> = VecDeque::new();

    for (job_idx, job) in batch.into_iter().enumerate() {
        let durable = job.durable;
        replies.push(Some(job.reply));
        op_counts.push(job.ops.len());
        failures.push(None);
        let current = match txn.take() {
            Some(current) => current,
            None => match db.begin_write() {
                Ok(current) => current,
                Err(err) => {
                    failures[job_idx] = Some(err.into());
                    continue;
                }
            },
        };
        let has_custom = job.ops.iter().any(|op| matches!(op, WriteOp::Custom(_)));
        if durable && !has_custom {
            match apply_data_ops(&current, &job.ops) {
                Ok(()) => {
                    segment.push_back((job_idx, job.ops));
                    txn = Some(current);
                }
                Err(err) => {
                    failures[job_idx] = Some(err);
                    txn = restart(db, current, &mut segment, &mut failures);
                }
            }
            continue;
        }
        match apply_ops(&current, job.ops) {
            Ok(()) => {
                // Commit now, not durably, so that a later failure cannot take this job's
                // effects with it: its closure has run and cannot be replayed.
                let members: Vec<usize> = segment.drain(..).map(|(idx, _)| idx).chain([job_idx]).collect();
                if let Err(err) = commit(current, Durability::None) {
                    error!(error = %err, "store writer: non-durable commit failed");
                    for idx in members {
                        failures[idx] = Some(StoreError::BatchFailed { reason: err.to_string() });
                    }
                } else if !durable {
                    // Visible now: a lazy job is answered without waiting for the fsync.
                    lazy_committed = true;
                    counters.writes.fetch_add(op_counts[job_idx] as u64, Ordering::Relaxed);
                    if let Some(reply) = replies[job_idx].take() {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Err(err) => {
                failures[job_idx] = Some(err);
                txn = restart(db, current, &mut segment, &mut failures);
            }
        }
    }

    // Every job that has not failed is in `txn` or in an earlier non-durable commit: one
    // durable commit covers them all. An empty transaction is enough for the latter.
    // Lazy jobs already answered are not waiting for this commit.
    let n_ok = failures.iter().zip(&replies).filter(|(failure, reply)| failure.is_none() && reply.is_some()).count();
    let mut made_durable = false;
    if n_ok > 0 {
        let durable = match txn.take() {
            Some(current) => commit(current, Durability::Immediate),
            None => {
                db.begin_write().map_err(StoreError::from).and_then(|current| commit(current, Durability::Immediate))
            }
        };
        match durable {
            Ok(()) => {
                made_durable = true;
                let n_written: usize = op_counts
                    .iter()
                    .zip(failures.iter().zip(&replies))
                    .filter(|(_, (failure, reply))| failure.is_none() && reply.is_some())
                    .map(|(count, _)| count)
                    .sum();
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.writes.fetch_add(n_written as u64, Ordering::Relaxed);
            }
            Err(err) => {
                error!(error = %err, n_jobs = n_ok, "store writer: durable commit failed");
                for (failure, _) in
                    failures.iter_mut().zip(&replies).filter(|(failure, reply)| failure.is_none() && reply.is_some())
                {
                    *failure = Some(StoreError::BatchFailed { reason: err.to_string() });
                }
            }
        }
    } else if let Some(current) = txn.take() {
        abort(current);
    }

    for (reply, failure) in replies.into_iter().zip(failures) {
        // A dropped receiver means the caller stopped waiting; the write stands regardless.
        if let Some(reply) = reply {
            let _ = reply.send(failure.map_or(Ok(()), Err));
        }
    }
    (made_durable, lazy_committed)
}

/// Aborts `failed_txn` and replays the data-only jobs of `segment` into a new transaction.
/// Returns the new transaction, or `None` when there is nothing to replay. A job whose replay
/// fails is moved to `failures` and the replay starts over without it.
fn restart(
    db: &Database,
    failed_txn: WriteTransaction,
    segment: &mut VecDeque<(usize, Vec<WriteOp>)>,
    failures: &mut [Option<StoreError>],
) -> Option<WriteTransaction> {
    abort(failed_txn);
    'replay: loop {
        if segment.is_empty() {
            return None;
        }
        let current = match db.begin_write() {
            Ok(current) => current,
            Err(err) => {
                let reason = err.to_string();
                for (idx, _) in segment.drain(..) {
                    failures[idx] = Some(StoreError::BatchFailed { reason: reason.clone() });
                }
                return None;
            }
        };
        for pos in 0..segment.len() {
            if let Err(err) = apply_data_ops(&current, &segment[pos].1) {
                warn!(error = %err, "store writer: replaying a write failed");
                if let Some((idx, _)) = segment.remove(pos) {
                    failures[idx] = Some(err);
                }
                abort(current);
                continue 'replay;
            }
        }
        return Some(current);
    }
}

fn commit(mut txn: WriteTransaction, durability: Durability) -> Result<(), StoreError> {
    txn.set_durability(durability).map_err(|err| StoreError::BatchFailed { reason: err.to_string() })?;
    txn.commit()?;
    Ok(())
}

fn abort(txn: WriteTransaction) {
    if let Err(err) = txn.abort() {
        warn!(error = %err, "store writer: aborting a transaction failed");
    }
}

/// Applies a job's ops, running `Custom` closures; a closure's panic becomes `OpPanicked`.
fn apply_ops(txn: &WriteTransaction, ops: Vec<WriteOp>) -> Result<(), StoreError> {
    for op in ops {
        match op {
            WriteOp::Custom(custom) => {
                catch_unwind(AssertUnwindSafe(|| custom(txn))).map_err(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".to_owned());
                    StoreError::OpPanicked(message)
                })??;
            }
            data => apply_data_ops(txn, std::slice::from_ref(&data))?,
        }
    }
    Ok(())
}

/// Applies `Put`, `Delete` and `DeletePrefix` ops by reference, so they can be replayed.
fn apply_data_ops(txn: &WriteTransaction, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        match op {
            WriteOp::Put { table, key, value } => {
                let mut table = txn.open_table(table.definition())?;
                table.insert(key.as_slice(), value.as_slice())?;
            }
            WriteOp::Delete { table, key } => {
                let mut table = txn.open_table(table.definition())?;
                table.remove(key.as_slice())?;
            }
            WriteOp::DeletePrefix { table, prefix } => {
                let mut table = txn.open_table(table.definition())?;
                let end = prefix_end(prefix);
                table.retain_in::<&[u8], _>(prefix_range(prefix, end.as_deref()), |_, _| false)?;
            }
            WriteOp::Custom(_) => {
                // `commit_batch` routes every job holding a closure to `apply_ops`.
                return Err(StoreError::Rejected("internal: a custom op reached the replayable path".to_owned()));
            }
        }
    }
    Ok(())
}
