//! The direct plan is held to the general path: whenever it answers, its bytes must be the
//! general path's, and it must answer for the events real traffic is made of.

use super::DirectPlan;
use crate::json::View;
use crate::mapping::Preset;
use crate::segment::Event;
use crate::synthetic::synthetic_event;
use crate::{Json, Pipeline};
use proptest::prelude::*;
use serde_json::{Value, json};

/// What the general path makes of `doc` (the direct plan bypassed): the batch's bytes, its
/// events' newest timestamp and its message id; `None` when it rejects the event.
type General = (Vec<u8>, Option<i64>, Option<String>);

fn general(pipeline: &Pipeline, doc: &Json<'_>) -> Option<General> {
    pipeline
        .with_batch(doc, |batch| {
            let newest = batch
                .events
                .iter()
                .map(|e| e.data.timestamp_unixtime_ms)
                .max();
            let id = batch.source_message_id().map(str::to_owned);
            Ok((batch.to_bytes().to_vec(), newest, id))
        })
        .ok()
}

/// Encodes `event` both ways; panics when the plan answers differently (bytes or routing).
/// Returns whether it answered. The event is also read as the `serde_json::Value` and, where
/// it is one, the typed `Event` a service holds: the plan must answer for them exactly as for
/// the text.
fn agree(pipeline: &Pipeline, plan: &DirectPlan, event: &str) -> bool {
    let doc = Json::parse(event).expect("test events are JSON");
    let expected = general(pipeline, &doc);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let answer = |(direct, routing): (bytes::Bytes, super::Routing)| {
        (text(&direct), routing.newest_ms, routing.message_id)
    };
    let answered = plan.encode_routed(&doc).map(answer);
    if let Ok(value) = serde_json::from_str::<Value>(event) {
        assert_eq!(
            plan.encode_routed(View::Value(&value)).map(answer),
            answered,
            "the direct plan reads the Value otherwise for {event}"
        );
        if let Ok(typed) = Event::from_value(value) {
            let typed_text = typed.to_value().to_string();
            let from_text = plan
                .encode_routed(&Json::parse(&typed_text).unwrap())
                .map(answer);
            let from_typed = crate::segment::view(&typed, |v| plan.encode_routed(v).map(answer));
            assert_eq!(
                from_typed, from_text,
                "the direct plan reads the Event otherwise for {typed_text}"
            );
        }
    }
    match answered {
        Some(direct) => {
            let expected = expected.map(|(b, newest, id)| (text(&b), newest, id));
            assert_eq!(
                Some(direct),
                expected,
                "the direct plan differs for {event}"
            );
            true
        }
        None => false,
    }
}

fn hash_all() -> Value {
    json!({"hashingConfiguration": {"hashEmail": true, "hashFirstName": true,
        "hashLastName": true, "hashMobile": true, "hashBillingZipcode": true}})
}

/// Pipelines over plain mappings: both presets, hashing on and off, and overrides written in
/// the presets' style.
fn plain_pipelines() -> Vec<Pipeline> {
    let mappings = [
        (Preset::Send, json!({})),
        (Preset::Send, hash_all()),
        (Preset::SyncEngageAudience, json!({})),
        (Preset::SyncEngageAudience, hash_all()),
        (
            Preset::Send,
            json!({
                "hashingConfiguration": {"hashEmail": true, "hashMobile": false},
                "ip": {"@path": "$.context.device.ip"},
                "eventDetails": {
                    "conversiontype": "purchase",
                    "source_message_id": {"@path": "$.messageId"},
                    "timestamp_unixtime_ms": {"@path": "$.timestamp"},
                    "amount": {"@path": "$.properties.total"},
                    "currency": {"@if": {"exists": {"@path": "$.properties.currency"},
                        "then": {"@path": "$.properties.currency"}, "else": "USD"}}
                },
                "user_identities": {"email": {"@path": "$.properties.email"},
                    "customerid": {"@path": "$.userId"}}
            }),
        ),
    ];
    mappings
        .into_iter()
        .map(|(preset, overrides)| {
            Pipeline::builder()
                .preset(preset)
                .overrides(overrides)
                .build()
                .expect("test mappings compile")
        })
        .collect()
}

fn plan(pipeline: &Pipeline) -> DirectPlan {
    DirectPlan::compile(pipeline.mapping()).expect("the mapping is plain")
}

#[test]
fn the_presets_and_hashing_overrides_are_plain() {
    for pipeline in plain_pipelines() {
        assert!(DirectPlan::compile(pipeline.mapping()).is_some());
    }
}

#[test]
fn mappings_beyond_paths_and_constants_have_no_plan() {
    let not_plain = [
        json!({"ip": {"@template": "{{context.ip}}"}}),
        json!({"eventProperties": {"coupon": {"@path": "$.properties.coupon"}}}),
        json!({"user_attributes": {"firstname": {"@path": "$.traits.first_name"},
            "favourite_colour": {"@path": "$.traits.colour"}}}),
        json!({"hashingConfiguration": {"hashEmail": {"@path": "$.properties.hash"}}}),
        json!({"user_identities": {"email": {"@path": "$."}}}),
        json!({"traitsOrProps": {"@template": "x"}}),
    ];
    for overrides in not_plain {
        let pipeline = Pipeline::builder()
            .preset(Preset::Send)
            .overrides(overrides.clone())
            .build()
            .expect("test mappings compile");
        assert!(
            DirectPlan::compile(pipeline.mapping()).is_none(),
            "{overrides} should have no plan"
        );
    }
}

#[test]
fn realistic_events_are_encoded_directly_with_the_general_paths_bytes() {
    for pipeline in plain_pipelines() {
        let plan = plan(&pipeline);
        let events = 400;
        let answered = (0..events)
            .filter(|&i| agree(&pipeline, &plan, &synthetic_event(i).to_string()))
            .count();
        // Every realistic event the general path accepts is one the plan is sure of.
        let accepted = (0..events)
            .filter(|&i| {
                let text = synthetic_event(i).to_string();
                general(&pipeline, &Json::parse(&text).unwrap()).is_some()
            })
            .count();
        assert_eq!(answered, accepted, "{:?}", pipeline.mapping().overrides());
        assert!(accepted > events / 2);
    }
}

#[test]
fn unusual_events_are_deferred_or_agree() {
    let base = synthetic_event(0);
    let edits: Vec<(&str, Value)> = vec![
        ("/context/traits", Value::Null),
        ("/context", json!("a string")),
        ("/context/traits/email", json!(42)),
        ("/context/traits/email", json!(["one@example.com"])),
        ("/context/traits/email", json!("   ")),
        ("/context/traits/email", json!("ΣΑΣ@EXAMPLE.COM")),
        (
            "/context/traits/email",
            json!("a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"),
        ),
        ("/context/traits/first_name", json!("")),
        ("/context/traits/first_name", json!(null)),
        ("/context/traits/gender", json!("x")),
        ("/context/traits/birthday", json!("1990-02-30")),
        ("/context/traits/address", json!("a string")),
        ("/properties/revenue", json!(0)),
        ("/properties/revenue", json!("5")),
        ("/properties/revenue", json!(true)),
        ("/properties/revenue", json!(1e21)),
        ("/properties/order_id", json!(17)),
        ("/properties/currency", json!(" EUR ")),
        ("/properties/audience_name", json!("vip")),
        ("/properties/audience_membership", json!(true)),
        ("/timestamp", json!(1767225600000i64)),
        ("/timestamp", json!("yesterday")),
        ("/timestamp", json!("2026-01-01T00:00:00+02:00")),
        ("/messageId", Value::Null),
        ("/messageId", json!(" quoted \" and \\ escaped ")),
        ("/userId", json!(12345)),
        ("/type", json!("unknown")),
        ("/event", json!("Order\nCompleted")),
        ("/context/page/search", json!("?rtid=a%20b&x=1")),
        ("/context/page/search", json!(7)),
        (
            "/context/page",
            json!({"url": "https://x.example/?rtid=u1#f"}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": 123}}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": "  "}}),
        ),
        (
            "/context/personas",
            json!({"computation_key": "vip", "computation_class": "nope"}),
        ),
        (
            "/context/personas",
            json!({"computation_key": "vip", "computation_class": "audience"}),
        ),
        (
            "/context/device",
            json!({"type": "ios", "advertisingId": 7, "id": true}),
        ),
        (
            "/context/device",
            json!({"type": "android", "advertisingId": "", "id": "d-1"}),
        ),
        ("/context/userAgent", json!("Mozilla/5.0 \u{1F600} \u{7f}")),
        ("/properties", json!([1, 2])),
        ("/traits", json!({"email": "top@example.com", "vip": true})),
        // Fields trimmed, fields sent as they are, fields checked before trimming.
        ("/event", json!("  Order Completed ")),
        ("/event", json!("   ")),
        ("/event", json!("")),
        ("/properties/order_id", json!(" o-1 ")),
        ("/properties/currency", json!("")),
        ("/messageId", json!(" m-1 ")),
        ("/messageId", json!("\u{a0}\t")),
        ("/messageId", json!("")),
        ("/messageId", json!([" "])),
        ("/userId", json!("\u{feff} u-1 \u{3000}")),
        ("/userId", json!("\u{85}")),
        ("/context/traits/email", json!("\u{2028}a@b.co\u{a0}")),
        ("/context/traits/first_name", json!("\u{200b}")),
        ("/context/traits/gender", json!(" m")),
        ("/context/traits/gender", json!("")),
        ("/context/traits/gender", json!([null])),
        ("/context/traits/birthday", json!(" 1990-05-17")),
        ("/context/traits/birthday", json!("")),
        ("/context/ip", json!("")),
        ("/context/ip", json!(" 10.0.0.1 ")),
        ("/properties/audience_name", json!(" ")),
        // Numbers and one-item arrays where strings go, strings where numbers go.
        ("/properties/revenue", json!("0x10")),
        ("/properties/revenue", json!(" ")),
        ("/properties/revenue", json!("")),
        ("/properties/revenue", json!("Infinity")),
        ("/properties/revenue", json!(["7.5"])),
        ("/properties/revenue", json!(-0.0)),
        ("/properties/revenue", json!(12345678901234567890u64)),
        ("/properties/order_id", json!(9007199254740993i64)),
        ("/properties/order_id", json!(1e21)),
        ("/userId", json!(["u-1"])),
        ("/userId", json!(-0.0)),
        // Timestamps as JavaScript's Date reads them.
        ("/timestamp", json!("March 4, 2026")),
        ("/timestamp", json!("2026-02-30")),
        ("/timestamp", json!("2026-03-04T24:00:00Z")),
        ("/timestamp", json!(" 2026-01-01T00:00:00Z")),
        ("/timestamp", json!("1772600767000")),
        ("/timestamp", json!(1772600767891.9)),
        ("/timestamp", json!(8640000000000001i64)),
        ("/timestamp", json!(["2026-03-04T05:06:07Z"])),
        ("/timestamp", json!(true)),
        ("/timestamp", json!("")),
        // Plugin rtids as Liquid prints them, and junk.
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": ["a", ["b"], null, 7]}}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": []}}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": ""}}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": true}}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": {"k": 1}}}),
        ),
        (
            "/integrations",
            json!({"Rokt Conversions API": {"rtid": false}}),
        ),
        (
            "/context/device",
            json!({"type": "ios", "advertisingId": ["A", ["B"]], "id": {"k": 1}}),
        ),
        (
            "/context/personas",
            json!({"computation_key": "vip", "computation_class": ""}),
        ),
        (
            "/context/personas",
            json!({"computation_key": " vip ", "computation_class": ["audience"]}),
        ),
        ("/type", Value::Null),
        ("/type", json!("TRACK")),
    ];
    for pipeline in plain_pipelines() {
        let plan = plan(&pipeline);
        for (pointer, value) in &edits {
            let mut event = base.clone();
            set(&mut event, pointer, value.clone());
            agree(&pipeline, &plan, &event.to_string());
        }
        // Repeated keys: the last one wins in both paths.
        agree(
            &pipeline,
            &plan,
            r#"{"type":"track","event":"Order Completed","messageId":"m","timestamp":"2026-01-01T00:00:00Z","context":{"ip":"1.1.1.1"},"context":{"ip":"2.2.2.2","traits":{"email":"a@b.co","email":"c@d.co"}}}"#,
        );
    }
}

/// Sets the member at `pointer` when its parent is an object (adding it if missing).
fn set(event: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointers start with /");
    let target = if parent.is_empty() {
        Some(event)
    } else {
        event.pointer_mut(parent)
    };
    if let Some(Value::Object(map)) = target {
        map.insert(key.to_owned(), value);
    }
}

/// A JSON value of any kind, small.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| json!(n)),
        (-1e3f64..1e3).prop_map(|f| json!(f)),
        "[ a-zA-Z0-9ÄΣé@.\\-\"\\\\]{0,12}".prop_map(Value::String),
        Just(json!("m")),
        Just(json!("1990-01-01")),
        Just(json!("2026-05-05T05:05:05.005Z")),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Where the mappings read, and a few places they do not.
const POINTERS: &[&str] = &[
    "/context",
    "/context/traits",
    "/context/traits/email",
    "/context/traits/first_name",
    "/context/traits/last_name",
    "/context/traits/phone",
    "/context/traits/address",
    "/context/traits/birthday",
    "/context/traits/gender",
    "/context/ip",
    "/context/userAgent",
    "/context/page",
    "/context/device",
    "/context/personas",
    "/traits",
    "/properties",
    "/properties/order_id",
    "/properties/revenue",
    "/properties/currency",
    "/properties/audience_name",
    "/properties/audience_membership",
    "/integrations",
    "/messageId",
    "/timestamp",
    "/event",
    "/userId",
    "/anonymousId",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn edited_events_are_deferred_or_agree(
        seed in 0usize..64,
        edits in prop::collection::vec((0..POINTERS.len(), any_value()), 1..4),
    ) {
        let mut event = synthetic_event(seed);
        for (at, value) in edits {
            set(&mut event, POINTERS[at], value);
        }
        let text = event.to_string();
        for pipeline in plain_pipelines() {
            agree(&pipeline, &plan(&pipeline), &text);
        }
    }
}

#[test]
fn the_conformance_corpus_is_encoded_directly_where_the_plan_is_sure() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/send");
    let (mut planned, mut answered) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("the corpus is in the repository") {
        let text = std::fs::read_to_string(entry.expect("readable").path()).expect("readable");
        let case: Value = serde_json::from_str(&text).expect("corpus cases are JSON");
        let preset = Preset::from_key(case["preset"].as_str().unwrap_or("send")).expect("preset");
        let Ok(pipeline) = Pipeline::builder()
            .preset(preset)
            .overrides(case["mapping"].clone())
            .build()
        else {
            continue;
        };
        let Some(plan) = DirectPlan::compile(pipeline.mapping()) else {
            continue;
        };
        planned += 1;
        for event in case["events"].as_array().expect("cases have events") {
            answered += usize::from(agree(&pipeline, &plan, &event.to_string()));
        }
    }
    // Most cases use the presets' mappings, and most of their events are ordinary.
    assert!(planned >= 20, "{planned} cases have a plan");
    assert!(
        answered >= 20,
        "{answered} corpus events were encoded directly"
    );
}
