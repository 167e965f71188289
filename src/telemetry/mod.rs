//! Traces and metrics: what runs record, as product data (not logs).
//!
//! A run opens a `TraceRecorder`; each step opens a `Span` under it and closes it with status and
//! attributes. A finished trace is handed to `Telemetry::finish`, which keeps it in the store.
//! `Metrics` holds counters and histograms (the only process-wide mutable state besides the
//! store). Not here: the endpoints that serve them (`api/`), log output (`tracing`).

mod metrics;

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use metrics::{HistogramSnapshot, Metrics, MetricsSnapshot};

use crate::store::{Store, Table, WriteOp};

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
    metrics: Metrics,
}

impl Telemetry {
    pub fn new(store: Arc<Store>) -> Telemetry {
        Telemetry { store, metrics: Metrics::default() }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stores a finished trace. The key sorts newest first: (u64::MAX - start micros, id).
    pub async fn finish(&self, trace: &TraceRecorder) {
        let record = trace.into_record();
        let micros = (record.start_time * 1e6) as u64;
        let mut key = (u64::MAX - micros).to_be_bytes().to_vec();
        key.extend_from_slice(record.trace_id.as_bytes());
        let value = match serde_json::to_vec(&record) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!("trace {} not stored: {error}", record.trace_id);
                return;
            }
        };
        if let Err(error) = self.store.write(WriteOp::Put { table: Table::Traces, key, value }).await {
            tracing::warn!("trace {} not stored: {error}", record.trace_id);
        }
    }
}
