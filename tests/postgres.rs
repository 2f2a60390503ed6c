//! The Postgres outbox (feature `postgres`) against a real server: `DATABASE_URL` (`.ci/run`
//! starts one on 127.0.0.1). Each test works in a database of its own. Without `DATABASE_URL`
//! the tests say so and pass, unless `CI=true`, where they fail.
#![cfg(feature = "postgres")]

mod support;

use rokt_capi::client::{Dispatcher, Outcome, Verdict};
use rokt_capi::spool::{PostgresSpool, Record, Settle, Spool, SpoolError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use support::{MockServer, Reply};
use tokio::sync::mpsc;

/// A URL for a fresh database on the `DATABASE_URL` server, or `None` (outside CI) without one.
async fn fresh_database() -> Option<String> {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and DATABASE_URL is not set: the postgres tests cannot be skipped"
        );
        println!("skipped: DATABASE_URL is not set");
        return None;
    };
    let name = format!("rokt_t_{:016x}", fastrand::u64(..));
    let spool = PostgresSpool::open(&base)
        .await
        .expect("DATABASE_URL reachable");
    sqlx_exec(spool.pool(), &format!("CREATE DATABASE {name}")).await;
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

async fn sqlx_exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

fn record(i: usize) -> Record {
    Record::new(
        format!("{{\"n\":{i}}}").into(),
        Some(format!("m-{i}")),
        None,
    )
}

#[tokio::test]
async fn workers_claim_disjoint_rows_and_an_expired_lease_is_claimed_again() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let a = PostgresSpool::builder(&url)
        .lease(Duration::from_millis(600))
        .open()
        .await
        .unwrap();
    let b = PostgresSpool::builder(&url)
        .lease(Duration::from_millis(600))
        .open()
        .await
        .unwrap();
    for i in 0..100 {
        a.append(record(i)).await.unwrap();
    }
    let (ca, cb) = tokio::join!(a.claim(60), b.claim(60));
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.len() + cb.len(), 100);
    let ids_a: HashSet<u64> = ca.iter().map(|s| s.id).collect();
    assert!(cb.iter().all(|s| !ids_a.contains(&s.id)), "SKIP LOCKED");
    assert!(b.claim(10).await.unwrap().is_empty(), "all leased");
    // `a` dies: its leases lapse, and `b` claims its rows.
    drop(a);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = b.claim(200).await.unwrap();
    let again: HashSet<u64> = again.iter().map(|s| s.id).collect();
    assert_eq!(again, ids_a);
    // `b` renews its own leases: nothing else comes back.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(b.claim(200).await.unwrap().is_empty());
    b.settle(again.iter().map(|id| Settle::Done(*id)).collect())
        .await
        .unwrap();
    assert_eq!(b.counts().await.unwrap().pending, cb.len() as u64);
}

#[tokio::test]
async fn events_written_in_a_transaction_are_sent_only_when_it_commits() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spool = Arc::new(PostgresSpool::open(&url).await.unwrap());
    let dispatcher = Dispatcher::builder(support::client(&server))
        .spool(spool.clone())
        .flush_interval(Duration::from_millis(10))
        .outcomes_to(tx)
        .build()
        .unwrap();
    let mut db = spool.pool().begin().await.unwrap();
    let kept = PostgresSpool::append_in(&mut db, record_of(&dispatcher, support::event(1)))
        .await
        .unwrap();
    db.commit().await.unwrap();
    let mut db = spool.pool().begin().await.unwrap();
    PostgresSpool::append_in(&mut db, record_of(&dispatcher, support::event(2)))
        .await
        .unwrap();
    db.rollback().await.unwrap();
    let o: Outcome = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.ticket.id(), kept);
    assert!(o.verdict.is_delivered());
    assert_eq!(o.message_id.as_deref(), Some("m-1"));
    dispatcher.shutdown().await;
    let ids: Vec<String> = server
        .received()
        .iter()
        .flat_map(|r| r.message_ids())
        .collect();
    assert_eq!(ids, vec!["m-1".to_owned()]);
    assert_eq!(spool.counts().await.unwrap().pending, 0);
}

#[tokio::test]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (a, b) = tokio::join!(PostgresSpool::open(&url), PostgresSpool::open(&url));
    let a = a.unwrap();
    b.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM rokt_spool_migrations ORDER BY version")
            .fetch_all(a.pool())
            .await
            .unwrap();
    assert_eq!(versions, vec![1, 2], "each migration applied once");
    sqlx_exec(
        a.pool(),
        "INSERT INTO rokt_spool_migrations (version) VALUES (99)",
    )
    .await;
    let e = PostgresSpool::open(&url).await.unwrap_err();
    assert!(matches!(e, SpoolError::Version { found: 99, .. }), "{e:?}");
    let e = PostgresSpool::open("postgres://user:hunter2@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
async fn a_restarted_dispatcher_resumes_and_dead_letters_can_be_requeued() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let healthy = support::Gate::closed();
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
    let client = support::builder(&server)
        .retry(support::fast_retry().with_max_attempts(2))
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spool = Arc::new(PostgresSpool::open(&url).await.unwrap());
    let dispatcher = Dispatcher::builder(client.clone())
        .spool(spool.clone())
        .spool_retry_window(Duration::from_millis(500))
        .spool_max_backoff(Duration::from_millis(100))
        .flush_interval(Duration::from_millis(10))
        .outcomes_to(tx)
        .build()
        .unwrap();
    let mut tickets = HashSet::new();
    for i in 0..20 {
        tickets.insert(
            dispatcher
                .enqueue(support::event(i))
                .await
                .unwrap()
                .ticket()
                .unwrap()
                .id(),
        );
    }
    for _ in 0..20 {
        let o = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(o.verdict, Verdict::Failed(_)));
    }
    dispatcher.shutdown().await;
    drop(dispatcher);
    let dead = spool.dead_letters(100).await.unwrap();
    let dead_ids: HashSet<u64> = dead.iter().map(|d| d.id).collect();
    assert_eq!(dead_ids, tickets);
    healthy.open();
    // Another process would see the same: requeue, and a new dispatcher sends them.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(client)
        .spool(spool.clone())
        .flush_interval(Duration::from_millis(10))
        .outcomes_to(tx)
        .build()
        .unwrap();
    assert_eq!(
        dispatcher
            .requeue(dead_ids.iter().copied().collect())
            .await
            .unwrap()
            .unwrap(),
        20
    );
    let mut delivered = HashSet::new();
    for _ in 0..20 {
        let o = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(o.verdict.is_delivered());
        delivered.insert(o.ticket.id());
    }
    assert_eq!(delivered, tickets);
    dispatcher.shutdown().await;
    let counts = spool.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
}

/// The one record of an event, without a destination.
fn record_of(dispatcher: &Dispatcher, event: serde_json::Value) -> rokt_capi::spool::Record {
    let mut records = dispatcher.records(event);
    assert_eq!(records.len(), 1);
    records.pop().unwrap().unwrap()
}
