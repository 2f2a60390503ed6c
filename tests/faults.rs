//! Fault tests of the client and dispatcher (issue 6), against the loopback server in
//! `tests/support`:
//!
//! 1. **Bounded resources while Rokt is down**: a stalled server (never answers, or answers 503
//!    until it recovers); the queue fills, `enqueue` waits, `try_enqueue` gives the event back,
//!    the events held stay within the queue capacity plus what is in flight, RSS stays flat;
//!    after recovery everything queued is delivered with one outcome each.
//!
//! The tests run one at a time (a lock), so the RSS figures and the log capture are their own.
//! The figures: `cargo test --release --test faults -- --nocapture --test-threads=1`.

mod support;

use rokt_capi::client::{Dispatcher, EnqueueError, Outcome, RetryPolicy, Ticket};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;
use support::{Gate, MockServer, Received, Reply};

// ---------------------------------------------------------------------------------------------
// Harness: one test at a time, a runtime per test, every log line captured at TRACE.
// ---------------------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests of this file one after another (RSS and log figures are per test).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on a fresh two-worker runtime (the machine has two cores), with the log capture on.
fn run<F: std::future::Future>(f: F) -> F::Output {
    logs();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Everything logged through `tracing` (and `log`), by every thread, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (TRACE, spans included) once for this test binary.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("the only subscriber of this test binary");
        captured
    })
}

/// Where the captured log is now.
fn log_mark() -> usize {
    logs()
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len()
}

/// What was logged since `mark`, after checking that capture works (a canary gets through).
fn logs_since(mark: usize) -> String {
    let canary = format!("capture-canary-{mark}");
    tracing::trace!(target: "rokt_capi", "{canary}");
    let all = logs().0.lock().unwrap_or_else(PoisonError::into_inner);
    let text = String::from_utf8_lossy(&all[mark..]).into_owned();
    assert!(text.contains(&canary), "the log capture works");
    text
}

/// Fails if `text` (what `surface` printed) contains any of `values`, in any letter case.
fn assert_clean(surface: &str, text: &str, values: &[String]) {
    let lower = text.to_lowercase();
    for v in values {
        assert!(
            !lower.contains(&v.to_lowercase()),
            "{surface} leaks {v:?}:\n{}",
            excerpt(text, v)
        );
    }
}

/// The lines of `text` that contain `value` (for a readable failure).
fn excerpt(text: &str, value: &str) -> String {
    let v = value.to_lowercase();
    text.lines()
        .filter(|l| l.to_lowercase().contains(&v))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A fixed "now" for event timestamps, so every event of a run encodes the same way.
fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

// ---------------------------------------------------------------------------------------------
// 1. Bounded resources while Rokt is down.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stall {
    /// Accepts and reads every request, never answers until it recovers.
    Silent,
    /// Answers 503 to everything until it recovers.
    Unavailable,
}

const STALL_QUEUE: usize = 64;
const STALL_CONCURRENCY: usize = 2;
const STALL_BATCH: usize = 10;
const STALL_ATTEMPTS: usize = 200_000;

async fn stall_then_recover(mode: Stall) {
    let gate = Gate::closed();
    // Times each messageId was processed (answered 202, or held to be answered 202).
    let processed: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let server = MockServer::start({
        let gate = gate.clone();
        let processed = processed.clone();
        move |r: &Received| {
            if mode == Stall::Unavailable && !gate.is_open() {
                return Reply::status(503).body(r#"{"errors":[{"code":"UNAVAILABLE"}]}"#);
            }
            let mut p = processed.lock().unwrap();
            for id in r.message_ids() {
                *p.entry(id).or_insert(0) += 1;
            }
            Reply::accepted().when_open(&gate)
        }
    })
    .await;
    let client = support::builder(&server)
        // Longer than the stall: held requests are answered when the server recovers.
        .request_timeout(Duration::from_secs(300))
        .retry(
            RetryPolicy::default()
                .with_max_attempts(1_000_000)
                .with_base_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(5))
                .with_deadline(Duration::from_secs(600)),
        )
        .build()
        .unwrap();
    let settled = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let dispatcher = Dispatcher::builder(client)
        .queue_capacity(STALL_QUEUE)
        .concurrency(STALL_CONCURRENCY)
        .max_batch_items(STALL_BATCH)
        // Only full requests go out during the stall (and what `shutdown` drains).
        .flush_interval(Duration::from_secs(3600))
        .on_outcome({
            let settled = settled.clone();
            let outcomes = outcomes.clone();
            move |o| {
                settled.fetch_add(1, Ordering::SeqCst);
                outcomes.lock().unwrap().push(o);
            }
        })
        .build()
        .unwrap();

    let now = now();
    let mut accepted: Vec<(Ticket, usize)> = Vec::new();
    let mut full = 0usize;
    let mut max_held = 0usize;
    let rss_before = support::rss_kib();
    let log_before = log_mark();
    for i in 0..STALL_ATTEMPTS {
        match dispatcher.try_enqueue(support::event_at(i, &now)) {
            Ok(t) => accepted.push((t, i)),
            Err(EnqueueError::Full(event)) => {
                full += 1;
                if full % 10_000 == 1 {
                    assert_eq!(event["messageId"], format!("m-{i}"), "the event comes back");
                }
            }
            Err(e) => panic!("{e}"),
        }
        max_held = max_held.max(accepted.len() - settled.load(Ordering::SeqCst));
        if i % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let rss_after = support::rss_kib();
    let logged_while_down = log_mark() - log_before;
    let taken_while_down = accepted.len();

    // The queue stays full: `try_enqueue` gives the event back and `enqueue` waits. Nothing
    // can drain while the server is stalled, so within (capacity + in flight) more tries the
    // dispatcher must stop taking events, whatever the scheduling.
    let bound = STALL_QUEUE + (STALL_CONCURRENCY + 1) * STALL_BATCH;
    let mut next = STALL_ATTEMPTS;
    let waiting = loop {
        assert!(accepted.len() <= bound, "{} events held", accepted.len());
        let event = support::event_at(next, &now);
        match dispatcher.try_enqueue(event) {
            Ok(t) => {
                accepted.push((t, next));
                next += 1;
                continue;
            }
            Err(EnqueueError::Full(back)) => {
                assert_eq!(back["messageId"], format!("m-{next}"));
            }
            Err(e) => panic!("{e}"),
        }
        let pending = dispatcher.enqueue(support::event_at(next, &now));
        match tokio::time::timeout(Duration::from_millis(100), pending).await {
            Ok(Ok(t)) => {
                // The background task took a few more before blocking; try again.
                accepted.push((t, next));
                next += 1;
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(_elapsed) => break next,
        }
    };
    let held = accepted.len() - settled.load(Ordering::SeqCst);
    max_held = max_held.max(held);
    assert_eq!(
        settled.load(Ordering::SeqCst),
        0,
        "nothing settles while the server is down"
    );
    assert!(held <= bound, "{held} events held, bound {bound}");
    assert!(full > 0);
    let in_flight_requests = match mode {
        Stall::Silent => server.count(),
        Stall::Unavailable => {
            let mut bodies: Vec<Vec<u8>> = server.received().into_iter().map(|r| r.body).collect();
            bodies.sort();
            bodies.dedup();
            bodies.len()
        }
    };
    assert!(
        in_flight_requests <= STALL_CONCURRENCY,
        "{in_flight_requests} requests in flight"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        assert!(
            after.saturating_sub(before) < 50 * 1024,
            "RSS grew from {before} KiB to {after} KiB"
        );
    }
    let requests_during_stall = server.count();
    // The mock server keeps every request it read (in this test's memory, not the client's).
    let server_log_kib = server
        .received()
        .iter()
        .map(|r| r.body.len())
        .sum::<usize>()
        / 1024;

    // Recovery: everything queued is delivered, with one outcome each.
    gate.open();
    accepted.push((
        dispatcher
            .enqueue(support::event_at(waiting, &now))
            .await
            .unwrap(),
        waiting,
    ));
    for i in waiting + 1..waiting + 100 {
        accepted.push((
            dispatcher
                .enqueue(support::event_at(i, &now))
                .await
                .unwrap(),
            i,
        ));
    }
    dispatcher.shutdown().await;
    let rss_end = support::rss_kib();

    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.len(), accepted.len(), "one outcome per event");
    let by_ticket: HashMap<Ticket, &Outcome> = outcomes.iter().map(|o| (o.ticket, o)).collect();
    assert_eq!(by_ticket.len(), outcomes.len(), "no ticket settles twice");
    let processed = processed.lock().unwrap();
    for (t, i) in &accepted {
        let o = by_ticket[t];
        let id = format!("m-{i}");
        assert_eq!(o.message_id.as_deref(), Some(id.as_str()));
        assert!(o.verdict.is_delivered(), "{o:?}");
        assert_eq!(processed.get(&id), Some(&1), "{id} processed once");
    }
    assert_eq!(
        processed.len(),
        accepted.len(),
        "nothing else was processed"
    );

    let kib = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |k| format!("{k} KiB"));
    println!(
        "stall ({mode:?}): queue {STALL_QUEUE}, concurrency {STALL_CONCURRENCY}, \
         {STALL_BATCH} events per request"
    );
    println!(
        "  {STALL_ATTEMPTS} try_enqueue attempts while down: {} taken, {full} given back (Full)",
        taken_while_down
    );
    println!(
        "  events held at most {max_held} (bound: queue + (concurrency + 1) x batch = {bound}); \
         requests in flight {in_flight_requests}; requests the server saw while down \
         {requests_during_stall}"
    );
    println!(
        "  RSS before {}, after the attempts {}, after recovery and shutdown {} \
         (while down, the TRACE log capture grew by {} KiB and the mock server's record of the \
         requests it read holds {server_log_kib} KiB of bodies)",
        kib(rss_before),
        kib(rss_after),
        kib(rss_end),
        logged_while_down / 1024
    );
    println!(
        "  after recovery: {} events, {} delivered, each processed once",
        accepted.len(),
        outcomes.iter().filter(|o| o.verdict.is_delivered()).count()
    );
}

#[test]
fn a_silent_server_bounds_the_queue_and_everything_is_delivered_after_it_recovers() {
    let _serial = serial();
    let mark = log_mark();
    run(stall_then_recover(Stall::Silent));
    check_support_events_not_logged(mark);
}

#[test]
fn a_server_answering_503_bounds_the_queue_and_everything_is_delivered_after_it_recovers() {
    let _serial = serial();
    let mark = log_mark();
    run(stall_then_recover(Stall::Unavailable));
    check_support_events_not_logged(mark);
}

/// The personal values and secret of `support::event` stay out of the logs.
fn check_support_events_not_logged(mark: usize) {
    let values = vec![
        "@example.com".to_owned(),
        "203.0.113.9".to_owned(),
        support::SECRET.to_owned(),
        support::expected_auth(),
    ];
    assert_clean("captured logs", &logs_since(mark), &values);
}
