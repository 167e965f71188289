//! OpenTelemetry export: finished traces as OTLP/HTTP protobuf to `{endpoint}/v1/traces`.
//!
//! `Exporter::send` only clones the trace into a bounded queue (`try_send`); a named worker
//! thread encodes it with `opentelemetry-proto` and posts it with ureq. When the collector is
//! slow or down the queue fills and further traces are dropped and counted (`otlp.dropped`):
//! export never slows or fails a run. Model spans carry the GenAI semantic-convention
//! attributes (`gen_ai.system`, `gen_ai.request.model`, `gen_ai.usage.*_tokens`). Not here: the
//! OpenTelemetry SDK (we already have finished spans; re-emitting them through a tracer would
//! add a second clock and batching layer for nothing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use serde_json::Value;

use super::{Metrics, SpanRecord, TraceRecord};

/// Traces waiting for the worker; beyond this they are dropped (a collector outage must not
/// grow memory without bound).
const QUEUE: usize = 256;
/// One POST may take this long before the trace is given up.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Exporter {
    queue: SyncSender<Box<TraceRecord>>,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    /// Starts the worker thread; `None` (logged) when the thread cannot start.
    pub(super) fn start(endpoint: &str) -> Option<Exporter> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let (queue, received) = sync_channel::<Box<TraceRecord>>(QUEUE);
        let agent = crate::net::agent(crate::net::config().timeout_global(Some(POST_TIMEOUT)).build());
        let worker = move || {
            // Ends when the `Telemetry` (the only sender) is dropped.
            while let Ok(trace) = received.recv() {
                let body = encode(&trace);
                match agent.post(&url).header("content-type", "application/x-protobuf").send(&body[..]) {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => tracing::warn!(status = %response.status(), "OTLP collector refused a trace"),
                    Err(error) => tracing::warn!("OTLP export to {url} failed: {error}"),
                }
            }
        };
        match std::thread::Builder::new().name("otlp-export".into()).spawn(worker) {
            Ok(_) => Some(Exporter { queue, dropped: Arc::new(AtomicU64::new(0)) }),
            Err(error) => {
                tracing::error!("cannot start the OTLP export thread, traces are not exported: {error}");
                None
            }
        }
    }

    pub(super) fn send(&self, trace: &TraceRecord, metrics: &Metrics) {
        match self.queue.try_send(Box::new(trace.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics.incr("otlp.dropped", 1);
            }
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).filter_map(|idx| u8::from_str_radix(hex.get(idx * 2..idx * 2 + 2)?, 16).ok()).collect()
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// Scalars keep their type; arrays and objects are stringified (as the Python exporter does).
fn json_attribute(key: &str, value: &Value) -> Option<KeyValue> {
    let converted = match value {
        Value::Null => return None,
        Value::Bool(flag) => any_value::Value::BoolValue(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(int) => any_value::Value::IntValue(int),
            None => any_value::Value::DoubleValue(number.as_f64().unwrap_or_default()),
        },
        Value::String(text) => any_value::Value::StringValue(text.clone()),
        other => any_value::Value::StringValue(other.to_string()),
    };
    Some(attribute(key, converted))
}

fn nanos(epoch_seconds: f64) -> u64 {
    (epoch_seconds * 1e9) as u64
}

fn span(trace: &TraceRecord, record: &SpanRecord) -> Span {
    let mut attributes: Vec<KeyValue> =
        record.attributes.iter().filter_map(|(key, value)| json_attribute(key, value)).collect();
    if record.name == "llm.complete" {
        let gen_ai = [
            ("gen_ai.system", "provider"),
            ("gen_ai.request.model", "model"),
            ("gen_ai.usage.input_tokens", "input_tokens"),
            ("gen_ai.usage.output_tokens", "output_tokens"),
        ];
        for (semantic, ours) in gen_ai {
            if let Some(kv) = record.attributes.get(ours).and_then(|value| json_attribute(semantic, value)) {
                attributes.push(kv);
            }
        }
        attributes.push(attribute("gen_ai.operation.name", any_value::Value::StringValue("chat".into())));
    }
    if record.parent_span_id.is_none() {
        attributes.push(attribute("session.id", any_value::Value::StringValue(trace.session_id.clone())));
    }
    let error = record.status == "ERROR";
    Span {
        trace_id: hex_bytes(&trace.trace_id),
        span_id: hex_bytes(&record.span_id),
        parent_span_id: record.parent_span_id.as_deref().map(hex_bytes).unwrap_or_default(),
        name: record.name.clone(),
        kind: if record.name == "llm.complete" { SpanKind::Client } else { SpanKind::Internal } as i32,
        start_time_unix_nano: nanos(record.start_time),
        end_time_unix_nano: nanos(record.end_time),
        attributes,
        status: Some(Status {
            code: if error { StatusCode::Error } else { StatusCode::Ok } as i32,
            message: record.attributes.get("error_message").and_then(Value::as_str).unwrap_or_default().to_string(),
        }),
        ..Default::default()
    }
}

/// The `ExportTraceServiceRequest` body for one trace.
pub(super) fn encode(trace: &TraceRecord) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", any_value::Value::StringValue("astromesh".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "astromesh".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: trace.spans.iter().map(|record| span(trace, record)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec()
}
