//! Fuzz target `pipeline`: bytes → NDJSON lines (`ndjson::Lines`) → `Json::parse` → both presets,
//! hashing off and on, and Send with open objects mapped whole → `payload` / `batch` / `encode` /
//! `request`, and every line's outcome in `bulk_encoded`, as `examples/preview.rs` does it.
//!
//! Nothing may panic; the stages must agree with each other and with the other ways in
//! (`serde_json::Value`, `segment::Event`); every accepted body must be a well-formed batch; and
//! every non-blank line must end in exactly one outcome.
//!
//! A first byte with its high bit set is not input: it sets a small line limit
//! (64 × (1 + low 7 bits) bytes), so oversize lines are fuzzed too. Inputs that start with text
//! (the seed corpus) run with the default limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::{DEFAULT_MAX_LINE, Lines};
use rokt_capi::request::RequestKind;
use rokt_capi::segment::Event;
use rokt_capi::{Credentials, Error, EventError, Json, Pipeline};
use serde_json::Value;
use std::sync::OnceLock;

fn pipelines() -> &'static [Pipeline] {
    static PIPELINES: OnceLock<Vec<Pipeline>> = OnceLock::new();
    PIPELINES.get_or_init(|| {
        let hash_all = serde_json::json!({"hashingConfiguration": {
            "hashEmail": true, "hashFirstName": true, "hashLastName": true,
            "hashMobile": true, "hashBillingZipcode": true
        }});
        let mut out = Vec::new();
        for preset in [Preset::Send, Preset::SyncEngageAudience] {
            for hashed in [false, true] {
                let mut b = Pipeline::builder()
                    .preset(preset)
                    .credentials(Credentials::new("key", "secret"));
                if hashed {
                    b = b.overrides(hash_all.clone());
                }
                out.push(b.build().expect("preset pipelines build"));
            }
        }
        // Open objects mapped whole: every member becomes an attribute.
        let open = serde_json::json!({
            "eventProperties": {"@path": "$.properties"},
            "user_attributes": {"@path": "$.context.traits"}
        });
        out.push(
            Pipeline::builder()
                .overrides(open)
                .build()
                .expect("open objects pipeline"),
        );
        out
    })
}

fn check_error(e: &Error) {
    assert!(
        e.is_bad_input(),
        "an event can only fail as bad input: {e:?}"
    );
    assert_eq!(e.status(), 400);
    assert!(!e.to_string().is_empty());
    let _ = format!("{e:?}");
}

/// An accepted body: a JSON object with the keys the reference always sends and an identifier.
fn check_body(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("an accepted body re-parses as JSON");
    let o = v.as_object().expect("a batch is an object");
    for key in [
        "environment",
        "device_info",
        "user_attributes",
        "user_identities",
    ] {
        assert!(o.contains_key(key), "the batch has no `{key}`");
    }
    let ids = o["user_identities"].as_object().expect("user_identities");
    let device = o["device_info"].as_object().expect("device_info");
    let has_id = ["email", "other", "customerid", "other2"]
        .iter()
        .any(|k| ids.contains_key(*k))
        || [
            "ios_advertising_id",
            "android_advertising_id",
            "ios_idfv",
            "android_uuid",
        ]
        .iter()
        .any(|k| device.contains_key(*k));
    assert!(has_id, "an accepted batch carries an identifier");
    v
}

/// Every stage for one parsed event; they must agree. Returns the encoded item.
fn stages(p: &Pipeline, doc: &Json<'_>) -> Result<bytes::Bytes, Error> {
    let payload = p.payload(doc);
    let batch = p.batch(doc);
    match (&payload, &batch) {
        (Ok(payload), Ok(batch)) => {
            let _ = format!("{payload:?} {batch:?}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("payload and batch disagree"),
    }
    let encoded = p.encode(doc);
    match (&batch, &encoded) {
        (Ok(b), Ok(bytes)) => assert_eq!(b.to_json_bytes(), bytes.as_ref()),
        (Ok(_), Err(Error::TooLarge { bytes, limit })) => assert!(bytes > limit),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("batch and encode disagree"),
    }
    match (&encoded, p.request(doc)) {
        (Ok(bytes), Ok(r)) => assert_eq!(&r.body, bytes),
        (Err(a), Err(b)) => assert_eq!(a, &b),
        _ => panic!("encode and request disagree"),
    }
    match &encoded {
        Ok(bytes) => {
            check_body(bytes);
        }
        Err(e) => check_error(e),
    }
    encoded
}

/// One line's text through every pipeline; the other ways in must agree.
fn line(text: &str, outcomes: &mut [Vec<Result<bytes::Bytes, Error>>]) {
    let event = Event::from_json(text);
    if let Err(e) = &event {
        check_error(&Error::from(e.clone()));
    }
    let doc = match Json::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            assert!(event.is_err(), "segment::Event parsed what Json could not");
            let e = Error::from(EventError::from_json(&e));
            check_error(&e);
            for o in outcomes.iter_mut() {
                o.push(Err(e.clone()));
            }
            return;
        }
    };
    let value: Value = serde_json::from_str(text).expect("Json and serde_json agree on syntax");
    for (p, o) in pipelines().iter().zip(outcomes.iter_mut()) {
        let encoded = stages(p, &doc);
        let parsed = encoded
            .as_ref()
            .map(|b| check_body(b))
            .map_err(Clone::clone);
        let from_value = p.encode(&value).map(|b| check_body(&b));
        assert_eq!(parsed, from_value, "Json and serde_json::Value disagree");
        if let Ok(event) = &event {
            let from_event = p.encode(event).map(|b| check_body(&b));
            assert_eq!(parsed, from_event, "Json and segment::Event disagree");
        }
        o.push(encoded);
    }
}

fuzz_target!(|data: &[u8]| {
    let (max_line, input) = match data.split_first() {
        Some((&b, rest)) if b & 0x80 != 0 => (64 * (1 + usize::from(b & 0x7f)), rest),
        _ => (DEFAULT_MAX_LINE, data),
    };
    let non_blank = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    let mut outcomes: Vec<Vec<Result<bytes::Bytes, Error>>> = vec![Vec::new(); pipelines().len()];
    let mut lines = Lines::with_max_line(input, max_line);
    let mut count = 0u64;
    while let Some(l) = lines.next_line().expect("reading memory cannot fail") {
        assert_eq!(l.index, count, "lines are numbered in order");
        count += 1;
        let _ = format!("{l:?}");
        match l.text {
            Ok(text) => line(text, &mut outcomes),
            Err(e) => {
                check_error(&e);
                for o in outcomes.iter_mut() {
                    o.push(Err(e.clone()));
                }
            }
        }
    }
    // Every non-blank line has one outcome (an oversize blank line is reported too).
    assert!(count as usize >= non_blank, "a line was lost");
    for (p, encoded) in pipelines().iter().zip(outcomes) {
        assert_eq!(encoded.len() as u64, count);
        let ok = encoded.iter().filter(|e| e.is_ok()).count();
        let plan = p.bulk_encoded(RequestKind::Bulk, encoded);
        assert_eq!(plan.items.len() as u64, count);
        assert_eq!(plan.requests.iter().map(|r| r.items).sum::<usize>(), ok);
        for (i, item) in plan.items.iter().enumerate() {
            if let Ok(r) = item {
                assert!(*r < plan.requests.len(), "item {i} points at a request");
            }
        }
        for r in &plan.requests {
            assert!(r.body.len() <= p.limits().max_request_bytes);
            let items: Vec<Value> = serde_json::from_slice(&r.body).expect("a bulk body is JSON");
            assert_eq!(items.len(), r.items);
        }
    }
});
