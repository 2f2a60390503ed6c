use super::*;
use crate::Json;
use crate::segment::Event;
use proptest::prelude::*;
use serde_json::{Value, json};

fn parse(source: &str) -> Trigger {
    Trigger::parse(source).unwrap_or_else(|e| panic!("{source:?} should parse: {e}"))
}

fn matches(source: &str, event: Value) -> bool {
    parse(source).matches(&event)
}

#[derive(serde::Deserialize)]
struct ConformanceCase {
    condition: String,
    event: Value,
    expected: bool,
}

#[test]
fn conformance_cases_all_pass() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/subscriptions/cases.json"
    );
    let text = std::fs::read_to_string(path).expect("conformance cases");
    let cases: Vec<ConformanceCase> = serde_json::from_str(&text).expect("cases.json");
    assert_eq!(cases.len(), 85);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let got = Trigger::parse(&case.condition).map(|t| t.matches(&case.event));
            (got != Ok(case.expected))
                .then(|| format!("{:?} on {}: {got:?}", case.condition, case.event))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 85 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A corpus of random and mutated triggers with the reference's verdict on a fixed set of
/// events, produced by running `@segment/destination-subscriptions` 3.37 under Node 20 with
/// `gen_reference_corpus.js` (next to this file):
/// `E` is a parse error, otherwise one letter per event: `t` match, `f` no match, `x` the
/// reference threw (which drops the event, so it must not match).
#[derive(serde::Deserialize)]
struct Corpus {
    events: Vec<Value>,
    cases: Vec<(String, String)>,
}

fn corpus_failures(corpus: &Corpus) -> Vec<String> {
    let texts: Vec<String> = corpus.events.iter().map(Value::to_string).collect();
    let forms: Vec<(Json<'_>, Option<Event>)> = texts
        .iter()
        .zip(&corpus.events)
        .map(|(text, event)| {
            let doc = Json::parse(text).expect("corpus events are JSON");
            (doc, Event::from_value(event.clone()).ok())
        })
        .collect();
    let mut failures = Vec::new();
    for (condition, verdict) in &corpus.cases {
        match (Trigger::parse(condition), verdict.as_str()) {
            (Err(_), "E") => {}
            (Ok(t), "E") => failures.push(format!("{condition:?} parsed as {:?}", t.condition())),
            (Err(e), _) => failures.push(format!("{condition:?} failed to parse: {e}")),
            (Ok(t), letters) => {
                for ((event, forms), letter) in
                    corpus.events.iter().zip(&forms).zip(letters.chars())
                {
                    // The event as a `Value`, as parsed text and (where it is one) as a typed
                    // event: each form is read in place, and all must agree.
                    let (doc, typed) = forms;
                    let verdicts = [
                        Some(t.matches(event)),
                        Some(t.matches(doc)),
                        typed.as_ref().map(|typed| t.matches(typed)),
                    ];
                    if verdicts.iter().flatten().any(|&v| v != (letter == 't')) {
                        failures.push(format!(
                            "{condition:?} on {event}: expected {letter}, got {verdicts:?} \
                             (value, text, typed), parsed as {:?}",
                            t.condition()
                        ));
                    }
                }
            }
        }
    }
    failures
}

#[test]
fn agrees_with_reference_corpus() {
    let corpus: Corpus =
        serde_json::from_str(include_str!("reference_corpus.json")).expect("corpus");
    assert!(corpus.cases.len() >= 2000);
    let failures = corpus_failures(&corpus);
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs a larger corpus in the same format, e.g. one made with a different seed.
#[test]
#[ignore = "needs TRIGGER_CORPUS=<path to a corpus json>"]
fn agrees_with_corpus_from_env() {
    let path = std::env::var("TRIGGER_CORPUS").expect("TRIGGER_CORPUS");
    let corpus: Corpus =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("corpus");
    let failures = corpus_failures(&corpus);
    let shown: Vec<&String> = failures.iter().take(40).collect();
    assert!(
        failures.is_empty(),
        "{} disagreements, first:\n{shown:#?}",
        failures.len()
    );
}

/// Edge cases with the reference's answers (from Node); `None` is a parse error. Where the
/// reference throws while evaluating, the event is dropped, hence `Some(false)`.
#[test]
fn quirks_match_reference() {
    let cases: &[(&str, &str, Option<bool>)] = &[
        (r#"!(type = "page")"#, r#"{"type":"page"}"#, Some(true)),
        (r"userId = a\", r#"{"userId":"a"}"#, Some(true)),
        (
            r"properties.\é = 1",
            r#"{"properties":{"é":1}}"#,
            Some(true),
        ),
        (r#"event = "😀""#, r#"{"event":"😀"}"#, Some(true)),
        (r#"!(type = "page")"#, r#"{"type":"track"}"#, Some(false)),
        (r"type =", r#"{"type":"eos"}"#, Some(true)),
        (r#"type = "a" and ()"#, r#"{"type":"a"}"#, Some(false)), // reference throws
        (r#"() or type = "a""#, r#"{"type":"a"}"#, Some(false)),  // reference throws
        (r"() ()", r#"{"type":"a"}"#, Some(false)),               // reference throws
        (r"type = 'a'", r#"{"type":"'a'"}"#, Some(true)),
        (r"type = 'a'", r#"{"type":"a"}"#, Some(false)),
        (
            r#"type = "a" AND event = "x""#,
            r#"{"type":"a","event":"y"}"#,
            Some(false),
        ),
        (
            r#"type = "a" and event = "x" or event = "y""#,
            r#"{"type":"b","event":"y"}"#,
            Some(true),
        ),
        (
            r#"(type = "a" or type = "b") and event = "x""#,
            r#"{"type":"a","event":"y"}"#,
            Some(false),
        ),
        (
            r#"(contains(event, "x") or type = "y") and userId = "u""#,
            r#"{"type":"y","event":"x","userId":"v"}"#,
            Some(false),
        ),
        (
            r#"constructor = 1 and type = "a""#,
            r#"{"type":"a"}"#,
            Some(true),
        ),
        (
            r"properties.a.b = 0",
            r#"{"properties":{"a":0}}"#,
            Some(true),
        ),
        (
            r"properties.a.b = false",
            r#"{"properties":{"a":false}}"#,
            Some(true),
        ),
        (
            r"properties.x = false",
            r#"{"properties":false}"#,
            Some(true),
        ),
        (
            r"properties.\. = 0",
            r#"{"properties":{"a":0}}"#,
            Some(false),
        ), // reference throws
        (
            r"properties.a.length = 3",
            r#"{"properties":{"a":"xyz"}}"#,
            Some(true),
        ),
        (
            r"properties.a.length = 2",
            r#"{"properties":{"a":[1,2]}}"#,
            Some(true),
        ),
        (
            r#"properties.a.\1 = "y""#,
            r#"{"properties":{"a":"xyz"}}"#,
            Some(true),
        ),
        (
            r"properties.a.\1.b = 2",
            r#"{"properties":{"a":[{"b":1},{"b":2}]}}"#,
            Some(true),
        ),
        (
            r"properties.a.\01.b = 2",
            r#"{"properties":{"a":[{"b":1},{"b":2}]}}"#,
            Some(false),
        ),
        (
            r"properties.constructor != null",
            r#"{"properties":{}}"#,
            Some(true),
        ),
        (
            r"properties.a.toFixed != null",
            r#"{"properties":{"a":5}}"#,
            Some(true),
        ),
        (
            r"properties.a.map != null",
            r#"{"properties":{"a":[]}}"#,
            Some(true),
        ),
        (
            r"properties.a.toUpperCase != null",
            r#"{"properties":{"a":"s"}}"#,
            Some(true),
        ),
        (
            r"properties.a.toUpperCase != null",
            r#"{"properties":{"a":""}}"#,
            Some(true),
        ),
        (
            r#"contains(type, "a") and event = "x""#,
            r#"{"event":"x"}"#,
            Some(true),
        ),
        (r#"event="x""#, r#"{"event":"x"}"#, Some(true)),
        (
            r#"properties.x contains "a""#,
            r#"{"properties":{"x":"bab"}}"#,
            Some(true),
        ),
        (
            r#"match(event, "😀abc")"#,
            r#"{"event":"𐘀abc"}"#,
            Some(true),
        ),
        (
            r#"match(event, "😀abc")"#,
            r#"{"event":"xabc"}"#,
            Some(false),
        ),
        (
            r#"!match(event, "😀abc")"#,
            r#"{"event":"xabc"}"#,
            Some(true),
        ),
        (r#"match(event, "abc")"#, r#"{"event":"xbc"}"#, Some(true)),
        (
            r#"match(event, "*")"#,
            r#"{"event":"anything"}"#,
            Some(true),
        ),
        (r"match(event, 'Or*')", r#"{"event":"Or*'"}"#, Some(true)),
        (r"event = an", r#"{"event":"a"}"#, Some(true)),
        (r"event = ab", r#"{"event":"a"}"#, Some(true)),
        (r"event = ab ", r#"{"event":"ab"}"#, Some(true)),
        (r"event = 007", r#"{"event":"7"}"#, Some(true)),
        (
            r#"properties.x > "0x10""#,
            r#"{"properties":{"x":17}}"#,
            Some(true),
        ),
        (
            r"properties.x > true",
            r#"{"properties":{"x":2}}"#,
            Some(true),
        ),
        (
            r#"properties.x = "5""#,
            r#"{"properties":{"x":5}}"#,
            Some(false),
        ),
        (r"properties.x = 5", r#"{"properties":{"x":5}}"#, Some(true)),
        (r"properties.x != 5", r#"{"properties":{}}"#, Some(false)),
        (r#"properties.x != "5""#, r#"{"properties":{}}"#, Some(true)),
        (
            r"properties.x != true",
            r#"{"properties":{"x":true}}"#,
            Some(true),
        ),
        (r"event = null", r#"{"event":"null"}"#, Some(true)),
        (r"event != null", r"{}", Some(true)),
        (r"name = null", r"{}", Some(true)),
        (r"userId = true", r#"{"userId":true}"#, Some(true)),
        (r"type = true", r#"{"type":"true"}"#, Some(true)),
        (r#"!contains(event, "x")"#, r#"{"event":"abc"}"#, Some(true)),
        (r#"!contains(event, "x")"#, r"{}", Some(false)),
        (r#"event = "a\"b""#, r#"{"event":"a\\"}"#, Some(true)),
        (r#"type = "track""#, r"null", Some(false)), // reference throws
        (r#"type = "track""#, r#""track""#, Some(false)),
        (
            r"properties.\ x = 1",
            r#"{"properties":{" x":1}}"#,
            Some(true),
        ),
        (
            r#"contains(propertiesfoo, "a")"#,
            r#"{"properties":{"propertiesfoo":"a"}}"#,
            Some(true),
        ),
        (
            r"properties.123 = 1",
            r#"{"properties":{"123":1}}"#,
            Some(false),
        ),
        (
            r"properties.x = -",
            r#"{"properties":{"x":"NaN"}}"#,
            Some(false),
        ),
        (
            r"properties.x < 10 and properties.x > -1.5",
            r#"{"properties":{"x":0}}"#,
            Some(true),
        ),
        (
            r#"type = "a"
and event = "b""#,
            r#"{"type":"a","event":"b"}"#,
            Some(true),
        ),
        (r#"event = "a"b""#, r#"{"event":"b"}"#, Some(false)),
        (
            r"traits.x = 1 or traits.y = 1",
            r#"{"traits":{"y":1}}"#,
            Some(true),
        ),
        (
            r"context.a.b >= 2",
            r#"{"context":{"a":{"b":2}}}"#,
            Some(true),
        ),
        (
            r"properties.x = 1",
            r#"{"properties":{"x":2}}"#,
            Some(false),
        ),
        (
            r"properties.__proto__ != null",
            r#"{"properties":{}}"#,
            Some(true),
        ),
        (r"userId = null or userId != null", r"{}", Some(true)),
        (r"all", r"{}", None),
        (r#"type = "a" or"#, r#"{"type":"a"}"#, Some(true)),
        (
            r"properties.x <=5",
            r#"{"properties":{"x":5}}"#,
            Some(false),
        ),
        (
            r"properties.x >= 5 ",
            r#"{"properties":{"x":5}}"#,
            Some(true),
        ),
        (
            r#"type = "x" and !type = "y""#,
            r#"{"type":"x"}"#,
            Some(false),
        ),
    ];
    let mut failures = Vec::new();
    for &(condition, event, expected) in cases {
        let event: Value = serde_json::from_str(event).expect("event json");
        let got = Trigger::parse(condition).ok().map(|t| t.matches(&event));
        if got != expected {
            failures.push(format!(
                "{condition:?} on {event}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bang_is_dropped_except_before_functions() {
    assert_eq!(
        parse(r#"!(type = "page")"#).condition(),
        parse(r#"type = "page""#).condition()
    );
    assert_eq!(
        parse(r#"!contains(event, "x")"#).condition(),
        &Condition::Test {
            field: Field::Event,
            test: Test::NotContains("x".into())
        }
    );
}

#[test]
fn last_conjunction_decides_a_level() {
    let t = parse(r#"type = "a" and event = "x" or event = "y""#);
    assert!(matches!(t.condition(), Condition::Or(children) if children.len() == 3));
    let t = parse(r#"(type = "a" or type = "b") and event = "x""#);
    let Condition::And(children) = t.condition() else {
        panic!("{:?}", t.condition())
    };
    assert!(matches!(&children[0], Condition::Or(inner) if inner.len() == 2));
}

#[test]
fn ast_of_typical_triggers() {
    assert_eq!(
        parse(r#"properties.revenue > 10"#).condition(),
        &Condition::Test {
            field: Field::Property("revenue".into()),
            test: Test::GreaterThan(10.0)
        }
    );
    assert_eq!(
        parse("context.traits.email != null").condition(),
        &Condition::Test {
            field: Field::Context("traits.email".into()),
            test: Test::Exists
        }
    );
    assert_eq!(
        parse(r#"match(event, "Order*")"#).condition(),
        &Condition::Test {
            field: Field::Event,
            test: Test::StartsWith("Order".into())
        }
    );
    assert_eq!(
        parse(r#"match(event, "*Started")"#).condition(),
        &Condition::Test {
            field: Field::Event,
            test: Test::EndsWith("Started".into())
        }
    );
    assert_eq!(
        parse("properties.gift = true").condition(),
        &Condition::Test {
            field: Field::Property("gift".into()),
            test: Test::IsTrue
        }
    );
    assert_eq!(
        parse("properties.x = 5").condition(),
        &Condition::Test {
            field: Field::Property("x".into()),
            test: Test::NumberEquals(5.0)
        }
    );
    assert_eq!(
        parse("type = 5").condition(),
        &Condition::Test {
            field: Field::Type,
            test: Test::Equals("5".into())
        }
    );
    assert_eq!(
        parse("properties.123 = 1").condition(),
        &Condition::Test {
            field: Field::Property("properties".into()),
            test: Test::Unsupported(".".into())
        }
    );
    assert_eq!(
        parse(r#"type = "a" and ()"#).condition(),
        &Condition::And(vec![
            Condition::Test {
                field: Field::Type,
                test: Test::Equals("a".into())
            },
            Condition::Empty
        ])
    );
    assert_eq!(
        parse(r#"match(event, "😀abc")"#).condition(),
        &Condition::Test {
            field: Field::Event,
            test: Test::EndsWithSplitCharacter {
                low_surrogate: 0xde00,
                rest: "abc".into(),
                negated: false
            }
        }
    );
}

#[test]
fn borrowed_events_keep_the_last_duplicate_key_like_json_parse() {
    let text = r#"{"properties": {"x": 1, "x": 2}}"#;
    let event: crate::Json<'_> = serde_json::from_str(text).expect("json");
    assert!(!parse("properties.x = 1").matches(&event));
    assert!(parse("properties.x = 2").matches(&event));
}

#[test]
fn parse_errors_say_what_and_where() {
    let cases: &[(&str, &str, usize, usize, usize)] = &[
        // (source, message starts with, byte offset, line, column)
        (r#"type = "track"#, "unterminated string", 7, 1, 8),
        (
            r#"event!="x""#,
            "expected `=` and then a space after `!`",
            5,
            1,
            6,
        ),
        (
            "properties.revenue>10",
            "unexpected `>` after `revenue`",
            18,
            1,
            19,
        ),
        (r#"(type = "a""#, "`(` is never closed", 0, 1, 1),
        (r#"((type = "a"))"#, "parentheses cannot be nested", 1, 1, 2),
        (r#"foo = "bar""#, "found no condition", 0, 1, 1),
        ("", "found no condition", 0, 1, 1),
        ("()", "found no condition", 0, 1, 1),
        ("all", "found no condition", 0, 1, 1),
        (
            "type = 1.",
            "expected a digit after the decimal point",
            8,
            1,
            9,
        ),
        (
            "type = 1.2.3",
            "a number has more than one decimal point",
            10,
            1,
            11,
        ),
        ("type # 1", "unexpected character `#`", 5, 1, 6),
        (
            "type",
            "expected an operator and a value after `type`",
            4,
            1,
            5,
        ),
        // (`userId = a\` parses: `a` starts a lookahead for `and` that swallows the `\`.)
        ("userId = b\\", "expected a character after `\\`", 10, 1, 11),
        ("type = \"a\"\nand é", "unexpected character `é`", 15, 2, 5),
        ("contains(", "contains() is missing a 2nd argument", 0, 1, 1),
        ("match", "match() is missing a 1st argument", 0, 1, 1),
        (
            "properties.`a b` = 1",
            "unexpected character `` ` ``",
            11,
            1,
            12,
        ),
        ("properties.\\😀 = 1", "unexpected `😀` after `", 12, 1, 13),
    ];
    for &(source, message, offset, line, column) in cases {
        let err = Trigger::parse(source).expect_err(source);
        assert!(
            err.message.starts_with(message),
            "{source:?}: {:?} should start with {message:?}",
            err.message
        );
        assert_eq!(
            (err.offset, err.line, err.column),
            (offset, line, column),
            "{source:?}: {err}"
        );
    }
    let err = Trigger::parse("type # 1").expect_err("#");
    assert_eq!(err.to_string(), "unexpected character `#` at column 6");
    let err = Trigger::parse("type = \"a\"\nand é").expect_err("é");
    assert_eq!(
        err.to_string(),
        "unexpected character `é` at line 2, column 5"
    );
}

#[test]
fn strings_are_capped_like_the_reference() {
    let long = format!("event = \"{}\"", "a".repeat(99_999));
    assert!(Trigger::parse(&long).is_ok());
    let too_long = format!("event = \"{}\"", "a".repeat(100_000));
    assert!(Trigger::parse(&too_long).is_err());
}

#[test]
fn js_number_conversions_match_node() {
    use crate::js::{f64_to_string as number_to_string, string_to_number};
    let cases: &[(&str, f64)] = &[
        ("  12  ", 12.0),
        ("0x1F", 31.0),
        ("", 0.0),
        (" \u{a0} ", 0.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("Infinity", f64::INFINITY),
        ("-Infinity", f64::NEG_INFINITY),
        ("0b101", 5.0),
        ("0o17", 15.0),
        ("0X10", 16.0),
        ("0x20000000000001", 9_007_199_254_740_992.0),
        ("0x20000000000003", 9_007_199_254_740_996.0),
        ("0x1fffffffffffff8", 144_115_188_075_855_870.0),
        ("1e400", f64::INFINITY),
        ("+.5", 0.5),
        ("\n7\t", 7.0),
        ("00012", 12.0),
        ("\u{feff}5", 5.0),
    ];
    for &(s, n) in cases {
        assert_eq!(string_to_number(s), n, "{s:?}");
    }
    for s in [
        "1_0", "-0x10", "infinity", "0x", "-", "+", "1.2.3", "1e", "abc", "nan", "inf",
    ] {
        assert!(string_to_number(s).is_nan(), "{s:?}");
    }
    let printed: &[(f64, &str)] = &[
        (-0.0, "0"),
        (1e21, "1e+21"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.5, "1.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
        (123_456_789_012_345_680_000.0, "123456789012345680000"),
        (1e-7, "1e-7"),
        (5e-324, "5e-324"),
        (100.0, "100"),
    ];
    for &(n, s) in printed {
        assert_eq!(number_to_string(n), s, "{n}");
    }
}

#[test]
fn all_matches_everything_and_is_accepted_by_the_parser() {
    let all = Trigger::all();
    assert_eq!(
        Trigger::parse(all.as_str()).expect("parses").condition(),
        all.condition()
    );
    for event in [
        json!({}),
        json!({"userId": "u"}),
        json!({"userId": null}),
        json!({"type": "track"}),
    ] {
        assert!(all.matches(&event), "{event}");
    }
}

#[test]
fn text_round_trips() {
    let source =
        r#"type = "track" and (event = "Order Completed" or event = "Subscription Started")"#;
    let t: Trigger = source.parse().expect("parses");
    assert_eq!(t.as_str(), source);
    assert_eq!(t.to_string(), source);
    assert_eq!(t, parse(source));
    assert_ne!(t, parse(r#"type = "track""#));
    let nan = parse("properties.x < -");
    assert_eq!(nan, nan.clone());
    assert!(format!("{t:?}").contains("Order Completed"));
}

#[test]
fn serde_uses_the_source_text() {
    let t = parse(r#"type = "track""#);
    let json = serde_json::to_string(&t).expect("serialize");
    assert_eq!(json, r#""type = \"track\"""#);
    let back: Trigger = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, t);
    let err = serde_json::from_str::<Trigger>(r#""type = \"track""#).expect_err("invalid");
    assert!(
        err.to_string().contains("unterminated string at column 8"),
        "{err}"
    );
    assert!(serde_json::from_str::<Trigger>("5").is_err());
    #[derive(serde::Deserialize)]
    struct Mapping {
        trigger: Trigger,
    }
    let m: Mapping =
        serde_json::from_value(json!({"trigger": "event = \"x\""})).expect("owned string");
    assert!(m.trigger.matches(json!({"event": "x"})));
}

#[test]
fn conformance_runner_style_call() {
    fn run(cond: &str, event: &Value) -> Result<bool, TriggerError> {
        Ok(Trigger::parse(cond)?.matches(event))
    }
    assert_eq!(
        run(r#"type = "track""#, &json!({"type": "track"})),
        Ok(true)
    );
    assert!(run(r#"type = "track"#, &json!({})).is_err());
    assert!(matches(r#"event = "x""#, json!({"event": "x"})));
}

fn sample_events() -> Vec<Value> {
    vec![
        json!({}),
        Value::Null,
        json!("track"),
        json!({"type": "track", "event": "Order Completed", "userId": "u",
               "properties": {"revenue": 10, "s": "a😀b", "items": [{"a": 0}], "z": 0, "f": false},
               "traits": {"t": true}, "context": {"page": {"url": "x"}}}),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(source in any::<String>()) {
        if let Ok(t) = Trigger::parse(&source) {
            for event in sample_events() {
                let _ = t.matches(&event);
            }
        }
    }

    #[test]
    fn trigger_like_text_never_panics_and_round_trips(
        source in r#"([ a-zA-Z0-9_().,!=<>"'\\*\[\]+\-😀é\n]|type|event|properties\.|traits\.|context\.|userId|name| and | or |contains\(|match\(|null|true|false| = | != ){0,24}"#
    ) {
        match Trigger::parse(&source) {
            Ok(t) => {
                prop_assert_eq!(t.as_str(), source.as_str());
                let again = Trigger::parse(&t.to_string()).expect("reparses");
                prop_assert_eq!(&again, &t);
                for event in sample_events() {
                    let _ = t.matches(&event);
                }
            }
            Err(e) => {
                prop_assert!(e.offset <= source.len());
                prop_assert!(source.is_char_boundary(e.offset));
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}

/// The strict error for `source`, which the reference accepts.
fn strict_error(source: &str) -> String {
    let lenient = parse(source);
    match lenient.check_strict() {
        Err(e) => e.to_string(),
        Ok(()) => panic!("{source:?} should be refused strictly"),
    }
}

#[test]
fn strict_loading_refuses_what_segment_accepts_but_means_otherwise() {
    let cases = [
        (r#"type = "track" and"#, "ends after `and`"),
        (r#"type = "track" or "#, "ends after `or`"),
        (r#"(type = "track" and)"#, "group ends after `and`"),
        ("type =", "`type =` has no value"),
        (r#"type = "track" ) "#, "a `)` without its `(`"),
        (r#"type = "track" and typ = "x""#, "`typ` is not a field"),
        (
            r#"type = "track" AND event = "A""#,
            "`AND` is not a conjunction",
        ),
        (
            r#"type = "a" and event = "b" or event = "c""#,
            "mixed at one level",
        ),
        (r#"!(type = "page")"#, "`!` negates only"),
        ("type = 'track'", "single-quoted"),
        ("type = track", "must be followed by a double-quoted string"),
        (
            r#"event = "A" and contains(type, "tr")"#,
            "cannot test `type`",
        ),
        (r#"match(event, "Order")"#, "must start or end with `*`"),
        ("properties.123 = 1", "`properties` needs a path"),
        (r#"event null "A""#, "unknown operator `null`"),
        (r#"type = "track" ()"#, "expected `and`, `or` or the end"),
        (r#"() or type = "track""#, "an empty `()` group"),
    ];
    for (source, expected) in cases {
        let err = strict_error(source);
        assert!(err.contains(expected), "{source:?}: {err}");
    }
}

#[test]
fn strict_loading_accepts_plain_triggers_unchanged() {
    for source in [
        r#"type = "track""#,
        r#"type = "track" and event = "Order Completed""#,
        r#"type = "track" and (event = "A" or event = "B")"#,
        r#"event = "A" or event = "B" or event = "C""#,
        "properties.total > 10 and properties.total <= 100.5",
        "userId != null and traits.vip = true",
        r#"contains(event, "Order") and !match(context.page.url, "*/checkout")"#,
        r#"match(name, "Home*")"#,
        "context.device.type = null",
        Trigger::all().as_str(),
    ] {
        let strict = Trigger::parse_strict(source)
            .unwrap_or_else(|e| panic!("{source:?} should pass strictly: {e}"));
        assert_eq!(strict, parse(source), "the same trigger either way");
    }
}

#[test]
fn strict_errors_name_no_compared_value() {
    for source in [
        r#"type = "jane@example.com" and"#,
        r#"traits.email = "jane@example.com" AND"#,
        r#"userId = 'jane@example.com'"#,
    ] {
        let err = strict_error(source);
        assert!(!err.contains("jane"), "{source:?}: {err}");
    }
}

#[test]
fn the_reference_corpus_holds_no_trigger_that_strict_loading_changes() {
    // Every conformance condition either parses the same strictly or is refused with a
    // message; none panics, and a trigger that passes strictly still matches as before.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/subscriptions/cases.json"
    );
    let text = std::fs::read_to_string(path).expect("conformance cases");
    let cases: Vec<ConformanceCase> = serde_json::from_str(&text).expect("cases.json");
    let mut passed = 0;
    for case in &cases {
        if let Ok(t) = Trigger::parse_strict(&case.condition) {
            assert_eq!(t.matches(&case.event), case.expected, "{}", case.condition);
            passed += 1;
        }
    }
    assert!(passed > 0);
}

proptest! {
    #[test]
    fn strict_checking_never_panics(source in "[ -~]{0,40}") {
        if let Ok(t) = Trigger::parse(&source) {
            let _ = t.check_strict();
        }
    }
}
