//! The rtid memory, case by case against what Rokt's browser plugin does in the browser, and
//! wired into the dispatcher.

mod support;

use proptest::prelude::*;
use rokt_capi::Json;
use rokt_capi::rtid::from_event;
use rokt_capi::rtid::memory::{
    Clock, InMemoryStore, Remembered, RtidMemory, RtidStore, StoreError, VisitorKey,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// A clock the test moves by hand, starting at a fixed date.
#[derive(Clone)]
struct Hands(Arc<AtomicU64>);

impl Hands {
    fn new() -> Hands {
        Hands(Arc::new(AtomicU64::new(1_770_000_000_000)))
    }
    fn clock(&self) -> Clock {
        let ms = self.0.clone();
        Clock::from_fn(move || UNIX_EPOCH + Duration::from_millis(ms.load(Ordering::Relaxed)))
    }
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

fn memory() -> RtidMemory {
    RtidMemory::builder().build().unwrap()
}

fn json(text: &str) -> Json<'_> {
    Json::parse(text).unwrap()
}

/// Observes `text`; the rtid the event leaves with (its own or the one added).
fn rtid_after(memory: &RtidMemory, text: &str) -> Option<String> {
    let event = json(text);
    match memory.observe(&event).unwrap() {
        Some(enriched) => {
            assert_eq!(
                from_event(&event),
                None,
                "an event with an rtid was changed"
            );
            from_event(&enriched)
        }
        None => from_event(&event),
    }
}

fn enriched(memory: &RtidMemory, text: &str) -> Option<String> {
    let event = json(text);
    memory
        .observe(&event)
        .unwrap()
        .map(|e| serde_json::to_string(&e).unwrap())
}

const LANDING: &str = r#"{"type":"page","anonymousId":"a-1","context":{"page":{"search":"?utm_source=rokt&rtid=rt-1","url":"https://shop.example/?utm_source=rokt&rtid=rt-1"}}}"#;
const ORDER: &str = r#"{"type":"track","event":"Order Completed","anonymousId":"a-1","context":{"page":{"search":"","url":"https://shop.example/checkout"}}}"#;

#[test]
fn a_query_on_a_page_view_reaches_a_later_track_without_one() {
    let m = memory();
    assert_eq!(
        enriched(&m, LANDING),
        None,
        "the landing page has its own rtid"
    );
    let order = enriched(&m, ORDER).expect("the order is enriched");
    assert_eq!(
        order,
        r#"{"type":"track","event":"Order Completed","anonymousId":"a-1","context":{"page":{"search":"","url":"https://shop.example/checkout"}},"integrations":{"Rokt Conversions API":{"rtid":"rt-1"}}}"#
    );
}

#[test]
fn the_page_url_and_the_plugin_field_teach_as_the_search_does() {
    let m = memory();
    rtid_after(
        &m,
        r#"{"type":"page","anonymousId":"a-url","context":{"page":{"url":"https://x/?rtid=from-url#top"}}}"#,
    );
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","anonymousId":"a-url"}"#).as_deref(),
        Some("from-url")
    );
    rtid_after(
        &m,
        r#"{"type":"track","event":"x","anonymousId":"a-plugin","integrations":{"Rokt Conversions API":{"rtid":"from-plugin"}}}"#,
    );
    assert_eq!(
        rtid_after(&m, r#"{"type":"identify","anonymousId":"a-plugin"}"#).as_deref(),
        Some("from-plugin")
    );
}

#[test]
fn another_visitor_and_an_event_without_identities_are_left_alone() {
    let m = memory();
    rtid_after(&m, LANDING);
    assert_eq!(
        enriched(&m, r#"{"type":"track","event":"x","anonymousId":"a-2"}"#),
        None
    );
    assert_eq!(enriched(&m, r#"{"type":"track","event":"x"}"#), None);
    assert!(m.len().unwrap() == 1);
}

#[test]
fn a_newer_rtid_replaces_an_older_one() {
    let m = memory();
    rtid_after(&m, LANDING);
    rtid_after(
        &m,
        r#"{"type":"page","anonymousId":"a-1","context":{"page":{"search":"?rtid=rt-2"}}}"#,
    );
    assert_eq!(rtid_after(&m, ORDER).as_deref(), Some("rt-2"));
}

#[test]
fn all_false_without_the_rokt_key_is_left_alone() {
    let m = memory();
    rtid_after(&m, LANDING);
    for integrations in [
        r#"{"All":false}"#,
        r#"{"All":false,"Rokt Conversions API":false}"#,
        r#"{"All":false,"Rokt Conversions API":null}"#,
        r#"{"All":false,"Rokt Conversions API":""}"#,
    ] {
        let text = format!(
            r#"{{"type":"track","event":"x","anonymousId":"a-1","integrations":{integrations}}}"#
        );
        assert_eq!(enriched(&m, &text), None, "{integrations}");
    }
}

#[test]
fn all_false_with_the_rokt_key_is_enriched() {
    let m = memory();
    rtid_after(&m, LANDING);
    assert_eq!(
        enriched(
            &m,
            r#"{"type":"track","event":"x","anonymousId":"a-1","integrations":{"All":false,"Rokt Conversions API":true}}"#
        )
        .as_deref(),
        Some(
            r#"{"type":"track","event":"x","anonymousId":"a-1","integrations":{"All":false,"Rokt Conversions API":{"rtid":"rt-1"}}}"#
        )
    );
    // An object keeps its other members.
    assert_eq!(
        enriched(
            &m,
            r#"{"type":"track","event":"x","anonymousId":"a-1","integrations":{"All":false,"Rokt Conversions API":{"note":1}}}"#
        )
        .as_deref(),
        Some(
            r#"{"type":"track","event":"x","anonymousId":"a-1","integrations":{"All":false,"Rokt Conversions API":{"note":1,"rtid":"rt-1"}}}"#
        )
    );
    // `All: true`, or any other value than `false`, does not stop it.
    for all in ["true", "null", "0", r#""false""#] {
        let text = format!(
            r#"{{"type":"track","event":"x","anonymousId":"a-1","integrations":{{"All":{all}}}}}"#
        );
        assert!(enriched(&m, &text).is_some(), "All: {all}");
    }
}

#[test]
fn only_the_calls_the_plugin_enriches_are_enriched() {
    let m = memory();
    rtid_after(&m, LANDING);
    for kind in ["track", "identify", "page", "group", "alias"] {
        let text = format!(r#"{{"type":"{kind}","event":"x","anonymousId":"a-1"}}"#);
        assert!(enriched(&m, &text).is_some(), "{kind}");
    }
    for kind in [r#""screen""#, r#""other""#, "null"] {
        let text = format!(r#"{{"type":{kind},"anonymousId":"a-1"}}"#);
        assert_eq!(enriched(&m, &text), None, "{kind}");
    }
    // A screen call still teaches.
    rtid_after(
        &m,
        r#"{"type":"screen","anonymousId":"a-s","integrations":{"Rokt Conversions API":{"rtid":"rt-s"}}}"#,
    );
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","anonymousId":"a-s"}"#).as_deref(),
        Some("rt-s")
    );
}

#[test]
fn identify_links_an_anonymous_visitor_to_the_user() {
    let m = memory();
    rtid_after(&m, LANDING);
    // The identify call itself is enriched, and links the user.
    assert_eq!(
        rtid_after(
            &m,
            r#"{"type":"identify","anonymousId":"a-1","userId":"u-1"}"#
        )
        .as_deref(),
        Some("rt-1")
    );
    // A server-side event that knows only the user.
    assert_eq!(
        rtid_after(
            &m,
            r#"{"type":"track","event":"Order Completed","userId":"u-1"}"#
        )
        .as_deref(),
        Some("rt-1")
    );
    // Numeric user ids key as JavaScript prints them.
    rtid_after(
        &m,
        r#"{"type":"identify","anonymousId":"a-1","userId":1234}"#,
    );
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","userId":"1234"}"#).as_deref(),
        Some("rt-1")
    );
}

#[test]
fn a_users_newest_rtid_wins_across_their_browsers() {
    let hands = Hands::new();
    let m = RtidMemory::builder().clock(hands.clock()).build().unwrap();
    rtid_after(&m, LANDING);
    rtid_after(
        &m,
        r#"{"type":"identify","anonymousId":"a-1","userId":"u-1"}"#,
    );
    hands.advance(1000);
    rtid_after(
        &m,
        r#"{"type":"page","anonymousId":"a-9","userId":"u-1","context":{"page":{"search":"?rtid=rt-9"}}}"#,
    );
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","userId":"u-1"}"#).as_deref(),
        Some("rt-9")
    );
    // The first browser, now logged in, takes the user's newer rtid.
    assert_eq!(
        rtid_after(
            &m,
            r#"{"type":"track","event":"x","anonymousId":"a-1","userId":"u-1"}"#
        )
        .as_deref(),
        Some("rt-9")
    );
}

#[test]
fn alias_passes_the_previous_ids_rtid_to_the_user() {
    let m = memory();
    rtid_after(&m, LANDING);
    assert_eq!(
        rtid_after(&m, r#"{"type":"alias","previousId":"a-1","userId":"u-2"}"#).as_deref(),
        Some("rt-1")
    );
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","userId":"u-2"}"#).as_deref(),
        Some("rt-1")
    );
    // From an earlier user id too.
    rtid_after(&m, r#"{"type":"alias","previousId":"u-2","userId":"u-3"}"#);
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","userId":"u-3"}"#).as_deref(),
        Some("rt-1")
    );
    // previousId means nothing outside alias calls.
    assert_eq!(
        rtid_after(
            &m,
            r#"{"type":"track","event":"x","previousId":"a-1","userId":"u-4"}"#
        ),
        None
    );
}

#[test]
fn an_rtid_older_than_the_time_to_live_is_not_used_and_is_purged() {
    let hands = Hands::new();
    let m = RtidMemory::builder()
        .clock(hands.clock())
        .ttl(Duration::from_millis(7 * DAY_MS))
        .build()
        .unwrap();
    rtid_after(&m, LANDING);
    hands.advance(7 * DAY_MS - 1);
    assert_eq!(rtid_after(&m, ORDER).as_deref(), Some("rt-1"));
    // Using it does not extend its life; linking does not either.
    rtid_after(
        &m,
        r#"{"type":"identify","anonymousId":"a-1","userId":"u-1"}"#,
    );
    hands.advance(2);
    assert_eq!(rtid_after(&m, ORDER), None);
    assert_eq!(
        rtid_after(&m, r#"{"type":"track","event":"x","userId":"u-1"}"#),
        None
    );
    assert_eq!(m.len().unwrap(), 2);
    assert_eq!(m.purge().unwrap(), 2);
    assert!(m.is_empty().unwrap());
    // A new landing starts afresh.
    rtid_after(&m, LANDING);
    assert_eq!(rtid_after(&m, ORDER).as_deref(), Some("rt-1"));
}

#[test]
fn expired_entries_are_purged_as_time_passes() {
    let hands = Hands::new();
    let m = RtidMemory::builder()
        .clock(hands.clock())
        .ttl(Duration::from_millis(DAY_MS))
        .build()
        .unwrap();
    rtid_after(&m, LANDING);
    hands.advance(DAY_MS + 1);
    rtid_after(
        &m,
        r#"{"type":"page","anonymousId":"a-2","context":{"page":{"search":"?rtid=rt-2"}}}"#,
    );
    assert_eq!(m.len().unwrap(), 1, "the first visitor's entry was purged");
}

#[test]
fn the_size_bound_drops_the_visitor_learned_longest_ago() {
    let hands = Hands::new();
    let m = RtidMemory::builder()
        .clock(hands.clock())
        .max_entries(3)
        .build()
        .unwrap();
    for i in 0..5 {
        hands.advance(1);
        rtid_after(
            &m,
            &format!(
                r#"{{"type":"page","anonymousId":"a-{i}","context":{{"page":{{"search":"?rtid=rt-{i}"}}}}}}"#
            ),
        );
    }
    assert_eq!(m.len().unwrap(), 3);
    for i in 0..2 {
        let text = format!(r#"{{"type":"track","event":"x","anonymousId":"a-{i}"}}"#);
        assert_eq!(rtid_after(&m, &text), None, "a-{i}");
    }
    for i in 2..5 {
        let text = format!(r#"{{"type":"track","event":"x","anonymousId":"a-{i}"}}"#);
        assert_eq!(rtid_after(&m, &text), Some(format!("rt-{i}")));
    }
}

#[test]
fn observe_value_enriches_in_place() {
    let m = memory();
    let mut landing: serde_json::Value = serde_json::from_str(LANDING).unwrap();
    assert!(!m.observe_value(&mut landing).unwrap());
    let mut order: serde_json::Value = serde_json::from_str(ORDER).unwrap();
    assert!(m.observe_value(&mut order).unwrap());
    assert_eq!(
        order["integrations"]["Rokt Conversions API"]["rtid"],
        "rt-1"
    );
}

/// A store whose every call fails.
struct Broken;

impl RtidStore for Broken {
    fn get(&self, _: &VisitorKey) -> Result<Option<Remembered>, StoreError> {
        Err(StoreError::new("broken", "get", "down"))
    }
    fn put(&self, _: &VisitorKey, _: &Remembered) -> Result<(), StoreError> {
        Err(StoreError::new("broken", "put", "down"))
    }
    fn forget_before(&self, _: i64) -> Result<u64, StoreError> {
        Err(StoreError::new("broken", "forget expired entries", "down"))
    }
    fn len(&self) -> Result<u64, StoreError> {
        Err(StoreError::new("broken", "count", "down"))
    }
}

#[test]
fn a_failing_store_is_an_error_naming_it_and_never_stops_the_event() {
    let m = RtidMemory::builder().store(Broken).build().unwrap();
    let err = m.observe(&json(LANDING)).unwrap_err();
    assert_eq!(err.to_string(), "the broken rtid store failed to get");
    assert_eq!((err.store(), err.operation()), ("broken", "get"));
    assert!(std::error::Error::source(&err).is_some());
    let seen = m
        .with_observed(&json(ORDER), |doc| Ok(serde_json::to_string(doc).unwrap()))
        .unwrap();
    assert_eq!(seen, ORDER);
}

#[test]
fn settings_are_judged_when_built() {
    let err = RtidMemory::builder()
        .ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");
    let err = RtidMemory::builder().max_entries(0).build().unwrap_err();
    assert!(err.to_string().contains("max_entries"), "{err}");
    let err = RtidMemory::builder()
        .store(InMemoryStore::new(5))
        .max_entries(5)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_entries"), "{err}");
}

/// One random event: a type, some of three identities from a small pool, and maybe an rtid
/// in one of the places the mapping reads, maybe `integrations` settings.
fn event() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("track"),
        Just("identify"),
        Just("page"),
        Just("group"),
        Just("alias"),
        Just("screen"),
    ];
    let id = proptest::option::of(prop_oneof![
        Just(r#""v1""#.to_string()),
        Just(r#""v2""#.to_string()),
        Just("7".to_string()),
        Just(r#""""#.to_string()),
    ]);
    let rtid = prop_oneof![
        Just(String::new()),
        Just(r#","context":{"page":{"search":"?rtid=s1"}}"#.to_string()),
        Just(r#","context":{"page":{"url":"https://x/?a=1&rtid=u%201"}}"#.to_string()),
        Just(r#","context":{"page":{"search":"?grtid=no"}}"#.to_string()),
        Just(r#","integrations":{"Rokt Conversions API":{"rtid":"p1"}}"#.to_string()),
        Just(r#","integrations":{"Rokt Conversions API":{"rtid":42}}"#.to_string()),
        Just(r#","integrations":{"Rokt Conversions API":{"rtid":" "}}"#.to_string()),
        Just(r#","integrations":{"All":false,"Rokt Conversions API":{"rtid":"p2"}}"#.to_string()),
        Just(r#","integrations":{"All":false}"#.to_string()),
        Just(r#","integrations":{"Rokt Conversions API":true}"#.to_string()),
    ];
    (kind, id.clone(), id.clone(), id, rtid).prop_map(|(kind, a, u, p, rtid)| {
        let mut text = format!(r#"{{"type":"{kind}","event":"e""#);
        for (name, v) in [("anonymousId", a), ("userId", u), ("previousId", p)] {
            if let Some(v) = v {
                text.push_str(&format!(r#","{name}":{v}"#));
            }
        }
        text.push_str(&rtid);
        text.push('}');
        text
    })
}

proptest! {
    /// Over any sequence of events: one that carries its own rtid is never changed; one that
    /// is changed differs only in `integrations`, and leaves with a remembered rtid.
    #[test]
    fn an_event_that_carries_its_own_rtid_is_never_changed(
        events in proptest::collection::vec(event(), 1..24),
        max_entries in 1usize..6,
    ) {
        let hands = Hands::new();
        let m = RtidMemory::builder()
            .clock(hands.clock())
            .max_entries(max_entries)
            .ttl(Duration::from_millis(50))
            .build()
            .unwrap();
        for text in &events {
            hands.advance(7);
            let doc = json(text);
            let own = from_event(&doc);
            if let Some(changed) = m.observe(&doc).unwrap() {
                prop_assert!(own.is_none(), "changed an event with its own rtid: {}", text);
                prop_assert!(from_event(&changed).is_some());
                let strip = |j: &Json<'_>| {
                    let mut v = j.to_value();
                    v.as_object_mut().unwrap().remove("integrations");
                    v
                };
                prop_assert_eq!(strip(&changed), strip(&doc));
            }
            prop_assert!(m.len().unwrap() <= max_entries as u64);
        }
    }
}

/// A session through dispatchers: the landing page view through the first, then the
/// conversion through the last (one dispatcher, or two instances of a service). Each event's
/// rtid as sent, or why it was not sent.
async fn dispatch_session(
    dispatchers: &[rokt_capi::Dispatcher],
    server: &support::MockServer,
) -> Vec<Result<Option<String>, String>> {
    let now = chrono::Utc::now().to_rfc3339();
    let landing = serde_json::json!({"type": "page", "messageId": "m-landing", "timestamp": now,
        "anonymousId": "a-1", "context": {"page": {"search": "?rtid=rt-1"}}});
    let order = serde_json::json!({"type": "track", "event": "Order Completed",
        "messageId": "m-order", "timestamp": now, "anonymousId": "a-1",
        "properties": {"order_id": "o-1"}});
    let mut answers = Vec::new();
    for (dispatcher, event) in [
        (&dispatchers[0], landing),
        (&dispatchers[dispatchers.len() - 1], order),
    ] {
        let answer = match dispatcher.enqueue(event).await {
            Ok(_) => {
                dispatcher.flush().await.unwrap();
                let sent = server.received().last().unwrap().batches();
                Ok(sent[0].user_identities.other2.clone())
            }
            Err(e) => Err(e.label().to_owned()),
        };
        answers.push(answer);
    }
    for dispatcher in dispatchers {
        dispatcher.shutdown().await;
    }
    answers
}

#[tokio::test]
async fn the_dispatcher_maps_a_conversion_with_the_rtid_its_landing_page_carried() {
    use rokt_capi::Dispatcher;
    let server = support::MockServer::script(vec![support::Reply::accepted()]).await;
    let with = Dispatcher::builder(support::client(&server))
        .rtid_memory(Arc::new(memory()))
        .build()
        .unwrap();
    assert_eq!(
        dispatch_session(&[with], &server).await,
        [Ok(Some("rt-1".to_owned())), Ok(Some("rt-1".to_owned()))]
    );
    // Without the memory the conversion has no identifier at all: bad input.
    let without = Dispatcher::builder(support::client(&server))
        .build()
        .unwrap();
    let answers = dispatch_session(&[without], &server).await;
    assert_eq!(answers[1], Err("invalid".to_owned()));
    // An async memory: the same answers, and `try_enqueue` cannot wait for it.
    let store = InMemoryStore::new(100);
    let with_async = Dispatcher::builder(support::client(&server))
        .async_rtid_memory(Arc::new(RtidMemory::builder().build_async(store).unwrap()))
        .build()
        .unwrap();
    let err = with_async.try_enqueue(serde_json::json!({})).unwrap_err();
    assert_eq!(err.label(), "would_wait");
    assert_eq!(
        dispatch_session(&[with_async], &server).await,
        [Ok(Some("rt-1".to_owned())), Ok(Some("rt-1".to_owned()))]
    );
}

/// What every store must do: hold, replace, drop by age, count.
fn store_contract(store: &dyn RtidStore) {
    let (a, u) = (VisitorKey::anonymous("v-1"), VisitorKey::user("v-1"));
    assert_eq!(store.get(&a).unwrap(), None);
    let first = Remembered {
        rtid: "rt-é 1".into(),
        learned_ms: 1_000,
    };
    store.put(&a, &first).unwrap();
    assert_eq!(store.get(&a).unwrap(), Some(first.clone()));
    assert_eq!(
        store.get(&u).unwrap(),
        None,
        "the two kinds of id are apart"
    );
    let newer = Remembered {
        rtid: "rt-2".into(),
        learned_ms: 2_000,
    };
    store.put(&a, &newer).unwrap();
    store.put(&u, &first).unwrap();
    assert_eq!(store.get(&a).unwrap(), Some(newer));
    assert_eq!(store.len().unwrap(), 2);
    assert_eq!(store.forget_before(1_500).unwrap(), 1);
    assert_eq!(store.get(&u).unwrap(), None);
    assert_eq!(store.len().unwrap(), 1);
    assert!(!store.is_empty().unwrap());
}

#[test]
fn the_in_memory_store_keeps_the_store_contract() {
    store_contract(&InMemoryStore::new(10));
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use rokt_capi::rtid::memory::SqliteStore;

    /// A fresh database file, removed when dropped.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new(name: &str) -> TempDb {
            let nanos = std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "rokt-capi-rtid-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDb(dir)
        }
        fn path(&self) -> std::path::PathBuf {
            self.0.join("rtid.sqlite")
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_sqlite_store_keeps_the_store_contract() {
        store_contract(&SqliteStore::open_in_memory().unwrap());
        let db = TempDb::new("contract");
        store_contract(&SqliteStore::open(db.path()).unwrap());
    }

    #[test]
    fn what_one_process_learned_survives_a_restart_in_an_sqlite_file() {
        let db = TempDb::new("restart");
        {
            let m = RtidMemory::builder()
                .store(SqliteStore::open(db.path()).unwrap())
                .build()
                .unwrap();
            rtid_after(&m, LANDING);
            rtid_after(
                &m,
                r#"{"type":"identify","anonymousId":"a-1","userId":"u-1"}"#,
            );
        }
        let m = RtidMemory::builder()
            .store(SqliteStore::open(db.path()).unwrap())
            .build()
            .unwrap();
        assert_eq!(m.len().unwrap(), 2);
        assert_eq!(rtid_after(&m, ORDER).as_deref(), Some("rt-1"));
        assert_eq!(
            rtid_after(&m, r#"{"type":"track","event":"x","userId":"u-1"}"#).as_deref(),
            Some("rt-1")
        );
    }

    #[test]
    fn two_memories_on_one_sqlite_file_share_what_either_learned() {
        let db = TempDb::new("shared");
        let open = || {
            RtidMemory::builder()
                .store(SqliteStore::open(db.path()).unwrap())
                .build()
                .unwrap()
        };
        let (one, two) = (open(), open());
        rtid_after(&one, LANDING);
        assert_eq!(rtid_after(&two, ORDER).as_deref(), Some("rt-1"));
    }

    #[test]
    fn the_sqlite_store_forgets_expired_entries() {
        let hands = Hands::new();
        let m = RtidMemory::builder()
            .store(SqliteStore::open_in_memory().unwrap())
            .clock(hands.clock())
            .ttl(Duration::from_millis(DAY_MS))
            .build()
            .unwrap();
        rtid_after(&m, LANDING);
        hands.advance(DAY_MS + 1);
        assert_eq!(rtid_after(&m, ORDER), None);
        assert_eq!(m.len().unwrap(), 0, "purged on the way");
    }

    #[test]
    fn an_unopenable_file_is_an_error_naming_the_store() {
        let db = TempDb::new("bad");
        // A directory is not a database.
        let err = SqliteStore::open(&db.0).unwrap_err();
        assert_eq!((err.store(), err.operation()), ("sqlite", "open"));
        assert!(!err.to_string().contains(&*db.0.to_string_lossy()));
    }
}

/// A session through an asynchronous memory: learn, link, enrich, expire.
async fn async_session(memory: &rokt_capi::rtid::memory::AsyncRtidMemory, hands: &Hands) {
    let observe = |text: &'static str| async move {
        let mut event: serde_json::Value = serde_json::from_str(text).unwrap();
        let changed = memory.observe_value(&mut event).await.unwrap();
        (changed, event)
    };
    let (changed, _) = observe(LANDING).await;
    assert!(!changed);
    let (changed, order) = observe(ORDER).await;
    assert!(changed);
    assert_eq!(
        order["integrations"]["Rokt Conversions API"]["rtid"],
        "rt-1"
    );
    observe(r#"{"type":"identify","anonymousId":"a-1","userId":"u-1"}"#).await;
    let (_, later) = observe(r#"{"type":"track","event":"x","userId":"u-1"}"#).await;
    assert_eq!(
        later["integrations"]["Rokt Conversions API"]["rtid"],
        "rt-1"
    );
    assert_eq!(memory.len().await.unwrap(), 2);
    hands.advance(DAY_MS + 1);
    let (changed, _) = observe(ORDER).await;
    assert!(!changed, "expired");
    assert!(memory.is_empty().await.unwrap(), "purged on the way");
}

#[tokio::test]
async fn an_async_memory_takes_the_same_decisions() {
    let hands = Hands::new();
    let memory = RtidMemory::builder()
        .clock(hands.clock())
        .ttl(Duration::from_millis(DAY_MS))
        .build_async(InMemoryStore::new(10))
        .unwrap();
    async_session(&memory, &hands).await;
    let err = RtidMemory::builder()
        .max_entries(3)
        .build_async(InMemoryStore::new(10))
        .unwrap_err();
    assert!(err.to_string().contains("max_entries"), "{err}");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use rokt_capi::rtid::memory::{AsyncRtidStore, PostgresStore};

    /// `DATABASE_URL`, or `None` (the test is skipped) outside CI. Under `CI=true` a missing
    /// database fails the test.
    fn database_url() -> Option<String> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true and DATABASE_URL is not set: the postgres tests need a database")
            }
            _ => {
                println!("skipped: DATABASE_URL is not set");
                None
            }
        }
    }

    /// A table of its own per test (tests run at once), dropped first.
    async fn store(url: &str, table: &str) -> PostgresStore {
        let store = PostgresStore::connect_to_table(url, table).await.unwrap();
        sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
            .execute(store.pool())
            .await
            .unwrap();
        PostgresStore::connect_to_table(url, table).await.unwrap()
    }

    #[tokio::test]
    async fn the_postgres_store_keeps_the_store_contract() {
        let Some(url) = database_url() else { return };
        let store = store(&url, "rtid_test_contract").await;
        let (a, u) = (VisitorKey::anonymous("v-1"), VisitorKey::user("v-1"));
        let first = Remembered {
            rtid: "rt-é 1".into(),
            learned_ms: 1_000,
        };
        assert_eq!(
            store.get_many(std::slice::from_ref(&a)).await.unwrap(),
            [None]
        );
        store
            .put_many(&[(a.clone(), first.clone()), (u.clone(), first.clone())])
            .await
            .unwrap();
        let newer = Remembered {
            rtid: "rt-2".into(),
            learned_ms: 2_000,
        };
        store.put_many(&[(a.clone(), newer.clone())]).await.unwrap();
        assert_eq!(
            store.get_many(&[u.clone(), a.clone()]).await.unwrap(),
            [Some(first), Some(newer)]
        );
        assert_eq!(store.count().await.unwrap(), 2);
        assert_eq!(store.forget_learned_before(1_500).await.unwrap(), 1);
        assert_eq!(store.get_many(&[u]).await.unwrap(), [None]);
    }

    #[tokio::test]
    async fn instances_sharing_a_postgres_table_share_what_either_learned() {
        let Some(url) = database_url() else { return };
        let hands = Hands::new();
        let instance = |store| {
            RtidMemory::builder()
                .clock(hands.clock())
                .ttl(Duration::from_millis(DAY_MS))
                .build_async(store)
                .unwrap()
        };
        let one = instance(store(&url, "rtid_test_shared").await);
        let two = instance(
            PostgresStore::connect_to_table(&url, "rtid_test_shared")
                .await
                .unwrap(),
        );
        let mut landing: serde_json::Value = serde_json::from_str(LANDING).unwrap();
        assert!(!one.observe_value(&mut landing).await.unwrap());
        let mut order: serde_json::Value = serde_json::from_str(ORDER).unwrap();
        assert!(two.observe_value(&mut order).await.unwrap());
        assert_eq!(
            order["integrations"]["Rokt Conversions API"]["rtid"],
            "rt-1"
        );
        // The whole session, on a fresh table.
        let three = instance(store(&url, "rtid_test_session").await);
        async_session(&three, &hands).await;
    }

    #[tokio::test]
    async fn two_dispatchers_sharing_a_postgres_memory_carry_the_landing_rtid_to_the_conversion() {
        let Some(url) = database_url() else { return };
        let server = support::MockServer::script(vec![support::Reply::accepted()]).await;
        let table = "rtid_test_dispatchers";
        let _fresh = store(&url, table).await;
        let mut instances = Vec::new();
        for _ in 0..2 {
            let store = PostgresStore::connect_to_table(&url, table).await.unwrap();
            let memory = RtidMemory::builder().build_async(store).unwrap();
            let dispatcher = rokt_capi::Dispatcher::builder(support::client(&server))
                .async_rtid_memory(Arc::new(memory))
                .build()
                .unwrap();
            instances.push(dispatcher);
        }
        // The landing page reaches the first instance, the conversion the second.
        assert_eq!(
            dispatch_session(&instances, &server).await,
            [Ok(Some("rt-1".to_owned())), Ok(Some("rt-1".to_owned()))]
        );
    }

    #[tokio::test]
    async fn a_bad_table_name_or_an_unreachable_database_is_an_error_naming_the_store() {
        let err = PostgresStore::connect_to_table("postgres://127.0.0.1:1/x", "bad; drop")
            .await
            .unwrap_err();
        assert_eq!(
            (err.store(), err.operation()),
            ("postgres", "use its table name")
        );
        // Nothing listens on port 1 of loopback.
        let err = PostgresStore::connect("postgres://someone:secret-pw@127.0.0.1:1/db")
            .await
            .unwrap_err();
        assert_eq!((err.store(), err.operation()), ("postgres", "connect"));
        let chain = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(!chain.contains("secret-pw"), "{chain}");
    }
}
