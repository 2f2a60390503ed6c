//! The background dispatcher against a mock Rokt on loopback, including a fault-injection run.

mod support;

use rokt_capi::Error;
use rokt_capi::client::{Dispatcher, EnqueueError, Outcome, RetryPolicy, Ticket, Verdict};
use rokt_capi::request::RequestKind;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{MockServer, Received, Reply};
use tokio::sync::mpsc;

fn drain(rx: &mut mpsc::UnboundedReceiver<Outcome>) -> Vec<Outcome> {
    let mut out = Vec::new();
    while let Ok(o) = rx.try_recv() {
        out.push(o);
    }
    out
}

fn by_ticket(outcomes: &[Outcome]) -> HashMap<Ticket, usize> {
    let mut seen = HashMap::new();
    for o in outcomes {
        *seen.entry(o.ticket).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn groups_events_into_bulk_requests_and_reports_each_once() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .flush_interval(Duration::from_secs(3600)) // only full requests and `flush`
        .outcomes_to(tx)
        .build()
        .unwrap();
    let mut tickets = Vec::new();
    for i in 0..250 {
        let enqueued = dispatcher.enqueue(support::event(i)).await.unwrap();
        assert_eq!(enqueued.tickets.len(), 1);
        assert!(enqueued.refused.is_empty());
        tickets.push(enqueued.ticket().unwrap());
    }
    dispatcher.flush().await.unwrap();
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 250, "flush returns after every outcome");
    assert!(by_ticket(&outcomes).values().all(|&n| n == 1));
    for o in &outcomes {
        let Verdict::Delivered(r) = &o.verdict else {
            panic!("{o:?}")
        };
        assert_eq!((r.status, r.kind), (202, RequestKind::Bulk));
        let i = tickets.iter().position(|t| *t == o.ticket).unwrap();
        assert_eq!(o.message_id.as_deref(), Some(format!("m-{i}").as_str()));
    }
    let got = server.received();
    let mut sizes: Vec<usize> = got.iter().map(|r| r.batches().len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100]);
    assert!(got.iter().all(|r| r.path == "/bulkevents"));
    assert!(
        got.iter()
            .all(|r| r.header("authorization") == Some(support::expected_auth().as_str()))
    );
    dispatcher.shutdown().await;
    assert!(dispatcher.is_closed());
}

#[tokio::test]
async fn bad_input_is_given_back_at_enqueue_and_never_reported_as_an_outcome() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let dispatcher = Dispatcher::builder(support::client(&server))
        .on_outcome({
            let seen = seen.clone();
            move |o| seen.lock().unwrap().push(o)
        })
        .build()
        .unwrap();
    let mut bad = support::bad_event();
    bad["messageId"] = "bad-1".into();
    let Err(EnqueueError::Invalid(back, refusals)) = dispatcher.enqueue(&bad).await else {
        panic!("bad input was taken")
    };
    assert!(std::ptr::eq(back, &bad), "the event comes back");
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].subscription, None);
    assert!(refusals[0].error.is_bad_input(), "{}", refusals[0].error);
    let huge = {
        let mut e = support::event(2);
        e["context"]["userAgent"] = "x".repeat(200 * 1024).into();
        e
    };
    let err = dispatcher.try_enqueue(huge).unwrap_err();
    assert_eq!(err.label(), "invalid");
    assert!(matches!(
        err.refusals(),
        [r] if matches!(r.error, Error::TooLarge { .. })
    ));
    assert!(err.to_string().contains("over the limit"), "{err}");
    let err = dispatcher.enqueue("not json").await.unwrap_err();
    assert!(err.is_invalid() && err.into_inner() == "not json");
    dispatcher.shutdown().await;
    assert_eq!(server.count(), 0, "bad input never reaches Rokt");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the outcome stream carries only what was sent"
    );
    assert_eq!(dispatcher.stats().enqueued, 0);
}

#[tokio::test]
async fn a_full_queue_makes_try_enqueue_give_the_event_back() {
    // One slow request in flight, one event waiting for it, a queue of one.
    let server =
        MockServer::script(vec![Reply::accepted().after(Duration::from_millis(300))]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .queue_capacity(1)
        .concurrency(1)
        .max_batch_items(1)
        .outcomes_to(tx)
        .build()
        .unwrap();
    let mut accepted = 0;
    let mut full = None;
    for i in 0..1000 {
        match dispatcher.try_enqueue(support::event(i)) {
            Ok(_) => accepted += 1,
            Err(EnqueueError::Full(event)) => {
                full = Some(event);
                break;
            }
            Err(e) => panic!("{e}"),
        }
        tokio::task::yield_now().await;
    }
    let event = full.expect("the queue fills up");
    assert!(accepted >= 1);
    assert_eq!(event["messageId"], format!("m-{accepted}"));
    // `enqueue` waits for room instead.
    dispatcher.enqueue(event).await.unwrap();
    dispatcher.shutdown().await;
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), accepted + 1);
    assert!(outcomes.iter().all(|o| o.verdict.is_delivered()));
}

#[tokio::test]
async fn the_flush_interval_sends_a_partial_batch() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .flush_interval(Duration::from_millis(20))
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..3 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    for _ in 0..3 {
        let o = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("sent without flush")
            .unwrap();
        assert!(o.verdict.is_delivered());
    }
    // Usually one request of 3; a slow machine may have split them. Nothing was flushed.
    let sent: usize = server.received().iter().map(|r| r.batches().len()).sum();
    assert_eq!(sent, 3);
}

#[tokio::test]
async fn shutdown_closes_the_queue() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .outcomes_to(tx)
        .build()
        .unwrap();
    let clone = dispatcher.clone();
    for i in 0..5 {
        clone.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    assert_eq!(drain(&mut rx).len(), 5, "shutdown drains the queue");
    let back = clone.enqueue(support::event(9)).await.unwrap_err();
    assert!(matches!(back, EnqueueError::Closed(_)));
    assert_eq!(back.into_inner()["messageId"], "m-9");
    assert!(matches!(
        clone.try_enqueue(support::event(9)),
        Err(EnqueueError::Closed(_))
    ));
    assert_eq!(clone.flush().await, Err(Error::Closed));
    clone.shutdown().await; // again: fine
    drop((dispatcher, clone));
    assert!(rx.recv().await.is_none(), "no outcome after shutdown");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn dropping_every_handle_still_delivers_what_was_queued() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .flush_interval(Duration::from_secs(3600))
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..7 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    drop(dispatcher);
    // The background task sends what is queued, then drops its end of the channel.
    let mut n = 0;
    while let Some(o) = rx.recv().await {
        assert!(o.verdict.is_delivered());
        n += 1;
    }
    assert_eq!(n, 7);
}

#[tokio::test]
async fn rejections_and_failures_are_reported() {
    let server = MockServer::start(|r: &Received| {
        let ids = r.message_ids();
        if ids.iter().any(|id| id == "m-0") {
            Reply::errors(400, &[("BAD_REQUEST", "bad")])
        } else {
            Reply::status(503)
        }
    })
    .await;
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(3))
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(client)
        .max_batch_items(1)
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..2 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    let mut outcomes = drain(&mut rx);
    outcomes.sort_by_key(|o| o.ticket);
    assert!(
        matches!(&outcomes[0].verdict, Verdict::Rejected(Error::Rejected(r)) if r.status == 400)
    );
    assert!(matches!(
        &outcomes[1].verdict,
        Verdict::Failed(Error::Failed { attempts: 3, .. })
    ));
    assert_eq!(server.count(), 1 + 3);
}

#[tokio::test]
async fn routes_old_events_to_historical_and_honours_a_forced_route() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let dispatcher = Dispatcher::builder(support::client(&server))
        .build()
        .unwrap();
    dispatcher.enqueue(support::event(1)).await.unwrap();
    dispatcher
        .enqueue(support::event_at(2, "2020-01-01T00:00:00Z"))
        .await
        .unwrap();
    dispatcher.flush().await.unwrap();
    let mut paths: Vec<String> = server.received().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, ["/bulkevents", "/bulkevents/historical"]);

    let server = MockServer::script(vec![Reply::accepted()]).await;
    let dispatcher = Dispatcher::builder(support::client(&server))
        .kind(RequestKind::Single)
        .rate_limit(10_000.0)
        .build()
        .unwrap();
    for i in 0..3 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    let got = server.received();
    assert!(
        got.iter()
            .all(|r| r.path == "/events" && r.json().is_object())
    );
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn the_builder_checks_its_settings() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let b = || Dispatcher::builder(support::client(&server));
    for (builder, setting) in [
        (b().queue_capacity(0), "queue_capacity"),
        (b().concurrency(0), "concurrency"),
        (b().flush_interval(Duration::ZERO), "flush_interval"),
        (b().rate_limit(0.0), "rate_limit"),
        (b().rate_limit(f64::NAN), "rate_limit"),
        (b().max_batch_items(0), "max_batch_items"),
    ] {
        assert!(matches!(builder.build(), Err(Error::Config(e)) if e.setting == setting));
    }
}

/// Settings that once panicked in the background (or in `build`) and lost events.
#[tokio::test]
async fn absurd_settings_are_refused_by_build_naming_the_setting() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let b = || Dispatcher::builder(support::client(&server));
    for (builder, setting) in [
        (b().flush_interval(Duration::MAX), "flush_interval"),
        (
            b().flush_interval(Duration::from_secs(86_400 * 365)),
            "flush_interval",
        ),
        (b().rate_limit(f64::MIN_POSITIVE), "rate_limit"),
        (b().rate_limit(1e-9), "rate_limit"),
        (b().rate_limit(f64::INFINITY), "rate_limit"),
        (b().rate_limit(-5.0), "rate_limit"),
        (b().queue_capacity(usize::MAX), "queue_capacity"),
        (b().concurrency(usize::MAX), "concurrency"),
        (b().max_batch_items(usize::MAX), "max_batch_items"),
        (b().max_batch_items(101), "max_batch_items"),
    ] {
        match builder.build() {
            Err(Error::Config(e)) => assert_eq!(e.setting, setting),
            other => panic!("{setting}: {other:?}"),
        }
    }
    let config = |b: rokt_capi::ClientBuilder| match b.build() {
        Err(Error::Config(e)) => e.setting,
        other => panic!("{other:?}"),
    };
    let c = || support::builder(&server);
    assert_eq!(
        config(c().request_timeout(Duration::MAX)),
        "request_timeout"
    );
    assert_eq!(
        config(c().connect_timeout(Duration::MAX)),
        "connect_timeout"
    );
    for policy in [
        support::fast_retry().with_deadline(Duration::MAX),
        support::fast_retry().with_max_delay(Duration::MAX),
        support::fast_retry().with_max_retry_after(Duration::MAX),
    ] {
        assert_eq!(config(c().retry(policy)), "retry");
    }
    let mut limits = rokt_capi::request::Limits::default();
    limits.max_item_bytes = usize::MAX;
    assert_eq!(config(c().limits(limits)), "limits");
    let mut limits = rokt_capi::request::Limits::default();
    limits.max_items = usize::MAX;
    assert_eq!(config(c().limits(limits)), "limits");

    // The extremes that are allowed still give every event its outcome.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let d = b()
        .flush_interval(rokt_capi::client::MAX_FLUSH_INTERVAL)
        .rate_limit(rokt_capi::client::MIN_RATE)
        .queue_capacity(rokt_capi::client::MAX_QUEUE_CAPACITY)
        .concurrency(rokt_capi::client::MAX_CONCURRENCY)
        .outcomes_to(tx)
        .build()
        .unwrap();
    d.enqueue(support::event(1)).await.unwrap();
    d.enqueue(support::event(2)).await.unwrap();
    d.shutdown().await;
    let got = drain(&mut rx);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|o| o.verdict.is_delivered()));
}

#[tokio::test]
async fn a_panicking_callback_loses_no_other_outcome() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let dispatcher = Dispatcher::builder(support::client(&server))
        .on_outcome({
            let seen = seen.clone();
            move |o| {
                if o.ticket.id() == 0 {
                    panic!("a careless callback");
                }
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    for i in 0..10 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    assert_eq!(seen.load(Ordering::Relaxed), 9);

    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Dispatcher>();
}

#[test]
fn building_outside_a_runtime_is_a_config_error() {
    let client = rokt_capi::Client::builder()
        .api_key("k")
        .api_secret("s")
        .build()
        .unwrap();
    assert!(matches!(
        Dispatcher::builder(client).build(),
        Err(Error::Config(e)) if e.setting == "runtime"
    ));
}

/// What the fault-injecting server saw.
#[derive(Default)]
struct Ledger {
    /// Times each messageId was accepted (processed) by the server.
    accepted: HashMap<String, usize>,
    /// Ids whose request was processed but whose answer was lost (connection reset).
    lost: HashSet<String>,
    faults: HashMap<&'static str, usize>,
    requests: usize,
}

/// 10,000 events, no faults: how fast the dispatcher moves events to a loopback server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_without_faults() {
    const EVENTS: usize = 10_000;
    let received = Arc::new(AtomicUsize::new(0));
    let server = MockServer::start({
        let received = received.clone();
        move |r: &Received| {
            received.fetch_add(r.message_ids().len(), Ordering::Relaxed);
            Reply::accepted()
        }
    })
    .await;
    let delivered = Arc::new(AtomicUsize::new(0));
    let dispatcher = Dispatcher::builder(support::client(&server))
        .on_outcome({
            let delivered = delivered.clone();
            move |o| {
                if o.verdict.is_delivered() {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .build()
        .unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let events: Vec<_> = (0..EVENTS).map(|i| support::event_at(i, &now)).collect();
    let started = Instant::now();
    for e in events {
        dispatcher.enqueue(e).await.unwrap();
    }
    dispatcher.shutdown().await;
    let elapsed = started.elapsed();
    assert_eq!(delivered.load(Ordering::Relaxed), EVENTS);
    assert_eq!(received.load(Ordering::Relaxed), EVENTS);
    println!(
        "throughput: {EVENTS} events in {} requests, {:.2} s, {:.0} events/s (enqueue, map, build, send, outcome)",
        server.count(),
        elapsed.as_secs_f64(),
        EVENTS as f64 / elapsed.as_secs_f64()
    );
}

/// ≥10,000 events through the dispatcher to a server that fails a random 30% of requests
/// (429, 500, 503, a reset before processing, a reset after processing = a lost answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_every_event_settles_exactly_once() {
    const EVENTS: usize = 10_000;
    const BAD: usize = 10;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let rng = Mutex::new(fastrand::Rng::with_seed(0x5EED_CAFE));
    let server = MockServer::start({
        let ledger = ledger.clone();
        move |r: &Received| {
            let ids = r.message_ids();
            let (fault, kind) = {
                let mut rng = rng.lock().unwrap();
                (rng.f64() < 0.30, rng.usize(0..5))
            };
            let mut l = ledger.lock().unwrap();
            l.requests += 1;
            let accept = |l: &mut Ledger| {
                for id in &ids {
                    *l.accepted.entry(id.clone()).or_insert(0) += 1;
                }
            };
            if !fault {
                accept(&mut l);
                return Reply::accepted();
            }
            let (name, reply) = match kind {
                0 => ("429", Reply::status(429).header("Retry-After", "0")),
                1 => ("500", Reply::status(500)),
                2 => ("503", Reply::status(503)),
                3 => ("reset", Reply::Reset),
                _ => {
                    accept(&mut l);
                    l.lost.extend(ids.iter().cloned());
                    ("lost answer", Reply::Reset)
                }
            };
            *l.faults.entry(name).or_insert(0) += 1;
            reply
        }
    })
    .await;
    let client = support::builder(&server)
        .retry(
            RetryPolicy::default()
                // Few attempts, so that some requests exhaust them and end as Failed.
                .with_max_attempts(4)
                .with_base_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(8))
                .with_deadline(Duration::from_secs(30)),
        )
        .build()
        .unwrap();

    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(EVENTS + BAD)));
    let callbacks = Arc::new(AtomicUsize::new(0));
    let dispatcher = Dispatcher::builder(client)
        .queue_capacity(1_000)
        .concurrency(4)
        .max_batch_items(25)
        .flush_interval(Duration::from_millis(20))
        .on_outcome({
            let outcomes = outcomes.clone();
            let callbacks = callbacks.clone();
            move |o| {
                callbacks.fetch_add(1, Ordering::Relaxed);
                outcomes.lock().unwrap().push(o);
            }
        })
        .build()
        .unwrap();

    let started = Instant::now();
    let now = chrono::Utc::now().to_rfc3339();
    let mut tickets: HashMap<Ticket, String> = HashMap::new();
    // Two producers share the dispatcher.
    let half = EVENTS / 2;
    let producer = |range: std::ops::Range<usize>| {
        let d = dispatcher.clone();
        let now = now.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in range {
                let t = d.enqueue(support::event_at(i, &now)).await.unwrap();
                let t = t.ticket().unwrap();
                mine.push((t, format!("m-{i}")));
            }
            mine
        })
    };
    let a = producer(0..half);
    let b = producer(half..EVENTS);
    for (t, id) in a.await.unwrap().into_iter().chain(b.await.unwrap()) {
        tickets.insert(t, id);
    }
    let mut rejected = 0;
    for i in 0..BAD {
        let mut bad = support::bad_event();
        bad["messageId"] = format!("bad-{i}").into();
        let err = dispatcher.enqueue(bad).await.unwrap_err();
        assert!(err.is_invalid(), "{err}");
        rejected += 1;
    }
    dispatcher.shutdown().await;
    let elapsed = started.elapsed();

    let outcomes = outcomes.lock().unwrap();
    let ledger = ledger.lock().unwrap();
    // Every event settles exactly once.
    assert_eq!(callbacks.load(Ordering::Relaxed), EVENTS);
    let counts = by_ticket(&outcomes);
    assert_eq!(counts.len(), EVENTS);
    assert!(
        counts.values().all(|&n| n == 1),
        "an outcome reported twice"
    );
    let (mut delivered, mut failed) = (0, 0);
    let mut duplicates = 0;
    for o in outcomes.iter() {
        let id = &tickets[&o.ticket];
        assert_eq!(o.message_id.as_ref(), Some(id));
        let times = ledger.accepted.get(id).copied().unwrap_or(0);
        match &o.verdict {
            Verdict::Delivered(_) => {
                delivered += 1;
                assert!(times >= 1, "{id} delivered but never received");
            }
            Verdict::Failed(e) => {
                failed += 1;
                assert!(!e.is_permanent(), "{e}");
                assert!(
                    times == 0 || ledger.lost.contains(id),
                    "{id} failed but was accepted"
                );
            }
            Verdict::Rejected(e) => panic!("{id} rejected: {e}"),
            _ => unreachable!(),
        }
        if times > 1 {
            assert!(
                ledger.lost.contains(id),
                "{id} received {times} times without a lost answer"
            );
            duplicates += times - 1;
        }
    }
    assert_eq!(delivered + failed, EVENTS);
    let known: HashSet<&String> = tickets.values().collect();
    assert!(ledger.accepted.keys().all(|id| known.contains(id)));
    let injected: usize = ledger.faults.values().sum();
    assert!(injected > 0);

    let mut faults: Vec<_> = ledger.faults.iter().collect();
    faults.sort();
    println!("fault injection: {EVENTS} events (+{BAD} bad input) through the dispatcher");
    println!(
        "  requests seen by the server: {}, injected faults: {injected} ({:.1}%) {faults:?}",
        ledger.requests,
        100.0 * injected as f64 / ledger.requests as f64
    );
    println!(
        "  outcomes: delivered {delivered}, failed {failed}; {rejected} bad input refused at enqueue"
    );
    println!(
        "  duplicates at the server: {duplicates} (distinct events in lost-answer requests: {})",
        ledger.lost.len()
    );
    println!(
        "  elapsed {:.2} s, {:.0} events/s",
        elapsed.as_secs_f64(),
        EVENTS as f64 / elapsed.as_secs_f64()
    );
}

// ---- Lifecycle: every event ends in exactly one outcome, even when the runtime does not ----

/// Waits (in real time, up to 20 s) until `check` holds.
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dropping_the_runtime_settles_every_event_and_makes_stats_final() {
    let servers = tokio::runtime::Runtime::new().unwrap();
    let gate = support::Gate::closed();
    let server = servers.block_on({
        let gate = gate.clone();
        MockServer::start(move |_| Reply::accepted().when_open(&gate))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = runtime.block_on(async {
        let d = Dispatcher::builder(support::client(&server))
            .concurrency(1)
            .max_batch_items(2)
            .flush_interval(Duration::from_secs(3600))
            .outcomes_to(tx)
            .build()
            .unwrap();
        for i in 0..9 {
            d.enqueue(support::event(i)).await.unwrap();
        }
        d
    });
    // One request in flight (held by the server), one group waiting for the slot, one
    // event grouped, the rest queued.
    wait_until("a request in flight", || server.count() >= 1);
    drop(runtime);
    let stats = dispatcher.stats();
    assert_eq!((stats.enqueued, stats.pending()), (9, 0), "{stats:?}");
    assert_eq!(stats.failed, 9);
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 9);
    assert!(by_ticket(&outcomes).values().all(|&n| n == 1));
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Failed(Error::Closed)))
    );
    gate.open();
    drop(server);
}

#[tokio::test]
async fn shutdown_within_settles_what_is_left_when_its_deadline_passes() {
    let gate = support::Gate::closed();
    let server = MockServer::start({
        let gate = gate.clone();
        move |_| Reply::accepted().when_open(&gate)
    })
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .concurrency(2)
        .max_batch_items(3)
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..20 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    assert!(!dispatcher.shutdown_within(Duration::from_millis(300)).await);
    assert!(dispatcher.is_closed());
    let stats = dispatcher.stats();
    assert_eq!((stats.enqueued, stats.pending(), stats.failed), (20, 0, 20));
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 20);
    assert!(by_ticket(&outcomes).values().all(|&n| n == 1));
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Failed(Error::Closed)))
    );
    assert!(matches!(
        dispatcher.enqueue(support::event(99)).await,
        Err(EnqueueError::Closed(_))
    ));
    gate.open();

    // Within the deadline it is an ordinary shutdown.
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..5 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    assert!(dispatcher.shutdown_within(Duration::from_secs(60)).await);
    assert!(drain(&mut rx).iter().all(|o| o.verdict.is_delivered()));
}

// ---- Resends after an unattributed error: the normal concurrency, one deadline ----

/// A server answering bulk requests 202 with an error naming no item, and each resent
/// item after `delay` with `single`; it records when each request arrived.
async fn unattributed_server(
    delay: Duration,
    single: Reply,
) -> (MockServer, Arc<Mutex<Vec<(Instant, String)>>>) {
    let arrivals: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let server = MockServer::start({
        let arrivals = arrivals.clone();
        move |r: &Received| {
            arrivals
                .lock()
                .unwrap()
                .push((Instant::now(), r.path.clone()));
            if r.path == "/bulkevents" {
                Reply::errors(202, &[("BAD_REQUEST", "Something went wrong")])
            } else {
                single.clone().after(delay)
            }
        }
    })
    .await;
    (server, arrivals)
}

#[tokio::test]
async fn resends_after_an_unattributed_error_share_the_slots() {
    let hold = Duration::from_millis(400);
    let (server, arrivals) = unattributed_server(hold, Reply::accepted()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .concurrency(4)
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..8 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 8);
    assert!(outcomes.iter().all(|o| o.verdict.is_delivered()));
    let singles: Vec<Instant> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| p == "/events")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(singles.len(), 8);
    // One after another, each would arrive at least `hold` after the previous; in the
    // dispatcher's slots, several are in flight at once.
    let overlapping = singles
        .windows(2)
        .filter(|w| w[1].duration_since(w[0]) < hold)
        .count();
    assert!(overlapping >= 2, "resends went one at a time");

    // With one slot, the group gives its slot back to its resends (no deadlock).
    let (server, _) = unattributed_server(Duration::ZERO, Reply::accepted()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .concurrency(1)
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..4 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    assert!(dispatcher.shutdown_within(Duration::from_secs(60)).await);
    assert_eq!(drain(&mut rx).len(), 4);
}

#[tokio::test]
async fn resends_after_an_unattributed_error_share_one_deadline() {
    let deadline = Duration::from_millis(1500);
    let (server, arrivals) = unattributed_server(Duration::ZERO, Reply::status(500)).await;
    let client = support::builder(&server)
        .retry(
            RetryPolicy::default()
                .with_max_attempts(1000)
                .with_base_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(100))
                .with_deadline(deadline),
        )
        .build()
        .unwrap();
    let report = client
        .send_events((0..12).map(support::event).collect::<Vec<_>>())
        .await;
    assert_eq!(report.items.len(), 12);
    for item in &report.items {
        assert!(
            matches!(
                item,
                Err(Error::Failed {
                    reason: rokt_capi::error::GiveUp::Deadline,
                    ..
                })
            ),
            "{item:?}"
        );
    }
    // No attempt starts past the first request's deadline (each alone would get its own).
    let arrivals = arrivals.lock().unwrap();
    let first = arrivals[0].0;
    let last = arrivals.iter().map(|(t, _)| *t).max().unwrap();
    assert!(
        last.duration_since(first) < deadline + Duration::from_millis(1000),
        "{:?}",
        last.duration_since(first)
    );
}

// ---- Throttling: one pause for every slot ----

#[tokio::test]
async fn a_429_pauses_every_slot_for_its_retry_after() {
    let arrivals: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let first = Arc::new(AtomicUsize::new(0));
    let server = MockServer::start({
        let arrivals = arrivals.clone();
        let first = first.clone();
        move |_| {
            let status = if first.fetch_add(1, Ordering::SeqCst) == 0 {
                429
            } else {
                202
            };
            arrivals.lock().unwrap().push((Instant::now(), status));
            match status {
                429 => Reply::status(429).header("Retry-After", "1"),
                _ => Reply::accepted().after(Duration::from_millis(100)),
            }
        }
    })
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .concurrency(4)
        .max_batch_items(1)
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..40 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    assert!(drain(&mut rx).iter().all(|o| o.verdict.is_delivered()));
    let arrivals = arrivals.lock().unwrap();
    let told = arrivals.iter().find(|(_, s)| *s == 429).unwrap().0;
    // Requests that started before the 429 arrived may land just after it; after that, no
    // slot sends anything until the second has passed.
    let early = arrivals
        .iter()
        .filter(|(t, s)| {
            *s == 202
                && *t > told + Duration::from_millis(200)
                && *t < told + Duration::from_millis(950)
        })
        .count();
    assert_eq!(early, 0, "a slot sent during the pause");
}

#[tokio::test]
async fn a_zero_retry_after_still_backs_off() {
    let server = MockServer::script(vec![Reply::status(429).header("Retry-After", "0")]).await;
    let client = support::builder(&server)
        .retry(
            RetryPolicy::default()
                .with_max_attempts(500)
                .with_base_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(400))
                .with_deadline(Duration::from_millis(1200)),
        )
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    // Each wait is at least half its back-off cap (25, 50, 100, 200, 200, … ms), so no more
    // than a handful of attempts fit in the deadline, never hundreds.
    assert!(server.count() <= 10, "{} attempts", server.count());
}

#[tokio::test]
async fn no_resend_starts_after_the_deadline_of_the_request_it_came_from() {
    let gate = support::Gate::closed();
    let (server, arrivals) =
        unattributed_server(Duration::ZERO, Reply::accepted().when_open(&gate)).await;
    let client = support::builder(&server)
        .retry(
            support::fast_retry()
                .with_max_attempts(1)
                .with_deadline(Duration::from_millis(800)),
        )
        .request_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(client)
        .concurrency(2)
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 0..10 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.shutdown().await;
    gate.open();
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 10);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Failed(Error::Failed { .. })))
    );
    let singles = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| p == "/events")
        .count();
    // The first resends (one per slot) start in time and time out past the deadline; the
    // others are not started.
    assert!(singles <= 4, "{singles} resends started");
    let not_started = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o.verdict,
                Verdict::Failed(Error::Failed {
                    attempts: 0,
                    reason: rokt_capi::error::GiveUp::Deadline,
                    ..
                })
            )
        })
        .count();
    assert_eq!(not_started, 10 - singles);
}

/// Two subscriptions: every track, and orders with their own mapping.
fn two_subscriptions() -> rokt_capi::subscription::Destination {
    rokt_capi::subscription::Destination::from_json(
        r#"{"subscriptions":[
            {"name":"tracks","trigger":"type = \"track\""},
            {"name":"orders","trigger":"event = \"Order Completed\"",
             "mapping":{"ip":{"@path":"$.context.no_such_field"}}},
            {"name":"identifies","trigger":"type = \"identify\""}
        ]}"#,
    )
    .unwrap()
}

#[tokio::test]
async fn a_destination_routes_each_event_to_every_matching_subscription_with_an_outcome_each() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .destination(two_subscriptions())
        .outcomes_to(tx)
        .build()
        .unwrap();
    // support::event is an "Order Completed" track: both track subscriptions take it.
    let order = dispatcher.enqueue(support::event(1)).await.unwrap();
    let names: Vec<_> = order
        .tickets
        .iter()
        .map(|r| r.subscription.as_deref())
        .collect();
    assert_eq!(names, [Some("tracks"), Some("orders")]);
    assert!(order.refused.is_empty());
    // A page matches nothing: no ticket, no outcome, not an error.
    let page = dispatcher
        .enqueue(serde_json::json!({"type": "page", "messageId": "p"}))
        .await
        .unwrap();
    assert!(!page.is_routed() && page.ticket().is_none());
    // An identify without identities: its only subscription refuses it.
    let err = dispatcher
        .enqueue(serde_json::json!({"type": "identify", "messageId": "i"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.refusals()[0].subscription.as_deref(),
        Some("identifies")
    );
    assert!(
        err.to_string()
            .starts_with("the event cannot be sent: subscription `identifies`: ")
    );
    dispatcher.shutdown().await;

    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 2);
    for (o, routed) in outcomes.iter().zip(&order.tickets) {
        assert!(o.verdict.is_delivered(), "{o:?}");
        assert_eq!(
            (o.ticket, &o.subscription),
            (routed.ticket, &routed.subscription)
        );
        assert_eq!(o.body, None, "a delivered outcome carries no body");
    }
    // Each subscription mapped with its own settings: the same event, two different batches.
    let bodies: Vec<_> = server.received().iter().flat_map(|r| r.batches()).collect();
    assert_eq!(bodies.len(), 2);
    assert_ne!(bodies[0], bodies[1]);
    let stats = dispatcher.stats();
    assert_eq!((stats.enqueued, stats.delivered, stats.invalid), (2, 2, 1));
}

#[tokio::test]
async fn an_outcome_not_delivered_carries_the_bytes_that_were_sent() {
    let server = MockServer::script(vec![Reply::errors(400, &[("BAD_REQUEST", "no")])]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .destination(two_subscriptions())
        .max_batch_items(1)
        .outcomes_to(tx)
        .build()
        .unwrap();
    dispatcher.enqueue(support::event(7)).await.unwrap();
    dispatcher.shutdown().await;
    let outcomes = drain(&mut rx);
    let sent = server.received();
    assert_eq!(outcomes.len(), 2);
    for o in &outcomes {
        assert!(matches!(o.verdict, Verdict::Rejected(_)), "{o:?}");
        let body = o.body.as_ref().expect("a dead-letter body");
        let within = |r: &Received| r.body.windows(body.len()).any(|w| w == &body[..]);
        assert!(sent.iter().any(within), "the very bytes sent");
        // Kept as a typed batch, it can be queued again as it is.
        let batch: rokt_capi::rokt::Batch = serde_json::from_slice(body).unwrap();
        assert_eq!(batch.source_message_id(), Some("m-7"));
        // Neither Debug nor Serialize shows it.
        let debug = format!("{o:?}");
        let json = serde_json::to_string(o).unwrap();
        for shown in [&debug, &json] {
            assert!(!shown.contains("m-7\",\"events") && !shown.contains("user_identities"));
        }
        assert!(json.contains("\"verdict\":\"rejected\"") && json.contains("\"status\":400"));
        assert!(
            json.contains(&format!("\"body_bytes\":{}", body.len())),
            "{json}"
        );
    }
}

#[tokio::test]
async fn a_destination_needs_a_queue_for_all_its_subscriptions_and_try_enqueue_batch_answers_at_once()
 {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let err = Dispatcher::builder(support::client(&server))
        .destination(two_subscriptions())
        .queue_capacity(2)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("queue_capacity"), "{err}");
    let dispatcher = Dispatcher::builder(support::client(&server))
        .queue_capacity(1)
        .flush_interval(Duration::from_secs(3600))
        .concurrency(1)
        .build()
        .unwrap();
    let batch = || {
        dispatcher
            .client()
            .pipeline()
            .batch(support::event(1))
            .unwrap()
    };
    let mut taken = 0;
    let full = loop {
        match dispatcher.try_enqueue_batch(batch()) {
            Ok(_) => taken += 1,
            Err(e) => break e,
        }
        assert!(taken < 10_000, "the queue never filled");
    };
    assert_eq!(full.label(), "full");
    dispatcher.shutdown().await;
    assert!(matches!(
        dispatcher.try_enqueue_batch(batch()),
        Err(EnqueueError::Closed(_))
    ));
}
