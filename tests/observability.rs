//! Observability (issue 7): the dispatcher's counters, outcome labels, and the tracing spans and
//! events of the client and dispatcher, which must carry no personal data.

mod capture;
mod support;

use capture::Captured;
use rokt_capi::client::{Dispatcher, Outcome, Stats, Verdict};
use std::time::Duration;
use support::{MockServer, Received, Reply};
use tokio::sync::mpsc;
use tracing_subscriber::fmt::format::FmtSpan;

fn drain(rx: &mut mpsc::UnboundedReceiver<Outcome>) -> Vec<Outcome> {
    let mut out = Vec::new();
    while let Ok(o) = rx.try_recv() {
        out.push(o);
    }
    out
}

/// A server that answers from `replies` in order (then the last one), per request.
async fn scripted(replies: Vec<Reply>) -> MockServer {
    MockServer::script(replies).await
}

#[tokio::test]
async fn stats_count_events_outcomes_requests_and_retries() {
    logs();
    // One 503, then accepted: the group of three is sent twice.
    let server = scripted(vec![Reply::status(503), Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(support::client(&server))
        .flush_interval(Duration::from_secs(3600))
        .outcomes_to(tx)
        .build()
        .unwrap();
    assert_eq!(dispatcher.stats(), Stats::default());

    for i in 0..3 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.enqueue(support::bad_event()).await.unwrap_err();
    let before = dispatcher.stats();
    assert_eq!(
        (before.enqueued, before.invalid, before.rejected),
        (3, 1, 0)
    );
    assert_eq!(before.pending(), 3);

    dispatcher.flush().await.unwrap();
    let stats = dispatcher.stats();
    assert_eq!((stats.enqueued, stats.invalid), (3, 1));
    assert_eq!(
        (stats.delivered, stats.rejected, stats.failed),
        (3, 0, 0),
        "{stats:?}"
    );
    assert_eq!((stats.requests, stats.retries), (2, 1), "{stats:?}");
    assert_eq!((stats.queue_depth, stats.in_flight), (0, 0));
    assert_eq!((stats.pending(), stats.settled()), (0, 3));
    assert_eq!(server.count(), 2);

    let labels: Vec<&str> = drain(&mut rx).iter().map(Outcome::label).collect();
    assert_eq!(labels, ["delivered", "delivered", "delivered"]);
    dispatcher.shutdown().await;
}

#[tokio::test]
async fn stats_count_rejections_and_failures_by_rokt() {
    logs();
    // Requests alternate: a 400 (rejected), then 500s until the policy gives up (failed).
    let server = MockServer::start(|r: &Received| {
        if r.seq == 0 {
            Reply::errors(400, &[("BAD_REQUEST", "nope")])
        } else {
            Reply::status(500)
        }
    })
    .await;
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(3))
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(client)
        .concurrency(1)
        .outcomes_to(tx)
        .build()
        .unwrap();
    dispatcher.enqueue(support::event(1)).await.unwrap();
    dispatcher.flush().await.unwrap();
    dispatcher.enqueue(support::event(2)).await.unwrap();
    dispatcher.shutdown().await;

    let stats = dispatcher.stats();
    assert_eq!(
        (
            stats.enqueued,
            stats.delivered,
            stats.rejected,
            stats.failed
        ),
        (2, 0, 1, 1)
    );
    assert_eq!((stats.requests, stats.retries), (4, 2), "{stats:?}");
    let labels: Vec<&str> = drain(&mut rx).iter().map(Outcome::label).collect();
    assert_eq!(labels, ["rejected", "failed"]);
}

#[tokio::test]
async fn enqueue_batch_sends_a_mapped_batch() {
    logs();
    let server = scripted(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(client.clone())
        .outcomes_to(tx)
        .build()
        .unwrap();
    let batch = support::batch(&client, 5);
    let ticket = dispatcher.enqueue_batch(batch).await.unwrap();
    dispatcher.shutdown().await;
    let outcomes = drain(&mut rx);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].ticket, ticket);
    assert_eq!(outcomes[0].message_id.as_deref(), Some("m-5"));
    assert!(outcomes[0].verdict.is_delivered());
    assert_eq!(server.received()[0].message_ids(), ["m-5"]);
    // After shutdown the batch comes back.
    let again = support::batch(&client, 6);
    let back = dispatcher
        .enqueue_batch(again)
        .await
        .unwrap_err()
        .into_inner();
    assert_eq!(back.source_message_id(), Some("m-6"));
}

#[test]
fn verdict_labels() {
    use rokt_capi::Error;
    assert_eq!(Verdict::Failed(Error::Closed).label(), "failed");
    assert!(Verdict::Failed(Error::Closed).error().is_some());
}

/// Installs, once for this test binary, a global TRACE subscriber for `rokt_capi` that records
/// spans when they close, and returns what it has written so far. Every test in this file logs
/// through it, so the no-leak check covers them all.
fn logs() -> Captured {
    capture::install("rokt_capi=trace", FmtSpan::CLOSE).clone()
}

#[tokio::test]
async fn spans_and_events_describe_requests_without_personal_data() {
    let captured = logs();
    {
        // A 429 with Retry-After, then accepted; then a 400 whose message echoes an email.
        let server = scripted(vec![
            Reply::status(429).header("Retry-After", "0"),
            Reply::accepted(),
            Reply::errors(
                400,
                &[(
                    "BAD_REQUEST",
                    "Path '[0]': user1@example.com is not allowed",
                )],
            ),
        ])
        .await;
        let dispatcher = Dispatcher::builder(support::client(&server))
            .flush_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        for i in 0..2 {
            dispatcher.enqueue(support::event(i)).await.unwrap();
        }
        dispatcher.flush().await.unwrap();
        dispatcher.enqueue(support::event(1)).await.unwrap();
        dispatcher.enqueue(support::bad_event()).await.unwrap_err();
        dispatcher.shutdown().await;
        let stats = dispatcher.stats();
        assert_eq!(
            (
                stats.delivered,
                stats.rejected,
                stats.invalid,
                stats.retries
            ),
            (2, 1, 1, 1)
        );
    }
    let logs = captured.text();

    for expected in [
        // A span per request and per attempt, with their fields.
        "rokt_request{method=\"POST\" path=/bulkevents kind=Bulk items=2}",
        "rokt_attempt{attempt=1 status=429}",
        "rokt_attempt{attempt=2 status=202}",
        "items=2 attempts=2 status=202 outcome=\"delivered\"}",
        // The retry, with its wait and why.
        "retrying rokt request",
        "failure=HTTP 429",
        "wait_ms=0",
        "retry_after=true",
        // The rejection, by status and code only.
        "rokt rejected a request",
        "code=\"BAD_REQUEST\"",
        "outcome=\"rejected\"",
        // The dispatcher: groups, queue depth, enqueue/flush/shutdown, undelivered events.
        "rokt_dispatch{kind=Bulk items=2 queue_depth=",
        "event queued",
        "rokt dispatcher flush",
        "rokt dispatcher shutting down",
        "event not delivered",
        "message_id=\"m-1\"",
        "verdict=\"rejected\"",
        "error_type=\"BAD_REQUEST\"",
        "event refused at enqueue",
        "error_type=\"PAYLOAD_VALIDATION_FAILED\"",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in:\n{logs}");
    }
    for secret in [
        "example.com",
        "user0",
        "user1",
        "u-0",
        "u-1",
        "203.0.113.9",
        "o-1",
        "Basic",
        support::KEY,
        support::SECRET,
        "127.0.0.1",
    ] {
        assert!(!logs.contains(secret), "{secret:?} leaked into:\n{logs}");
    }
}

/// Without a TLS backend the client refuses https at once, with a configuration error.
#[cfg(not(any(feature = "rustls", feature = "native-tls")))]
#[tokio::test]
async fn https_without_a_tls_backend_is_a_configuration_error() {
    let client = rokt_capi::Client::builder()
        .api_key("k")
        .api_secret("s")
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(matches!(err, rokt_capi::Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test]
async fn stats_time_each_outcome_and_each_attempt_and_serialize_nothing_personal() {
    // One 503, then accepted: two attempts for the group of three.
    let server = scripted(vec![Reply::status(503), Reply::accepted()]).await;
    let dispatcher = Dispatcher::builder(support::client(&server))
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    for i in 0..3 {
        dispatcher.enqueue(support::event(i)).await.unwrap();
    }
    dispatcher.flush().await.unwrap();
    let waited = started.elapsed();
    let stats = dispatcher.stats();
    assert_eq!(stats.outcome_latency.count, 3, "{stats:?}");
    assert_eq!(stats.request_latency.count, 2, "{stats:?}");
    assert_eq!(stats.outcome_latency.buckets.iter().sum::<u64>(), 3);
    // The retry's back-off is inside every outcome's latency, and no latency is longer than
    // the whole wait.
    assert!(stats.outcome_latency.max() <= waited, "{stats:?}");
    assert!(stats.outcome_latency.p50().unwrap() >= stats.request_latency.max() / 2);
    assert!(stats.request_latency.mean().is_some());

    let text = serde_json::to_string(&stats).unwrap();
    for personal in ["u-0", "user0", "example.com", "203.0.113", "m-0", "o-0"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    dispatcher.shutdown().await;
}
