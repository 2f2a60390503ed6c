//! The rtid memory: its size per identity, and how many events per second it observes.
//!
//! Prints the figures first (entries held, resident bytes per entry, lookups per second on a
//! full store), then runs criterion on `RtidMemory::observe`: a conversion enriched from a
//! full store, a landing page that teaches, and an event of an unknown visitor. With
//! `--features sqlite`, the same on an SQLite file.
//!
//! ```text
//! cargo bench --bench rtid_memory [--features sqlite]
//! ROKT_BENCH_VISITORS=1000000 cargo bench --bench rtid_memory   # visitors filled (default 500 000)
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rokt_capi::Json;
use rokt_capi::rtid::memory::RtidMemory;
use std::hint::black_box;
use std::time::Instant;

fn visitors() -> usize {
    std::env::var("ROKT_BENCH_VISITORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000)
}

/// The process's resident set size in bytes (Linux: `VmRSS` of /proc/self/status).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A landing page of visitor `i` (anonymous id and a 24-character click id), and an
/// identify that links a user id to it: two identities per visitor.
fn landing(i: usize) -> String {
    format!(
        r#"{{"type":"page","anonymousId":"2f1c7a9e-5d4b-4c1e-9a3f-{i:012}","context":{{"page":{{"search":"?utm_source=rokt&rtid=rt{i:022}"}}}}}}"#
    )
}

fn signup(i: usize) -> String {
    format!(
        r#"{{"type":"identify","anonymousId":"2f1c7a9e-5d4b-4c1e-9a3f-{i:012}","userId":"user-{i:010}"}}"#
    )
}

fn order(i: usize) -> String {
    format!(
        r#"{{"type":"track","event":"Order Completed","userId":"user-{i:010}","messageId":"m-{i}","properties":{{"order_id":"o-{i}","revenue":19.9}}}}"#
    )
}

fn fill(memory: &RtidMemory, n: usize) {
    for i in 0..n {
        for text in [landing(i), signup(i)] {
            memory.observe(&Json::parse(&text).unwrap()).unwrap();
        }
    }
}

/// Observes `events` (pre-parsed) once each; events per second.
fn rate(memory: &RtidMemory, events: &[Json<'_>]) -> f64 {
    let started = Instant::now();
    let mut enriched = 0usize;
    for e in events {
        enriched += usize::from(memory.observe(e).unwrap().is_some());
    }
    black_box(enriched);
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// Fills `memory` with `n` visitors and prints its figures; `file` is where a store keeps
/// its entries, whose size per entry is then printed instead of the resident memory's.
fn figures(name: &str, memory: &RtidMemory, n: usize, file: Option<&std::path::Path>) {
    let before = rss_bytes();
    let started = Instant::now();
    fill(memory, n);
    let filled = started.elapsed();
    let after = rss_bytes();
    let entries = memory.len().unwrap();
    let texts: Vec<String> = (0..n.min(200_000)).map(|i| order(i * 7 % n)).collect();
    let events: Vec<Json<'_>> = texts.iter().map(|t| Json::parse(t).unwrap()).collect();
    let lookups = rate(memory, &events);
    let on_disk = file.map(|f| {
        let wal = f.with_extension("sqlite-wal");
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(f) + size(&wal)
    });
    let per_entry = match (on_disk, before, after) {
        (Some(bytes), _, _) => format!("{} bytes on disk", bytes / entries.max(1)),
        (None, Some(b), Some(a)) => {
            format!("{} bytes resident", a.saturating_sub(b) / entries.max(1))
        }
        _ => "unknown (no /proc/self/status)".to_owned(),
    };
    println!(
        "rtid memory [{name}]: {n} visitors -> {entries} entries, {per_entry} per entry, \
         filled at {:.0} events/s, {lookups:.0} conversions enriched per second (one thread)",
        (2 * n) as f64 / filled.as_secs_f64(),
    );
}

fn bench(c: &mut Criterion) {
    let n = visitors();
    let memory = RtidMemory::builder().build().unwrap();
    figures("in-memory", &memory, n, None);

    let conversion = order(n / 2);
    let conversion = Json::parse(&conversion).unwrap();
    let stranger = Json::parse(r#"{"type":"track","event":"x","anonymousId":"nobody"}"#).unwrap();
    let teach = landing(n / 3);
    let teach = Json::parse(&teach).unwrap();
    let mut g = c.benchmark_group("rtid_memory");
    g.throughput(Throughput::Elements(1));
    g.bench_function("in-memory: enrich a known user's conversion", |b| {
        b.iter(|| memory.observe(black_box(&conversion)).unwrap())
    });
    g.bench_function("in-memory: a landing page teaches", |b| {
        b.iter(|| memory.observe(black_box(&teach)).unwrap())
    });
    g.bench_function("in-memory: an unknown visitor", |b| {
        b.iter(|| memory.observe(black_box(&stranger)).unwrap())
    });
    #[cfg(feature = "sqlite")]
    {
        use rokt_capi::rtid::memory::SqliteStore;
        let dir = std::env::temp_dir().join(format!("rokt-capi-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rtid.sqlite");
        let sqlite = RtidMemory::builder()
            .store(SqliteStore::open(&file).unwrap())
            .build()
            .unwrap();
        let n = n.min(100_000);
        figures("sqlite file", &sqlite, n, Some(&file));
        let conversion = order(n / 2);
        let conversion = Json::parse(&conversion).unwrap();
        g.bench_function("sqlite: enrich a known user's conversion", |b| {
            b.iter(|| sqlite.observe(black_box(&conversion)).unwrap())
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
