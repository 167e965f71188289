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
//! Lazy jobs (`Store::enqueue_lazy`, for telemetry) do not wait for an fsync of their own. A
//! data-only lazy job joins the batch's shared transaction like any other and is answered when
//! the batch commits: durably if the batch holds a durable job, otherwise with
//! `Durability::None` (visible to readers, durable with the next durable commit). A lazy job
//! with a closure is committed with `Durability::None` right after it runs and answered at once.
//! Committed but not yet durable work leaves a durable commit owed: the next batch holding a
//! durable job pays it, and if none comes within `OWED_DURABLE_WITHIN` (or the queue closes) the
//! thread makes an empty durable commit. Why wait: under load an immediate empty commit was an
//! extra fsync that the next history writes queued behind.
//!
//! Not here: the public API and the reads (`store`).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use super::{prefix_end, prefix_range, Counters, StoreError, WriteOp};

/// Lazy writes committed without an fsync are made durable within this time: by the next batch
/// holding a durable write if one comes, otherwise by an empty durable commit.
const OWED_DURABLE_WITHIN: Duration = Duration::from_millis(50);

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
    // Lazy jobs have been committed non-durably and no durable commit has followed yet: since when.
    let mut owed: Option<Instant> = None;
    // Waits for the next job with a deadline (tokio's `blocking_recv` has none).
    let timer = tokio::runtime::Builder::new_current_thread().enable_time().build();
    loop {
        let first = if let Some(since) = owed {
            // A durable job arriving soon makes the owed commit for free; wait for one, a while.
            let left = OWED_DURABLE_WITHIN.saturating_sub(since.elapsed());
            let next = match &timer {
                // The timeout must be made inside `block_on`: it needs the runtime's timer.
                Ok(timer) => timer.block_on(async { tokio::time::timeout(left, jobs.recv()).await }).ok(),
                Err(_) => jobs.try_recv().ok().map(Some),
            };
            match next {
                Some(Some(job)) => job,
                Some(None) => {
                    make_durable(db, counters);
                    break;
                }
                None => {
                    owed = if make_durable(db, counters) { None } else { Some(Instant::now()) };
                    continue;
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
        owed = match (made_durable, owed) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => lazy_committed.then(Instant::now),
        };
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
    let mut durables = Vec::with_capacity(batch.len());
    let mut failures: Vec<Option<StoreError>> = Vec::with_capacity(batch.len());
    let mut txn: Option<WriteTransaction> = None;
    // Data-only jobs applied in `txn`, kept so they can be replayed if a later job fails.
    let mut segment: VecDeque<(usize, Vec<WriteOp>)> = VecDeque::new();

    for (job_idx, job) in batch.into_iter().enumerate() {
        let durable = job.durable;
        replies.push(Some(job.reply));
        op_counts.push(job.ops.len());
        durables.push(durable);
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
        if !has_custom {
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

    // Every job that has not failed and is not answered yet is in `txn` or in an earlier
    // non-durable commit. If one of them is durable, one durable commit covers them all (an empty
    // transaction is enough for the earlier commits); if all are lazy, a non-durable commit makes
    // them visible and a durable commit is owed.
    let pending: Vec<usize> =
        (0..replies.len()).filter(|&idx| failures[idx].is_none() && replies[idx].is_some()).collect();
    let needs_durable = pending.iter().any(|&idx| durables[idx]);
    let mut made_durable = false;
    if pending.is_empty() {
        if let Some(current) = txn.take() {
            abort(current);
        }
    } else {
        let durability = if needs_durable { Durability::Immediate } else { Durability::None };
        let committed = match txn.take() {
            Some(current) => commit(current, durability),
            None if needs_durable => {
                db.begin_write().map_err(StoreError::from).and_then(|current| commit(current, durability))
            }
            None => Ok(()),
        };
        match committed {
            Ok(()) => {
                made_durable = needs_durable;
                lazy_committed |= !needs_durable;
                let n_written: usize = pending.iter().map(|&idx| op_counts[idx]).sum();
                if needs_durable {
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                }
                counters.writes.fetch_add(n_written as u64, Ordering::Relaxed);
            }
            Err(err) => {
                error!(error = %err, n_jobs = pending.len(), durable = needs_durable, "store writer: batch commit failed");
                for &idx in &pending {
                    failures[idx] = Some(StoreError::BatchFailed { reason: err.to_string() });
                }
            }
        }
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
                catch_unwind(AssertUnwindSafe(|| custom(txn)))
                    .map_err(|panic| StoreError::OpPanicked(crate::panic_message(&*panic).to_owned()))??;
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
