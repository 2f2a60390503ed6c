//! The embedded spool (feature `sqlite`) behind a dispatcher, against a mock Rokt on loopback:
//! restarts resume pending events, dead letters, group commit, the size bound, damaged files.
#![cfg(feature = "sqlite")]

mod support;

use rokt_capi::client::{Dispatcher, EnqueueError, Outcome, Ticket, Verdict};
use rokt_capi::spool::{
    BoxFuture, DeadLetter, Record, Settle, Spool, SpoolCounts, SpoolError, SqliteSpool, Stored,
};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Gate, MockServer, Reply};
use tokio::sync::mpsc;

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rokt-spool-{name}-{}-{}",
            std::process::id(),
            fastrand_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("spool.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A spool that remembers each body it stored, by id.
struct Recording {
    inner: SqliteSpool,
    stored: Mutex<HashMap<u64, Record>>,
}

impl Spool for Recording {
    fn append(&self, record: Record) -> BoxFuture<'_, Result<u64, SpoolError>> {
        Box::pin(async move {
            let id = self.inner.append(record.clone()).await?;
            self.stored.lock().unwrap().insert(id, record);
            Ok(id)
        })
    }
    fn claim(&self, max: usize) -> BoxFuture<'_, Result<Vec<Stored>, SpoolError>> {
        self.inner.claim(max)
    }
    fn settle(&self, ops: Vec<Settle>) -> BoxFuture<'_, Result<(), SpoolError>> {
        self.inner.settle(ops)
    }
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, SpoolError>> {
        self.inner.dead_letters(limit)
    }
    fn requeue(&self, ids: Vec<u64>) -> BoxFuture<'_, Result<usize, SpoolError>> {
        self.inner.requeue(ids)
    }
    fn counts(&self) -> BoxFuture<'_, Result<SpoolCounts, SpoolError>> {
        self.inner.counts()
    }
}

async fn wait_outcomes(rx: &mut mpsc::UnboundedReceiver<Outcome>, n: usize) -> Vec<Outcome> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(o)) => out.push(o),
            _ => panic!("only {} of {n} outcomes", out.len()),
        }
    }
    out
}

#[test]
fn a_restarted_dispatcher_resumes_pending_events_with_their_bytes_ids_and_tickets() {
    let dir = TempDir::new("restart");
    let gate = Gate::closed();
    let mut first: HashMap<Ticket, Record> = HashMap::new();
    {
        // The first process: Rokt never answers; the runtime stops with everything in flight.
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let server = MockServer::start({
                let gate = gate.clone();
                move |_| Reply::accepted().when_open(&gate)
            })
            .await;
            let spool = Arc::new(Recording {
                inner: SqliteSpool::open(dir.file()).unwrap(),
                stored: Mutex::new(HashMap::new()),
            });
            let dispatcher = Dispatcher::builder(support::client(&server))
                .spool(spool.clone())
                .flush_interval(Duration::from_millis(10))
                .build()
                .unwrap();
            for i in 0..150 {
                let ticket = dispatcher.enqueue(support::event(i)).await.unwrap();
                let ticket = ticket.ticket().unwrap();
                let record = spool.stored.lock().unwrap()[&ticket.id()].clone();
                first.insert(ticket, record);
            }
            let counts = dispatcher.spool_counts().await.unwrap().unwrap();
            assert_eq!(counts.pending, 150);
            let stats = dispatcher.stats();
            assert_eq!(stats.stored, 150, "each acknowledged once");
            assert!(stats.enqueued <= 150 && stats.settled() == 0);
        });
        rt.shutdown_timeout(Duration::from_millis(100));
    }
    // The second process, on the same file.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = MockServer::script(vec![Reply::accepted()]).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spool = Arc::new(SqliteSpool::open(dir.file()).unwrap());
        let dispatcher = Dispatcher::builder(support::client(&server))
            .spool(spool.clone())
            .flush_interval(Duration::from_millis(10))
            .outcomes_to(tx)
            .build()
            .unwrap();
        let outcomes = wait_outcomes(&mut rx, 150).await;
        let mut seen = HashSet::new();
        for o in &outcomes {
            assert!(o.verdict.is_delivered(), "{:?}", o.verdict);
            let record = &first[&o.ticket];
            assert_eq!(o.message_id, record.message_id);
            assert!(seen.insert(o.ticket), "one outcome per ticket");
        }
        // Every stored body went out byte for byte.
        let bodies: Vec<Vec<u8>> = server.received().into_iter().map(|r| r.body).collect();
        for record in first.values() {
            let found = bodies
                .iter()
                .any(|b| b.windows(record.body.len()).any(|w| w == &record.body[..]));
            assert!(found, "a resumed body was not sent as stored");
        }
        dispatcher.shutdown().await;
        assert_eq!(spool.counts().await.unwrap().pending, 0);
        // What this process took in is what another one stored: the counters still add up.
        let stats = dispatcher.stats();
        assert_eq!(
            (stats.stored, stats.enqueued, stats.delivered),
            (0, 150, 150)
        );
        assert_eq!((stats.pending(), stats.respooled), (0, 0));
    });
}

#[tokio::test]
async fn events_that_keep_failing_become_dead_letters_that_can_be_requeued() {
    let dir = TempDir::new("dead");
    let healthy = Gate::closed();
    let server = MockServer::start({
        let healthy = healthy.clone();
        move |_| {
            if healthy.is_open() {
                Reply::accepted()
            } else {
                Reply::status(503)
            }
        }
    })
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(2))
        .build()
        .unwrap();
    let dispatcher = Dispatcher::builder(client)
        .spool(Arc::new(SqliteSpool::open(dir.file()).unwrap()))
        .spool_retry_window(Duration::from_millis(1500))
        .spool_max_backoff(Duration::from_millis(200))
        .flush_interval(Duration::from_millis(10))
        .outcomes_to(tx)
        .build()
        .unwrap();
    let mut tickets = Vec::new();
    for i in 0..5 {
        let enqueued = dispatcher.enqueue(support::event(i)).await.unwrap();
        tickets.push(enqueued.ticket().unwrap());
    }
    // Sent again within the window, then reported failed once each.
    let outcomes = wait_outcomes(&mut rx, 5).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Failed(_)))
    );
    assert!(server.count() > 1, "sent again within the retry window");
    let stats = dispatcher.stats();
    assert!(
        stats.respooled > 0,
        "each attempt but the last went back to the spool"
    );
    assert_eq!((stats.failed, stats.pending()), (5, 0), "{stats:?}");
    let dead = dispatcher.dead_letters(100).await.unwrap().unwrap();
    let mut ids: Vec<u64> = dead.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    let mut expected: Vec<u64> = tickets.iter().map(|t| t.id()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(
        dead.iter()
            .all(|d| d.attempts >= 1 && d.reason.contains("503"))
    );
    assert!(dead.iter().all(|d| !d.reason.contains("example.com")));
    let counts = dispatcher.spool_counts().await.unwrap().unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 5));

    healthy.open();
    let moved = dispatcher.requeue(ids.clone()).await.unwrap().unwrap();
    assert_eq!(moved, 5);
    let outcomes = wait_outcomes(&mut rx, 5).await;
    assert!(outcomes.iter().all(|o| o.verdict.is_delivered()));
    let mut again: Vec<u64> = outcomes.iter().map(|o| o.ticket.id()).collect();
    again.sort_unstable();
    assert_eq!(again, ids, "requeued events keep their ids");
    dispatcher.shutdown().await;
    let counts = dispatcher.spool_counts().await.unwrap().unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_commits() {
    let dir = TempDir::new("group");
    let spool = Arc::new(SqliteSpool::open(dir.file()).unwrap());
    let before = spool.commits();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let spool = spool.clone();
        tasks.spawn(async move {
            for i in 0..250 {
                let body = format!("{{\"n\":{}}}", t * 1000 + i);
                spool
                    .append(Record::new(body.into(), None, None))
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let commits = spool.commits() - before;
    assert_eq!(spool.counts().await.unwrap().pending, 2000);
    assert!(
        commits < 2000 / 2,
        "2000 appends from 8 producers took {commits} commits"
    );
}

#[tokio::test]
async fn a_full_spool_gives_the_event_back_and_drops_nothing() {
    let dir = TempDir::new("full");
    let server = MockServer::start(|_| Reply::status(503)).await;
    let spool = SqliteSpool::builder(dir.file())
        .max_bytes(4_000)
        .open()
        .unwrap();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .spool(Arc::new(spool))
        .build()
        .unwrap();
    let mut stored = 0;
    let mut full = None;
    for i in 0..100 {
        match dispatcher.enqueue(support::event(i)).await {
            Ok(_) => stored += 1,
            Err(e @ EnqueueError::Full(_)) => {
                full = Some((i, e));
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (i, e) = full.expect("the bound is reached");
    assert!(stored > 0);
    assert_eq!(e.to_string(), "the dispatcher's queue is full");
    assert_eq!(e.into_inner()["messageId"], format!("m-{i}"));
    let counts = dispatcher.spool_counts().await.unwrap().unwrap();
    assert_eq!(counts.pending, stored);
}

#[test]
fn a_damaged_or_foreign_file_is_a_clear_error() {
    let dir = TempDir::new("damaged");
    let path = dir.file();
    std::fs::write(
        &path,
        b"this is not a database, but a user@example.com note".repeat(200),
    )
    .unwrap();
    let e = SqliteSpool::open(&path).unwrap_err();
    assert!(matches!(e, SpoolError::Damaged { .. }), "{e:?}");
    assert!(!e.to_string().contains("example.com"));

    // A spool whose pages were overwritten in the middle.
    let path = dir.0.join("torn.db");
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let spool = SqliteSpool::open(&path).unwrap();
            for i in 0..2000 {
                let body = format!(
                    "{{\"email\":\"user{i}@example.com\",\"pad\":\"{}\"}}",
                    "x".repeat(200)
                );
                spool
                    .append(Record::new(body.into(), None, None))
                    .await
                    .unwrap();
            }
        });
    }
    // Fold the WAL into the file first, as a clean close does.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024);
    for b in &mut bytes[8192..40960] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = SqliteSpool::open(&path).unwrap_err();
    assert!(matches!(e, SpoolError::Damaged { .. }), "{e:?}");
    assert!(!e.to_string().contains("example.com"));

    // Another application's database is not taken over.
    let path = dir.0.join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (email TEXT); INSERT INTO users VALUES ('a@example.com');",
    )
    .unwrap();
    drop(conn);
    let e = SqliteSpool::open(&path).unwrap_err();
    assert!(matches!(e, SpoolError::Damaged { .. }), "{e:?}");

    let e = SqliteSpool::open(dir.0.join("nothing-here/deeper/spool.db")).unwrap_err();
    assert!(matches!(e, SpoolError::Storage { .. }), "{e:?}");
}

#[test]
fn a_spool_has_one_owner_at_a_time() {
    let dir = TempDir::new("busy");
    let first = SqliteSpool::open(dir.file()).unwrap();
    let e = SqliteSpool::open(dir.file()).unwrap_err();
    assert_eq!(e, SpoolError::Busy);
    drop(first);
    SqliteSpool::open(dir.file()).unwrap();
}

#[tokio::test]
async fn bad_input_with_a_spool_is_given_back_at_once_and_never_stored() {
    let dir = TempDir::new("bad");
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .spool(Arc::new(SqliteSpool::open(dir.file()).unwrap()))
        .flush_interval(Duration::from_millis(10))
        .outcomes_to(tx)
        .build()
        .unwrap();
    let good = dispatcher.enqueue(support::event(1)).await.unwrap();
    let bad = dispatcher.enqueue(support::bad_event()).await.unwrap_err();
    assert!(bad.is_invalid(), "{bad}");
    let good2 = dispatcher.enqueue(support::event(2)).await.unwrap();
    let (good, good2) = (good.ticket().unwrap(), good2.ticket().unwrap());
    assert_ne!(good, good2);
    let outcomes = wait_outcomes(&mut rx, 2).await;
    let by: HashMap<Ticket, &Outcome> = outcomes.iter().map(|o| (o.ticket, o)).collect();
    assert!(by[&good].verdict.is_delivered() && by[&good2].verdict.is_delivered());
    let counts = dispatcher.spool_counts().await.unwrap().unwrap();
    assert_eq!(
        (counts.pending, counts.dead),
        (0, 0),
        "nothing else was stored"
    );
    assert!(matches!(
        dispatcher.try_enqueue(support::event(3)),
        Err(EnqueueError::WouldWait(_))
    ));
    dispatcher.shutdown().await;
    assert!(matches!(
        dispatcher.enqueue(support::event(4)).await,
        Err(EnqueueError::Closed(_))
    ));
}

/// A long outage: Rokt answers 503 while many events are enqueued by concurrent producers; the
/// backlog stays on disk (memory stays flat), and everything drains once Rokt is back. Scaled
/// by `ROKT_OUTAGE_EVENTS` (default 20 000; BENCHMARKS.md has the figures for 300 000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_keeps_the_backlog_on_disk_and_drains_after_recovery() {
    let n: usize = std::env::var("ROKT_OUTAGE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let producers = 16;
    let dir = TempDir::new("outage");
    let healthy = Gate::closed();
    let server = Arc::new(
        MockServer::start({
            let healthy = healthy.clone();
            move |_| {
                if healthy.is_open() {
                    Reply::accepted()
                } else {
                    Reply::status(503)
                }
            }
        })
        .await,
    );
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let spool = Arc::new(SqliteSpool::open(dir.file()).unwrap());
    let dispatcher = Dispatcher::builder(support::client(&server))
        .spool(spool.clone())
        .queue_capacity(2_000)
        .spool_max_backoff(Duration::from_millis(200))
        .flush_interval(Duration::from_millis(20))
        .on_outcome({
            let delivered = delivered.clone();
            move |o| {
                assert!(o.verdict.is_delivered(), "{:?}", o.verdict);
                delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    // The mock records every request; forget them, so that only the dispatcher is measured.
    let forget = tokio::spawn({
        let server_received = server.clone();
        async move {
            loop {
                server_received.clear_received();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let template = support::event(0);
    let rss_start = support::rss_kib();
    let mut rss_peak = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..producers {
        let dispatcher = dispatcher.clone();
        let mut event = template.clone();
        tasks.spawn(async move {
            for i in (p..n).step_by(producers) {
                event["messageId"] = serde_json::json!(format!("m-{i}"));
                dispatcher.enqueue(event.clone()).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {
        rss_peak = rss_peak.max(support::rss_kib().unwrap_or(0));
    }
    let rss_enqueued = support::rss_kib();
    let counts = spool.counts().await.unwrap();
    assert!(counts.pending > 0);
    assert_eq!(delivered.load(std::sync::atomic::Ordering::Relaxed), 0);
    healthy.open();
    let start = std::time::Instant::now();
    while delivered.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "drained {} of {n}",
            delivered.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dispatcher.shutdown().await;
    forget.abort();
    assert_eq!(spool.counts().await.unwrap().pending, 0);
    let (Some(a), Some(b)) = (rss_start, rss_enqueued) else {
        return;
    };
    println!(
        "outage: events={n} producers={producers} rss_start_kib={a} rss_peak_kib={} rss_after_enqueue_kib={b} drain_s={:.1}",
        rss_peak.max(b),
        start.elapsed().as_secs_f64()
    );
    // Memory does not grow with the backlog: n bodies would be hundreds of KB per thousand.
    assert!(
        rss_peak.max(b).saturating_sub(a) < 150 * 1024,
        "resident set grew from {a} KiB to {} KiB",
        rss_peak.max(b)
    );
}

#[tokio::test]
async fn a_destination_through_the_spool_keeps_each_routes_subscription() {
    let dir = TempDir::new("destination");
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let destination = rokt_capi::subscription::Destination::from_json(
        r#"{"subscriptions":[
            {"name":"tracks","trigger":"type = \"track\""},
            {"name":"orders","trigger":"event = \"Order Completed\""}
        ]}"#,
    )
    .unwrap();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .spool(Arc::new(SqliteSpool::open(dir.file()).unwrap()))
        .destination(destination)
        .flush_interval(Duration::from_millis(10))
        .outcomes_to(tx)
        .build()
        .unwrap();
    let enqueued = dispatcher.enqueue(support::event(1)).await.unwrap();
    assert_eq!(enqueued.tickets.len(), 2);
    let records = dispatcher.records(support::event(1));
    let names: Vec<_> = records
        .iter()
        .map(|r| r.as_ref().unwrap().subscription.as_deref())
        .collect();
    assert_eq!(names, [Some("tracks"), Some("orders")]);
    let mut outcomes = wait_outcomes(&mut rx, 2).await;
    outcomes.sort_by_key(|o| o.ticket);
    for (o, routed) in outcomes.iter().zip(&enqueued.tickets) {
        assert!(o.verdict.is_delivered());
        // Read back from the spool's file: the name was stored with the event.
        assert_eq!(
            (o.ticket, &o.subscription),
            (routed.ticket, &routed.subscription)
        );
    }
    dispatcher.shutdown().await;
}

#[test]
fn a_version_1_spool_file_is_upgraded_and_its_events_are_kept() {
    let dir = TempDir::new("upgrade");
    {
        let conn = rusqlite::Connection::open(dir.file()).unwrap();
        conn.execute_batch(
            "CREATE TABLE spool_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE spool (id INTEGER PRIMARY KEY, state INTEGER NOT NULL DEFAULT 0,
                 body BLOB NOT NULL, message_id TEXT, newest_ms INTEGER, created_ms INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, not_before_ms INTEGER NOT NULL DEFAULT 0,
                 reason TEXT);
             INSERT INTO spool (id, body, message_id, created_ms) VALUES (1, x'7b7d', 'm-old', 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let spool = SqliteSpool::open(dir.file()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored = rt.block_on(spool.claim(10)).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].record.message_id.as_deref(), Some("m-old"));
    assert_eq!(stored[0].record.subscription, None);
}
