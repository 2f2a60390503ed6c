//! Durable enqueue through a spooled dispatcher: throughput and ack latency (p50, p99) with
//! concurrent producers, to a receiver on loopback that accepts everything.
//!
//! `cargo bench --features sqlite --bench spool` (embedded); with `--features sqlite,postgres`
//! and `DATABASE_URL` set, the Postgres outbox too. `ROKT_BENCH_EVENTS` sets the events per run
//! (default 100 000). Prints one line per run.

#[path = "../tests/support/mod.rs"]
mod support;

use rokt_capi::client::Dispatcher;
use rokt_capi::spool::Spool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{MockServer, Reply};

async fn run(name: &str, spool: Arc<dyn Spool>, producers: usize, n: usize) {
    let server = Arc::new(MockServer::start(|_| Reply::accepted()).await);
    let forget = tokio::spawn({
        let server = server.clone();
        async move {
            loop {
                server.clear_received();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let dispatcher = Dispatcher::builder(support::client(&server))
        .spool(spool)
        .flush_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let template = support::event(0);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..producers {
        let dispatcher = dispatcher.clone();
        let mut event = template.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(n / producers + 1);
            for i in (p..n).step_by(producers) {
                event["messageId"] = serde_json::json!(format!("m-{i}"));
                let t = Instant::now();
                dispatcher.enqueue(event.clone()).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut lat = Vec::with_capacity(n);
    while let Some(l) = tasks.join_next().await {
        lat.extend(l.unwrap());
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "spool: backend={name} producers={producers} events={n} durable_enqueues_per_s={:.0} ack_p50_us={} ack_p99_us={}",
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_micros(),
        pct(0.99).as_micros(),
    );
    dispatcher.shutdown().await;
    forget.abort();
}

fn main() {
    let n: usize = std::env::var("ROKT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        #[cfg(feature = "sqlite")]
        for producers in [1, 16, 256] {
            let dir = std::env::temp_dir().join(format!("rokt-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let spool = rokt_capi::spool::SqliteSpool::open(dir.join("spool.db")).unwrap();
            let events = if producers == 1 { n / 10 } else { n };
            run("embedded", Arc::new(spool), producers, events).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        #[cfg(feature = "postgres")]
        if let Ok(url) = std::env::var("DATABASE_URL") {
            for producers in [16, 256] {
                let spool = rokt_capi::spool::PostgresSpool::open(&url).await.unwrap();
                sqlx::query("TRUNCATE rokt_outbox")
                    .execute(spool.pool())
                    .await
                    .unwrap();
                run("postgres", Arc::new(spool), producers, n).await;
            }
        } else {
            println!("spool: backend=postgres skipped: DATABASE_URL is not set");
        }
    });
}
