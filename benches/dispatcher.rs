//! The dispatcher delivering generated events to an in-process Rokt stand-in on loopback:
//! enqueue, map, build, bulk requests of 100, HTTP/1.1 round trips, one outcome per event.
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

    let mut g = c.benchmark_group("dispatcher");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("deliver to loopback (bulk of 100)", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let before = settled.load(Ordering::Relaxed);
                let started = Instant::now();
                runtime.block_on(async {
                    for e in &events {
                        dispatcher.enqueue(e).await.expect("queue open");
                    }
                    dispatcher.flush().await.expect("flush");
                });
                spent += started.elapsed();
                // Every event settles once per round; a bench that lost events would be wrong.
                assert_eq!(settled.load(Ordering::Relaxed) - before, events.len());
                assert!(
                    server.count() * 100 >= events.len(),
                    "at most 100 per request"
                );
                server.clear_received();
            }
            spent
        })
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
