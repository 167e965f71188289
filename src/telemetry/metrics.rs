//! Counters and histograms with `{count, sum, avg, min, max}` snapshots, plus the labelled
//! `astromesh_*` series that `GET /metrics` renders in the Prometheus text format.
//!
//! One `std::sync::Mutex` around a few maps: every update is a few nanoseconds of work, never
//! held across an `.await`. Names are dotted lowercase (`agent.runs`, `llm.latency_ms`). The
//! labelled series are keyed by their rendered form (`family{label="value",...}`), so a snapshot
//! is plain JSON and survives a restart. Not here: the HTTP endpoints (`api/metrics.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum: f64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
}

/// Upper bounds (seconds) of the Prometheus latency buckets; `+Inf` is implied.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A Prometheus histogram: cumulative counts are computed when rendering.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BucketHistogram {
    /// Observations per bucket (not cumulative); one more than `BUCKETS` for `+Inf`.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetricsSnapshot {
    pub counters: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, HistogramSnapshot>,
    /// Labelled counters by rendered series (`astromesh_agent_runs_total{agent="a",...}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series: BTreeMap<String, f64>,
    /// Labelled histograms by rendered series (without the `_bucket` suffix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series_histograms: BTreeMap<String, BucketHistogram>,
}

/// The families `GET /metrics` always declares: (name, type, help).
const FAMILIES: [(&str, &str, &str); 7] = [
    ("astromesh_agent_runs_total", "counter", "Agent runs by agent, orchestration pattern and status."),
    ("astromesh_provider_calls_total", "counter", "Model provider calls by provider, model and status."),
    ("astromesh_tool_executions_total", "counter", "Tool executions by tool and status."),
    ("astromesh_tokens_used_total", "counter", "Tokens used by agent and direction (input or output)."),
    ("astromesh_agent_latency_seconds", "histogram", "Agent run latency in seconds."),
    ("astromesh_provider_latency_seconds", "histogram", "Model provider call latency in seconds."),
    ("astromesh_active_sessions", "gauge", "Runs in progress by agent."),
];

/// Renders `family{k="v",...}` with Prometheus label-value escaping.
pub fn series_key(family: &str, labels: &[(&str, &str)]) -> String {
    let mut key = String::with_capacity(family.len() + 16 * labels.len());
    key.push_str(family);
    if !labels.is_empty() {
        key.push('{');
        for (idx, (name, value)) in labels.iter().enumerate() {
            if idx > 0 {
                key.push(',');
            }
            key.push_str(name);
            key.push_str("=\"");
            for ch in value.chars() {
                match ch {
                    '\\' => key.push_str("\\\\"),
                    '"' => key.push_str("\\\""),
                    '\n' => key.push_str("\\n"),
                    other => key.push(other),
                }
            }
            key.push('"');
        }
        key.push('}');
    }
    key
}

#[derive(Debug, Default)]
struct Inner {
    snapshot: MetricsSnapshot,
    /// Gauges are live state, never persisted.
    gauges: BTreeMap<String, f64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, update: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        update(&mut inner)
    }

    pub fn incr(&self, name: &str, by: u64) {
        self.with(|inner| *inner.snapshot.counters.entry(name.to_string()).or_default() += by);
    }

    pub fn observe(&self, name: &str, value: f64) {
        self.with(|inner| {
            let histogram = inner.snapshot.histograms.entry(name.to_string()).or_default();
            if histogram.count == 0 {
                histogram.min = value;
                histogram.max = value;
            }
            histogram.count += 1;
            histogram.sum += value;
            histogram.min = histogram.min.min(value);
            histogram.max = histogram.max.max(value);
            histogram.avg = histogram.sum / histogram.count as f64;
        });
    }

    /// Adds to a labelled Prometheus counter (`family` ends in `_total`).
    pub fn incr_series(&self, family: &str, labels: &[(&str, &str)], by: f64) {
        let key = series_key(family, labels);
        self.with(|inner| *inner.snapshot.series.entry(key).or_default() += by);
    }

    /// Records one observation (seconds) in a labelled Prometheus histogram.
    pub fn observe_series(&self, family: &str, labels: &[(&str, &str)], seconds: f64) {
        let key = series_key(family, labels);
        self.with(|inner| {
            let histogram = inner.snapshot.series_histograms.entry(key).or_default();
            if histogram.buckets.len() != BUCKETS.len() + 1 {
                histogram.buckets = vec![0; BUCKETS.len() + 1];
            }
            let slot = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
            histogram.buckets[slot] += 1;
            histogram.count += 1;
            histogram.sum += seconds;
        });
    }

    /// Moves a labelled gauge by `delta` (e.g. +1 when a run starts, -1 when it ends).
    pub fn add_gauge(&self, family: &str, labels: &[(&str, &str)], delta: f64) {
        let key = series_key(family, labels);
        self.with(|inner| *inner.gauges.entry(key).or_default() += delta);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        self.with(|inner| inner.snapshot.clone())
    }

    /// Adds a stored snapshot to the live values (at start, before anything is recorded).
    pub fn restore(&self, stored: MetricsSnapshot) {
        self.with(|inner| {
            for (name, value) in stored.counters {
                *inner.snapshot.counters.entry(name).or_default() += value;
            }
            for (name, value) in stored.histograms {
                inner.snapshot.histograms.entry(name).or_insert(value);
            }
            for (name, value) in stored.series {
                *inner.snapshot.series.entry(name).or_default() += value;
            }
            for (name, value) in stored.series_histograms {
                if value.buckets.len() == BUCKETS.len() + 1 {
                    inner.snapshot.series_histograms.entry(name).or_insert(value);
                }
            }
        });
    }

    pub fn reset(&self) {
        self.with(|inner| inner.snapshot = MetricsSnapshot::default());
    }

    /// The Prometheus text exposition format (version 0.0.4) of the labelled series.
    pub fn prometheus(&self) -> String {
        let (snapshot, gauges) = self.with(|inner| (inner.snapshot.clone(), inner.gauges.clone()));
        let mut out = String::with_capacity(4096);
        let family_of = |key: &str| key.split('{').next().unwrap_or_default().to_string();
        let labels_of = |key: &str| key.find('{').map(|idx| key[idx + 1..key.len() - 1].to_string());
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            match kind {
                "counter" => {
                    for (key, value) in snapshot.series.iter().filter(|(key, _)| family_of(key) == family) {
                        let _ = writeln!(out, "{key} {value}");
                    }
                }
                "gauge" => {
                    for (key, value) in gauges.iter().filter(|(key, _)| family_of(key) == family) {
                        let _ = writeln!(out, "{key} {value}");
                    }
                }
                _ => {
                    for (key, histogram) in
                        snapshot.series_histograms.iter().filter(|(key, _)| family_of(key) == family)
                    {
                        let labels = labels_of(key).map(|labels| format!("{labels},")).unwrap_or_default();
                        let mut cumulative = 0;
                        for (idx, count) in histogram.buckets.iter().enumerate() {
                            cumulative += count;
                            let bound =
                                BUCKETS.get(idx).map(|bound| bound.to_string()).unwrap_or_else(|| "+Inf".into());
                            let _ = writeln!(out, "{family}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
                        }
                        let plain = labels_of(key).map(|labels| format!("{{{labels}}}")).unwrap_or_default();
                        let _ = writeln!(out, "{family}_sum{plain} {}", histogram.sum);
                        let _ = writeln!(out, "{family}_count{plain} {}", histogram.count);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keys_escape_label_values() {
        assert_eq!(series_key("f_total", &[("a", "x\"y\\z\n")]), "f_total{a=\"x\\\"y\\\\z\\n\"}");
        assert_eq!(series_key("f_total", &[]), "f_total");
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe_series("astromesh_agent_latency_seconds", &[("agent", "a"), ("pattern", "react")], 0.02);
        metrics.observe_series("astromesh_agent_latency_seconds", &[("agent", "a"), ("pattern", "react")], 100.0);
        let text = metrics.prometheus();
        assert!(text.contains("astromesh_agent_latency_seconds_bucket{agent=\"a\",pattern=\"react\",le=\"0.025\"} 1\n"));
        assert!(text.contains("astromesh_agent_latency_seconds_bucket{agent=\"a\",pattern=\"react\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("astromesh_agent_latency_seconds_count{agent=\"a\",pattern=\"react\"} 2\n"));
    }

    #[test]
    fn restore_adds_to_live_counters() {
        let metrics = Metrics::default();
        metrics.incr("agent.runs", 2);
        metrics.incr_series("astromesh_agent_runs_total", &[("agent", "a")], 1.0);
        let stored = metrics.snapshot();
        let fresh = Metrics::default();
        fresh.incr("agent.runs", 1);
        fresh.restore(stored);
        assert_eq!(fresh.snapshot().counters["agent.runs"], 3);
        assert_eq!(fresh.snapshot().series["astromesh_agent_runs_total{agent=\"a\"}"], 1.0);
    }
}
