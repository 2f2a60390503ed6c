//! The `segment-crate` feature: the `segment` crate's messages go wherever an event does —
//! `Client::send` and `Dispatcher::enqueue` — and arrive as the JSON event would.
#![cfg(feature = "segment-crate")]

mod support;

use rokt_capi::client::{Dispatcher, Verdict};
use segment_crate::message::{BatchMessage, Track, User};
use serde_json::json;
use std::time::Duration;
use support::{MockServer, Reply};
use tokio::sync::mpsc;

fn track(i: usize) -> Track {
    let mut extra = serde_json::Map::new();
    extra.insert("messageId".into(), json!(format!("m-{i}")));
    Track {
        user: User::UserId {
            user_id: format!("u-{i}"),
        },
        event: "Order Completed".into(),
        properties: json!({"order_id": format!("o-{i}"), "revenue": 20.5}),
        timestamp: None,
        context: Some(json!({"traits": {"email": format!("user{i}@example.com")}})),
        integrations: None,
        extra,
    }
}

#[tokio::test]
async fn segment_crate_messages_are_sent_by_the_client_and_the_dispatcher() {
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let client = support::client(&server);
    assert_eq!(client.send(&stamped(track(0))).await.unwrap().status, 202);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::builder(client)
        .flush_interval(Duration::from_secs(3600))
        .outcomes_to(tx)
        .build()
        .unwrap();
    for i in 1..3 {
        let message = BatchMessage::Track(stamped(track(i)));
        dispatcher.enqueue(message).await.unwrap();
    }
    dispatcher.shutdown().await;
    let mut delivered = 0;
    while let Ok(outcome) = rx.try_recv() {
        assert!(
            matches!(outcome.verdict, Verdict::Delivered(_)),
            "{outcome:?}"
        );
        delivered += 1;
    }
    assert_eq!(delivered, 2);
}

/// `t` stamped now: the `segment` crate's timestamp type read from RFC 3339 text through
/// serde, as it would read a stored message.
fn stamped(mut t: Track) -> Track {
    let text = json!({"event": "x", "properties": {}, "userId": "u",
        "timestamp": chrono::Utc::now().to_rfc3339()});
    let read: Track = serde_json::from_value(text).unwrap();
    t.timestamp = read.timestamp;
    t
}
