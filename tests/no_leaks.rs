//! No leaks (issue 6): the raw personal values of an event (email, names, phone, postal code,
//! IP address, birthday, user ids) and the API secret never appear in an error's `Display` or
//! `Debug`, in what the crate logs (captured here at TRACE), or in the `Debug` of any value the
//! pipeline hands out.
//!
//! The values are collected from each event by walking it for the keys that hold personal data,
//! so the checks follow the events; every test asserts it found values to look for.

mod capture;
mod support;

use capture::Captured;
use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::Lines;
use rokt_capi::segment::Event;
use rokt_capi::{Credentials, Error, EventError, Json, Pipeline};
use serde_json::{Value, json};
use std::path::Path;
use tracing_subscriber::fmt::format::FmtSpan;

/// The API secret every pipeline here is built with (besides the corpus's own).
const SECRET: &str = "sk-Secret-9f8e7d6c5b4a";

// ---------------------------------------------------------------------------------------------
// Capturing the logs.
// ---------------------------------------------------------------------------------------------

/// The capture of this test binary: TRACE for every target, spans included.
fn logs() -> &'static Captured {
    capture::install("trace", FmtSpan::FULL)
}

/// The logs so far, after checking that capture works (a canary line gets through).
fn captured_logs() -> String {
    logs().checked_since(0)
}

// ---------------------------------------------------------------------------------------------
// What must not leak.
// ---------------------------------------------------------------------------------------------

/// Keys whose values are personal data.
const PERSONAL_KEYS: &[&str] = &[
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

/// Every personal value in `event` (strings and numbers under a personal key, at any depth),
/// in each form the library might print it: as sent, trimmed, lowercased, and a birthday as
/// `YYYYMMDD`. Values shorter than 4 characters are left out: they would match by chance.
fn personal_values(event: &Value) -> Vec<String> {
    fn add(out: &mut Vec<String>, s: &str) {
        let t = s.trim();
        for form in [
            s.to_owned(),
            t.to_owned(),
            t.to_lowercase(),
            t.replace('-', ""),
        ] {
            if form.chars().count() >= 4 && !out.contains(&form) {
                out.push(form);
            }
        }
    }
    fn walk(v: &Value, personal: bool, out: &mut Vec<String>) {
        match v {
            Value::String(s) if personal => add(out, s),
            Value::Number(n) if personal => add(out, &n.to_string()),
            Value::Array(items) => items.iter().for_each(|i| walk(i, personal, out)),
            Value::Object(m) => {
                for (k, child) in m {
                    walk(child, personal || PERSONAL_KEYS.contains(&k.as_str()), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(event, false, &mut out);
    out
}

/// The secrets of a pipeline's credentials: the secret itself and the header that carries it.
fn secrets(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        Credentials::new("test-api-key", secret).authorization(),
        Credentials::new("key", secret).authorization(),
    ]
}

/// Fails if `text` (what `surface` printed) contains any of `values`, in any letter case.
fn assert_clean(surface: &str, text: &str, values: &[String]) {
    let lower = text.to_lowercase();
    for v in values {
        assert!(
            !lower.contains(&v.to_lowercase()),
            "{surface} leaks {v:?}:\n{text}"
        );
    }
}

fn assert_error_clean(surface: &str, e: &Error, values: &[String]) {
    assert_clean(&format!("{surface}: Display"), &e.to_string(), values);
    assert_clean(&format!("{surface}: Debug"), &format!("{e:?}"), values);
    assert_clean(&format!("{surface}: {{:#?}}"), &format!("{e:#?}"), values);
}

/// How an event fared, for the callers' own checks.
#[derive(Default)]
struct Seen {
    /// Rejected by the pipeline (or unreadable).
    rejected: usize,
    /// Sent by the pipeline.
    accepted: usize,
    /// Refused by `segment::Event::from_json`, which is stricter about shapes.
    not_an_event: bool,
}

/// Runs `text` through every entry point of the pipeline and checks every printable value it
/// produces against `values`.
fn check_text(p: &Pipeline, text: &[u8], values: &[String], seen: &mut Seen) {
    // Through the NDJSON reader, as the preview reads input.
    let mut lines = Lines::new(text);
    while let Some(line) = lines.next_line().expect("in memory") {
        assert_clean("ndjson::Line Debug", &format!("{line:?}"), values);
        if let Err(e) = &line.text {
            assert_error_clean("ndjson::Line error", e, values);
        }
    }
    let text = match std::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            let err = Error::from(EventError::new_utf8(e.valid_up_to()));
            assert_error_clean("UTF-8 error", &err, values);
            if let Err(e) = Json::parse_slice(text) {
                assert_clean("Json::parse_slice error", &format!("{e} {e:?}"), values);
            }
            seen.rejected += 1;
            return;
        }
    };
    match Event::from_json(text) {
        Ok(event) => {
            assert_clean(
                "segment::Event Debug",
                &format!("{event:?} {event:#?}"),
                values,
            );
            let inner = match &event {
                Event::Track(e) => format!("{e:?} {:?}", e.common),
                Event::Identify(e) => format!("{e:?} {:?}", e.common),
                Event::Page(e) => format!("{e:?} {:?}", e.common),
                Event::Screen(e) => format!("{e:?} {:?}", e.common),
                Event::Group(e) => format!("{e:?} {:?}", e.common),
                Event::Alias(e) => format!("{e:?} {:?}", e.common),
                _ => String::new(),
            };
            assert_clean("segment::Track/Identify/… Debug", &inner, values);
            if let Some(c) = &event.common().context {
                let parts = format!("{c:?} {:?} {:?} {:?}", c.device, c.page, c.personas);
                assert_clean("segment::Context Debug", &parts, values);
            }
        }
        Err(e) => {
            seen.not_an_event = true;
            assert_error_clean("segment::Event::from_json", &Error::from(e), values);
        }
    }
    let doc = match Json::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            assert_clean("Json::parse error", &format!("{e} {e:?}"), values);
            let err = Error::from(EventError::from_json(&e));
            assert_error_clean("EventError::from_json", &err, values);
            seen.rejected += 1;
            return;
        }
    };
    assert_clean("Json Debug", &format!("{doc:?} {doc:#?}"), values);
    match p.payload(&doc) {
        Ok(payload) => assert_clean("SendPayload Debug", &format!("{payload:?}"), values),
        Err(e) => assert_error_clean("Pipeline::payload", &e, values),
    }
    match p.batch(&doc) {
        Ok(batch) => {
            let parts = format!(
                "{batch:?} {batch:#?} {:?} {:?}",
                batch.user_identities, batch.user_attributes
            );
            assert_clean("Batch Debug", &parts, values);
        }
        Err(e) => assert_error_clean("Pipeline::batch", &e, values),
    }
    match p.request(&doc) {
        Ok(r) => {
            seen.accepted += 1;
            assert_clean("Request Debug", &format!("{r:?} {r:#?}"), values);
        }
        Err(e) => {
            seen.rejected += 1;
            assert_error_clean("Pipeline::request", &e, values);
        }
    }
    let plan = p.bulk([&doc, &doc]);
    assert_clean("BulkPlan Debug", &format!("{plan:?} {plan:#?}"), values);
    for item in plan.items.iter().filter_map(|i| i.as_ref().err()) {
        assert_error_clean("Pipeline::bulk item", item, values);
    }
    assert_clean("Pipeline Debug", &format!("{p:?} {p:#?}"), values);
    assert_clean(
        "Credentials Debug",
        &format!("{:?}", p.credentials()),
        values,
    );
}

/// Both presets, hashing off and on, with credentials holding `secret`.
fn pipelines(secret: &str, overrides: &Value) -> Vec<Pipeline> {
    let mut out = Vec::new();
    for preset in [Preset::Send, Preset::SyncEngageAudience] {
        for hashed in [false, true] {
            let mut o = overrides.clone();
            if hashed {
                o["hashingConfiguration"] = json!({"hashEmail": true, "hashFirstName": true,
                    "hashLastName": true, "hashMobile": true, "hashBillingZipcode": true});
            }
            out.push(
                Pipeline::builder()
                    .preset(preset)
                    .overrides(o)
                    .credentials(Credentials::new("test-api-key", secret))
                    .build()
                    .expect("pipeline"),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The conformance corpus.
// ---------------------------------------------------------------------------------------------

#[test]
fn rejected_corpus_events_leak_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/send");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/conformance/send")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut rejected, mut values_checked, mut events) = (0, 0, 0);
    for file in &files {
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        let secret = case["settings"]["apiSecret"].as_str().expect("a secret");
        let preset = Preset::from_key(case["preset"].as_str().expect("preset")).expect("preset");
        let pipeline = Pipeline::builder()
            .preset(preset)
            .overrides(case["mapping"].clone())
            .credentials(Credentials::new(
                case["settings"]["apiKey"].as_str().expect("key"),
                secret,
            ))
            .build()
            .expect("the case's pipeline");
        for (i, event) in case["events"]
            .as_array()
            .expect("events")
            .iter()
            .enumerate()
        {
            events += 1;
            let mut values = personal_values(event);
            values_checked += values.len();
            values.extend(secrets(secret));
            let text = event.to_string();
            // The expected result says whether the reference rejects it.
            let status = &case["expected"]["results"][i]["status"];
            let mut seen = Seen::default();
            check_text(&pipeline, text.as_bytes(), &values, &mut seen);
            if status == 400 {
                assert_eq!(
                    seen.rejected,
                    1,
                    "{}: event {i} is rejected",
                    file.display()
                );
                rejected += 1;
            }
        }
    }
    assert_clean(
        "captured logs",
        &captured_logs(),
        &secrets("test-api-secret"),
    );
    println!(
        "no_leaks corpus: {events} events, {rejected} rejected, {values_checked} personal values checked"
    );
    assert!(rejected >= 5, "the corpus has rejected cases");
    assert!(
        captured_logs().contains("event rejected"),
        "the pipeline's own log lines are captured"
    );
    assert!(values_checked >= 100, "personal values were found");

    // Every personal value of the corpus, against the logs of the whole run.
    let mut all = Vec::new();
    for file in &files {
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        for event in case["events"].as_array().expect("events") {
            all.extend(personal_values(event));
        }
    }
    assert_clean("captured logs", &captured_logs(), &all);
}

// ---------------------------------------------------------------------------------------------
// Invalid events that carry personal data.
// ---------------------------------------------------------------------------------------------

fn person() -> Value {
    json!({
        "email": "  Zoe.Quartermaine@Example.ORG ",
        "first_name": " Zoë ",
        "last_name": "Quartermaine",
        "phone": "+44 20 7946 0958",
        "address": {"postal_code": "SW1A 2AA", "city": "London"},
        "birthday": "1984-11-23",
        "gender": "f"
    })
}

fn valid_event() -> Value {
    json!({
        "type": "track", "event": "Order Completed", "userId": "cust-58213-quartermaine",
        "anonymousId": "anon-7f3e-quartermaine", "messageId": "m-1",
        "timestamp": "2026-03-04T05:06:07.891Z",
        "context": {"ip": "198.51.100.203", "traits": person()},
        "properties": {"order_id": "o-1", "revenue": 12.5}
    })
}

/// Invalid events, each rejected for a different reason, all carrying the person's data.
fn invalid_events() -> Vec<(&'static str, Value)> {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut e = valid_event();
        f(&mut e);
        e
    };
    vec![
        (
            "bad gender",
            with(&|e| e["context"]["traits"]["gender"] = json!("female")),
        ),
        (
            "bad birthday",
            with(&|e| e["context"]["traits"]["birthday"] = json!("23/11/1984")),
        ),
        (
            "impossible birthday",
            with(&|e| e["context"]["traits"]["birthday"] = json!("1984-02-30")),
        ),
        (
            "no messageId",
            with(&|e| {
                e.as_object_mut().expect("object").remove("messageId");
            }),
        ),
        (
            "bad timestamp",
            // JavaScript's Date.parse reads "last Tuesday at 1984-11-23" (words before the
            // first number are skipped), so the unreadable time is one with a bad hour.
            with(&|e| e["timestamp"] = json!("last Tuesday at 1984-11-23 25:00")),
        ),
        (
            "no identifier",
            with(&|e| {
                e.as_object_mut().expect("object").remove("userId");
                e["context"]["traits"]
                    .as_object_mut()
                    .expect("traits")
                    .remove("email");
            }),
        ),
        (
            "email as an object",
            with(&|e| {
                e["context"]["traits"]["email"] = json!({"address": "zoe.q@example.org"});
            }),
        ),
        (
            "two emails",
            with(&|e| {
                e["context"]["traits"]["email"] =
                    json!(["zoe.q@example.org", "z.quartermaine@example.net"]);
            }),
        ),
        (
            "names as objects",
            with(&|e| {
                e["context"]["traits"]["first_name"] = json!({"given": "Zoëlle"});
                e["context"]["traits"]["last_name"] = json!(["Quartermaine", "Smythe-Jones"]);
            }),
        ),
        (
            "phone as an object",
            with(&|e| e["context"]["traits"]["phone"] = json!({"mobile": "+44 7700 900461"})),
        ),
        (
            "bad revenue",
            with(&|e| e["properties"]["revenue"] = json!("zoe.q@example.org")),
        ),
        (
            "bad computation class",
            with(&|e| {
                e["context"]["personas"] =
                    json!({"computation_key": "vip", "computation_class": "zoe.q@example.org"});
            }),
        ),
        (
            "type is an email",
            with(&|e| e["type"] = json!("zoe.q@example.org")),
        ),
        ("type missing", with(&|e| e["type"] = Value::Null)),
        (
            "track without a name",
            with(&|e| {
                e.as_object_mut().expect("object").remove("event");
            }),
        ),
        (
            "ip as an array",
            with(&|e| e["context"]["ip"] = json!(["198.51.100.204", "zoe.q@example.org"])),
        ),
        (
            "userId as an object",
            with(&|e| e["userId"] = json!({"id": "cust-58213-quartermaine"})),
        ),
        (
            "too large",
            with(&|e| e["event"] = json!("Order Completed ".repeat(9000))),
        ),
    ]
}

/// Damaged text that carries the person's data.
fn invalid_texts() -> Vec<(&'static str, Vec<u8>)> {
    let text = valid_event().to_string();
    let cut = text.find("Quartermaine").expect("a name") + 6;
    let mut not_utf8 = text.clone().into_bytes();
    let at = text.find("Zoe.Quartermaine").expect("the email") + 3;
    not_utf8.insert(at, 0xff);
    let mut control = text.clone();
    control.insert(
        text.find("Zoe.Quartermaine").expect("the email") + 2,
        '\u{1}',
    );
    vec![
        ("cut in a name", text.as_bytes()[..cut].to_vec()),
        ("not UTF-8 in the email", not_utf8),
        ("a control character in the email", control.into_bytes()),
        ("a trailing comma", format!("{},", text).into_bytes()),
        (
            "an unquoted email",
            br#"{"type":"track","email":zoe.q@example.org}"#.to_vec(),
        ),
        ("an array of events", format!("[{text}]").into_bytes()),
        (
            "two events on a line",
            format!("{text} {text}").into_bytes(),
        ),
        (
            "a bare string",
            br#""  Zoe.Quartermaine@Example.ORG ""#.to_vec(),
        ),
        (
            "a bad escape in the email",
            br#"{"type":"track","context":{"traits":{"email":"zoe.q\u12@example.org"}}}"#.to_vec(),
        ),
    ]
}

#[test]
fn invalid_events_with_personal_data_leak_nothing() {
    let pipelines = pipelines(SECRET, &json!({}));
    let mut checked = 0;
    for (what, event) in invalid_events() {
        let mut values = personal_values(&event);
        assert!(values.len() >= 8, "{what}: personal values were found");
        checked += values.len();
        values.extend(secrets(SECRET));
        let text = event.to_string();
        for p in &pipelines {
            let mut seen = Seen::default();
            check_text(p, text.as_bytes(), &values, &mut seen);
            assert!(
                seen.rejected == 1 || seen.not_an_event,
                "{what} is rejected"
            );
        }
    }
    let mut values = personal_values(&valid_event());
    values.extend([
        "zoe.q@example.org".to_owned(),
        "Zoe.Quartermaine".to_owned(),
    ]);
    values.extend(secrets(SECRET));
    for (what, text) in invalid_texts() {
        for p in &pipelines {
            let mut seen = Seen::default();
            check_text(p, &text, &values, &mut seen);
            assert!(seen.rejected >= 1, "{what} is rejected");
        }
    }
    let mut all = values;
    for (_, event) in invalid_events() {
        all.extend(personal_values(&event));
    }
    assert_clean("captured logs", &captured_logs(), &all);
    println!("no_leaks invalid events: {checked} personal values checked");
}

#[test]
fn accepted_events_print_no_personal_data_either() {
    // The values that are sent must still stay out of every Debug.
    let pipelines = pipelines(SECRET, &json!({}));
    let event = valid_event();
    let mut values = personal_values(&event);
    assert!(values.len() >= 8);
    values.extend(secrets(SECRET));
    for p in &pipelines {
        let mut seen = Seen::default();
        check_text(p, event.to_string().as_bytes(), &values, &mut seen);
        assert_eq!(seen.accepted, 1, "the valid event is sent");
    }
    assert_clean("captured logs", &captured_logs(), &values);
}

#[test]
fn credentials_never_print_the_secret() {
    let c = Credentials::new("test-api-key", SECRET);
    let p = Pipeline::builder()
        .credentials(c.clone())
        .build()
        .expect("pipeline");
    let r = p.request(valid_event()).expect("a request");
    assert_eq!(
        r.header("authorization"),
        Some(c.authorization().as_str()),
        "the header is there to be sent"
    );
    let printed = format!("{c:?} {c:#?} {p:?} {p:#?} {r:?} {r:#?}");
    assert_clean(
        "Credentials, Pipeline and Request Debug",
        &printed,
        &secrets(SECRET),
    );
    // An incomplete pair is refused without printing what was given.
    let e = Pipeline::builder()
        .credentials(Credentials::new("", SECRET))
        .build()
        .expect_err("a key is required");
    assert_error_clean("ConfigError", &e, &secrets(SECRET));
    assert_clean("captured logs", &captured_logs(), &secrets(SECRET));
}

/// An error `code` echoing a user id (issue 16): only codes shaped like the API's (upper-case
/// words and `_`) are shown or logged; anything else is redacted, in the rejection of a
/// request and of an item named in a 202.
#[tokio::test]
async fn an_error_code_echoing_a_user_id_is_redacted_everywhere() {
    use support::raw::{self, RawServer};
    let mark = logs().checked_since(0).len();
    let mut event = valid_event();
    event["userId"] = json!("Quartermaine58213");
    let values = personal_values(&event);
    assert!(values.iter().any(|v| v == "Quartermaine58213"));
    let echo =
        |code: &str| format!(r#"{{"errors":[{{"code":"{code}","message":"Path '[0]' bad"}}]}}"#);
    for code in [
        "Quartermaine58213",
        "QUARTERMAINE58213",
        "quartermaine58213",
    ] {
        for status in [400, 202] {
            let server = RawServer::always(raw::answer(status, &echo(code))).await;
            let client = rokt_capi::Client::builder()
                .api_key("key")
                .api_secret(SECRET)
                .endpoint_url(&server.url())
                .build()
                .unwrap();
            let err = client.send(&event).await.unwrap_err();
            let Error::Rejected(r) = &err else {
                panic!("{err:?}")
            };
            assert_eq!(r.code, None);
            assert_error_clean("an echoed code", &err, &values);
            let report = client.send_events([&event, &event]).await;
            for e in report.errors().map(|(_, e)| e) {
                assert_error_clean("an echoed code in a bulk", e, &values);
            }
        }
    }
    let logs = logs().checked_since(mark);
    assert_clean("logs", &logs, &values);
    assert_clean("logs", &logs, &secrets(SECRET));
}
