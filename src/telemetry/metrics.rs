//! Counters and histograms with `{count, sum, avg, min, max}` snapshots.
//!
//! One `std::sync::Mutex` around two maps: every update is a few nanoseconds of work, never held
//! across an `.await`. Names are dotted lowercase (`agent.runs`, `llm.latency_ms`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum: f64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MetricsSnapshot {
    pub counters: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, HistogramSnapshot>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricsSnapshot>,
}

impl Metrics {
    fn with<T>(&self, update: impl FnOnce(&mut MetricsSnapshot) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        update(&mut inner)
    }

    pub fn incr(&self, name: &str, by: u64) {
        self.with(|inner| *inner.counters.entry(name.to_string()).or_default() += by);
    }

    pub fn observe(&self, name: &str, value: f64) {
        self.with(|inner| {
            let histogram = inner.histograms.entry(name.to_string()).or_default();
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

    pub fn snapshot(&self) -> MetricsSnapshot {
        self.with(|inner| inner.clone())
    }

    pub fn reset(&self) {
        self.with(|inner| *inner = MetricsSnapshot::default());
    }
}
