//! Traces and metrics: what runs record, as product data (not logs).
//!
//! A run opens a `TraceRecorder`; each step opens a `Span` under it and closes it with status and
//! attributes. A finished trace is handed to `Telemetry::finish`, which keeps it in the store.
//! `Metrics` holds counters and histograms (the only process-wide mutable state besides the
//! store). Not here: the endpoints that serve them (`api/`), log output (`tracing`).

mod metrics;
mod otlp;
mod retention;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use metrics::{series_key, HistogramSnapshot, Metrics, MetricsSnapshot};

use crate::store::{Store, StoreError, Table, WriteOp};
use retention::Retention;

/// One finished span, as stored and served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpanRecord {
    pub name: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub start_time: f64,
    pub end_time: f64,
    pub duration_ms: f64,
    pub attributes: Map<String, Value>,
    /// `OK` or `ERROR`.
    pub status: String,
}

/// One finished trace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceRecord {
    pub trace_id: String,
    pub agent: String,
    pub session_id: String,
    pub start_time: f64,
    pub end_time: f64,
    pub duration_ms: f64,
    pub status: String,
    pub spans: Vec<SpanRecord>,
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs_f64()).unwrap_or_default()
}

/// Truncates text for a span attribute, on a char boundary.
pub fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => format!("{}…", &text[..byte]),
        None => text.to_string(),
    }
}

/// Collects the spans of one run. Shared by the run's tasks (concurrent tool calls).
#[derive(Debug)]
pub struct TraceRecorder {
    trace_id: String,
    agent: String,
    session_id: String,
    started_wall: SystemTime,
    started: Instant,
    spans: Mutex<Vec<SpanRecord>>,
}

impl TraceRecorder {
    pub fn new(agent: &str, session_id: &str) -> Arc<TraceRecorder> {
        Arc::new(TraceRecorder {
            trace_id: random_hex(16),
            agent: agent.to_string(),
            session_id: session_id.to_string(),
            started_wall: SystemTime::now(),
            started: Instant::now(),
            spans: Mutex::new(Vec::new()),
        })
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// Opens a span; it is recorded when `finish`ed (a dropped span is recorded as an error).
    pub fn span(self: &Arc<Self>, name: &str, parent: Option<&str>) -> Span {
        Span {
            recorder: self.clone(),
            name: name.to_string(),
            span_id: random_hex(8),
            parent: parent.map(str::to_string),
            started_wall: SystemTime::now(),
            started: Instant::now(),
            attributes: Map::new(),
            error: None,
            done: false,
        }
    }

    fn push(&self, span: SpanRecord) {
        // A poisoned lock only means another span's recording panicked; keep recording.
        let mut spans = self.spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        spans.push(span);
    }

    /// Closes the trace: spans in start order, the root's status as the trace's status.
    pub fn into_record(&self) -> TraceRecord {
        let mut spans = self.spans.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        spans.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
        let status = spans.iter().find(|span| span.parent_span_id.is_none()).map(|span| span.status.clone());
        let end = SystemTime::now();
        TraceRecord {
            trace_id: self.trace_id.clone(),
            agent: self.agent.clone(),
            session_id: self.session_id.clone(),
            start_time: epoch_seconds(self.started_wall),
            end_time: epoch_seconds(end),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            status: status.unwrap_or_else(|| "OK".to_string()),
            spans,
        }
    }
}

/// An open span. Set attributes, then `finish` (or `fail`).
#[derive(Debug)]
pub struct Span {
    recorder: Arc<TraceRecorder>,
    name: String,
    span_id: String,
    parent: Option<String>,
    started_wall: SystemTime,
    started: Instant,
    attributes: Map<String, Value>,
    error: Option<String>,
    done: bool,
}

impl Span {
    pub fn id(&self) -> &str {
        &self.span_id
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.attributes.insert(key.to_string(), value.into());
    }

    /// Marks the span as failed with a message (kept in `error_message`).
    pub fn fail(&mut self, message: &str) {
        self.error = Some(message.to_string());
    }

    pub fn finish(mut self) {
        self.record();
    }

    fn record(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let mut attributes = std::mem::take(&mut self.attributes);
        if let Some(error) = &self.error {
            attributes.insert("error_message".to_string(), Value::from(clip(error, 2000)));
        }
        let start_time = epoch_seconds(self.started_wall);
        let duration = self.started.elapsed().as_secs_f64();
        self.recorder.push(SpanRecord {
            name: std::mem::take(&mut self.name),
            span_id: self.span_id.clone(),
            parent_span_id: self.parent.clone(),
            start_time,
            end_time: start_time + duration,
            duration_ms: duration * 1000.0,
            attributes,
            status: if self.error.is_some() { "ERROR" } else { "OK" }.to_string(),
        });
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned (deadline, cancelled run): record it as such rather than lose it.
            if self.error.is_none() {
                self.error = Some("span abandoned before it finished".to_string());
            }
            self.record();
        }
    }
}

/// Where finished traces and the metrics live.
pub struct Telemetry {
    store: Arc<Store>,
    /// Finished traces queued to the store and not yet committed, by id: reads see them at
    /// once, so a run does not wait for its trace's write. A `std` mutex, never held across an
    /// await.
    pending: Arc<std::sync::Mutex<HashMap<String, Arc<TraceRecord>>>>,
    metrics: Metrics,
    settings: TelemetrySettings,
    exporter: Option<otlp::Exporter>,
    /// Retention bookkeeping (see `finish`).
    retention: Arc<Retention>,
}

/// Retention and export settings (from `spec.observability`).
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Most traces kept; the oldest are evicted first.
    pub max_traces: usize,
    /// Traces that started longer ago than this are evicted.
    pub max_age: Duration,
    /// OTLP/HTTP base URL (`{endpoint}/v1/traces` receives the spans).
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings { max_traces: 10_000, max_age: Duration::from_secs(7 * 24 * 3600), otlp_endpoint: None }
    }
}

/// Failures reading traces or the metrics snapshot.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored trace {key} is malformed: {source}")]
    Malformed { key: String, source: serde_json::Error },
}

/// Trace keys: `t` ++ (u64::MAX - start micros, big-endian) ++ trace id, so a forward scan is
/// newest first and the last key is the oldest. `i` ++ trace id points at the `t` key, for
/// `GET /v1/traces/{id}` without a scan.
const TIME_PREFIX: u8 = b't';
const ID_PREFIX: u8 = b'i';
/// Bounds of the `t` keys.
const TIME_RANGE: (&[u8], &[u8]) = (b"t", b"u");
/// Key of the saved metrics snapshot in `Table::Metrics`.
const METRICS_KEY: &[u8] = b"snapshot";

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_micros() as u64).unwrap_or_default()
}

impl Telemetry {
    /// Builds the telemetry and loads the saved metrics snapshot (blocking: call at startup).
    pub fn new(store: Arc<Store>, settings: TelemetrySettings) -> Telemetry {
        let metrics = Metrics::default();
        match store.get(Table::Metrics, METRICS_KEY) {
            Ok(Some(bytes)) => match serde_json::from_slice::<MetricsSnapshot>(&bytes) {
                Ok(snapshot) => metrics.restore(snapshot),
                Err(error) => tracing::warn!("saved metrics are malformed, starting from zero: {error}"),
            },
            Ok(None) => {}
            Err(error) => tracing::warn!("cannot load saved metrics, starting from zero: {error}"),
        }
        let exporter = settings.otlp_endpoint.as_deref().and_then(otlp::Exporter::start);
        let retention = Arc::new(Retention::new(Arc::clone(&store), &settings));
        Telemetry { store, pending: Arc::default(), metrics, settings, exporter, retention }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stores a finished trace (queueing an eviction when past the retention limits, see
    /// `Retention`) and hands it to the OTLP exporter, if any. Never fails the run: errors are
    /// logged.
    pub async fn finish(&self, trace: &TraceRecorder) {
        let record = trace.into_record();
        if let Some(exporter) = &self.exporter {
            exporter.send(&record, &self.metrics);
        }
        let micros = (record.start_time * 1e6) as u64;
        let mut key = Vec::with_capacity(9 + record.trace_id.len());
        key.push(TIME_PREFIX);
        key.extend_from_slice(&(u64::MAX - micros).to_be_bytes());
        key.extend_from_slice(record.trace_id.as_bytes());
        let mut id_key = vec![ID_PREFIX];
        id_key.extend_from_slice(record.trace_id.as_bytes());
        let value = match serde_json::to_vec(&record) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!("trace {} not stored: {error}", record.trace_id);
                return;
            }
        };
        let ops = vec![
            WriteOp::Put { table: Table::Traces, key: id_key, value: key.clone() },
            WriteOp::Put { table: Table::Traces, key, value },
        ];
        // The run waits only for the write to be queued: until the writer commits it (lazily:
        // durable with its next durable commit), reads find the trace in `pending`.
        let trace_id = record.trace_id.clone();
        self.pending_traces().insert(trace_id.clone(), Arc::new(record));
        let pending = Arc::clone(&self.pending);
        let forget = move || {
            pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&trace_id);
            trace_id
        };
        match self.store.enqueue_lazy(ops).await {
            Ok(acknowledgement) => {
                self.retention.count_one().await;
                tokio::spawn(async move {
                    let result = acknowledgement.wait().await;
                    let trace_id = forget();
                    if let Err(error) = result {
                        tracing::warn!("trace {trace_id} not stored: {error}");
                    }
                });
            }
            Err(error) => {
                let trace_id = forget();
                tracing::warn!("trace {trace_id} not stored: {error}");
            }
        }
    }

    fn pending_traces(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TraceRecord>>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Evicts traces past the age and count limits now (the periodic sweep; between sweeps,
    /// writes queue an eviction once past the count limit's slack).
    pub async fn evict_expired(&self) -> Result<(), StoreError> {
        self.store.write(self.retention.eviction()).await
    }

    /// Newest first, optionally only one agent's, at most `limit`. Reads on the blocking pool.
    pub async fn traces(&self, agent: Option<String>, limit: usize) -> Result<Vec<TraceRecord>, TelemetryError> {
        #[derive(Deserialize)]
        struct AgentOnly {
            agent: String,
        }
        // Traces still on their way to the store are listed too. Read them before the store: a
        // trace leaves `pending` only once committed, so one that is not in this snapshot is
        // found by the scan below (and one in both is listed once).
        let pending: Vec<TraceRecord> = self
            .pending_traces()
            .values()
            .filter(|record| agent.as_ref().is_none_or(|wanted| &record.agent == wanted))
            .map(|record| TraceRecord::clone(record))
            .collect();
        let store = self.store.clone();
        let scan = move || {
            store.read(|txn| {
                let table = match txn.open_table(Table::Traces.definition()) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                    Err(error) => return Err(error.into()),
                };
                let mut found = Vec::with_capacity(limit.min(100));
                for entry in table.range(TIME_RANGE.0..TIME_RANGE.1)? {
                    if found.len() >= limit {
                        break;
                    }
                    let (key, value) = entry?;
                    let bytes = value.value();
                    if let Some(wanted) = &agent {
                        match serde_json::from_slice::<AgentOnly>(bytes) {
                            Ok(only) if &only.agent == wanted => {}
                            _ => continue,
                        }
                    }
                    found.push((key.value().to_vec(), bytes.to_vec()));
                }
                Ok(found)
            })
        };
        let rows = tokio::task::spawn_blocking(scan).await.map_err(StoreError::from)??;
        let mut records: Vec<TraceRecord> = rows
            .into_iter()
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes)
                    .map_err(|source| TelemetryError::Malformed { key: String::from_utf8_lossy(&key).into(), source })
            })
            .collect::<Result<_, _>>()?;
        if !pending.is_empty() {
            let stored: std::collections::HashSet<String> =
                records.iter().map(|record| record.trace_id.clone()).collect();
            records.extend(pending.into_iter().filter(|record| !stored.contains(&record.trace_id)));
            records.sort_by(|a, b| b.start_time.total_cmp(&a.start_time));
        }
        // An eviction may be queued but not applied yet: list no more than the limit keeps.
        records.truncate(limit.min(self.settings.max_traces));
        Ok(records)
    }

    /// One trace by id, or `None`.
    pub async fn trace(&self, trace_id: &str) -> Result<Option<TraceRecord>, TelemetryError> {
        if let Some(record) = self.pending_traces().get(trace_id) {
            return Ok(Some(TraceRecord::clone(record)));
        }
        let mut id_key = vec![ID_PREFIX];
        id_key.extend_from_slice(trace_id.as_bytes());
        let Some(key) = self.store.get_async(Table::Traces, id_key).await? else {
            return Ok(None);
        };
        let Some(bytes) = self.store.get_async(Table::Traces, key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| TelemetryError::Malformed { key: trace_id.to_string(), source })
    }

    /// Saves the metrics snapshot (periodically and at shutdown), so counters survive restarts.
    pub async fn save_metrics(&self) -> Result<(), StoreError> {
        let value = serde_json::to_vec(&self.metrics.snapshot()).expect("a metrics snapshot always serializes");
        self.store.write(WriteOp::Put { table: Table::Metrics, key: METRICS_KEY.to_vec(), value }).await
    }

    /// Clears the live metrics and the saved snapshot.
    pub async fn reset_metrics(&self) -> Result<(), StoreError> {
        self.metrics.reset();
        self.store.write(WriteOp::Delete { table: Table::Metrics, key: METRICS_KEY.to_vec() }).await
    }

    /// Traces dropped because the OTLP export queue was full.
    pub fn otlp_dropped(&self) -> u64 {
        self.exporter.as_ref().map(otlp::Exporter::dropped).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_trace_is_readable_before_its_write_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 64).unwrap());
        let telemetry = Telemetry::new(Arc::clone(&store), TelemetrySettings::default());
        // Hold the store's writer inside a job, so the trace's write cannot be committed yet.
        let (release, held) = std::sync::mpsc::sync_channel::<()>(1);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let holding = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .write(WriteOp::Custom(Box::new(move |_txn| {
                        let _ = started_tx.send(());
                        let _ = held.recv_timeout(Duration::from_secs(10));
                        Ok(())
                    })))
                    .await
            })
        };
        started.await.unwrap();

        let trace = TraceRecorder::new("agent-a", "sess");
        trace.span("agent.run", None).finish();
        let trace_id = trace.trace_id().to_string();
        tokio::time::timeout(Duration::from_secs(5), telemetry.finish(&trace))
            .await
            .expect("finish does not wait for the writer");
        assert_eq!(telemetry.trace(&trace_id).await.unwrap().map(|record| record.agent), Some("agent-a".into()));
        let listed = telemetry.traces(Some("agent-a".into()), 10).await.unwrap();
        assert_eq!(listed.iter().map(|record| record.trace_id.clone()).collect::<Vec<_>>(), vec![trace_id.clone()]);
        assert!(telemetry.traces(Some("agent-b".into()), 10).await.unwrap().is_empty());

        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        for _ in 0..2000 {
            if telemetry.pending_traces().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(telemetry.pending_traces().is_empty(), "forgotten once committed");
        assert_eq!(telemetry.traces(None, 10).await.unwrap().len(), 1, "listed once, from the store");
        store.close().await.unwrap();
        drop((telemetry, store));
        let store = Arc::new(Store::open(dir.path(), 64).unwrap());
        let telemetry = Telemetry::new(Arc::clone(&store), TelemetrySettings::default());
        assert!(telemetry.trace(&trace_id).await.unwrap().is_some(), "durable after close");
        store.close().await.unwrap();
    }
}
