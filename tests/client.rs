//! The HTTP client against a mock Rokt on loopback.

mod support;

use rokt_capi::client::{Client, Clock, RetryPolicy};
use rokt_capi::error::{AttemptFailure, GiveUp, TransportErrorKind};
use rokt_capi::request::{Endpoint, Limits, RequestKind};
use rokt_capi::{Error, Pipeline};
use serde_json::json;
use std::time::{Duration, SystemTime};
use support::{MockServer, Received, Reply};

fn paths(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.path.clone()).collect()
}

#[tokio::test]
async fn send_posts_one_batch_with_auth_and_headers() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    let receipt = client.send(support::event(1)).await.unwrap();
    assert_eq!((receipt.status, receipt.attempts), (202, 1));
    assert_eq!(receipt.kind, RequestKind::Single);

    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/events"));
    assert_eq!(
        r.header("authorization"),
        Some(support::expected_auth().as_str())
    );
    assert_eq!(
        r.header("authorization"),
        Some("Basic dGVzdC1rZXk6dGVzdC1zZWNyZXQ=")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("user-agent")
            .unwrap()
            .starts_with("rokt-capi-rust/")
    );
    // The body is exactly what the pipeline builds: one batch object.
    let expected = client.pipeline().request(support::event(1)).unwrap();
    let body = r.json();
    assert!(body.is_object());
    assert_eq!(body["events"][0]["data"]["source_message_id"], json!("m-1"));
    assert_eq!(body["user_identities"]["email"], json!("user1@example.com"));
    let preview: serde_json::Value = serde_json::from_slice(&expected.body).unwrap();
    assert_eq!(body["user_identities"], preview["user_identities"]);
}

#[tokio::test]
async fn base_path_and_user_agent_are_configurable() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = Client::builder()
        .credentials(rokt_capi::Credentials::new(support::KEY, support::SECRET))
        .endpoint(Endpoint::custom(&format!("{}/s2s/v2/", server.url())).unwrap())
        .user_agent("my-service/1.0")
        .build()
        .unwrap();
    let batch = support::batch(&client, 7);
    client.send_batch(&batch).await.unwrap();
    client.send_bulk(&[batch.clone(), batch]).await;
    let got = server.received();
    assert_eq!(paths(&got), ["/s2s/v2/events", "/s2s/v2/bulkevents"]);
    assert_eq!(got[0].header("user-agent"), Some("my-service/1.0"));
}

#[tokio::test]
async fn bulk_goes_to_bulkevents_as_an_array() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    let batches: Vec<_> = (0..3).map(|i| support::batch(&client, i)).collect();
    let report = client.send_bulk(&batches).await;
    assert_eq!((report.delivered(), report.requests), (3, 1));
    let got = server.received();
    assert_eq!(paths(&got), ["/bulkevents"]);
    assert_eq!(got[0].message_ids(), ["m-0", "m-1", "m-2"]);
}

#[tokio::test]
async fn bulk_splits_at_100_items_in_order() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    let report = client.send_events((0..250).map(support::event)).await;
    assert_eq!((report.delivered(), report.requests), (250, 3));
    let got = server.received();
    let sizes: Vec<usize> = got.iter().map(|r| r.batches().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let ids: Vec<String> = got.iter().flat_map(Received::message_ids).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("m-{i}")).collect();
    assert_eq!(ids, expected);
}

/// The client encodes through the pipeline's borrowed path: what reaches Rokt is byte for
/// byte what `Pipeline::bulk` plans for the same events, hashing included.
#[tokio::test]
async fn the_client_sends_the_bytes_the_pipeline_plans() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let hash_all = json!({"hashingConfiguration": {"hashEmail": true, "hashFirstName": true,
        "hashLastName": true, "hashMobile": true, "hashBillingZipcode": true}});
    let pipeline = Pipeline::builder().overrides(hash_all).build().unwrap();
    let client = support::builder(&server)
        .pipeline(pipeline.clone())
        .build()
        .unwrap();
    let events: Vec<_> = (0..30)
        .map(|i| {
            let mut e = support::event(i);
            e["context"]["traits"]["first_name"] = json!(format!(" Zoë{i} "));
            e["context"]["traits"]["phone"] = json!("+1 (415) 555-0100");
            e["context"]["page"] = json!({"search": format!("?rtid=r{i}&x=1")});
            e
        })
        .collect();
    let report = client.send_events(&events).await;
    assert_eq!((report.delivered(), report.requests), (30, 1));
    let planned = pipeline.bulk(&events);
    let sent: Vec<Vec<u8>> = server.received().into_iter().map(|r| r.body).collect();
    let expected: Vec<Vec<u8>> = planned.requests.iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(sent, expected);
}

fn padded_event(i: usize, pad: usize) -> serde_json::Value {
    let mut e = support::event(i);
    e["context"]["userAgent"] = json!("x".repeat(pad));
    e
}

#[tokio::test]
async fn bulk_splits_by_bytes() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    // Each batch is about 100 KB: two fit in a 256 KB request, three do not.
    let events: Vec<_> = (0..5).map(|i| padded_event(i, 100 * 1024)).collect();
    let report = client.send_events(&events).await;
    assert_eq!(report.delivered(), 5);
    let got = server.received();
    let sizes: Vec<usize> = got.iter().map(|r| r.batches().len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    for r in &got {
        assert!(r.body.len() <= Limits::default().max_request_bytes);
    }
}

#[tokio::test]
async fn oversize_items_are_refused_before_sending() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    let huge = padded_event(1, 130 * 1024);

    let err = client.send(&huge).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit, .. } if limit == 128 * 1024));
    assert!(err.is_bad_input());
    assert_eq!(server.count(), 0, "nothing is sent for an oversize event");

    let report = client
        .send_events([support::event(0), huge, support::event(2)])
        .await;
    assert!(report.items[0].is_ok() && report.items[2].is_ok());
    assert!(matches!(report.items[1], Err(Error::TooLarge { .. })));
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_ids(), ["m-0", "m-2"]);

    // Bad input is refused the same way, without a request.
    let report = client.send_events([support::bad_event()]).await;
    assert!(report.items[0].as_ref().unwrap_err().is_bad_input());
    assert_eq!((report.requests, server.count()), (0, 1));
}

#[tokio::test]
async fn old_events_go_to_historical() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    // The clock is fixed: 2026-03-04 is "now".
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_600_000);
    let client = support::builder(&server)
        .clock(Clock::fixed(now))
        .build()
        .unwrap();
    let recent = support::event_at(1, "2026-03-01T00:00:00Z");
    let old = support::event_at(2, "2026-01-01T00:00:00Z");

    let r = client.send(&old).await.unwrap();
    assert_eq!(r.kind, RequestKind::Historical);
    let r = client.send(&recent).await.unwrap();
    assert_eq!(r.kind, RequestKind::Single);
    let report = client.send_events([&recent, &old, &recent, &old]).await;
    assert_eq!(report.delivered(), 4);
    let got = server.received();
    assert_eq!(
        paths(&got),
        [
            "/bulkevents/historical",
            "/events",
            "/bulkevents",
            "/bulkevents/historical"
        ]
    );
    assert!(got[0].json().is_array(), "historical takes an array");
    assert_eq!(got[3].batches().len(), 2);

    // The caller may choose the route.
    let b = client.pipeline().batch(&old).unwrap();
    assert_eq!(client.route_for(&b), RequestKind::Historical);
    client.send_batch_as(RequestKind::Bulk, &b).await.unwrap();
    client
        .send_bulk_as(RequestKind::Single, &[b.clone(), b])
        .await;
    assert_eq!(
        paths(&server.received()[4..]),
        ["/bulkevents", "/events", "/events"]
    );

    // A shorter threshold, configurable.
    let client = support::builder(&server)
        .clock(Clock::fixed(now))
        .historical_after(Duration::from_secs(86_400))
        .build()
        .unwrap();
    assert_eq!(
        client.send(&recent).await.unwrap().kind,
        RequestKind::Historical
    );
}

#[tokio::test]
async fn retries_429_after_retry_after() {
    let server = MockServer::script(vec![
        Reply::status(429).header("Retry-After", "0"),
        Reply::status(429).header("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"),
        Reply::accepted(),
    ])
    .await;
    let client = support::client(&server);
    let r = client.send(support::event(1)).await.unwrap();
    assert_eq!((r.status, r.attempts), (202, 3));
    let got = server.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same body is resent"
    );
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_gives_up_without_waiting() {
    let server = MockServer::script(vec![Reply::status(429).header("Retry-After", "3600")]).await;
    let client = support::client(&server);
    let err = client.send(support::event(1)).await.unwrap_err();
    assert_eq!(
        err,
        Error::Failed {
            attempts: 1,
            reason: GiveUp::Deadline,
            last: AttemptFailure::Status(429),
            cause: None,
        }
    );
    assert!(!err.is_permanent());
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn retries_500_then_succeeds() {
    let server = MockServer::script(vec![Reply::status(500), Reply::accepted()]).await;
    let client = support::client(&server);
    let r = client.send(support::event(1)).await.unwrap();
    assert_eq!((r.status, r.attempts), (202, 2));
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_storm_of_503_ends_after_max_attempts() {
    let server = MockServer::script(vec![Reply::status(503)]).await;
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(4))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert_eq!(
        err,
        Error::Failed {
            attempts: 4,
            reason: GiveUp::MaxAttempts,
            last: AttemptFailure::Status(503),
            cause: None,
        }
    );
    assert_eq!(err.status(), 503);
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn a_storm_of_503_ends_at_the_deadline() {
    let server = MockServer::script(vec![Reply::status(503)]).await;
    let policy = RetryPolicy::default()
        .with_max_attempts(10_000)
        .with_base_delay(Duration::from_millis(2))
        .with_max_delay(Duration::from_millis(10))
        .with_deadline(Duration::from_millis(150));
    let client = support::builder(&server).retry(policy).build().unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    let Error::Failed {
        attempts,
        reason,
        last,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (reason, last),
        (GiveUp::Deadline, AttemptFailure::Status(503))
    );
    assert!(attempts > 1 && attempts < 10_000);
    assert_eq!(server.count(), attempts as usize);
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let server = MockServer::script(vec![Reply::Reset, Reply::Close, Reply::accepted()]).await;
    let client = support::client(&server);
    let r = client.send(support::event(1)).await.unwrap();
    assert_eq!(r.attempts, 3);
    assert_eq!(server.count(), 3);

    let server = MockServer::script(vec![Reply::Reset]).await;
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(3))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Failed {
                attempts: 3,
                reason: GiveUp::MaxAttempts,
                last: AttemptFailure::Transport(TransportErrorKind::Connection),
                cause: Some(_),
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::builder()
        .api_key("k")
        .api_secret("s")
        .endpoint_url(&url)
        .retry(support::fast_retry().with_max_attempts(2))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Failed {
                attempts: 2,
                reason: GiveUp::MaxAttempts,
                last: AttemptFailure::Transport(TransportErrorKind::Connect),
                cause: Some(_),
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let server = MockServer::script(vec![
        Reply::accepted().after(Duration::from_secs(3)),
        Reply::accepted(),
    ])
    .await;
    let client = support::builder(&server)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let r = client.send(support::event(1)).await.unwrap();
    assert_eq!(r.attempts, 2);

    let server = MockServer::script(vec![Reply::accepted().after(Duration::from_secs(3))]).await;
    let client = support::builder(&server)
        .request_timeout(Duration::from_millis(100))
        .retry(support::fast_retry().with_max_attempts(2))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Failed {
                attempts: 2,
                reason: GiveUp::MaxAttempts,
                last: AttemptFailure::Transport(TransportErrorKind::Timeout),
                cause: Some(_),
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), 504);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let personal = "Invalid email user1@example.com";
    for (status, code) in [
        (400, "BAD_REQUEST"),
        (401, "UNAUTHORIZED"),
        (403, "FORBIDDEN"),
    ] {
        let server = MockServer::script(vec![Reply::errors(status, &[(code, personal)])]).await;
        let client = support::client(&server);
        let err = client.send(support::event(1)).await.unwrap_err();
        let Error::Rejected(rejection) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(rejection.status, status);
        assert_eq!(rejection.code.as_deref(), Some(code));
        assert_eq!(rejection.message(), Some(personal));
        assert!(err.is_permanent() && !err.is_bad_input());
        assert_eq!(err.status(), status);
        // Neither Display nor Debug repeats what Rokt echoed.
        assert!(!err.to_string().contains("example.com"), "{err}");
        assert!(!format!("{err:?}").contains("example.com"));
        assert_eq!(server.count(), 1, "{status} must not be retried");

        // A bulk request is refused as a whole, also in one request.
        let report = client.send_events((0..3).map(support::event)).await;
        assert!(
            report
                .items
                .iter()
                .all(|r| matches!(r, Err(Error::Rejected(x)) if x.status == status))
        );
        assert_eq!(server.count(), 2);
    }
    // A body that is not mParticle's shape: status only.
    let server = MockServer::script(vec![Reply::status(401).body("Unauthorized")]).await;
    let err = support::client(&server)
        .send(support::event(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "rejected by Rokt: HTTP 401");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = MockServer::script(vec![Reply::accepted()]).await;
    let server = MockServer::script(vec![
        Reply::status(307).header("Location", &format!("{}/events", target.url())),
    ])
    .await;
    let err = support::client(&server)
        .send(support::event(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rejected(r) if r.status == 307),
        "{err:?}"
    );
    assert_eq!((server.count(), target.count()), (1, 0));
}

#[tokio::test]
async fn partial_errors_reject_the_named_items() {
    let server = MockServer::script(vec![Reply::errors(
        202,
        &[
            ("BAD_REQUEST", "Path '[1].events[0].data' is invalid"),
            ("BAD_REQUEST", "Path '[3].user_identities' is invalid"),
        ],
    )])
    .await;
    let client = support::client(&server);
    let report = client.send_events((0..5).map(support::event)).await;
    for (i, item) in report.items.iter().enumerate() {
        if i == 1 || i == 3 {
            let Err(Error::Rejected(r)) = item else {
                panic!("{i}: {item:?}")
            };
            assert_eq!((r.status, r.code.as_deref()), (202, Some("BAD_REQUEST")));
        } else {
            assert_eq!(item.as_ref().unwrap().status, 202);
        }
    }
    assert_eq!(server.count(), 1, "named items need no second request");
}

#[tokio::test]
async fn unattributed_errors_resend_items_one_by_one() {
    // The bulk answer names item 0 and has one error that names nothing; the other items
    // are then sent alone to `/events`, where m-2 is refused.
    let server = MockServer::start(|r| {
        if r.path == "/bulkevents" {
            return Reply::errors(
                202,
                &[
                    ("BAD_REQUEST", "Path '[0]' is invalid"),
                    ("BAD_REQUEST", "Something is wrong"),
                ],
            );
        }
        if r.message_ids() == ["m-2"] {
            return Reply::errors(202, &[("BAD_REQUEST", "Required event field missing")]);
        }
        Reply::accepted()
    })
    .await;
    let client = support::client(&server);
    let report = client.send_events((0..4).map(support::event)).await;
    let ok: Vec<bool> = report.items.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [false, true, false, true]);
    assert_eq!(report.items[1].as_ref().unwrap().kind, RequestKind::Single);
    let got = server.received();
    assert_eq!(
        paths(&got),
        ["/bulkevents", "/events", "/events", "/events"]
    );
    let singles: Vec<String> = got[1..].iter().flat_map(Received::message_ids).collect();
    assert_eq!(singles, ["m-1", "m-2", "m-3"]);

    // A single event with errors in its 202 is rejected.
    let err = client.send(support::event(2)).await.unwrap_err();
    assert!(matches!(err, Error::Rejected(r) if r.status == 202));
}

#[tokio::test]
async fn historical_items_are_resent_alone_on_the_historical_route() {
    let server = MockServer::start(|r| {
        if r.batches().len() > 1 {
            Reply::errors(202, &[("BAD_REQUEST", "no item named")])
        } else {
            Reply::accepted()
        }
    })
    .await;
    let client = support::client(&server);
    let old = support::event_at(1, "2020-01-01T00:00:00Z");
    let report = client.send_events([&old, &old]).await;
    assert_eq!(report.delivered(), 2);
    assert_eq!(paths(&server.received()), ["/bulkevents/historical"; 3]);
}

#[tokio::test]
async fn send_request_sends_a_prebuilt_request() {
    let server = MockServer::script(vec![Reply::status(500), Reply::accepted()]).await;
    let client = support::client(&server);
    let pipeline = Pipeline::builder()
        .endpoint(Endpoint::custom(&server.url()).unwrap())
        .build()
        .unwrap();
    let request = pipeline.request(support::event(3)).unwrap();
    assert!(request.header("authorization").is_none());
    let r = client.send_request(&request).await.unwrap();
    assert_eq!((r.status, r.attempts), (202, 2));
    let got = server.received();
    assert_eq!(
        got[1].header("authorization"),
        Some(support::expected_auth().as_str())
    );
    assert_eq!(got[1].body, request.body.to_vec());
}

#[test]
fn the_builder_checks_its_settings() {
    let config = |b: rokt_capi::ClientBuilder| match b.build() {
        Err(Error::Config(e)) => e.setting,
        other => panic!("{other:?}"),
    };
    let ok = || Client::builder().api_key("k").api_secret("s");
    assert_eq!(config(Client::builder()), "credentials");
    assert_eq!(config(Client::builder().api_key("k")), "credentials");
    assert_eq!(config(Client::builder().api_secret("s")), "credentials");
    assert_eq!(config(ok().endpoint_url("http://example.com")), "endpoint");
    assert_eq!(
        config(ok().endpoint_url("https://u:p@example.com")),
        "endpoint"
    );
    assert_eq!(config(ok().endpoint_url("not a url")), "endpoint");
    assert_eq!(
        config(ok().request_timeout(Duration::ZERO)),
        "request_timeout"
    );
    assert_eq!(
        config(ok().connect_timeout(Duration::ZERO)),
        "connect_timeout"
    );
    assert_eq!(
        config(ok().retry(RetryPolicy::default().with_max_attempts(0))),
        "retry"
    );
    assert_eq!(config(ok().user_agent("bad\nagent")), "user_agent");
    assert_eq!(
        config(
            ok().pipeline(Pipeline::new(rokt_capi::mapping::Preset::Send))
                .overrides(json!({}))
        ),
        "pipeline"
    );
    assert!(matches!(
        ok().overrides(json!({"email": {"@nonsense": 1}})).build(),
        Err(Error::Mapping(_))
    ));

    let client = ok().api_secret("s3cr3t-value").build().unwrap();
    assert_eq!(client.endpoint(), &Endpoint::rokt());
    let shown = format!("{client:?}");
    assert!(!shown.contains("s3cr3t-value"), "{shown}");
    assert!(!shown.contains(&rokt_capi::Credentials::new("k", "s3cr3t-value").authorization()));
    let pod = ok()
        .endpoint(Endpoint::pod(rokt_capi::request::Pod::Eu1))
        .build()
        .unwrap();
    assert_eq!(
        pod.endpoint().url(RequestKind::Bulk),
        "https://s2s.eu1.mparticle.com/v2/bulkevents"
    );

    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Client>();
}

/// `cargo run --example event_tester` works offline: it prints the payload and `202`.
/// (`cargo test` builds the examples; when run alone without them, this test says so and passes.)
#[test]
fn the_event_tester_example_runs_offline() {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let tester = dir
        .join("examples")
        .join(format!("event_tester{}", std::env::consts::EXE_SUFFIX));
    if !tester.exists() {
        println!("skipped: {} is not built", tester.display());
        return;
    }
    let out = std::process::Command::new(tester)
        .env_remove("ROKT_API_KEY")
        .env_remove("ROKT_API_SECRET")
        .env_remove("ROKT_ENDPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("POST http://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("\"source_message_id\": \"event-tester-"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("HTTP status: 202"), "{stdout}");
}

// ---- Hostile answers: the status line decides, the body can only add per-item errors ----

use support::raw::{self, RawServer, Step};

fn raw_client(server: &RawServer) -> Client {
    Client::builder()
        .api_key(support::KEY)
        .api_secret(support::SECRET)
        .endpoint_url(&server.url())
        .retry(support::fast_retry())
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn hundred_events() -> Vec<serde_json::Value> {
    (0..100).map(support::event).collect()
}

/// A message naming bulk item `i`, padded like a long mParticle message.
fn naming(i: usize, pad: usize) -> String {
    format!(
        "Path '[{i}].events[0].data' is invalid: {}",
        "x".repeat(pad)
    )
}

#[tokio::test]
async fn a_202_naming_every_item_in_a_78_kb_answer_rejects_every_item() {
    let body = raw::errors_body((0..100).map(|i| naming(i, 740)));
    assert!(body.len() > 78_000, "{}", body.len());
    let server = RawServer::always(raw::answer(202, &body)).await;
    let report = raw_client(&server).send_events(hundred_events()).await;
    assert_eq!(server.count(), 1, "nothing is sent again");
    for (i, item) in report.items.iter().enumerate() {
        match item {
            Err(Error::Rejected(r)) => {
                assert_eq!((r.status, r.code.as_deref()), (202, Some("BAD_REQUEST")))
            }
            other => panic!("item {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_202_naming_items_in_a_megabytes_long_answer_rejects_them_all() {
    // 100 errors of 40 KB each: no fixed cut may hide the last ones.
    let body = raw::errors_body((0..100).rev().map(|i| naming(i, 40_000)));
    let server = RawServer::always(raw::answer(202, &body)).await;
    let report = raw_client(&server).send_events(hundred_events()).await;
    assert_eq!(server.count(), 1);
    assert_eq!(report.delivered(), 0);
    assert!(
        report
            .items
            .iter()
            .all(|r| matches!(r, Err(Error::Rejected(_))))
    );
}

#[tokio::test]
async fn a_202_cut_mid_answer_rejects_what_it_named_and_resends_nothing() {
    let body = raw::errors_body((0..100).map(|i| naming(i, 100)));
    let cut = body.len() / 2;
    let server = RawServer::always(vec![
        raw::head(202, &[], Some(body.len())),
        Step::Write(body.as_bytes()[..cut].to_vec()),
        Step::Close,
    ])
    .await;
    let report = raw_client(&server).send_events(hundred_events()).await;
    assert_eq!(server.count(), 1, "an accepted request is never sent again");
    let rejected = report
        .items
        .iter()
        .take_while(|r| matches!(r, Err(Error::Rejected(_))))
        .count();
    assert!(
        rejected > 10,
        "the errors that arrived whole count: {rejected}"
    );
    for item in &report.items[rejected..] {
        let receipt = item.as_ref().expect("accepted by the status");
        assert!(!receipt.answer_complete);
    }
}

/// Every way a 2xx body can go wrong: the status has decided, nothing is sent again.
#[tokio::test]
async fn a_2xx_whose_body_breaks_or_trickles_is_delivered_once() {
    let errors_start = "{\"errors\":[".to_owned();
    let unnamed = r#"{"code":"BAD_REQUEST","message":"something"},"#;
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "cut",
            vec![
                raw::head(202, &[], Some(100)),
                Step::text("{\"err"),
                Step::Close,
            ],
        ),
        (
            "reset",
            vec![
                raw::head(202, &[], Some(100)),
                Step::text("{\"err"),
                Step::Reset,
            ],
        ),
        (
            "endless unattributed errors",
            vec![
                raw::head(202, &[], None),
                Step::Write(raw::chunk(errors_start.as_bytes())),
                Step::Endless(raw::chunk(unnamed.repeat(200).as_bytes())),
            ],
        ),
        (
            "trickle",
            vec![
                raw::head(202, &[], Some(40)),
                Step::Trickle(
                    b"{\"errors\":[{\"code\":\"BAD_REQUEST\",".to_vec(),
                    Duration::from_millis(100),
                ),
            ],
        ),
        (
            "stall",
            vec![raw::head(202, &[], Some(40)), Step::text("{"), Step::Hang],
        ),
    ];
    for (name, steps) in cases {
        let server = RawServer::always(steps).await;
        let client = Client::builder()
            .api_key(support::KEY)
            .api_secret(support::SECRET)
            .endpoint_url(&server.url())
            .retry(support::fast_retry())
            .request_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let report = client
            .send_events((0..5).map(support::event).collect::<Vec<_>>())
            .await;
        assert_eq!(server.count(), 1, "{name}: sent once");
        for item in &report.items {
            let receipt = item.as_ref().unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(receipt.status, 202, "{name}");
            assert!(!receipt.answer_complete, "{name}");
        }
        // Alone, the item owns every error that arrived whole (the endless case names it).
        let single = client.send(support::event(9)).await;
        assert!(
            matches!(single, Ok(_) | Err(Error::Rejected(_))),
            "{name}: {single:?}"
        );
        assert_eq!(server.count(), 2, "{name}: sent once");
    }
}

#[tokio::test]
async fn a_4xx_whose_body_breaks_is_rejected_at_once() {
    let cases: Vec<(u16, Vec<Step>)> = vec![
        (
            401,
            vec![
                raw::head(401, &[], Some(200)),
                Step::text("{\"errors\":[{\"co"),
                Step::Reset,
            ],
        ),
        (
            403,
            vec![
                raw::head(403, &[], Some(200)),
                Step::text("{\"errors\""),
                Step::Close,
            ],
        ),
        (
            400,
            vec![
                raw::head(400, &[], Some(200)),
                Step::Trickle(b"{\"errors\":[".to_vec(), Duration::from_millis(150)),
            ],
        ),
        (
            401,
            vec![
                raw::head(401, &[], None),
                Step::Endless(raw::chunk(b"[[[[[[[[")),
            ],
        ),
    ];
    for (status, steps) in cases {
        let server = RawServer::always(steps).await;
        let client = Client::builder()
            .api_key(support::KEY)
            .api_secret(support::SECRET)
            .endpoint_url(&server.url())
            .retry(support::fast_retry())
            .request_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let err = client.send(support::event(1)).await.unwrap_err();
        match &err {
            Error::Rejected(r) => assert_eq!(r.status, status),
            other => panic!("{status}: {other:?}"),
        }
        assert!(err.is_permanent());
        assert_eq!(server.count(), 1, "{status}: never retried");
    }
    // A whole 401 body still gives its code.
    let server = RawServer::always(raw::answer(
        401,
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad key"}]}"#,
    ))
    .await;
    let Error::Rejected(r) = raw_client(&server)
        .send(support::event(1))
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(r.code.as_deref(), Some("UNAUTHORIZED"));
}

#[tokio::test]
async fn transport_failures_keep_their_kind_and_cause() {
    use std::error::Error as _;
    // Refused: a connect error, not a made-up answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::builder()
        .api_key("k")
        .api_secret("s")
        .endpoint_url(&format!("{url}/secret-path"))
        .retry(support::fast_retry().with_max_attempts(2))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert_eq!(err.transport_kind(), Some(TransportErrorKind::Connect));
    assert_eq!(err.http_status(), None);
    assert_eq!(err.error_type(), "ECONNREFUSED");
    let cause = err.source().expect("a cause");
    let mut chain = Vec::new();
    let mut at: Option<&dyn std::error::Error> = Some(cause);
    while let Some(e) = at {
        chain.push(e.to_string());
        at = e.source();
    }
    assert!(chain.len() >= 2, "{chain:?}");
    let all = format!("{} {err:?} {err}", chain.join("\n"));
    assert!(
        !all.contains("secret-path") && !all.contains(&url[7..]),
        "{all}"
    );
    assert!(err.clone() == err);

    // Not a TLS server behind an https endpoint: a TLS error (needs a TLS backend).
    if cfg!(any(feature = "rustls", feature = "native-tls")) {
        let server = RawServer::always(raw::answer(202, "{}")).await;
        let client = Client::builder()
            .api_key("k")
            .api_secret("s")
            .endpoint_url(&format!("https://{}", server.addr()))
            .retry(support::fast_retry().with_max_attempts(1))
            .build()
            .unwrap();
        let err = client.send(support::event(1)).await.unwrap_err();
        assert_eq!(
            err.transport_kind(),
            Some(TransportErrorKind::Tls),
            "{err:?}"
        );
        assert!(err.source().is_some());
    }

    // A timeout.
    let server = RawServer::always(vec![Step::Hang]).await;
    let client = Client::builder()
        .api_key("k")
        .api_secret("s")
        .endpoint_url(&server.url())
        .retry(support::fast_retry().with_max_attempts(1))
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.source().is_some());
}

#[tokio::test]
async fn an_error_code_echoing_an_id_is_never_shown() {
    for code in ["user8812", "JaneDoe", "JANE42", "a@b.c", "BAD REQUEST"] {
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"x"}}]}}"#);
        let server = RawServer::always(raw::answer(400, &body)).await;
        let err = raw_client(&server)
            .send(support::event(1))
            .await
            .unwrap_err();
        let Error::Rejected(r) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(r.code, None, "{code}");
        assert!(!err.to_string().contains(code) && !format!("{err:?}").contains(code));
    }
}

// ---- Transport policy: https only (http to loopback or an explicit host), credentials only to the endpoint ----

#[tokio::test]
async fn send_request_refuses_urls_the_endpoint_policy_refuses() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let other = MockServer::start_on("127.0.0.2", |_| Reply::accepted()).await;
    let client = support::client(&server);
    let original = client.pipeline().request(support::event(1)).unwrap();
    let mut request = original.clone();
    let config = |r: Result<_, Error>| match r {
        Err(Error::Config(e)) => e.setting,
        other => panic!("{other:?}"),
    };
    // Plain http to another host, with and without the client's credentials in the request.
    for url in [
        "http://example.com/s2s/v2/events",
        "http://10.0.0.1:8080/events",
        "ftp://example.com/events",
        "https://user:pw@example.com/events",
    ] {
        request.url = url.to_owned();
        assert_eq!(
            config(client.send_request(&request).await),
            "request",
            "{url}"
        );
        let mut bare = request.clone();
        bare.headers.retain(|(k, _)| *k != "authorization");
        assert_eq!(config(client.send_request(&bare).await), "request", "{url}");
    }
    // Another origin (loopback, so allowed) never gets the client's credentials.
    let mut elsewhere = original.clone();
    elsewhere.url = format!("{}/events", other.url());
    elsewhere.headers.retain(|(k, _)| *k != "authorization");
    assert_eq!(config(client.send_request(&elsewhere).await), "request");
    assert_eq!(other.count(), 0);
    assert_eq!(server.count(), 0);
    // The client's own endpoint works as before.
    assert_eq!(client.send_request(&original).await.unwrap().status, 202);
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn plain_http_off_loopback_needs_an_explicit_opt_in_and_a_proxy_is_explicit() {
    let config = |b: rokt_capi::ClientBuilder| match b.build() {
        Err(Error::Config(e)) => e.setting,
        other => panic!("{other:?}"),
    };
    let ok = || Client::builder().api_key("k").api_secret("s");
    assert_eq!(
        config(ok().endpoint_url("http://rokt-gw.internal/v2")),
        "endpoint"
    );
    assert_eq!(
        config(
            ok().allow_plain_http_to("other.internal")
                .endpoint_url("http://rokt-gw.internal/v2")
        ),
        "endpoint"
    );
    assert_eq!(config(ok().proxy("not a url")), "proxy");
    assert_eq!(config(ok().proxy("ftp://proxy:21")), "proxy");

    // The opted-in host, reached through an explicit proxy (so no name is resolved): the
    // proxy gets the absolute URL and the credentials; nothing else is contacted.
    let proxy = MockServer::script(vec![Reply::accepted()]).await;
    let client = ok()
        .allow_plain_http_to("ROKT-GW.internal")
        .endpoint_url("http://rokt-gw.internal/v2")
        .proxy(&proxy.url())
        .retry(support::fast_retry())
        .build()
        .unwrap();
    assert_eq!(client.send(support::event(1)).await.unwrap().status, 202);
    let got = proxy.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "http://rokt-gw.internal/v2/events");

    // Rokt over https through the proxy: the proxy is asked to tunnel, and sees only that
    // (needs a TLS backend).
    if !cfg!(any(feature = "rustls", feature = "native-tls")) {
        return;
    }
    let proxy = MockServer::script(vec![Reply::status(403)]).await;
    let client = ok()
        .proxy(&proxy.url())
        .retry(support::fast_retry().with_max_attempts(1))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    let got = proxy.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("CONNECT", "inbound.mparticle.com:443")
    );
    assert!(got[0].header("authorization").is_none());
}

#[tokio::test]
async fn a_429_pauses_the_client_even_when_its_request_gives_up() {
    let arrivals: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>> = Default::default();
    let server = MockServer::start({
        let arrivals = arrivals.clone();
        move |_| {
            let mut a = arrivals.lock().unwrap();
            a.push(std::time::Instant::now());
            if a.len() == 1 {
                Reply::status(429).header("Retry-After", "1")
            } else {
                Reply::accepted()
            }
        }
    })
    .await;
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(1))
        .build()
        .unwrap();
    let err = client.send(support::event(1)).await.unwrap_err();
    assert_eq!(err.http_status(), Some(429));
    // A clone shares the pause.
    client.clone().send(support::event(2)).await.unwrap();
    let a = arrivals.lock().unwrap();
    assert!(
        a[1].duration_since(a[0]) >= Duration::from_millis(900),
        "{:?}",
        a[1].duration_since(a[0])
    );
}
