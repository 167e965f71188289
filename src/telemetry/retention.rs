//! Trace retention: evicting the oldest traces past `max_traces` or `max_age`, and deciding
//! when. A trace's write is two plain puts that share the store writer's transaction with other
//! writes; eviction reads the table, so it is a closure job of its own, queued only when needed.
//! Not here: writing and reading traces (`telemetry`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{now_micros, TelemetrySettings, ID_PREFIX, TIME_RANGE};
use crate::store::{Store, StoreError, Table, WriteOp};

/// When to evict: trace writes are plain puts that share the writer's transaction with other
/// writes, and eviction (which reads the table) is a job of its own, queued when the stored
/// count passes `max_traces` by more than `slack`. Between evictions the store may hold up to
/// `slack` (1% of `max_traces`) more traces than the limit.
pub(super) struct Retention {
    store: Arc<Store>,
    max_traces: usize,
    max_age: Duration,
    /// Traces in the store plus those queued; eviction subtracts what it removed.
    stored: AtomicUsize,
    /// An eviction is queued and not yet applied: at most one at a time.
    evicting: AtomicBool,
}

impl Retention {
    /// Counts the stored traces (blocking: call at startup).
    pub(super) fn new(store: Arc<Store>, settings: &TelemetrySettings) -> Retention {
        let stored = count_stored(&store).unwrap_or_else(|error| {
            tracing::warn!("cannot count stored traces: {error}");
            0
        });
        Retention {
            store,
            max_traces: settings.max_traces,
            max_age: settings.max_age,
            stored: AtomicUsize::new(stored),
            evicting: AtomicBool::new(false),
        }
    }

    fn slack(&self) -> usize {
        self.max_traces / 100
    }

    /// Evicts past the limits, now, and counts what it removed.
    pub(super) fn eviction(self: &Arc<Self>) -> WriteOp {
        let cutoff = now_micros().saturating_sub(self.max_age.as_micros() as u64);
        let (max_traces, counter) = (self.max_traces, Arc::clone(self));
        WriteOp::Custom(Box::new(move |txn| {
            let evicted = evict(txn, max_traces, cutoff)?;
            let _ =
                counter.stored.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(evicted)));
            Ok(())
        }))
    }

    /// Counts one more trace and queues an eviction if the count is past the limit.
    pub(super) async fn count_one(self: &Arc<Self>) {
        let stored = self.stored.fetch_add(1, Ordering::Relaxed) + 1;
        if stored > self.max_traces + self.slack() {
            self.enforce().await;
        }
    }

    /// Queues one eviction unless one is queued already. Once it is applied, checks again:
    /// traces finished meanwhile may have passed the limit anew. (Boxed: it recurses.)
    fn enforce(self: &Arc<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let retention = Arc::clone(self);
        Box::pin(async move {
            if retention.evicting.swap(true, Ordering::AcqRel) {
                return;
            }
            let acknowledgement = match retention.store.enqueue_lazy(vec![retention.eviction()]).await {
                Ok(acknowledgement) => acknowledgement,
                Err(error) => {
                    tracing::warn!("trace eviction not queued: {error}");
                    retention.evicting.store(false, Ordering::Release);
                    return;
                }
            };
            tokio::spawn(async move {
                let result = acknowledgement.wait().await;
                retention.evicting.store(false, Ordering::Release);
                match result {
                    Ok(()) if retention.stored.load(Ordering::Relaxed) > retention.max_traces + retention.slack() => {
                        retention.enforce().await;
                    }
                    Ok(()) => {}
                    Err(error) => tracing::warn!("trace eviction failed: {error}"),
                }
            });
        })
    }
}

/// Evicts from the oldest end until at most `max_traces` remain and none started before
/// `cutoff_micros`; returns how many it evicted. Runs inside the writer's transaction: each
/// eviction is one `pop`-like step (O(log n)).
fn evict(txn: &redb::WriteTransaction, max_traces: usize, cutoff_micros: u64) -> Result<usize, StoreError> {
    use redb::{ReadableTable, ReadableTableMetadata};
    let mut table = txn.open_table(Table::Traces.definition())?;
    let mut count = (table.len()? / 2) as usize;
    let mut evicted = 0;
    loop {
        let oldest = {
            let mut range = table.range(TIME_RANGE.0..TIME_RANGE.1)?;
            match range.next_back() {
                Some(entry) => entry?.0.value().to_vec(),
                None => break,
            }
        };
        let started = oldest.get(1..9).and_then(|bytes| bytes.try_into().ok()).map(u64::from_be_bytes);
        let started = u64::MAX - started.unwrap_or(u64::MAX);
        if count <= max_traces && started >= cutoff_micros {
            break;
        }
        table.remove(oldest.as_slice())?;
        let mut id_key = vec![ID_PREFIX];
        id_key.extend_from_slice(oldest.get(9..).unwrap_or_default());
        table.remove(id_key.as_slice())?;
        count = count.saturating_sub(1);
        evicted += 1;
    }
    Ok(evicted)
}

/// Traces in the store (each has a `t` and an `i` key). Blocking: call at startup.
fn count_stored(store: &Store) -> Result<usize, StoreError> {
    use redb::ReadableTableMetadata;
    store.read(|txn| match txn.open_table(Table::Traces.definition()) {
        Ok(table) => Ok(table.len()? as usize / 2),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(error) => Err(error.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Telemetry, TraceRecorder};
    use super::*;

    /// Finishes `count` traces, one after another; returns their ids, oldest first.
    async fn finish_traces(telemetry: &Telemetry, count: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..count {
            let trace = TraceRecorder::new("agent", "sess");
            trace.span("agent.run", None).finish();
            ids.push(trace.trace_id().to_string());
            telemetry.finish(&trace).await;
        }
        ids
    }

    /// Polls the stored count until it is `expected` (or 2 s pass); returns the last count.
    async fn stored_settles_at(store: &Store, expected: usize) -> usize {
        let mut stored = usize::MAX;
        for _ in 0..2000 {
            stored = count_stored(store).unwrap();
            if stored == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stored
    }

    #[tokio::test]
    async fn eviction_waits_for_the_slack_then_evicts_down_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 64).unwrap());
        let settings = TelemetrySettings { max_traces: 200, ..TelemetrySettings::default() };
        let telemetry = Telemetry::new(Arc::clone(&store), settings.clone());

        // A 1% slack: 202 traces stay stored; the listing still shows no more than 200.
        let ids = finish_traces(&telemetry, 202).await;
        assert_eq!(stored_settles_at(&store, 202).await, 202);
        assert_eq!(telemetry.traces(None, 1000).await.unwrap().len(), 200);
        // One more passes the slack: the three oldest go.
        finish_traces(&telemetry, 1).await;
        assert_eq!(stored_settles_at(&store, 200).await, 200, "evicted down to the limit");
        for evicted in &ids[..3] {
            assert!(telemetry.trace(evicted).await.unwrap().is_none(), "{evicted} evicted");
        }
        assert!(telemetry.trace(&ids[3]).await.unwrap().is_some());

        // The count is read back at startup: the third trace after a restart evicts again.
        store.close().await.unwrap();
        drop((telemetry, store));
        let store = Arc::new(Store::open(dir.path(), 64).unwrap());
        let telemetry = Telemetry::new(Arc::clone(&store), settings);
        assert_eq!(telemetry.retention.stored.load(Ordering::Relaxed), 200);
        finish_traces(&telemetry, 2).await;
        assert_eq!(stored_settles_at(&store, 202).await, 202);
        finish_traces(&telemetry, 1).await;
        assert_eq!(stored_settles_at(&store, 200).await, 200);
        assert!(telemetry.trace(&ids[5]).await.unwrap().is_none());
        assert!(telemetry.trace(&ids[6]).await.unwrap().is_some());
        store.close().await.unwrap();
    }
}
