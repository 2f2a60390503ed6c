//! Robustness (issue 6): no input makes the pipeline panic, every input ends in `Ok` or a typed
//! [`Error`], and hostile input (deep nesting, endless lines) is refused with bounded memory.
//!
//! Property tests run every input through every stage (`Json::parse` → `payload` → `batch` →
//! `encode` → `request` → `bulk`), for both presets with hashing off and on and for Send with
//! open objects mapped whole, and check that the stages agree with each other (and with the
//! `serde_json::Value` and `segment::Event` ways in) and that every accepted body is a
//! well-formed Rokt batch.
//! `PROPTEST_CASES` overrides the number of cases of every property.

#[path = "support/synthetic.rs"]
mod synthetic;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm, TestRunner};
use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::{DEFAULT_MAX_LINE, Lines};
use rokt_capi::request::RequestKind;
use rokt_capi::segment::Event;
use rokt_capi::{Credentials, Error, EventError, Json, Pipeline};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;
use synthetic::synthetic_event;

// ---------------------------------------------------------------------------------------------
// The pipelines and the checks every input goes through.
// ---------------------------------------------------------------------------------------------

/// Both presets, each with hashing off and with every hashing switch on, and the Send preset
/// with open objects mapped whole.
fn pipelines() -> &'static [(&'static str, Pipeline)] {
    static PIPELINES: OnceLock<Vec<(&'static str, Pipeline)>> = OnceLock::new();
    PIPELINES.get_or_init(|| {
        let hash_all = json!({"hashingConfiguration": {
            "hashEmail": true, "hashFirstName": true, "hashLastName": true,
            "hashMobile": true, "hashBillingZipcode": true
        }});
        let build = |preset, hashed: bool| {
            let mut b = Pipeline::builder()
                .preset(preset)
                .credentials(Credentials::new("key", "secret"));
            if hashed {
                b = b.overrides(hash_all.clone());
            }
            b.build().expect("preset pipelines build")
        };
        // Open objects mapped whole, as accounts often configure them: every member of the
        // event's objects becomes an attribute.
        let open = Pipeline::builder()
            .overrides(json!({
                "eventProperties": {"@path": "$.properties"},
                "user_attributes": {"@path": "$.context.traits"}
            }))
            .build()
            .expect("open objects pipeline builds");
        vec![
            ("send", build(Preset::Send, false)),
            ("send+hash", build(Preset::Send, true)),
            ("sync", build(Preset::SyncEngageAudience, false)),
            ("sync+hash", build(Preset::SyncEngageAudience, true)),
            ("send+open", open),
        ]
    })
}

/// Checks an accepted body: a JSON object with the keys the reference always sends, and an
/// identifier (the action's own rule).
fn check_body(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("an accepted body re-parses as JSON");
    let o = v.as_object().expect("a batch is a JSON object");
    for key in [
        "environment",
        "device_info",
        "user_attributes",
        "user_identities",
    ] {
        assert!(o.contains_key(key), "the batch has no `{key}`");
    }
    assert_eq!(o["environment"], "production");
    let ids = o["user_identities"].as_object().expect("user_identities");
    let device = o["device_info"].as_object().expect("device_info");
    assert!(o["user_attributes"].is_object());
    let has_id = ["email", "other", "customerid", "other2"].iter().any(|k| {
        ids.get(*k)
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    }) || [
        "ios_advertising_id",
        "android_advertising_id",
        "ios_idfv",
        "android_uuid",
    ]
    .iter()
    .any(|k| device.contains_key(*k));
    assert!(has_id, "an accepted batch carries an identifier");
    if let Some(events) = o.get("events") {
        for e in events.as_array().expect("events is an array") {
            assert_eq!(e["event_type"], "custom_event");
            assert!(e["data"]["source_message_id"].is_string());
            assert!(e["data"]["timestamp_unixtime_ms"].is_i64());
            assert!(e["data"]["custom_attributes"].is_object());
        }
    }
    v
}

/// Checks an error: typed as bad input, with a message and a debug form.
fn check_error(e: &Error) {
    assert!(
        e.is_bad_input(),
        "an event can only fail as bad input: {e:?}"
    );
    assert_eq!(e.status(), 400);
    assert!(!e.error_type().is_empty());
    assert!(!e.to_string().is_empty());
    assert!(!format!("{e:?}").is_empty());
}

/// Every stage for one event: the stages must agree, and an accepted body is well formed.
/// Returns the parsed body, or the error.
fn run_stages(p: &Pipeline, doc: &Json<'_>) -> Result<Value, Error> {
    let payload = p.payload(doc);
    let batch = p.batch(doc);
    match (&payload, &batch) {
        (Ok(payload), Ok(batch)) => {
            let _ = format!("{payload:?} {batch:?}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "payload and batch fail alike"),
        _ => panic!("payload and batch disagree"),
    }
    let encoded = p.encode(doc);
    match (&batch, &encoded) {
        (Ok(b), Ok(bytes)) => assert_eq!(b.to_json_bytes(), bytes.as_ref()),
        (Ok(b), Err(Error::TooLarge { bytes, limit })) => {
            assert_eq!(*bytes, b.to_json_bytes().len());
            assert!(bytes > limit);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("batch and encode disagree"),
    }
    let request = p.request(doc);
    match (&encoded, &request) {
        (Ok(bytes), Ok(r)) => {
            assert_eq!(&r.body, bytes);
            assert_eq!(r.kind, RequestKind::Single);
            assert_eq!(r.items, 1);
            let _ = format!("{r:?}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("encode and request disagree"),
    }
    // The same event twice in bulk: both items share one request, or both fail alike.
    let plan = p.bulk([doc, doc]);
    assert_eq!(plan.items.len(), 2);
    match &encoded {
        Ok(bytes) => {
            assert!(plan.items.iter().all(Result::is_ok));
            let carried: usize = plan.requests.iter().map(|r| r.items).sum();
            assert_eq!(carried, 2);
            for r in &plan.requests {
                assert_eq!(r.kind, RequestKind::Bulk);
                assert!(r.body.len() <= p.limits().max_request_bytes);
                let items: Vec<Value> =
                    serde_json::from_slice(&r.body).expect("a bulk body re-parses as JSON");
                assert_eq!(items.len(), r.items);
                let one: Value = serde_json::from_slice(bytes).expect("item");
                assert!(items.iter().all(|i| *i == one));
            }
        }
        Err(e) => {
            assert!(plan.requests.is_empty(), "rejected events send nothing");
            assert!(plan.items.iter().all(|i| i.as_ref().err() == Some(e)));
        }
    }
    match encoded {
        Ok(bytes) => Ok(check_body(&bytes)),
        Err(e) => {
            check_error(&e);
            Err(e)
        }
    }
}

/// How far one input got: whether it parsed, and how many of the pipelines accepted it.
#[derive(Clone, Copy, Debug, Default)]
struct Verdict {
    parsed: bool,
    accepted: usize,
}

/// Parses text as the pipeline reads it and runs every stage of every pipeline. The other
/// ways in (a `serde_json::Value`, a typed `segment::Event`) must give the same results.
fn run_text(text: &str) -> Verdict {
    let doc = match Json::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            check_error(&Error::from(EventError::from_json(&e)));
            assert!(serde_json::from_str::<Value>(text).is_err());
            assert!(Event::from_json(text).is_err());
            return Verdict::default();
        }
    };
    let value: Value = serde_json::from_str(text).expect("Json and serde_json agree on syntax");
    assert_eq!(doc.to_value(), value, "Json reads what serde_json reads");
    let event = Event::from_json(text);
    if let Err(e) = &event {
        check_error(&Error::from(e.clone()));
    }
    let mut verdict = Verdict {
        parsed: true,
        accepted: 0,
    };
    for (name, p) in pipelines() {
        let from_doc = run_stages(p, &doc);
        verdict.accepted += usize::from(from_doc.is_ok());
        let from_value = p.encode(&value).map(|b| check_body(&b));
        assert_eq!(from_doc, from_value, "{name}: Json and Value disagree");
        if let Ok(event) = &event {
            let from_event = p.encode(event).map(|b| check_body(&b));
            assert_eq!(
                from_doc, from_event,
                "{name}: Json and segment::Event disagree"
            );
        }
    }
    verdict
}

/// Runs bytes that may not be UTF-8 text.
fn run_bytes(bytes: &[u8]) -> Verdict {
    match std::str::from_utf8(bytes) {
        Ok(text) => run_text(text),
        Err(e) => {
            check_error(&Error::from(EventError::new_utf8(e.valid_up_to())));
            if let Ok(doc) = Json::parse_slice(bytes) {
                // Invalid bytes outside strings are a syntax error, inside strings too.
                panic!("parse_slice accepted invalid UTF-8: {doc:?}");
            }
            run_text(&String::from_utf8_lossy(bytes));
            Verdict::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds: the conformance corpus and make-events.py's shapes.
// ---------------------------------------------------------------------------------------------

fn corpus() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"))
}

/// Every event of the send cases and the mapping event.
fn corpus_events() -> Vec<Value> {
    let mut events = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus().join("send"))
        .expect("tests/conformance/send")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(f).expect("read"))
            .expect("a send case is JSON");
        events.extend(case["events"].as_array().cloned().unwrap_or_default());
    }
    let mapping: Value = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("mapping/cases.json")).expect("read"),
    )
    .expect("mapping cases are JSON");
    events.push(mapping["event"].clone());
    events
}

fn seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = corpus_events();
        assert!(seeds.len() >= 30, "the corpus has its events");
        seeds.extend((0..8).map(synthetic_event));
        seeds
    })
}

// ---------------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------------

/// Keys the mappings read, so generated values land where they matter.
const KEYS: &[&str] = &[
    "type",
    "event",
    "messageId",
    "timestamp",
    "userId",
    "anonymousId",
    "context",
    "traits",
    "properties",
    "integrations",
    "Rokt Conversions API",
    "rtid",
    "page",
    "search",
    "url",
    "device",
    "advertisingId",
    "id",
    "personas",
    "computation_key",
    "computation_class",
    "address",
    "postal_code",
    "birthday",
    "gender",
    "revenue",
    "order_id",
    "currency",
    "audience_name",
    "audience_membership",
    "ip",
    "userAgent",
    "email",
    "first_name",
    "last_name",
    "phone",
    "high_value_buyers",
    "length",
    "0",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "track",
    "identify",
    "page",
    "screen",
    "group",
    "alias",
    "Order Completed",
    "2026-03-04T05:06:07.891Z",
    "2026-03-04T07:06:07+02:00",
    "+275760-09-13T00:00:00.000Z",
    "-271821-04-20T00:00:00Z",
    "9999999999999999999999",
    "1772600767891",
    "1990-05-17",
    "2023-02-29",
    "m",
    "f",
    "audience",
    "journey_step",
    "ios",
    "android",
    "F660AB912EC121D1B1E928A0BB4BC61B15F5AD44D5EFDC4E1C92A25E99B8E44A",
    "?rtid=x&rtid=y",
    "https://x/?rtid=%ZZ%&a#b",
    "true",
    "false",
    "12.50",
    "1e3",
    "inf",
    "NaN",
    "-0",
    "1e400",
    "  Jane.Doe@Example.COM ",
    "\u{0}",
    "\u{FEFF}é𝄞\u{202E}",
    "İSTANBUL@EXAMPLE.COM",
    "{{event}}",
];

/// A string strategy from a regex, compiled here once (a `&str` strategy compiles its regex
/// again for every value, which dominates the run time in debug builds).
fn regex(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern).expect("a valid regex")
}

/// Any text: every `char`, control characters and surrogate-free planes included.
fn any_string() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => any_string(),
        1 => regex("[a-z_.\\[\\]0-9\"'$]{0,12}"),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(
            &[
                0.0,
                -0.0,
                1.0,
                -1.0,
                0.5,
                12.5,
                1e21,
                1e308,
                -1e308,
                5e-324,
                9_007_199_254_740_993.0,
                -9.223_372_036_854_776e18,
                1.8446744073709552e19,
            ][..]
        )
        .prop_map(|f| json!(f)),
        (-3i64..3).prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        2 => any_string().prop_map(Value::String),
        1 => regex("\\PC{0,24}").prop_map(Value::String),
        3 => prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
    ]
}

/// Any JSON value: objects and arrays up to a few levels deep, keys biased to Segment's.
fn any_json() -> impl Strategy<Value = Value> {
    json_up_to(5, 48)
}

/// JSON values at most `depth` containers deep, with about `size` nodes at most.
fn json_up_to(depth: u32, size: u32) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(depth, size, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// What members named `key` hold in real events.
fn plausible(key: &str) -> &'static [&'static str] {
    match key {
        "email" => &[
            "jane@example.com",
            "  Jane.Doe@Example.COM ",
            "İSTANBUL@EXAMPLE.COM",
            "F660AB912EC121D1B1E928A0BB4BC61B15F5AD44D5EFDC4E1C92A25E99B8E44A",
            "",
        ],
        "gender" => &["m", "f", " f ", ""],
        "birthday" => &["1990-05-17", "2024-02-29", ""],
        "timestamp" => &[
            "2026-03-04T05:06:07.891Z",
            "2026-03-04T07:06:07+02:00",
            "2026-03-04",
            "1772600767891",
            "Wed, 04 Mar 2026 05:06:07 +0000",
        ],
        "computation_class" => &["audience", "journey_step"],
        "type" => &["ios", "android"],
        "currency" => &["USD", "eur"],
        "postal_code" | "address" => &["94107", " 94107 ", "SW1A 1AA"],
        _ => &[],
    }
}

/// A member's value before it is given a key: mostly a plausible one, else anything.
#[derive(Clone, Debug)]
enum Choice {
    /// What such a member holds in real events (or this leaf when nothing is known for it).
    Plausible(Index, Value),
    /// Anything.
    Other(Value),
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        4 => (any::<Index>(), leaf()).prop_map(|(i, v)| Choice::Plausible(i, v)),
        1 => leaf().prop_map(Choice::Other),
        1 => json_up_to(3, 12).prop_map(Choice::Other),
    ]
}

fn member(key: &str, choice: Choice) -> Value {
    match choice {
        Choice::Other(v) => v,
        Choice::Plausible(i, v) => match plausible(key) {
            [] => v,
            known => {
                let s = Value::from(known[i.index(known.len())]);
                if key == "address" {
                    json!({"postal_code": s, "city": v})
                } else {
                    s
                }
            }
        },
    }
}

/// A value for a member named `key`.
fn member_value(key: &'static str) -> impl Strategy<Value = Value> {
    choice().prop_map(move |c| member(key, c))
}

/// An object with some of `keys` (each with a fitting value) and sometimes another key.
fn object_of(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        prop_oneof![
            6 => (any::<Index>(), choice()).prop_map(move |(i, c)| {
                let k = keys[i.index(keys.len())];
                (k.to_owned(), member(k, c))
            }),
            1 => (key(), json_up_to(3, 12)),
        ],
        0..6,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

const TRAIT_KEYS: &[&str] = &[
    "email",
    "first_name",
    "last_name",
    "phone",
    "address",
    "birthday",
    "gender",
    "rtid",
    "high_value_buyers",
];
const PROPERTY_KEYS: &[&str] = &[
    "order_id",
    "revenue",
    "currency",
    "audience_name",
    "audience_membership",
    "email",
    "address",
    "products",
];

/// An object shaped like a Segment event, whose members are anything.
fn event_like() -> impl Strategy<Value = Value> {
    let type_ = prop_oneof![
        8 => prop::sample::select(&["track", "identify", "page", "screen", "group", "alias"][..])
            .prop_map(Value::from),
        1 => leaf(),
    ];
    let event = prop_oneof![
        3 => prop::sample::select(&["Order Completed", "Subscription Started", ""][..]).prop_map(Value::from),
        1 => leaf(),
    ];
    let message_id = prop_oneof![4 => regex("[a-z0-9-]{1,12}").prop_map(Value::from), 1 => leaf()];
    let user_id = prop_oneof![4 => regex("[a-z0-9-]{1,12}").prop_map(Value::from), 1 => leaf()];
    let context = (
        prop::option::of(object_of(TRAIT_KEYS)),
        prop::option::of(member_value("ip")),
        prop::option::of(object_of(&["type", "advertisingId", "id"])),
        prop::option::of(object_of(&["search", "url"])),
        prop::option::of(object_of(&["computation_key", "computation_class"])),
    )
        .prop_map(|(traits, ip, device, page, personas)| {
            let mut c = Map::new();
            for (k, v) in [
                ("traits", traits),
                ("ip", ip),
                ("device", device),
                ("page", page),
                ("personas", personas),
            ] {
                if let Some(v) = v {
                    c.insert(k.into(), v);
                }
            }
            Value::Object(c)
        });
    (
        type_,
        prop::option::of(event),
        prop::option::weighted(0.9, message_id),
        prop::option::weighted(0.9, member_value("timestamp")),
        prop::option::weighted(0.7, user_id),
        prop::option::of(object_of(TRAIT_KEYS)),
        prop::option::of(object_of(PROPERTY_KEYS)),
        prop::option::weighted(0.8, context),
        prop::option::weighted(0.2, member_value("rtid")),
        prop::collection::vec((key(), json_up_to(2, 8)), 0..3),
    )
        .prop_map(
            |(t, event, mid, ts, uid, traits, props, context, rtid, extra)| {
                let mut o = Map::new();
                o.insert("type".into(), t);
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        o.insert(k.into(), v);
                    }
                };
                put("event", event);
                put("messageId", mid);
                put("timestamp", ts);
                put("userId", uid);
                put("traits", traits);
                put("properties", props);
                put("context", context);
                put(
                    "integrations",
                    rtid.map(|v| json!({"Rokt Conversions API": {"rtid": v}})),
                );
                for (k, v) in extra {
                    o.insert(k, v);
                }
                Value::Object(o)
            },
        )
}

/// A change to one node of a JSON document, chosen by `at` among all its nodes.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(Index, Value),
    Delete(Index),
    Retype(Index),
    Insert(Index, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        3 => any::<Index>().prop_map(Mutation::Retype),
        2 => (any::<Index>(), key(), any_json()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

/// A change to the text: byte-level damage, which may leave it not JSON or not UTF-8.
#[derive(Clone, Debug)]
enum TextMutation {
    Truncate(Index),
    InsertBytes(Index, Vec<u8>),
    SetByte(Index, u8),
    DeleteRange(Index, usize),
}

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(TextMutation::Truncate),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| TextMutation::InsertBytes(i, b)),
        2 => (any::<Index>(), prop::sample::select(&b"{}[]\",:\\ 0a-.\xff\xc3"[..]))
            .prop_map(|(i, b)| TextMutation::SetByte(i, b)),
        1 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| TextMutation::DeleteRange(i, n)),
    ]
}

/// The paths (object keys and array indexes) of every node of `v`, the root first.
fn node_paths(v: &Value) -> Vec<Vec<PathStep>> {
    fn walk(v: &Value, at: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    at.push(PathStep::Key(k.clone()));
                    walk(child, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    at.push(PathStep::Item(i));
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Item(usize),
}

fn node_mut<'v>(v: &'v mut Value, path: &[PathStep]) -> &'v mut Value {
    path.iter().fold(v, |v, step| match step {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Item(i) => &mut v[*i],
    })
}

/// The same content as another JSON type.
fn retype(v: &Value) -> Value {
    match v {
        Value::Null => json!(""),
        Value::Bool(b) => json!(b.to_string()),
        Value::Number(n) => json!(n.to_string()),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => json!(f),
            _ if s.len() % 2 == 0 => json!([s]),
            _ => json!({"value": s}),
        },
        Value::Array(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
        ),
        Value::Object(m) => Value::Array(m.values().cloned().collect()),
    }
}

fn apply(mut doc: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let paths = node_paths(&doc);
        let pick = |i: &Index| paths[i.index(paths.len())].clone();
        match m {
            Mutation::Replace(i, with) => *node_mut(&mut doc, &pick(i)) = with.clone(),
            Mutation::Retype(i) => {
                let node = node_mut(&mut doc, &pick(i));
                *node = retype(node);
            }
            Mutation::Delete(i) => {
                let mut path = pick(i);
                match path.pop() {
                    None => doc = Value::Null,
                    Some(last) => match (node_mut(&mut doc, &path), last) {
                        (Value::Object(m), PathStep::Key(k)) => {
                            m.remove(&k);
                        }
                        (Value::Array(items), PathStep::Item(i)) => {
                            items.remove(i);
                        }
                        _ => unreachable!("paths follow the document"),
                    },
                }
            }
            Mutation::Insert(i, key, with) => match node_mut(&mut doc, &pick(i)) {
                Value::Object(m) => {
                    m.insert(key.clone(), with.clone());
                }
                Value::Array(items) => items.push(with.clone()),
                other => {
                    let mut m = Map::new();
                    m.insert(key.clone(), with.clone());
                    *other = Value::Object(m);
                }
            },
        }
    }
    doc
}

fn damage(mut bytes: Vec<u8>, mutations: &[TextMutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            TextMutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            TextMutation::InsertBytes(i, b) => {
                let p = at(i, bytes.len());
                bytes.splice(p..p, b.iter().copied());
            }
            TextMutation::SetByte(i, b) if !bytes.is_empty() => {
                let p = i.index(bytes.len());
                bytes[p] = *b;
            }
            TextMutation::SetByte(..) => {}
            TextMutation::DeleteRange(i, n) => {
                let p = at(i, bytes.len());
                let end = (p + n).min(bytes.len());
                bytes.drain(p..end);
            }
        }
    }
    bytes
}

/// A real event, mutated, as text, maybe damaged.
fn mutated_event() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<Index>(),
        prop::collection::vec(mutation(), 0..4),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(text_mutation(), 1..3),
        ],
        any::<bool>(),
    )
        .prop_map(|(seed, mutations, damages, pretty)| {
            let seeds = seeds();
            let doc = apply(seeds[seed.index(seeds.len())].clone(), &mutations);
            let text = if pretty {
                serde_json::to_vec_pretty(&doc)
            } else {
                serde_json::to_vec(&doc)
            };
            damage(text.expect("a Value serializes"), &damages)
        })
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Runs a property for `cases` cases (a failure is shrunk, and saved to be replayed first next
/// time, as `proptest!` does), prints how far the inputs got, and returns the tally.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Verdict,
) -> Tally {
    let config = ProptestConfig {
        cases,
        source_file: Some(file!()),
        // ChaCha, the default, is most of the generation time in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    let tally = std::cell::Cell::new(Tally::default());
    let started = Instant::now();
    TestRunner::new(config)
        .run(&strategy, |input| {
            let v = test(input);
            let mut t = tally.get();
            t.cases += 1;
            t.parsed += u64::from(v.parsed);
            t.accepted_by_some += u64::from(v.accepted > 0);
            t.accepted_runs += v.accepted as u64;
            tally.set(t);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let t = tally.get();
    println!(
        "robustness {name}: {} cases in {:.1?}, {} parsed, {} with an accepted event ({} accepted in all)",
        t.cases,
        started.elapsed(),
        t.parsed,
        t.accepted_by_some,
        t.accepted_runs,
    );
    t
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    cases: u64,
    parsed: u64,
    accepted_by_some: u64,
    accepted_runs: u64,
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

/// (a) Any JSON value at all.
#[test]
fn any_json_value_ends_in_ok_or_a_typed_error() {
    let t = check("any JSON value", cases(4000), any_json(), |v| {
        run_text(&serde_json::to_string(&v).expect("serializes"))
    });
    assert_eq!(t.parsed, t.cases);
}

/// (a) Objects shaped like events, with members of any type and content.
#[test]
fn any_event_shaped_object_ends_in_ok_or_a_typed_error() {
    let t = check("event-shaped object", cases(3000), event_like(), |v| {
        run_text(&serde_json::to_string(&v).expect("serializes"))
    });
    assert!(
        t.accepted_by_some * 10 >= t.cases,
        "too few accepted: {t:?}"
    );
}

/// (b) Real events with fields replaced, deleted, retyped or added, and the text truncated or
/// spliced with random bytes.
#[test]
fn mutated_real_events_end_in_ok_or_a_typed_error() {
    let t = check(
        "mutated real event",
        cases(4000),
        mutated_event(),
        |bytes| run_bytes(&bytes),
    );
    assert!(t.accepted_by_some * 4 >= t.cases, "too few accepted: {t:?}");
    assert!(
        t.parsed < t.cases,
        "some damage must break the syntax: {t:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// NDJSON: every line ends in exactly one outcome, and a bad line never stops the next ones.
// ---------------------------------------------------------------------------------------------

/// The outcome of one line, comparable: the encoded body or the error.
type Outcome = Result<Vec<u8>, Error>;

/// What the pipeline makes of one line's text (as `examples/preview.rs` does it).
fn outcome_of_text(p: &Pipeline, text: Result<&str, Error>) -> Outcome {
    let text = text?;
    let doc = Json::parse(text).map_err(|e| Error::from(EventError::from_json(&e)))?;
    p.encode(&doc).map(|b| b.to_vec())
}

/// Reads NDJSON with `Lines` and returns each line's index and outcome.
fn read_all<R: BufRead>(p: &Pipeline, lines: &mut Lines<R>) -> Vec<(u64, Outcome)> {
    let mut out = Vec::new();
    while let Some(line) = lines.next_line().expect("in-memory reads do not fail") {
        out.push((line.index, outcome_of_text(p, line.text)));
    }
    out
}

/// What a line should give, from first principles: blank lines are skipped, a line longer than
/// `max` is too large, non-UTF-8 is refused, the rest is trimmed and parsed.
fn expected_outcomes(p: &Pipeline, lines: &[Vec<u8>], max: usize) -> Vec<Outcome> {
    let mut out = Vec::new();
    for line in lines {
        if line.len() > max {
            out.push(Err(Error::TooLarge {
                bytes: line.len() + 1,
                limit: max,
            }));
            continue;
        }
        let start = line.iter().position(|b| !b.is_ascii_whitespace());
        let end = line.iter().rposition(|b| !b.is_ascii_whitespace());
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let text = std::str::from_utf8(&line[start..=end])
            .map_err(|e| Error::from(EventError::new_utf8(e.valid_up_to())));
        out.push(outcome_of_text(p, text));
    }
    out
}

/// A reader that hands out at most `chunk` bytes per read, to split lines across buffer fills.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Clone, Debug)]
enum LineKind {
    /// A real event, as is.
    Seed(Index),
    /// A mutated and maybe damaged event.
    Mutated(Vec<u8>),
    /// Bytes that are not UTF-8.
    NotUtf8(Vec<u8>),
    /// Longer than the limit.
    Oversize(usize),
    /// Blank.
    Blank(usize),
    /// JSON, but not an object.
    NotAnObject(Value),
}

fn line_kind() -> impl Strategy<Value = LineKind> {
    prop_oneof![
        4 => any::<Index>().prop_map(LineKind::Seed),
        4 => mutated_event().prop_map(LineKind::Mutated),
        1 => prop::collection::vec(128u8..=255, 1..16).prop_map(LineKind::NotUtf8),
        1 => (1usize..3000).prop_map(LineKind::Oversize),
        1 => (0usize..4).prop_map(LineKind::Blank),
        1 => prop_oneof![leaf(), prop::collection::vec(leaf(), 0..4).prop_map(Value::Array)]
            .prop_map(LineKind::NotAnObject),
    ]
}

/// The line limit in the NDJSON property: above every seed, so only oversize lines hit it.
const NDJSON_MAX: usize = 8 * 1024;

fn render_line(kind: &LineKind) -> Vec<u8> {
    let mut line = match kind {
        LineKind::Seed(i) => {
            let seeds = seeds();
            serde_json::to_vec(&seeds[i.index(seeds.len())]).expect("serializes")
        }
        LineKind::Mutated(b) => b.clone(),
        LineKind::NotUtf8(b) => b.clone(),
        LineKind::Oversize(extra) => {
            // A valid event padded past the limit: only the limit can refuse it.
            let mut e = seeds()[0].clone();
            e["properties"]["pad"] = json!("x".repeat(NDJSON_MAX + extra));
            serde_json::to_vec(&e).expect("serializes")
        }
        LineKind::Blank(n) => b" \t\r".repeat(*n),
        LineKind::NotAnObject(v) => serde_json::to_vec(v).expect("serializes"),
    };
    // A line cannot hold a newline: damage may have put one in.
    for b in &mut line {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    line
}

/// (c) NDJSON streams mixing good events, damaged ones, non-UTF-8, oversize, blank and
/// non-object lines, with LF or CRLF endings, read in chunks of any size.
#[test]
fn ndjson_every_line_ends_in_one_outcome() {
    let strategy = (
        prop::collection::vec(line_kind(), 1..12),
        any::<bool>(),
        any::<bool>(),
        1usize..600,
        0usize..5,
    );
    let lines_seen = std::cell::Cell::new(0u64);
    let t = check("NDJSON stream", cases(800), strategy, |input| {
        let got = ndjson_case(input);
        lines_seen.set(lines_seen.get() + got.lines);
        got.verdict
    });
    println!(
        "robustness NDJSON stream: {} lines in all",
        lines_seen.get()
    );
    assert!(t.accepted_by_some > 0);
}

struct NdjsonRun {
    lines: u64,
    verdict: Verdict,
}

fn ndjson_case(
    (kinds, crlf, final_newline, chunk, preset): (Vec<LineKind>, bool, bool, usize, usize),
) -> NdjsonRun {
    let (_, p) = &pipelines()[preset];
    let lines: Vec<Vec<u8>> = kinds.iter().map(render_line).collect();
    let mut input = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        input.extend_from_slice(line);
        if i + 1 < lines.len() || final_newline {
            input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
    }
    // What each line must give; a CRLF line carries its `\r` toward the limit.
    let as_read: Vec<Vec<u8>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut l = l.clone();
            if crlf && (i + 1 < lines.len() || final_newline) {
                l.push(b'\r');
            }
            l
        })
        .collect();
    let expected = expected_outcomes(p, &as_read, NDJSON_MAX);
    let reader = BufReader::with_capacity(
        chunk.max(16),
        Chunked {
            data: &input,
            chunk,
        },
    );
    let got = read_all(p, &mut Lines::with_max_line(reader, NDJSON_MAX));
    assert_eq!(got.len(), expected.len(), "one outcome per non-blank line");
    for (i, ((index, got), want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(*index, i as u64);
        match (got, want) {
            (Err(Error::TooLarge { limit, .. }), Err(Error::TooLarge { limit: l, .. })) => {
                assert_eq!(limit, l);
            }
            _ => assert_eq!(got, want, "line {}", i),
        }
    }
    // A good seed line is sent whatever came before it.
    let mut n = 0;
    for (kind, line) in kinds.iter().zip(&lines) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let LineKind::Seed(_) = kind {
            let direct = outcome_of_text(p, Ok(std::str::from_utf8(line).expect("utf-8")));
            assert_eq!(&got[n].1, &direct);
        }
        n += 1;
    }
    // And the encoded items go out in bulk as the preview sends them.
    let encoded: Vec<Result<bytes::Bytes, Error>> = got
        .into_iter()
        .map(|(_, o)| o.map(bytes::Bytes::from))
        .collect();
    let oks = encoded.iter().filter(|e| e.is_ok()).count();
    let plan = p.bulk_encoded(RequestKind::Bulk, encoded);
    assert_eq!(plan.requests.iter().map(|r| r.items).sum::<usize>(), oks);
    for r in &plan.requests {
        let items: Vec<Value> = serde_json::from_slice(&r.body).expect("bulk body");
        assert_eq!(items.len(), r.items);
        assert!(r.body.len() <= p.limits().max_request_bytes);
    }
    NdjsonRun {
        lines: kinds.len() as u64,
        verdict: Verdict {
            parsed: true,
            accepted: oks,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input, one case at a time.
// ---------------------------------------------------------------------------------------------

fn a_valid_event() -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": "m-1",
        "timestamp": "2026-03-04T05:06:07.891Z", "properties": {"order_id": "o-1", "revenue": 9.5}})
}

fn lines_of(input: &[u8], max: usize) -> Vec<(u64, Outcome)> {
    read_all(&pipelines()[0].1, &mut Lines::with_max_line(input, max))
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = [
        "[".repeat(10_000),
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        "{\"a\":".repeat(10_000),
        format!(
            r#"{{"type":"track","event":"x","userId":"u","messageId":"m","timestamp":"2026-01-01","properties":{{"p":{}}}}}"#,
            "[".repeat(10_000)
        ),
    ];
    for text in &deep {
        let e = Json::parse(text).expect_err("10,000 levels are refused");
        let err = EventError::from_json(&e);
        assert_eq!(err.path, "$");
        assert!(Json::parse_slice(text.as_bytes()).is_err());
        assert!(Event::from_json(text).is_err());
        assert!(serde_json::from_str::<Value>(text).is_err());
        // Through the NDJSON reader, between two good events.
        let input = format!("{}\n{text}\n{}\n", a_valid_event(), a_valid_event());
        let got = lines_of(input.as_bytes(), usize::MAX);
        assert_eq!(got.len(), 3);
        assert!(got[0].1.is_ok() && got[2].1.is_ok());
        assert!(matches!(got[1].1, Err(Error::InvalidEvent(_))));
    }
}

#[test]
fn nesting_within_the_limit_goes_through_every_stage() {
    // serde_json allows 127 levels; the event object and `context.traits.address` are four.
    for depth in [100, 123, 124, 127] {
        let mut e = a_valid_event();
        let nested: Value =
            serde_json::from_str(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
                .expect("within the limit");
        e["properties"]["order_id"] = nested.clone();
        e["context"] =
            json!({"traits": {"email": nested.clone(), "address": {"postal_code": nested}}});
        let text = e.to_string();
        let within = Json::parse(&text).is_ok();
        assert_eq!(within, depth <= 123, "depth {depth}");
        run_text(&text);
    }
}

#[test]
fn oversize_lines_are_reported_and_the_next_line_is_processed() {
    let good = a_valid_event().to_string();
    let mut input = Vec::new();
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'x', DEFAULT_MAX_LINE + 1));
    input.push(b'\n');
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    let mut lines = Lines::new(&input[..]);
    let got = read_all(&pipelines()[0].1, &mut lines);
    assert_eq!(got.len(), 3);
    assert!(got[0].1.is_ok());
    assert_eq!(
        got[1].1,
        Err(Error::TooLarge {
            bytes: DEFAULT_MAX_LINE + 2,
            limit: DEFAULT_MAX_LINE
        })
    );
    assert_eq!(got[2].1, got[0].1);
}

#[test]
fn the_line_limit_is_exact_whatever_ends_the_line() {
    let max = 64;
    for len in [max - 1, max, max + 1] {
        let body = "x".repeat(len);
        for (input, what) in [
            (format!("{body}\n{{}}\n"), "newline"),
            (body.clone(), "end of input"),
        ] {
            let got = lines_of(input.as_bytes(), max);
            let too_large = matches!(got[0].1, Err(Error::TooLarge { .. }));
            assert_eq!(too_large, len > max, "{len} bytes ended by {what}");
        }
    }
}

#[test]
fn bad_lines_do_not_stop_the_stream() {
    let good = a_valid_event().to_string();
    let truncated = &good[..good.len() / 2];
    let mut input = Vec::new();
    for bad in [
        &b"\xff\xfe{\"type\":\"track\"}"[..],
        b"{\"type\":\"track\",\"event\":\"\xc3\x28\"}",
        truncated.as_bytes(),
        b"[1,2,3]",
        b"[{\"type\":\"track\"}]",
        b"12345",
        b"-1e400",
        b"\"just a string\"",
        b"null",
        b"true",
        b"{\"type\":\"track\"} trailing",
        b"{}{}",
        b"\x00",
    ] {
        input.extend_from_slice(bad);
        input.push(b'\n');
        input.extend_from_slice(good.as_bytes());
        input.push(b'\n');
    }
    let got = lines_of(&input, DEFAULT_MAX_LINE);
    assert_eq!(got.len(), 26);
    for (i, (index, outcome)) in got.iter().enumerate() {
        assert_eq!(*index, i as u64);
        if i % 2 == 0 {
            let e = outcome.as_ref().expect_err("a bad line is rejected");
            assert!(matches!(e, Error::InvalidEvent(_)), "line {i}: {e:?}");
        } else {
            assert!(outcome.is_ok(), "line {i} after a bad line is processed");
        }
    }
}

/// A reader of `len` bytes of `x` and then `tail`, produced on the fly.
struct Endless {
    left: usize,
    tail: &'static [u8],
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left > 0 {
            let n = buf.len().min(self.left);
            buf[..n].fill(b'x');
            self.left -= n;
            return Ok(n);
        }
        let n = buf.len().min(self.tail.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
        Ok(n)
    }
}

/// Counts the bytes this thread holds on the heap, and their peak, so a test can show that
/// reading a line does not buffer it whole.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        // `try_with`: the counters may be gone while the thread shuts down.
        let _ = LIVE.try_with(|live| {
            let now = live.get() + n;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: the caller's contract is the system allocator's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            // SAFETY: as above.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            // SAFETY: as above.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Runs `f` and returns its result and the peak of this thread's heap above where it began.
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let start = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(start));
        let out = f();
        let peak = PEAK.with(Cell::get) - start;
        (out, peak.max(0) as usize)
    }
}

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

#[test]
fn a_50_mb_line_is_refused_without_buffering_it() {
    const LEN: usize = 50 * 1024 * 1024;
    let started = Instant::now();
    let (got, peak) = heap::peak_during(|| {
        let tail = b"\n{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u\",\"messageId\":\"m\",\"timestamp\":\"2026-03-04T05:06:07.891Z\"}\n";
        let reader = BufReader::new(Endless { left: LEN, tail });
        lines_of_reader(reader)
    });
    let elapsed = started.elapsed();
    println!("robustness 50 MB line: skipped in {elapsed:.1?}, heap peak {peak} bytes");
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].1,
        Err(Error::TooLarge {
            bytes: LEN + 1,
            limit: DEFAULT_MAX_LINE
        })
    );
    assert!(got[1].1.is_ok(), "the line after it is processed");
    // The reader's buffer plus at most one line's worth (1 MiB, grown by doubling).
    assert!(
        peak < 3 * DEFAULT_MAX_LINE,
        "reading a 50 MB line held {peak} bytes at its peak"
    );

    // Without a newline at all, to the end of input.
    let (got, peak) = heap::peak_during(|| {
        lines_of_reader(BufReader::new(Endless {
            left: LEN,
            tail: b"",
        }))
    });
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0].1, Err(Error::TooLarge { bytes: LEN, .. })));
    assert!(peak < 3 * DEFAULT_MAX_LINE, "held {peak} bytes");
}

fn lines_of_reader<R: BufRead>(reader: R) -> Vec<(u64, Outcome)> {
    read_all(&pipelines()[0].1, &mut Lines::new(reader))
}

// ---------------------------------------------------------------------------------------------
// The per-batch size limit.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_batch_over_128_kb_is_too_large() {
    let p = &pipelines()[0].1;
    let limit = p.limits().max_item_bytes;
    assert_eq!(limit, 128 * 1024);
    let mut big = a_valid_event();
    big["event"] = json!("e".repeat(limit));
    match p.encode(&big) {
        Err(Error::TooLarge { bytes, limit: l }) => {
            assert_eq!(l, limit);
            assert!(bytes > limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let e = p.request(&big).expect_err("no request for it");
    assert!(e.is_bad_input());
    assert_eq!(e.error_type(), "PAYLOAD_TOO_LARGE");
    // The batch itself can still be built: only encoding checks the size.
    assert!(p.batch(&big).is_ok());

    // Just under the limit is fine; find the largest name that fits.
    let overhead = {
        let mut e = a_valid_event();
        e["event"] = json!("e");
        p.encode(&e).expect("small").len() - 1
    };
    let mut fits = a_valid_event();
    fits["event"] = json!("e".repeat(limit - overhead));
    assert_eq!(p.encode(&fits).expect("fits").len(), limit);
    fits["event"] = json!("e".repeat(limit - overhead + 1));
    assert!(matches!(p.encode(&fits), Err(Error::TooLarge { .. })));

    // In bulk, the oversize event is reported and the others are sent.
    let plan = p.bulk([&a_valid_event(), &big, &a_valid_event()]);
    assert!(plan.items[0].is_ok() && plan.items[2].is_ok());
    assert!(matches!(plan.items[1], Err(Error::TooLarge { .. })));
    assert_eq!(plan.requests.iter().map(|r| r.items).sum::<usize>(), 2);
}

#[test]
fn bulk_requests_stay_within_the_request_limit() {
    let p = &pipelines()[0].1;
    let events: Vec<Value> = (0..12)
        .map(|i| {
            let mut e = a_valid_event();
            e["event"] = json!("e".repeat(60 * 1024 + i * 997));
            e
        })
        .collect();
    let plan = p.bulk(&events);
    assert!(plan.items.iter().all(Result::is_ok));
    assert!(plan.requests.len() > 1);
    for r in &plan.requests {
        assert!(r.body.len() <= p.limits().max_request_bytes);
        let items: Vec<Value> = serde_json::from_slice(&r.body).expect("bulk body");
        assert_eq!(items.len(), r.items);
    }
    assert_eq!(plan.requests.iter().map(|r| r.items).sum::<usize>(), 12);
}

// ---------------------------------------------------------------------------------------------
// Time: an event with many keys costs time linear in their number.
// ---------------------------------------------------------------------------------------------

/// Open attribute maps used to look keys up by a scan on every insert: a 1 MiB line with
/// 100,000 properties took minutes. 40,000 keys in two open objects come out complete and in
/// document order; the time is printed, not asserted (the maps' index past 32 keys is unit-tested
/// in `rokt::attributes`).
#[test]
fn many_keys_come_out_complete_and_in_order() {
    let p = Pipeline::builder()
        .overrides(json!({
            "eventProperties": {"@path": "$.properties"},
            "user_attributes": {"@path": "$.traits"}
        }))
        .build()
        .expect("pipeline");
    let n = 40_000;
    let mut e = a_valid_event();
    // The objects are written as text, in order: a serde_json map may sort its keys.
    let mut props: String = (0..n).map(|i| format!(r#""k{i}":{i},"#)).collect();
    props.push_str(r#""order_id":"o-1""#);
    e["properties"] = json!("PROPS");
    e["traits"] = json!("PROPS");
    let text = e.to_string().replace(r#""PROPS""#, &format!("{{{props}}}"));
    // Repeated keys keep their first position and take the last value, as in JavaScript.
    let text = text.replacen(r#""k0":0"#, r#""k0":0,"k1":"first","k0":"last""#, 1);
    let doc = Json::parse(&text).expect("JSON");
    let started = Instant::now();
    let batch = p.batch(&doc).expect("a batch");
    println!("{n} keys in two open objects: {:?}", started.elapsed());
    let attrs = &batch.events[0].data.custom_attributes;
    assert_eq!(
        attrs.len(),
        n + 3,
        "conversiontype, confirmationref, k0… and order_id"
    );
    let keys: Vec<&str> = attrs.keys().take(5).collect();
    assert_eq!(
        keys,
        ["conversiontype", "confirmationref", "k0", "k1", "k2"]
    );
    assert_eq!(
        attrs.get("k0"),
        Some(&rokt_capi::rokt::AttributeValue::String("last".into()))
    );
    assert_eq!(
        attrs.get("k1"),
        Some(&rokt_capi::rokt::AttributeValue::Number(1.into()))
    );
    assert_eq!(batch.user_attributes.extra.len(), n + 1);
    assert!(matches!(p.encode(&doc), Err(Error::TooLarge { .. })));
}
