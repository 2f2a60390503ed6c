//! Per-stage cost of the pipeline on realistic events, and the end-to-end path.
//!
//! Events come from `ROKT_BENCH_EVENTS` (an NDJSON file), else from the shared generator
//! (`../shared/bench/make-events.py 2000`), else from the bundled example file.
//!
//! ```text
//! cargo bench --bench pipeline
//! ```

mod common;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use rokt_capi::hashing::sha256_hex;
use rokt_capi::mapping::{Preset, SendMapping};
use rokt_capi::payload::SendPayload;
use rokt_capi::request::RequestKind;
use rokt_capi::segment::{AsEvent, Event};
use rokt_capi::{Json, Pipeline};
use std::hint::black_box;

fn hash_all() -> Pipeline {
    hash_all_with(true)
}

/// The hash-everything mapping, encoding directly where it can or always the general way.
fn hash_all_with(direct: bool) -> Pipeline {
    Pipeline::builder()
        .direct_encoding(direct)
        .preset(Preset::Send)
        .overrides(serde_json::json!({"hashingConfiguration": {
            "hashEmail": true, "hashFirstName": true, "hashLastName": true,
            "hashMobile": true, "hashBillingZipcode": true}}))
        .build()
        .expect("the benchmark mapping compiles")
}

fn stages(c: &mut Criterion) {
    let lines = common::event_lines();
    let pipeline = hash_all();
    let mapping: &SendMapping = pipeline.mapping();
    let docs: Vec<Json<'_>> = lines.iter().filter_map(|l| Json::parse(l).ok()).collect();
    let payloads: Vec<SendPayload> = docs
        .iter()
        .filter_map(|d| SendPayload::from_event(mapping, d).ok())
        .collect();
    let batches: Vec<_> = payloads
        .iter()
        .cloned()
        .map(rokt_capi::payload::build)
        .collect();
    let n = lines.len() as u64;

    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(n));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(Json::parse(l).ok());
            }
        })
    });
    g.bench_function("map+coerce+validate", |b| {
        b.iter(|| {
            for d in &docs {
                black_box(SendPayload::from_event(mapping, d).ok());
            }
        })
    });
    g.bench_function("hash (5 fields)", |b| {
        b.iter(|| {
            for p in &payloads {
                for v in [
                    &p.email,
                    &p.firstname,
                    &p.lastname,
                    &p.mobile,
                    &p.billingzipcode,
                ]
                .into_iter()
                .flatten()
                {
                    black_box(sha256_hex(v));
                }
            }
        })
    });
    g.bench_function("build (incl. hashing)", |b| {
        b.iter_batched(
            || payloads.clone(),
            |ps| ps.into_iter().map(rokt_capi::payload::build).count(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("serialize", |b| {
        b.iter(|| {
            for batch in &batches {
                black_box(batch.to_json_bytes());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("end_to_end");
    g.throughput(Throughput::Elements(n));
    g.bench_function("encode (parse → bytes)", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(Json::parse(l).ok().map(|d| pipeline.encode(&d)));
            }
        })
    });
    // The same events as a service holds them: the typed inputs against the bytes above.
    let values: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let events: Vec<Event> = lines
        .iter()
        .filter_map(|l| Event::from_json(l).ok())
        .collect();
    g.bench_function("encode, serde_json::Value", |b| {
        b.iter(|| {
            for v in &values {
                black_box(pipeline.encode(v).ok());
            }
        })
    });
    g.bench_function("encode, segment::Event", |b| {
        b.iter(|| {
            for e in &events {
                black_box(pipeline.encode(e).ok());
            }
        })
    });
    g.finish();

    // The same events fresh, as a service hands them over just after reading them: 50 at a
    // time, made anew (untimed) before each round, so they are in cache as a just-parsed event
    // is. Held all at once, as above, typed events are scattered over the heap and every
    // member is a cache miss, which text, read front to back, does not suffer.
    const FRESH: usize = 50;
    let mut g = c.benchmark_group("typed_fresh");
    g.throughput(Throughput::Elements(FRESH as u64));
    fresh_row(&mut g, "bytes (&str)", &pipeline, &lines, FRESH);
    fresh_row(&mut g, "serde_json::Value", &pipeline, &values, FRESH);
    fresh_row(&mut g, "segment::Event", &pipeline, &events, FRESH);
    g.finish();

    let mut g = c.benchmark_group("end_to_end");
    g.throughput(Throughput::Elements(n));
    let general = hash_all_with(false);
    g.bench_function("encode, general path only (parse → bytes)", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(Json::parse(l).ok().map(|d| general.encode(&d)));
            }
        })
    });
    g.bench_function("bulk requests of 100", |b| {
        b.iter(|| {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let encoded = pipeline.encode_all(&refs, 1);
            black_box(
                pipeline
                    .bulk_encoded(RequestKind::Bulk, encoded)
                    .requests
                    .len(),
            )
        })
    });
    for threads in [1, 2] {
        g.bench_function(format!("encode_all, {threads} thread(s)"), |b| {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            b.iter(|| black_box(pipeline.encode_all(&refs, threads).len()))
        });
    }
    g.finish();
}

/// The next `count` items of `all` (cycling), cloned: new allocations, just written.
/// A `typed_fresh` row: `count` of `all`, cloned anew (untimed) before each round, encoded.
fn fresh_row<T: Clone + AsEvent>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    pipeline: &Pipeline,
    all: &[T],
    count: usize,
) {
    g.bench_function(name, |b| {
        let mut at = 0;
        b.iter_batched(
            || fresh(all, &mut at, count),
            |part| {
                for item in &part {
                    black_box(pipeline.encode(item).ok());
                }
                part
            },
            BatchSize::PerIteration,
        )
    });
}

fn fresh<T: Clone>(all: &[T], at: &mut usize, count: usize) -> Vec<T> {
    let part: Vec<T> = all.iter().cycle().skip(*at).take(count).cloned().collect();
    *at = (*at + count) % all.len().max(1);
    part
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = stages
}
criterion_main!(benches);
