//! Runs the conformance corpus produced by the reference (tests/conformance, or the folder in
//! `ROKT_CONFORMANCE_DIR`): one summary line per family, a readable diff per failure, and a
//! failing test if any case fails.

use rokt_capi::mapping::Preset;
use rokt_capi::{Credentials, Pipeline};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("ROKT_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"),
    }
}

/// Equality of JSON values with numbers compared as numbers (`10` equals `10.0`), key order free.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A line-by-line diff of two pretty-printed values.
fn diff(expected: &Value, actual: &Value) -> String {
    let e = serde_json::to_string_pretty(expected).unwrap_or_default();
    let a = serde_json::to_string_pretty(actual).unwrap_or_default();
    let (el, al): (Vec<&str>, Vec<&str>) = (e.lines().collect(), a.lines().collect());
    let mut out = String::new();
    for i in 0..el.len().max(al.len()) {
        match (el.get(i), al.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("    {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  - {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  + {y}\n"));
                }
            }
        }
    }
    out
}

/// The label a reference message opens with (`Gender must be…` → `Gender`).
fn message_subject(message: &str) -> &str {
    for cut in [" must be", " is missing"] {
        if let Some(i) = message.find(cut) {
            return &message[..i];
        }
    }
    message
}

/// What the library produces for one send case (`text`, the case file), in the corpus's
/// `expected` shape.
fn run_send_case(case: &Value, text: &str) -> Result<Value, String> {
    run_send_case_with_bodies(case, text).map(|(value, _)| value)
}

/// [`run_send_case`], with the request bodies as sent. The events are read with the crate's
/// own parser, which keeps what the reference read: key order, repeated keys, and every digit
/// of a number.
fn run_send_case_with_bodies(case: &Value, text: &str) -> Result<(Value, Vec<Vec<u8>>), String> {
    let preset =
        Preset::from_key(case["preset"].as_str().unwrap_or("send")).ok_or("unknown preset")?;
    let settings = &case["settings"];
    let file = rokt_capi::Json::parse(text).map_err(|e| e.to_string())?;
    // The mapping as written, in its order (the order attributes are sent in).
    let mapping = file.get("mapping").cloned().unwrap_or_default();
    let pipeline = Pipeline::builder()
        .preset(preset)
        .overrides(mapping.into_owned())
        .credentials(Credentials::new(
            settings["apiKey"].as_str().unwrap_or_default(),
            settings["apiSecret"].as_str().unwrap_or_default(),
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let events = file
        .get("events")
        .and_then(rokt_capi::Json::as_array)
        .ok_or("no events")?;
    let raw = std::cell::RefCell::new(Vec::new());
    let request_json = |r: &rokt_capi::request::Request| {
        raw.borrow_mut().push(r.body.to_vec());
        json!({
            "method": r.method,
            "path": r.path,
            "authorization": r.header("authorization"),
            "body": serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        })
    };
    let failure = |index: usize, e: &rokt_capi::Error| json!({"index": index, "status": e.status(), "errortype": e.error_type(), "message": e.to_string()});
    let mut requests = Vec::new();
    let mut results = Vec::new();
    if case["batch"].as_bool().unwrap_or(false) {
        let plan = pipeline.bulk(events);
        requests.extend(plan.requests.iter().map(request_json));
        for (i, item) in plan.items.iter().enumerate() {
            results.push(match item {
                Ok(_) => json!({"index": i, "status": 200}),
                Err(e) => failure(i, e),
            });
        }
    } else {
        for (i, event) in events.iter().enumerate() {
            match pipeline.request(event) {
                Ok(r) => {
                    requests.push(request_json(&r));
                    results.push(json!({"index": i, "status": 200}));
                }
                Err(e) => results.push(failure(i, &e)),
            }
        }
    }
    let bodies = raw.into_inner();
    Ok((json!({"requests": requests, "results": results}), bodies))
}

/// Judges a send case as the corpus README says.
fn judge_send(expected: &Value, actual: &Value) -> Result<(), String> {
    let (er, ar) = (&expected["requests"], &actual["requests"]);
    if !json_eq(er, ar) {
        return Err(format!("requests differ:\n{}", diff(er, ar)));
    }
    let (ex, ac) = (
        expected["results"].as_array().cloned().unwrap_or_default(),
        actual["results"].as_array().cloned().unwrap_or_default(),
    );
    if ex.len() != ac.len() {
        return Err(format!(
            "results differ:\n{}",
            diff(&expected["results"], &actual["results"])
        ));
    }
    for (e, a) in ex.iter().zip(&ac) {
        let same = e["index"] == a["index"]
            && e["status"] == a["status"]
            && (e.get("errortype").is_none() || e["errortype"] == a["errortype"])
            && match (e["message"].as_str(), a["message"].as_str()) {
                (Some(em), Some(am)) => em == am || am.contains(message_subject(em)),
                (Some(_), None) => false,
                _ => true,
            };
        if !same {
            return Err(format!("result differs:\n{}", diff(e, a)));
        }
    }
    Ok(())
}

/// Runs one family; prints `conformance FAMILY: N passed, M failed` and the failures.
fn report(family: &str, outcomes: Vec<(String, Result<(), String>)>) -> usize {
    let skipped = outcomes
        .iter()
        .filter(|(_, r)| matches!(r, Err(why) if why.starts_with(SKIPPED)))
        .count();
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, r)| matches!(r, Err(why) if !why.starts_with(SKIPPED)))
        .collect();
    for (name, r) in &failed {
        if let Err(why) = r {
            println!("--- {family}/{name} FAILED\n{why}");
        }
    }
    let passed = outcomes.len() - failed.len() - skipped;
    if skipped > 0 {
        println!(
            "conformance {family}: {passed} passed, {} failed, {skipped} skipped",
            failed.len()
        );
    } else {
        println!(
            "conformance {family}: {passed} passed, {} failed",
            failed.len()
        );
    }
    failed.len()
}

/// Marks a case this build cannot run (a `@liquid` case without the `liquid` feature).
const SKIPPED: &str = "skipped: ";

fn send_family(dir: &Path) -> Option<Vec<(String, Result<(), String>)>> {
    let dir = dir.join("send");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Some(
        files
            .iter()
            .map(|path| {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let outcome = std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| {
                        let case = serde_json::from_str::<Value>(&t).map_err(|e| e.to_string())?;
                        let actual = run_send_case(&case, &t)?;
                        judge_send(&case["expected"], &actual)
                    });
                (name, outcome)
            })
            .collect(),
    )
}

/// The mapping family: `mapping/cases.json` is `{event, cases: [{name, mapping, expected} |
/// {name, mapping, error}]}`. A case passes when the compiled mapping applied to the event gives
/// `expected`, or when compiling or applying fails for a case with `error` (the message need
/// not match).
fn mapping_family(dir: &Path) -> Option<Vec<(String, Result<(), String>)>> {
    use rokt_capi::Json;
    use rokt_capi::mapping::Mapping;
    let text = std::fs::read_to_string(dir.join("mapping").join("cases.json")).ok()?;
    // Read as the crate's `Json`, which keeps keys in written order: some directives depend
    // on it.
    let corpus = match Json::parse(&text) {
        Ok(v) => v,
        Err(e) => return Some(vec![("cases.json".into(), Err(e.to_string()))]),
    };
    let event = corpus
        .get("event")
        .map(Json::to_value)
        .unwrap_or(Value::Null);
    let cases = corpus
        .get("cases")
        .and_then(Json::as_array)
        .unwrap_or_default();
    Some(
        cases
            .iter()
            .map(|case| {
                let name = case
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("unnamed")
                    .to_owned();
                let mapping = case.get("mapping").unwrap_or(&Json::Null);
                if cfg!(not(feature = "liquid"))
                    && mapping.to_value().to_string().contains("\"@liquid\"")
                {
                    // Without the feature a @liquid mapping must be refused when it is loaded.
                    let refused = Mapping::compile_json(mapping).is_err();
                    let outcome = if refused {
                        Err(format!("{SKIPPED}@liquid needs the `liquid` feature"))
                    } else {
                        Err("a @liquid mapping compiled without the liquid feature".to_owned())
                    };
                    return (name, outcome);
                }
                let result = Mapping::compile_json(mapping)
                    .map_err(|e| e.to_string())
                    .and_then(|m| m.apply(&event).map_err(|e| e.to_string()));
                let outcome = match (case.get("expected").map(Json::to_value), result) {
                    (Some(expected), Ok(actual)) if json_eq(&expected, &actual) => Ok(()),
                    (Some(expected), Ok(actual)) => {
                        Err(format!("output differs:\n{}", diff(&expected, &actual)))
                    }
                    (Some(_), Err(e)) => Err(format!("failed: {e}")),
                    (None, Err(_)) => Ok(()),
                    (None, Ok(actual)) => Err(format!(
                        "expected an error ({}), got {actual}",
                        case.get("error").map(Json::to_value).unwrap_or_default()
                    )),
                };
                (name, outcome)
            })
            .collect(),
    )
}

/// `subscriptions/cases.json`: whether each trigger matches each event, as the reference says.
fn subscriptions_family(dir: &Path) -> Option<Vec<(String, Result<(), String>)>> {
    let text = std::fs::read_to_string(dir.join("subscriptions/cases.json")).ok()?;
    let cases: Vec<Value> = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => return Some(vec![("cases.json".into(), Err(e.to_string()))]),
    };
    Some(
        cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let condition = case["condition"].as_str().unwrap_or_default();
                let name = format!("{i}: {condition}");
                let outcome = match rokt_capi::trigger::Trigger::parse(condition) {
                    Err(e) => Err(format!("parse error: {e}")),
                    Ok(t) => {
                        let got = t.matches(&case["event"]);
                        let want = case["expected"].as_bool();
                        if Some(got) == want {
                            Ok(())
                        } else {
                            Err(format!("expected {want:?}, got {got}"))
                        }
                    }
                };
                (name, outcome)
            })
            .collect(),
    )
}

#[test]
fn conformance() {
    let dir = corpus_dir();
    let mut failed = 0;
    let mut families = 0;
    if let Some(outcomes) = send_family(&dir) {
        families += 1;
        failed += report("send", outcomes);
    }
    if let Some(outcomes) = subscriptions_family(&dir) {
        families += 1;
        failed += report("subscriptions", outcomes);
    }
    if let Some(outcomes) = mapping_family(&dir) {
        families += 1;
        failed += report("mapping", outcomes);
    }
    assert!(
        families > 0,
        "no conformance family found in {}",
        dir.display()
    );
    assert_eq!(failed, 0, "{failed} conformance case(s) failed");
}

/// The order of every object's keys, path by path (`$.events[0].data: a,b,c`), read with the
/// crate's own document type, which keeps keys in the order they are written.
fn key_orders(value: &rokt_capi::Json<'_>, path: &str, out: &mut Vec<String>) {
    if let Some(pairs) = value.as_object() {
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
        out.push(format!("{path}: {}", keys.join(",")));
        for (k, v) in pairs {
            key_orders(v, &format!("{path}.{k}"), out);
        }
    } else if let Some(items) = value.as_array() {
        for (i, v) in items.iter().enumerate() {
            key_orders(v, &format!("{path}[{i}]"), out);
        }
    }
}

/// Stricter than the corpus asks: the bodies as sent keep the reference's key order, member by
/// member, mapping-defined attributes included. The expected order is read from the corpus text
/// itself, which keeps the order the reference wrote.
#[test]
fn send_bodies_keep_the_reference_key_order() {
    let mut compared = 0;
    for_each_send_case(|path, text, _, bodies| {
        let file = rokt_capi::Json::parse(text).unwrap();
        let expected = file
            .get("expected")
            .and_then(|e| e.get("requests"))
            .and_then(|r| r.as_array())
            .unwrap_or_default();
        for (e, body) in expected.iter().zip(bodies) {
            let (mut want, mut got) = (Vec::new(), Vec::new());
            key_orders(e.get("body").unwrap(), "$", &mut want);
            let body = rokt_capi::Json::parse_slice(body).unwrap();
            key_orders(&body, "$", &mut got);
            assert_eq!(got, want, "{}", path.display());
            compared += 1;
        }
    });
    assert!(compared >= 20, "request bodies compared: {compared}");
}

/// Runs `f` on every send case the library answers: its path, its text, the case, and the
/// request bodies as sent.
fn for_each_send_case(mut f: impl FnMut(&Path, &str, &Value, &[Vec<u8>])) {
    let dir = corpus_dir().join("send");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("no corpus at {}", dir.display());
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let case: Value = serde_json::from_str(&text).unwrap();
        if let Ok((_, bodies)) = run_send_case_with_bodies(&case, &text) {
            f(&path, &text, &case, &bodies);
        }
    }
}

/// JSON text without the white space between tokens, and each string spelled as
/// `JSON.stringify` spells it (the corpus files may escape what it writes raw). Numbers and
/// key order stay as written.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\n' | '\r' | '\t' => {}
            '"' => {
                let mut s = String::from('"');
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => s.push_str(&format!("\\{}", chars.next().unwrap())),
                        c => s.push(c),
                    }
                }
                s.push('"');
                let value: String = serde_json::from_str(&s).unwrap();
                out.push_str(&stringify_string(&value));
            }
            c => out.push(c),
        }
    }
    out
}

/// `JSON.stringify` of a string.
fn stringify_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Stricter still: every body as sent is, byte for byte, one of the expected bodies written
/// compactly — JavaScript's number spelling (`100`, not `1E2` or `100.0`; `1e+21`), its key
/// order, and its string escapes.
#[test]
fn send_bodies_are_the_reference_bytes() {
    let mut compared = 0;
    for_each_send_case(|path, text, case, bodies| {
        let expected = case["expected"]["requests"].as_array().map_or(0, Vec::len);
        assert_eq!(bodies.len(), expected, "{}", path.display());
        let file = compact(text);
        for body in bodies {
            let body = std::str::from_utf8(body).unwrap();
            assert!(
                file.contains(&format!("\"body\":{body}")),
                "{}: the body sent is not the expected text:\n{body}",
                path.display()
            );
            compared += 1;
        }
    });
    assert!(compared >= 50, "request bodies compared: {compared}");
}
