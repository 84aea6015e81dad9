//! A `metrics` recorder that keeps what is recorded in memory, for tests to
//! read counters and histograms back by name and labels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Store<T> = Arc<Mutex<HashMap<String, T>>>;

/// Counter totals and histogram values, each under `name{label=value,…}`
/// (labels in the order given). Clones share the store. Install it for a
/// closure with `metrics::with_local_recorder(&recorded, || …)`, on a
/// current-thread runtime so every decision runs where it is installed.
#[derive(Clone, Default)]
pub struct Recorded {
    counters: Store<u64>,
    histograms: Store<Vec<f64>>,
}

impl Recorded {
    /// Every counter total so far.
    pub fn counters(&self) -> HashMap<String, u64> {
        self.counters.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Every histogram's values so far, in the order recorded.
    pub fn histograms(&self) -> HashMap<String, Vec<f64>> {
        self.histograms
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}

/// `name{label=value,…}`.
fn series(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

struct Handle<T>(Store<T>, String);

impl metrics::CounterFn for Handle<u64> {
    fn increment(&self, value: u64) {
        if let Ok(mut c) = self.0.lock() {
            *c.entry(self.1.clone()).or_default() += value;
        }
    }
    fn absolute(&self, value: u64) {
        if let Ok(mut c) = self.0.lock() {
            c.insert(self.1.clone(), value);
        }
    }
}

impl metrics::HistogramFn for Handle<Vec<f64>> {
    fn record(&self, value: f64) {
        if let Ok(mut h) = self.0.lock() {
            h.entry(self.1.clone()).or_default().push(value);
        }
    }
}

impl metrics::Recorder for Recorded {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::new(Handle(self.counters.clone(), series(key))))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(Handle(self.histograms.clone(), series(key))))
    }
}
