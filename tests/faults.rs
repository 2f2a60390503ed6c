//! Fault tests of the client and dispatcher (issue 6), against the loopback server in
//! `tests/support`:
//!
//! 1. **Bounded resources while Rokt is down**: a stalled server (never answers, or answers 503
//!    until it recovers); the queue fills, `enqueue` waits, `try_enqueue` gives the event back,
//!    the events held stay within `queue_capacity + (concurrency + 1) * max_batch_items` (one
//!    more partly filled request when recent and historical events mix), RSS grows by less than
//!    50 MiB over 200,000 attempts; after recovery everything queued is delivered with one
//!    outcome each. A server that never recovers: every event fails once, `shutdown` returns.
//! 2. **Nothing lost, nothing doubled**: 10,000 events while a seeded 30% of requests fail
//!    (429, 500, 503, reset before processing, answer dropped after processing); every event
//!    has one outcome, retried bodies are byte-identical (same `source_message_id`s, so Rokt can
//!    de-duplicate), and every event the server processed twice was retried after a dropped
//!    answer.
//! 3. **No leaks on the fault path**: error answers that echo personal data, captured logs at
//!    TRACE, and the `Display`/`Debug` of every error, outcome, client and dispatcher.
//! 4. **Transport safety**: https only (plain http to loopback), no user info, redirects never
//!    followed (the target sees no connection), TLS (rustls) by default.
//!
//! The tests run one at a time (a lock), so the RSS figures and the log capture are their own.
//! The figures: `cargo test --release --test faults -- --nocapture --test-threads=1`.

mod capture;
mod support;

use capture::Captured;
use rokt_capi::client::{Client, Dispatcher, EnqueueError, Outcome, RetryPolicy, Ticket, Verdict};
use rokt_capi::error::Rejection;
use rokt_capi::request::{Endpoint, RequestKind};
use rokt_capi::{Credentials, Error};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use support::{Gate, MockServer, Received, Reply};
use tracing_subscriber::fmt::format::FmtSpan;

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

/// The capture every test of this file logs into: TRACE for every target, spans included.
fn logs() -> &'static Captured {
    capture::install("trace", FmtSpan::FULL)
}

/// Where the captured log is now.
fn log_mark() -> usize {
    logs().len()
}

/// What was logged since `mark`, after checking that capture works (a canary gets through).
fn logs_since(mark: usize) -> String {
    logs().checked_since(mark)
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

/// `mixed_routes`: every second event is older than 30 days, so requests of both routes
/// (`/bulkevents` and `/bulkevents/historical`) fill up side by side.
async fn stall_then_recover(mode: Stall, mixed_routes: bool) {
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
    let event = |i: usize| {
        let at = if mixed_routes && i % 2 == 0 {
            "2020-01-01T00:00:00Z"
        } else {
            now.as_str()
        };
        support::event_at(i, at)
    };
    let mut accepted: Vec<(Ticket, usize)> = Vec::new();
    let mut full = 0usize;
    let mut max_held = 0usize;
    let rss_before = support::rss_kib();
    let log_before = log_mark();
    for i in 0..STALL_ATTEMPTS {
        match dispatcher.try_enqueue(event(i)) {
            Ok(t) => accepted.push((t.ticket().unwrap(), i)),
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
    // The queue, the requests in flight, one request waiting for a slot and, with two routes,
    // a partly filled request of the other route.
    let bound = STALL_QUEUE + (STALL_CONCURRENCY + 1 + usize::from(mixed_routes)) * STALL_BATCH;
    let mut next = STALL_ATTEMPTS;
    let waiting = loop {
        assert!(accepted.len() <= bound, "{} events held", accepted.len());
        match dispatcher.try_enqueue(event(next)) {
            Ok(t) => {
                accepted.push((t.ticket().unwrap(), next));
                next += 1;
                continue;
            }
            Err(EnqueueError::Full(back)) => {
                assert_eq!(back["messageId"], format!("m-{next}"));
            }
            Err(e) => panic!("{e}"),
        }
        let pending = dispatcher.enqueue(event(next));
        match tokio::time::timeout(Duration::from_millis(100), pending).await {
            Ok(Ok(t)) => {
                // The background task took a few more before blocking; try again.
                accepted.push((t.ticket().unwrap(), next));
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
    let ticket = |enqueued: rokt_capi::Enqueued| enqueued.ticket().unwrap();
    accepted.push((
        ticket(dispatcher.enqueue(event(waiting)).await.unwrap()),
        waiting,
    ));
    for i in waiting + 1..waiting + 100 {
        accepted.push((ticket(dispatcher.enqueue(event(i)).await.unwrap()), i));
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
        "stall ({mode:?}, {}): queue {STALL_QUEUE}, concurrency {STALL_CONCURRENCY}, \
         {STALL_BATCH} events per request",
        if mixed_routes {
            "recent and historical events"
        } else {
            "recent events"
        }
    );
    println!(
        "  {STALL_ATTEMPTS} try_enqueue attempts while down: {} taken, {full} given back (Full)",
        taken_while_down
    );
    println!(
        "  events held at most {max_held} (bound: queue + (concurrency + {}) x batch = {bound}); \
         requests in flight {in_flight_requests}; requests the server saw while down \
         {requests_during_stall}",
        1 + usize::from(mixed_routes)
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
    run(stall_then_recover(Stall::Silent, false));
    check_support_events_not_logged(mark);
}

#[test]
fn a_server_answering_503_bounds_the_queue_and_everything_is_delivered_after_it_recovers() {
    let _serial = serial();
    let mark = log_mark();
    run(stall_then_recover(Stall::Unavailable, false));
    check_support_events_not_logged(mark);
}

#[test]
fn with_two_routes_a_stall_holds_at_most_one_more_partial_request() {
    let _serial = serial();
    let mark = log_mark();
    run(stall_then_recover(Stall::Silent, true));
    check_support_events_not_logged(mark);
}

/// A server that never answers and never recovers: each request times out, every event ends
/// `Failed` (timeout) with one outcome, and `shutdown` returns.
#[test]
fn a_server_that_never_answers_fails_every_event_once_and_shutdown_returns() {
    let _serial = serial();
    let mark = log_mark();
    run(async {
        let never = Gate::closed();
        let server = MockServer::start({
            let never = never.clone();
            move |_: &Received| Reply::accepted().when_open(&never)
        })
        .await;
        let client = support::builder(&server)
            .request_timeout(Duration::from_millis(50))
            .retry(support::fast_retry().with_max_attempts(2))
            .build()
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let dispatcher = Dispatcher::builder(client)
            .queue_capacity(8)
            .concurrency(2)
            .max_batch_items(10)
            .flush_interval(Duration::from_millis(10))
            .outcomes_to(tx)
            .build()
            .unwrap();
        let now = now();
        let events = 100;
        for i in 0..events {
            // Waits while the queue is full; room comes only as requests time out.
            dispatcher
                .enqueue(support::event_at(i, &now))
                .await
                .unwrap();
        }
        dispatcher.shutdown().await;
        let mut outcomes = Vec::new();
        while let Ok(o) = rx.try_recv() {
            outcomes.push(o);
        }
        assert_eq!(outcomes.len(), events, "one outcome per event");
        let mut tickets: Vec<Ticket> = outcomes.iter().map(|o| o.ticket).collect();
        tickets.sort();
        tickets.dedup();
        assert_eq!(tickets.len(), events);
        for o in &outcomes {
            let Verdict::Failed(e) = &o.verdict else {
                panic!("{o:?}")
            };
            assert!(matches!(e, Error::Failed { attempts: 2, .. }), "{e:?}");
            assert_eq!((e.status(), e.error_type()), (504, "ETIMEDOUT"));
        }
        assert!(!never.is_open());
        println!(
            "never answers: {events} events, {} requests (each timed out), {} outcomes, all \
             Failed (timeout) after 2 attempts; shutdown returned",
            server.count(),
            outcomes.len()
        );
    });
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

// ---------------------------------------------------------------------------------------------
// 2. Nothing lost, nothing doubled.
// ---------------------------------------------------------------------------------------------

/// FNV-1a: a hash that is the same on every run and every Rust version.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A random generator for the `attempt`-th (0-based) arrival of the request whose first
/// `source_message_id` is `first_id`: what the server does depends on the request and the
/// attempt, not on the order in which concurrent requests happen to arrive, so the figures
/// are the same on every run.
fn rng_for(seed: u64, first_id: &str, attempt: usize) -> fastrand::Rng {
    let attempt = u64::try_from(attempt).unwrap_or(u64::MAX);
    fastrand::Rng::with_seed(seed ^ fnv1a(first_id) ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// What the server did with one arriving request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Fault {
    /// 429 with `Retry-After: 0`; not processed.
    TooMany,
    /// 500; not processed.
    Internal,
    /// 503; not processed.
    Unavailable,
    /// Connection reset before processing.
    Reset,
    /// Read whole and processed, then the connection is closed without an answer: the client
    /// cannot know that it arrived.
    Dropped,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::TooMany,
        Fault::Internal,
        Fault::Unavailable,
        Fault::Reset,
        Fault::Dropped,
    ];

    fn reply(self) -> Reply {
        match self {
            Fault::TooMany => Reply::status(429).header("Retry-After", "0"),
            Fault::Internal => Reply::status(500),
            Fault::Unavailable => Reply::status(503),
            Fault::Reset => Reply::Reset,
            Fault::Dropped => Reply::Close,
        }
    }

    /// The status `Error::status` reports when this was the last attempt.
    fn status(self) -> u16 {
        match self {
            Fault::TooMany => 429,
            Fault::Internal => 500,
            Fault::Unavailable => 503,
            Fault::Reset | Fault::Dropped => 502,
        }
    }
}

/// One request as it arrived: which body (by index into `FaultLedger::bodies`) and what the
/// server did (`None`: processed and answered 202).
#[derive(Clone, Copy)]
struct Arrival {
    body: usize,
    fault: Option<Fault>,
}

impl Arrival {
    /// Whether the server processed (ingested) what it carried.
    fn processed(self) -> bool {
        matches!(self.fault, None | Some(Fault::Dropped))
    }
}

#[derive(Default)]
struct FaultLedger {
    arrivals: Vec<Arrival>,
    /// Every distinct body, in order of first arrival, and the ids it carries.
    bodies: Vec<(Vec<u8>, Vec<String>)>,
    body_index: HashMap<Vec<u8>, usize>,
    /// Arrivals (indices into `arrivals`) of each body.
    arrivals_of_body: Vec<Vec<usize>>,
    /// Arrivals of each `source_message_id`, in order.
    arrivals_of_id: HashMap<String, Vec<usize>>,
}

struct FaultRun {
    events: usize,
    /// `None`: bulk requests; `Some(Single)`: one `/events` request per event.
    kind: Option<RequestKind>,
    max_items: usize,
    max_attempts: u32,
    fault_rate: f64,
    seed: u64,
}

#[derive(Debug, Default)]
struct FaultReport {
    requests: usize,
    distinct_bodies: usize,
    faults: BTreeMap<String, usize>,
    delivered: usize,
    failed: usize,
    /// Failed, although the server had processed it (its answer was dropped).
    failed_but_processed: usize,
    /// Copies the server received beyond the first, by `source_message_id` (refused ones too).
    copies_received: usize,
    /// Copies the server processed beyond the first, by `source_message_id`.
    duplicates: usize,
    /// Ids processed more than once.
    duplicated_ids: usize,
    /// Duplicates that follow a dropped answer for the same id (must be all of them).
    duplicates_after_drop: usize,
}

async fn fault_injection(cfg: FaultRun) -> FaultReport {
    let ledger: Arc<Mutex<FaultLedger>> = Arc::default();
    let server = MockServer::start({
        let ledger = ledger.clone();
        let (seed, rate) = (cfg.seed, cfg.fault_rate);
        move |r: &Received| {
            let mut l = ledger.lock().unwrap();
            let l = &mut *l;
            let body = match l.body_index.get(&r.body) {
                Some(&b) => b,
                None => {
                    let b = l.bodies.len();
                    l.bodies.push((r.body.clone(), r.message_ids()));
                    l.body_index.insert(r.body.clone(), b);
                    l.arrivals_of_body.push(Vec::new());
                    b
                }
            };
            let attempt = l.arrivals_of_body[body].len();
            let mut rng = rng_for(seed, &l.bodies[body].1[0], attempt);
            let fault = (rng.f64() < rate).then(|| Fault::ALL[rng.usize(0..Fault::ALL.len())]);
            let at = l.arrivals.len();
            l.arrivals.push(Arrival { body, fault });
            l.arrivals_of_body[body].push(at);
            for id in &l.bodies[body].1 {
                l.arrivals_of_id.entry(id.clone()).or_default().push(at);
            }
            fault.map_or_else(Reply::accepted, Fault::reply)
        }
    })
    .await;
    let client = support::builder(&server)
        .retry(
            RetryPolicy::default()
                .with_max_attempts(cfg.max_attempts)
                .with_base_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(8))
                .with_deadline(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let mut builder = Dispatcher::builder(client)
        .queue_capacity(1_000)
        .concurrency(4)
        .max_batch_items(cfg.max_items)
        // Requests fill up to `max_items` in enqueue order (one producer), so each run
        // groups the events the same way; `shutdown` sends the last partial one.
        .flush_interval(Duration::from_secs(3600))
        .on_outcome({
            let outcomes = outcomes.clone();
            move |o| outcomes.lock().unwrap().push(o)
        });
    if let Some(kind) = cfg.kind {
        builder = builder.kind(kind);
    }
    let dispatcher = builder.build().unwrap();
    let now = now();
    let mut tickets: HashMap<Ticket, String> = HashMap::new();
    for i in 0..cfg.events {
        let t = dispatcher
            .enqueue(support::event_at(i, &now))
            .await
            .unwrap();
        tickets.insert(t.ticket().unwrap(), format!("m-{i}"));
    }
    dispatcher.shutdown().await;

    let outcomes = outcomes.lock().unwrap();
    let l = ledger.lock().unwrap();
    let mut report = FaultReport {
        requests: l.arrivals.len(),
        distinct_bodies: l.bodies.len(),
        ..FaultReport::default()
    };
    for a in &l.arrivals {
        if let Some(f) = a.fault {
            *report.faults.entry(format!("{f:?}")).or_insert(0) += 1;
        }
    }

    // Every event has exactly one outcome.
    assert_eq!(outcomes.len(), cfg.events, "one outcome per event");
    let mut seen: HashMap<Ticket, usize> = HashMap::new();
    for o in outcomes.iter() {
        *seen.entry(o.ticket).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), cfg.events);
    assert!(seen.values().all(|&n| n == 1), "an outcome reported twice");

    // Every body the server saw carries only ids that were enqueued, each in one body only.
    let known: std::collections::HashSet<&String> = tickets.values().collect();
    let mut body_of_id: HashMap<&str, usize> = HashMap::new();
    for (b, (_, ids)) in l.bodies.iter().enumerate() {
        for id in ids {
            assert!(known.contains(id), "{id} was never enqueued");
            if let Some(other) = body_of_id.insert(id, b) {
                panic!("{id} was sent in two different bodies ({other} and {b})");
            }
        }
    }

    for o in outcomes.iter() {
        let id = &tickets[&o.ticket];
        assert_eq!(o.message_id.as_ref(), Some(id));
        let arrivals: Vec<Arrival> = l.arrivals_of_id[id]
            .iter()
            .map(|&a| l.arrivals[a])
            .collect();
        // Retries are byte-identical: the same body, so the same `source_message_id`s.
        assert!(
            arrivals.iter().all(|a| a.body == arrivals[0].body),
            "{id}: a retry changed the body"
        );
        // Nothing is sent again after it was accepted.
        let last = arrivals[arrivals.len() - 1];
        assert!(
            arrivals[..arrivals.len() - 1]
                .iter()
                .all(|a| a.fault.is_some()),
            "{id} was sent again after a 202"
        );
        let n = u32::try_from(arrivals.len()).unwrap();
        match &o.verdict {
            Verdict::Delivered(receipt) => {
                report.delivered += 1;
                assert!(last.fault.is_none(), "{id} delivered without a 202");
                assert_eq!(receipt.attempts, n, "{id}: one arrival per attempt");
            }
            Verdict::Failed(e) => {
                report.failed += 1;
                let Error::Failed { attempts, .. } = e else {
                    panic!("{id}: {e:?}")
                };
                assert_eq!(*attempts, n, "{id}: one arrival per attempt");
                assert_eq!(
                    n, cfg.max_attempts,
                    "{id}: gave up only after every attempt"
                );
                let last_fault = last
                    .fault
                    .expect("a failed event's last arrival is a fault");
                assert_eq!(e.status(), last_fault.status(), "{id}: {e}");
                if arrivals.iter().any(|a| a.processed()) {
                    report.failed_but_processed += 1;
                }
            }
            other => panic!("{id}: {other:?}"),
        }
        report.copies_received += arrivals.len() - 1;
        let processed: Vec<Arrival> = arrivals.iter().copied().filter(|a| a.processed()).collect();
        if processed.len() > 1 {
            report.duplicated_ids += 1;
            report.duplicates += processed.len() - 1;
            // Each processing after the first follows a dropped answer for this id: the client
            // resent only because it could not know the earlier copy had arrived.
            for k in 1..processed.len() {
                if processed[..k]
                    .iter()
                    .any(|a| a.fault == Some(Fault::Dropped))
                {
                    report.duplicates_after_drop += 1;
                }
            }
        }
    }
    assert_eq!(report.delivered + report.failed, cfg.events);
    assert_eq!(
        report.duplicates, report.duplicates_after_drop,
        "every duplicate follows a dropped answer"
    );
    // The server's count by id agrees: the ids processed are exactly the events enqueued.
    assert_eq!(
        l.arrivals_of_id.len(),
        cfg.events,
        "every event reached the server"
    );
    report
}

fn print_fault_report(title: &str, cfg_events: usize, r: &FaultReport) {
    let injected: usize = r.faults.values().sum();
    println!("{title}: {cfg_events} events");
    println!(
        "  requests received: {} ({} distinct bodies, {} retries); faults injected: {injected} \
         ({:.1}%) {:?}",
        r.requests,
        r.distinct_bodies,
        r.requests - r.distinct_bodies,
        100.0 * injected as f64 / r.requests as f64,
        r.faults
    );
    println!(
        "  outcomes: delivered {}, failed {} (of which {} had been processed: answer dropped)",
        r.delivered, r.failed, r.failed_but_processed
    );
    println!(
        "  by source_message_id: {} copies received beyond the first; processed more than once: \
         {} ids, {} extra copies, all {} after a dropped answer; retried bodies byte-identical",
        r.copies_received, r.duplicated_ids, r.duplicates, r.duplicates_after_drop
    );
}

#[test]
fn fault_injection_nothing_lost_nothing_doubled_bulk() {
    let _serial = serial();
    let mark = log_mark();
    let events = 10_000;
    let report = run(fault_injection(FaultRun {
        events,
        kind: None,
        max_items: 25,
        max_attempts: 4,
        fault_rate: 0.30,
        seed: 0x5eed_fa11,
    }));
    print_fault_report("fault injection (bulk, 25 per request)", events, &report);
    for f in Fault::ALL {
        assert!(
            report.faults.get(&format!("{f:?}")).copied().unwrap_or(0) > 0,
            "{f:?} injected"
        );
    }
    assert!(report.failed > 0, "some requests exhaust their attempts");
    assert!(
        report.duplicates > 0,
        "some answers are dropped after processing"
    );
    check_support_events_not_logged(mark);
}

#[test]
fn fault_injection_nothing_lost_nothing_doubled_single() {
    let _serial = serial();
    let mark = log_mark();
    let events = 2_000;
    let report = run(fault_injection(FaultRun {
        events,
        kind: Some(RequestKind::Single),
        max_items: 1,
        max_attempts: 4,
        fault_rate: 0.30,
        seed: 0x5eed_0001,
    }));
    print_fault_report(
        "fault injection (one /events request per event)",
        events,
        &report,
    );
    assert!(report.duplicates > 0);
    check_support_events_not_logged(mark);
}

// ---------------------------------------------------------------------------------------------
// 3. No leaks on the fault path.
// ---------------------------------------------------------------------------------------------

fn assert_error_clean(surface: &str, e: &Error, values: &[String]) {
    let shown = format!("{e} | {e:?} | {e:#?}");
    assert_clean(surface, &shown, values);
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outcome>) -> Vec<Outcome> {
    let mut out = Vec::new();
    while let Ok(o) = rx.try_recv() {
        out.push(o);
    }
    out
}

const LEAK_SECRET: &str = "sk-Fault-Secret-31337";
const LEAK_KEY: &str = "fault-test-key";
/// In every message the server sends back, so any echo of message text is caught.
const ECHO_CANARY: &str = "echo-canary-5150";
/// The verbatim error body of the brief.
const VERBATIM_400: &str =
    r#"{"errors":[{"code":"BAD_REQUEST","message":"email jane.doe@example.com is invalid"}]}"#;
const VERBATIM_MESSAGE: &str = "email jane.doe@example.com is invalid";

fn leak_event(i: usize, now: &str) -> Value {
    json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": format!("leak-{i}"),
        "userId": format!("cust-{i:04}-quintero"),
        "anonymousId": format!("anon-{i:04}-oyelaran"),
        "timestamp": now,
        "context": {
            "ip": format!("198.51.100.{}", 100 + i),
            "traits": {
                "email": format!("  Jane.Doe.{i}@Example.com "),
                "first_name": "Janeth",
                "last_name": "Quintero-Oyelaran",
                "phone": format!("+1 415 555 {:04}", 1000 + i),
                "address": {"postal_code": format!("9{:04}-1234", 4100 + i)},
                "birthday": "1984-11-23"
            }
        },
        "properties": {"order_id": format!("o-{i}"), "revenue": 12.5, "currency": "USD"}
    })
}

/// Every personal value of `event` (under a personal key, at any depth), as sent, trimmed,
/// lowercased and without dashes.
fn personal_values(event: &Value) -> Vec<String> {
    const KEYS: &[&str] = &[
        "email",
        "first_name",
        "last_name",
        "phone",
        "postal_code",
        "ip",
        "birthday",
        "userId",
        "anonymousId",
    ];
    fn walk(v: &Value, personal: bool, out: &mut Vec<String>) {
        match v {
            Value::String(s) if personal => {
                let t = s.trim();
                for form in [
                    s.clone(),
                    t.to_owned(),
                    t.to_lowercase(),
                    t.replace('-', ""),
                ] {
                    if form.chars().count() >= 4 && !out.contains(&form) {
                        out.push(form);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, personal, out)),
            Value::Object(m) => {
                for (k, child) in m {
                    walk(child, personal || KEYS.contains(&k.as_str()), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(event, false, &mut out);
    out
}

/// A message that echoes what the server received, as some APIs do in their errors.
fn echo(batch: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    format!(
        "email {} is invalid for {} {}, mobile {}, zip {}, ip {}, customerid {} [{ECHO_CANARY}]",
        s(&batch["user_identities"]["email"]),
        s(&batch["user_attributes"]["firstname"]),
        s(&batch["user_attributes"]["lastname"]),
        s(&batch["user_attributes"]["mobile"]),
        s(&batch["user_attributes"]["billingzipcode"]),
        s(&batch["ip"]),
        s(&batch["user_identities"]["customerid"]),
    )
}

fn errors_body(code: &str, messages: &[String]) -> String {
    let list: Vec<Value> = messages
        .iter()
        .map(|m| json!({"code": code, "message": m}))
        .collect();
    json!({ "errors": list }).to_string()
}

/// The replies of the leak server, chosen per request and attempt; all but the first echo
/// the personal data they received.
fn leak_reply(kind: usize, first: &Value, echoed: &Mutex<Vec<String>>) -> Reply {
    let message = echo(first);
    echoed.lock().unwrap().push(message.clone());
    let with = |status: u16, code: &str| {
        Reply::status(status).body(&errors_body(code, std::slice::from_ref(&message)))
    };
    match kind {
        0 => Reply::accepted(),
        1 => Reply::status(400).body(VERBATIM_400),
        2 => with(400, "BAD_REQUEST"),
        3 => with(401, "UNAUTHORIZED"),
        4 => with(403, "FORBIDDEN"),
        // Names the first item (a request of one owns every error).
        5 => Reply::status(202).body(&errors_body(
            "BAD_REQUEST",
            &[format!("Path '[0].user_identities.email' {message}")],
        )),
        // Names no item: the other items are resent one by one.
        6 => with(202, "BAD_REQUEST"),
        7 => with(500, "INTERNAL"),
        8 => with(503, "UNAVAILABLE").header("Retry-After", "0"),
        9 => with(429, "TOO_MANY").header("Retry-After", "0"),
        10 => with(413, "TOO_LARGE"),
        11 => Reply::status(307)
            .header(
                "Location",
                &format!(
                    "http://127.0.0.1:9/events?email={}&m={ECHO_CANARY}",
                    first["user_identities"]["email"].as_str().unwrap_or("")
                ),
            )
            .body(&message),
        12 => Reply::status(200).body(&format!("<html>{message}</html>")),
        13 => Reply::Reset,
        14 => Reply::Close,
        _ => unreachable!(),
    }
}

#[test]
fn the_fault_path_leaks_no_personal_data_or_secret() {
    let _serial = serial();
    let mark = log_mark();
    run(async {
        let echoed: Arc<Mutex<Vec<String>>> = Arc::default();
        let server = MockServer::start({
            let echoed = echoed.clone();
            let attempts: Mutex<HashMap<Vec<u8>, usize>> = Mutex::default();
            move |r: &Received| {
                let doc = r.json();
                let (first, items) = match &doc {
                    Value::Array(items) => (items[0].clone(), items.len()),
                    v => (v.clone(), 1),
                };
                let first_id = first["events"][0]["data"]["source_message_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                // The reply depends on the request (its first id and size) and the attempt.
                let attempt = {
                    let mut a = attempts.lock().unwrap();
                    let n = a.entry(r.body.clone()).or_insert(0);
                    *n += 1;
                    *n - 1
                };
                let mut rng = rng_for(0x1ea4, &format!("{first_id}/{items}"), attempt);
                leak_reply(rng.usize(0..15), &first, &echoed)
            }
        })
        .await;
        let client = Client::builder()
            .api_key(LEAK_KEY)
            .api_secret(LEAK_SECRET)
            .endpoint_url(&server.url())
            .retry(support::fast_retry().with_max_attempts(3))
            .request_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let now = now();
        let events: Vec<Value> = (0..120).map(|i| leak_event(i, &now)).collect();

        let mut values: Vec<String> = events.iter().flat_map(personal_values).collect();
        values.extend([
            LEAK_SECRET.to_owned(),
            Credentials::new(LEAK_KEY, LEAK_SECRET).authorization(),
            "jane.doe@example.com".to_owned(),
            VERBATIM_MESSAGE.to_owned(),
            ECHO_CANARY.to_owned(),
            "Quintero".to_owned(),
            "Janeth".to_owned(),
        ]);
        assert!(values.len() > 120 * 8, "personal values were found");

        let mut errors: Vec<Error> = Vec::new();
        let mut shown = Vec::new();

        // One by one: `Client::send`.
        for e in &events[..40] {
            if let Err(err) = client.send(e).await {
                errors.push(err);
            }
        }
        // In bulk: `Client::send_events` (bulk requests of up to 100, resends one by one).
        for chunk in events[40..70].chunks(6) {
            let report = client.send_events(chunk).await;
            shown.push(format!("{report:?} {report:#?}"));
            errors.extend(report.errors().map(|(_, e)| e.clone()));
        }
        // Through the dispatcher: bulk and one by one.
        let mut outcomes = Vec::new();
        for (range, kind) in [(70..100, None), (100..120, Some(RequestKind::Single))] {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut b = Dispatcher::builder(client.clone())
                .max_batch_items(4)
                .concurrency(2)
                .flush_interval(Duration::from_secs(3600))
                .outcomes_to(tx);
            if let Some(k) = kind {
                b = b.kind(k);
            }
            let dispatcher = b.build().unwrap();
            for e in &events[range] {
                dispatcher.enqueue(e).await.unwrap();
            }
            shown.push(format!("{dispatcher:?} {dispatcher:#?}"));
            dispatcher.shutdown().await;
            shown.push(format!("{dispatcher:?}"));
            let back = dispatcher.enqueue(&events[0]).await.unwrap_err();
            shown.push(format!("{back} {back:?}"));
            outcomes.extend(drain(&mut rx));
        }
        for o in &outcomes {
            shown.push(format!("{o:?} {o:#?} {:?}", o.verdict));
            if let Verdict::Rejected(e) | Verdict::Failed(e) = &o.verdict {
                errors.push(e.clone());
            }
        }
        shown.push(format!("{client:?} {client:#?}"));

        // The fault path was exercised: rejections that carry the echoed message, failures.
        let rejections: Vec<&Rejection> = errors
            .iter()
            .filter_map(|e| match e {
                Error::Rejected(r) => Some(r),
                _ => None,
            })
            .collect();
        let statuses: std::collections::BTreeSet<u16> = errors.iter().map(Error::status).collect();
        for s in [202, 307, 400, 401, 403, 413] {
            assert!(statuses.contains(&s), "a {s} rejection: {statuses:?}");
        }
        assert!(
            errors.iter().any(|e| matches!(e, Error::Failed { .. })),
            "some failures after retries"
        );
        assert!(
            rejections
                .iter()
                .any(|r| r.message().is_some_and(|m| m.contains(ECHO_CANARY))),
            "the echoed message reached the client (only behind Rejection::message)"
        );
        assert!(
            rejections
                .iter()
                .any(|r| r.message() == Some(VERBATIM_MESSAGE)),
            "the verbatim 400 was read"
        );
        assert!(echoed.lock().unwrap().len() > 50);

        for e in &errors {
            assert_error_clean("an error", e, &values);
        }
        for (i, s) in shown.iter().enumerate() {
            assert_clean(&format!("Debug/Display #{i}"), s, &values);
        }
        let logs = logs_since(mark);
        // The capture is not empty: the crate's and its HTTP stack's lines, down to TRACE.
        assert!(logs.lines().count() > 100, "the fault path logs");
        assert!(
            logs.contains("rokt_capi") && logs.contains("TRACE"),
            "{logs}"
        );
        assert_clean("captured logs", &logs, &values);
        let (delivered, failed) = outcomes.iter().fold((0, 0), |(d, f), o| match o.verdict {
            Verdict::Delivered(_) => (d + 1, f),
            Verdict::Failed(_) => (d, f + 1),
            _ => (d, f),
        });
        println!(
            "no leaks on the fault path: {} errors (statuses {statuses:?}), {} outcomes \
             ({delivered} delivered, {failed} failed), {} echoing answers, {} log lines, \
             {} values checked",
            errors.len(),
            outcomes.len(),
            echoed.lock().unwrap().len(),
            logs.lines().count(),
            values.len()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Transport safety.
// ---------------------------------------------------------------------------------------------

fn config_error(url: &str) -> Option<Error> {
    Client::builder()
        .api_key("k")
        .api_secret("s")
        .endpoint_url(url)
        .build()
        .err()
}

#[test]
fn only_https_or_loopback_http_without_user_info() {
    for url in [
        "http://example.com",
        "http://example.com:80/s2s/v2",
        "http://inbound.mparticle.com/s2s/v2",
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com",
        "http://[::ffff:93.184.216.34]",
        "ftp://example.com",
        "ws://127.0.0.1:9",
        "file:///etc/passwd",
        "https://user:hunter2-pw@example.com",
        "https://user@example.com",
        "https://:hunter2-pw@example.com",
        "http://user:hunter2-pw@127.0.0.1:8080",
        "https://example.com/?key=1",
        "https://example.com/#frag",
        "not a url",
        "",
    ] {
        let err = config_error(url).unwrap_or_else(|| panic!("{url:?} must be refused"));
        assert!(
            matches!(&err, Error::Config(c) if c.setting == "endpoint"),
            "{url}: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(Endpoint::custom(url).is_err(), "{url}");
    }
    for url in [
        "https://example.com",
        "https://inbound.mparticle.com/s2s/v2",
        "https://127.0.0.1:8443",
        "http://127.0.0.1:8080",
        "http://127.1.2.3:8080",
        "http://localhost:8080/base",
        "http://[::1]:8080",
    ] {
        assert!(config_error(url).is_none(), "{url} is allowed");
    }
}

/// A second "host" on loopback: 127.0.0.2 (any of 127.0.0.0/8 works on Linux), or another
/// port of 127.0.0.1 where that address cannot be bound.
async fn other_host(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> MockServer {
    if std::net::TcpListener::bind("127.0.0.2:0").is_ok() {
        MockServer::start_on("127.0.0.2", handler).await
    } else {
        MockServer::start(handler).await
    }
}

#[test]
fn redirects_are_never_followed_and_the_target_sees_nothing() {
    let _serial = serial();
    run(async {
        let target = other_host(|_| Reply::accepted()).await;
        for status in [301, 302, 303, 307, 308] {
            for location in [
                format!("{}/events", target.url()),
                format!("https://{}/events", target.addr()),
                "/elsewhere".to_owned(),
            ] {
                let server =
                    MockServer::script(vec![Reply::status(status).header("Location", &location)])
                        .await;
                let client = support::client(&server);
                // One event, alone.
                let err = client.send(support::event(1)).await.unwrap_err();
                assert!(
                    matches!(&err, Error::Rejected(r) if r.status == status),
                    "{status} {location}: {err:?}"
                );
                assert_eq!(err.error_type(), "UNEXPECTED_REDIRECT");
                // In bulk.
                let report = client
                    .send_events([support::event(2), support::event(3)])
                    .await;
                assert!(
                    report
                        .items
                        .iter()
                        .all(|r| matches!(r, Err(Error::Rejected(r)) if r.status == status))
                );
                // Through the dispatcher.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let dispatcher = Dispatcher::builder(client).outcomes_to(tx).build().unwrap();
                dispatcher.enqueue(support::event(4)).await.unwrap();
                dispatcher.shutdown().await;
                let outcomes = drain(&mut rx);
                assert!(matches!(
                    &outcomes[..],
                    [o] if matches!(&o.verdict, Verdict::Rejected(Error::Rejected(r)) if r.status == status)
                ));
                // Each request was sent once, to the server only, never retried or followed.
                let got = server.received();
                assert_eq!(got.len(), 3, "{status} {location}");
                assert!(got.iter().all(|r| r.path != "/elsewhere"));
                assert!(
                    got.iter()
                        .all(|r| r.header("authorization")
                            == Some(support::expected_auth().as_str()))
                );
            }
        }
        assert_eq!(target.count(), 0, "the redirect target got no request");
        assert_eq!(target.connections(), 0, "nor a connection");
        println!(
            "redirects: 301/302/303/307/308 to {} (another loopback host), to https and to a \
             path: not followed, not retried, target saw 0 connections",
            target.addr()
        );
    });
}

#[test]
#[cfg_attr(
    not(feature = "rustls"),
    ignore = "the default build's TLS is rustls; this build has it off"
)]
fn the_default_build_speaks_tls_with_rustls() {
    // The default features pick rustls (and not native-tls); this build has it on.
    let manifest = include_str!("../Cargo.toml");
    let default = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("default ="))
        .expect("a default feature list");
    assert!(default.contains("\"rustls\""), "{default}");
    assert!(!default.contains("native-tls"), "{default}");
    let _serial = serial();
    run(async {
        // The real endpoints build (TLS set up, nothing sent).
        for endpoint in [
            Endpoint::rokt(),
            Endpoint::pod(rokt_capi::request::Pod::Eu1),
            Endpoint::custom("https://127.0.0.1:8443/s2s/v2").unwrap(),
        ] {
            Client::builder()
                .api_key(support::KEY)
                .api_secret(support::SECRET)
                .endpoint(endpoint)
                .build()
                .expect("an https client builds");
        }
        // An https endpoint opens with a TLS handshake: the first bytes on the wire are a TLS
        // handshake record (a ClientHello), and nothing readable (no request line, header or
        // secret) is ever sent in plain text.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while got.len() < 5 {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got // dropping the stream ends the handshake
        });
        let client = Client::builder()
            .api_key(support::KEY)
            .api_secret(support::SECRET)
            .endpoint_url(&format!("https://{addr}"))
            .retry(RetryPolicy::never())
            .request_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let err = client.send(support::event(1)).await.unwrap_err();
        assert!(matches!(err, Error::Failed { attempts: 1, .. }), "{err:?}");
        let got = seen.await.unwrap();
        assert!(got.len() >= 5, "the client sent a record");
        assert_eq!(got[0], 0x16, "a TLS handshake record");
        assert_eq!(got[1], 0x03, "TLS record version 3.x");
        let text = String::from_utf8_lossy(&got);
        for plain in ["POST", "authorization", support::SECRET, "m-1"] {
            assert!(
                !text.to_lowercase().contains(&plain.to_lowercase()),
                "{plain} in clear"
            );
        }
    });
}
