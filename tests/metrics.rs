//! The `metrics` feature: a dispatcher's counters and latencies reach the `metrics` facade
//! under the names `client::stats` documents, with the same values as `Dispatcher::stats`.
#![cfg(feature = "metrics")]

mod support;

use metrics::{Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata};
use metrics::{Recorder, SharedString, Unit};
use rokt_capi::client::Dispatcher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{MockServer, Reply};

/// What the recorder saw, by metric name: counters' totals and histograms' samples.
#[derive(Default)]
struct Seen {
    counters: Mutex<HashMap<String, u64>>,
    histograms: Mutex<HashMap<String, Vec<f64>>>,
}

struct Recorded {
    name: String,
    seen: Arc<Seen>,
}

impl CounterFn for Recorded {
    fn increment(&self, value: u64) {
        *self
            .seen
            .counters
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.seen
            .counters
            .lock()
            .unwrap()
            .insert(self.name.clone(), value);
    }
}

impl HistogramFn for Recorded {
    fn record(&self, value: f64) {
        let mut h = self.seen.histograms.lock().unwrap();
        h.entry(self.name.clone()).or_default().push(value);
    }
}

struct TestRecorder(Arc<Seen>);

impl TestRecorder {
    fn handle(&self, key: &Key) -> Arc<Recorded> {
        Arc::new(Recorded {
            name: key.name().to_owned(),
            seen: self.0.clone(),
        })
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

#[tokio::test]
async fn the_facade_gets_the_counters_and_latencies_that_stats_show() {
    let seen = Arc::new(Seen::default());
    metrics::set_global_recorder(TestRecorder(seen.clone())).unwrap();

    let server = MockServer::script(vec![Reply::status(503), Reply::accepted()]).await;
    let dispatcher = Dispatcher::builder(support::client(&server))
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    for i in 0..3 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.flush().await.unwrap();
    dispatcher.shutdown().await;
    let stats = dispatcher.stats();

    let counters = seen.counters.lock().unwrap().clone();
    let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
    assert_eq!(counter("rokt_capi_events_enqueued_total"), stats.enqueued);
    assert_eq!(counter("rokt_capi_events_delivered_total"), 3);
    assert_eq!(counter("rokt_capi_events_failed_total"), 0);
    assert_eq!(counter("rokt_capi_requests_total"), 2);
    assert_eq!(counter("rokt_capi_retries_total"), 1);
    let histograms = seen.histograms.lock().unwrap().clone();
    let outcome = &histograms["rokt_capi_outcome_latency_seconds"];
    assert_eq!(outcome.len(), 3);
    assert_eq!(histograms["rokt_capi_request_latency_seconds"].len(), 2);
    let max = outcome.iter().copied().fold(0.0, f64::max);
    assert!(
        (max - stats.outcome_latency.max().as_secs_f64()).abs() < 1e-3,
        "{max} vs {stats:?}"
    );
}
