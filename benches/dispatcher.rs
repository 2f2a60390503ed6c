//! The dispatcher delivering generated events to an in-process Rokt stand-in on loopback:
//! enqueue, map, build, bulk requests of 100, HTTP/1.1 round trips, one outcome per event; the
//! same events given as `serde_json::Value`s, as text and as typed `segment::Event`s.
//!
//! Events come from `ROKT_BENCH_EVENTS` (an NDJSON file), else from the shared generator
//! (`../shared/bench/make-events.py 2000`), else from the bundled example file.
//!
//! ```text
//! cargo bench --bench dispatcher
//! ```

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rokt_capi::client::Dispatcher;
use rokt_capi::segment::{AsEvent, Event};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{MockServer, Reply};

fn deliver(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let events: Vec<Value> = common::event_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The stand-in answers without decoding the bodies: it shares the two cores with the
    // dispatcher, and decoding would be measured as the dispatcher's cost.
    let server = runtime.block_on(MockServer::start(|_: &support::Received| Reply::accepted()));
    let settled = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let dispatcher = runtime.block_on(async {
        Dispatcher::builder(support::client(&server))
            .on_outcome({
                let (settled, delivered) = (settled.clone(), delivered.clone());
                move |o| {
                    settled.fetch_add(1, Ordering::Relaxed);
                    if o.verdict.is_delivered() {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .build()
            .expect("dispatcher")
    });

    // The same events as the three forms a service holds: text, `serde_json::Value`, typed.
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let typed: Vec<Event> = events
        .iter()
        .filter_map(|e| Event::from_value(e.clone()).ok())
        .collect();
    assert_eq!(
        typed.len(),
        events.len(),
        "the generated events are Segment events"
    );
    let mut g = c.benchmark_group("dispatcher");
    g.throughput(Throughput::Elements(events.len() as u64));
    let round = Round {
        runtime: &runtime,
        dispatcher: &dispatcher,
        settled: &settled,
        server: &server,
    };
    g.bench_function("deliver to loopback, events as serde_json::Value", |b| {
        b.iter_custom(|iters| round.timed(iters, &events))
    });
    g.bench_function("deliver to loopback, events as text", |b| {
        b.iter_custom(|iters| round.timed(iters, &lines))
    });
    g.bench_function("deliver to loopback, events as segment::Event", |b| {
        b.iter_custom(|iters| round.timed(iters, &typed))
    });
    g.finish();
    runtime.block_on(dispatcher.shutdown());
    let (sent, ok) = (
        settled.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed),
    );
    assert_eq!(ok, sent, "every event is delivered to the loopback server");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = deliver
}
criterion_main!(benches);

/// What one timed round needs.
struct Round<'b> {
    runtime: &'b tokio::runtime::Runtime,
    dispatcher: &'b Dispatcher,
    settled: &'b AtomicUsize,
    server: &'b MockServer,
}

impl Round<'_> {
    /// `iters` rounds of enqueueing every event and flushing, timed.
    fn timed<T: Sync>(&self, iters: u64, events: &[T]) -> Duration
    where
        for<'e> &'e T: AsEvent + Send,
    {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let before = self.settled.load(Ordering::Relaxed);
            let started = Instant::now();
            self.runtime.block_on(async {
                for e in events {
                    self.dispatcher.enqueue(e).await.expect("queue open");
                }
                self.dispatcher.flush().await.expect("flush");
            });
            spent += started.elapsed();
            // Every event settles once per round; a bench that lost events would be wrong.
            assert_eq!(self.settled.load(Ordering::Relaxed) - before, events.len());
            assert!(
                self.server.count() * 100 >= events.len(),
                "at most 100 per request"
            );
            self.server.clear_received();
        }
        spent
    }
}
