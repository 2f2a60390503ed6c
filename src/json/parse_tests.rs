//! The fast parser against serde_json: whenever it answers, the answer must be exactly
//! `serde_json::from_str::<Json>`'s, and on ordinary events it must answer.

use super::Json;
use super::parse::parse;
use proptest::prelude::*;
use std::borrow::Cow;

/// Equal values with the same representation: `==` alone would let `0` pass for `0.0`, `-0.0`
/// for `0.0`, or an owned string for a borrowed one.
fn same(a: &Json<'_>, b: &Json<'_>) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::Number(x), Json::Number(y)) => {
            x.as_u64() == y.as_u64()
                && x.as_i64() == y.as_i64()
                && x.is_f64() == y.is_f64()
                && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        (Json::Str(x), Json::Str(y)) => same_str(x, y),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| same_str(kx, ky) && same(vx, vy))
        }
        _ => false,
    }
}

// The `Cow` itself is the point: borrowed or owned must match too.
#[allow(clippy::ptr_arg)]
fn same_str(x: &Cow<'_, str>, y: &Cow<'_, str>) -> bool {
    x == y && matches!(x, Cow::Borrowed(_)) == matches!(y, Cow::Borrowed(_))
}

/// Whether the fast parser answered; panics if its answer differs from serde_json's.
fn agrees(text: &str) -> bool {
    let Some(fast) = parse(text) else {
        return false;
    };
    match serde_json::from_str::<Json<'_>>(text) {
        Ok(slow) => assert!(
            same(&fast, &slow),
            "fast and serde_json differ on {text:?}: {:?} vs {:?}",
            fast.to_value(),
            slow.to_value()
        ),
        Err(e) => panic!("fast parser accepted {text:?}, serde_json says {e}"),
    }
    let public = Json::parse(text).expect("Json::parse accepts it too");
    assert!(same(&public, &fast));
    true
}

fn accepts(text: &str) {
    assert!(agrees(text), "fast parser declined {text:?}");
}

fn declines(text: &str) {
    assert!(parse(text).is_none(), "fast parser accepted {text:?}");
    // Json::parse falls back to serde_json, error or value alike.
    match (Json::parse(text), serde_json::from_str::<Json<'_>>(text)) {
        (Ok(a), Ok(b)) => assert!(same(&a, &b)),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("Json::parse and serde_json disagree on {text:?}"),
    }
}

#[test]
fn example_events_take_the_fast_path() {
    let events = include_str!("../../examples/data/events.ndjson");
    let (mut valid, mut invalid) = (0, 0);
    for line in events.lines().filter(|l| !l.trim().is_empty()) {
        // The file also holds a line that is not JSON, to show how the examples report it.
        if serde_json::from_str::<Json<'_>>(line).is_ok() {
            accepts(line);
            valid += 1;
        } else {
            declines(line);
            invalid += 1;
        }
    }
    assert!(valid > 5 && invalid > 0);
}

#[test]
fn conformance_files_and_their_parts_take_the_fast_path() {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    fn parts(v: &serde_json::Value) {
        match v {
            serde_json::Value::Array(items) => items.iter().for_each(parts),
            serde_json::Value::Object(map) => map.values().for_each(parts),
            _ => return,
        }
        accepts(&serde_json::to_string(v).unwrap());
        accepts(&serde_json::to_string_pretty(v).unwrap());
    }
    let mut paths = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    files(&root, &mut paths);
    assert!(paths.len() > 10, "the conformance corpus is there");
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        // The number-spelling case writes numbers past the fast parser's exact range
        // (`1e21`, `1.5e300`) on purpose: those go to serde_json, which must read them.
        if path.ends_with("send/50-js-number-spelling.json") {
            assert!(!agrees(&text) && Json::parse(&text).is_ok());
            continue;
        }
        accepts(&text);
        parts(&serde_json::from_str(&text).unwrap());
    }
}

#[test]
fn edge_cases_that_take_the_fast_path() {
    for text in [
        "0",
        "-0",
        "-0.0",
        "0.0",
        "-1",
        "18446744073709551615",
        "9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",
        "-18446744073709551615",
        "1.5",
        "-1.5",
        "0.05",
        "129.99",
        "1e22",
        "1E+22",
        "1e-22",
        "1.5e-7",
        "12.5e3",
        "1e007",
        "0e0",
        "-0e-5",
        "9007199254740991",
        "900719925474099.1",
        "0.9007199254740991",
        "123456789012345e-10",
        "0.1",
        "true",
        "false",
        "null",
        r#""""#,
        r#""plain""#,
        r#""\u00e9\u00E9\u20ac""#,
        r#""\u0000""#,
        r#""\"\\\/\b\f\n\r\t""#,
        r#""a\nb\"c""#,
        "\"\u{7f}\u{e9}\u{1F600}\"",
        r#""\uFFFF\uE000\uD7FF""#,
        " \t\n\r[1] \r\n\t ",
        "{}",
        "[]",
        "[ ]",
        "{ }",
        "[[],{},[{}]]",
        r#"{"k":1,"k":2}"#,
        r#"{ "a" : [ 1 , 2 ] , "b" : { } }"#,
        r#"{"a\u0062":"x","ab":"y"}"#,
    ] {
        accepts(text);
    }
    let doc = parse("-0").unwrap();
    assert!(doc.as_f64().unwrap().is_sign_negative());
    let doc = parse(r#"{"k":1,"k":2}"#).unwrap();
    assert_eq!(doc.as_object().unwrap().len(), 2);
    assert_eq!(doc.get("k").and_then(Json::as_f64), Some(2.0));
}

#[test]
fn invalid_or_unusual_input_goes_to_serde_json() {
    for text in [
        "",
        " ",
        "\u{feff}{}",
        r#"{"a":1,}"#,
        "[1,]",
        "[,1]",
        "[1 2]",
        r#"{"a" 1}"#,
        r#"{"a":}"#,
        r#"{a:1}"#,
        "{1:2}",
        r#"{"a":1}}"#,
        "[1]]",
        "[",
        "{",
        r#"{"a":1"#,
        "1 2",
        "{} x",
        "\u{c}1",
        "[1,\u{b}2]",
        "{\"a\":\u{a0}1}",
        "1\u{3000}",
        "[]\u{0}",
        "nul",
        "nulll",
        "True",
        "[01]",
        "00",
        "-01",
        "-",
        "+1",
        "1.",
        ".5",
        "1.e5",
        "1e",
        "1e+",
        "1e-",
        "1.5.3",
        "0x10",
        "NaN",
        "Infinity",
        // Outside the replicated number paths: serde_json's answer stands.
        "18446744073709551616",
        "-92233720368547758090",
        "9007199254740992.0",
        "9007199254740991.0",
        "0.30000000000000004",
        "9007199254740993.5",
        "0.12345678901234567",
        "1e23",
        "1e-23",
        "1.5e400",
        "1e99999999999",
        "0e99999",
        "0.000000000000000000001e-2",
        "\"\u{1}\"",
        "\"a\u{1f}b\"",
        "\"tab\there\"",
        "\"line\nbreak\"",
        r#""\x""#,
        r#""\u12""#,
        r#""\u12G4""#,
        r#""\U0041""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00""#,
        r#""abc"#,
        r#""a\"#,
        "\"",
        r#"{"k\ud800":1}"#,
    ] {
        declines(text);
    }
}

#[test]
fn every_stop_position_in_a_word_is_found() {
    // The string scan reads eight bytes at a time; put each kind of stop at each offset of the
    // first two words and in the byte-at-a-time tail.
    for len in 0..20 {
        let run = "x".repeat(len);
        for tail in ["", "]", " ]   ", "             ]"] {
            let open = if tail.is_empty() { "" } else { "[" };
            accepts(&format!("{open}\"{run}\"{tail}"));
            accepts(&format!("{open}\"{run}\\n{run}\"{tail}"));
            accepts(&format!("{open}\"{run}\\u00e9\"{tail}"));
            accepts(&format!("{open}\"{run}\u{e9}\u{7f}\"{tail}"));
            declines(&format!("{open}\"{run}\u{1f}\"{tail}"));
            declines(&format!("{open}\"{run}\u{0}{run}\"{tail}"));
            declines(&format!("{open}\"{run}\\n{run}\u{1}\"{tail}"));
            declines(&format!("{open}\"{run}{tail}"));
        }
    }
}

#[test]
fn nesting_stops_where_serde_json_does() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    accepts(&nested(127));
    assert!(serde_json::from_str::<Json<'_>>(&nested(128)).is_err());
    declines(&nested(128));
    declines(&nested(200));
    let objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    accepts(&objects(127));
    declines(&objects(128));
    // Depth counts open containers, not siblings.
    accepts(&format!("[{}]", vec![nested(126); 3].join(",")));
}

#[test]
fn parse_slice_matches_from_slice() {
    for bytes in [
        &b"{\"a\":\"b\"}"[..],
        b"{\"a\":\"\xff\"}",
        b"\xff",
        b"[1,]",
        b"\"\\ud800\"",
    ] {
        match (
            Json::parse_slice(bytes),
            serde_json::from_slice::<Json<'_>>(bytes),
        ) {
            (Ok(a), Ok(b)) => assert!(same(&a, &b)),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("parse_slice and from_slice disagree on {bytes:?}"),
        }
    }
}

/// A generated document: leaves are JSON text already, so any spelling (escapes, number forms,
/// duplicate keys) can be written.
#[derive(Clone, Debug)]
enum Doc {
    Leaf(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

const WHITESPACE: [&str; 6] = ["", "", " ", "\n", "\t", " \r\n  "];

fn space(ws: &[usize], at: &mut usize, out: &mut String) {
    if !ws.is_empty() {
        out.push_str(WHITESPACE[ws[*at % ws.len()] % WHITESPACE.len()]);
        *at += 1;
    }
}

fn render(doc: &Doc, ws: &[usize], at: &mut usize, out: &mut String) {
    match doc {
        Doc::Leaf(text) => out.push_str(text),
        Doc::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(ws, at, out);
                render(item, ws, at, out);
                space(ws, at, out);
            }
            out.push(']');
        }
        Doc::Object(pairs) => {
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(ws, at, out);
                out.push_str(key);
                space(ws, at, out);
                out.push(':');
                space(ws, at, out);
                render(value, ws, at, out);
                space(ws, at, out);
            }
            out.push('}');
        }
    }
}

fn text_of(doc: &Doc, ws: &[usize]) -> String {
    let mut out = String::new();
    let mut at = 0;
    if !ws.is_empty() {
        out.push_str(WHITESPACE[ws[0] % WHITESPACE.len()]);
    }
    render(doc, ws, &mut at, &mut out);
    if !ws.is_empty() {
        out.push_str(WHITESPACE[ws[ws.len() - 1] % WHITESPACE.len()]);
    }
    out
}

/// A string literal as serde_json writes it, or with escapes spelled by hand; never a
/// surrogate escape.
fn fast_string() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => any::<char>().prop_map(|c| serde_json::to_string(&c.to_string()).unwrap()),
        2 => "[a-zA-Z0-9 @._-]{1,12}".prop_map(|s| s),
        1 => prop::sample::select(vec![
            r#"\""#, r#"\\"#, r#"\/"#, r#"\b"#, r#"\f"#, r#"\n"#, r#"\r"#, r#"\t"#,
        ])
        .prop_map(str::to_owned),
        1 => (0u32..0x1_0000)
            .prop_filter("not a surrogate", |c| !(0xD800..=0xDFFF).contains(c))
            .prop_flat_map(|c| prop::sample::select(vec![
                format!("\\u{c:04x}"),
                format!("\\u{c:04X}"),
            ])),
    ];
    prop::collection::vec(piece, 0..8)
        .prop_map(|pieces| {
            // serde_json's quoting of single chars, minus the quotes, concatenated.
            let inner: String = pieces
                .iter()
                .map(|p| {
                    if p.starts_with('"') {
                        p[1..p.len() - 1].to_owned()
                    } else {
                        p.clone()
                    }
                })
                .collect();
            format!("\"{inner}\"")
        })
        .boxed()
}

/// Numbers inside the replicated paths: any integer, and decimals of at most 15 digits (counting
/// the `.0` serde_json prints after whole floats) with a small exponent, printed by serde_json or
/// spelled by hand.
fn fast_number() -> BoxedStrategy<String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000_000_000_000, 0i32..=10, any::<bool>()).prop_map(|(m, k, neg)| {
            let f = m as f64 / 10f64.powi(k);
            serde_json::to_string(&if neg { -f } else { f }).unwrap()
        }),
        (
            any::<bool>(),
            0u64..100_000_000,
            "[0-9]{1,7}",
            prop::option::of(("[eE]", "[+-]?", 0u32..=8))
        )
            .prop_map(|(neg, int, frac, exp)| {
                let sign = if neg { "-" } else { "" };
                let exp = exp.map_or(String::new(), |(e, s, n)| format!("{e}{s}{n}"));
                format!("{sign}{int}.{frac}{exp}")
            }),
    ]
    .boxed()
}

fn fast_leaf() -> BoxedStrategy<String> {
    prop_oneof![
        1 => prop::sample::select(vec!["null", "true", "false"]).prop_map(str::to_owned),
        3 => fast_number(),
        3 => fast_string(),
    ]
    .boxed()
}

/// Anything: numbers of every spelling and size (valid or not), surrogate escapes, raw
/// control characters.
fn any_leaf() -> BoxedStrategy<String> {
    prop_oneof![
        2 => fast_leaf(),
        1 => any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
        1 => "-?[0-9]{1,25}(\\.[0-9]{0,25})?([eE][+-]?[0-9]{0,4})?".prop_map(|s| s),
        1 => (0xD000u32..0xE000, prop::option::of(0xD000u32..0xE000)).prop_map(|(a, b)| {
            let b = b.map_or(String::new(), |b| format!("\\u{b:04x}"));
            format!("\"x\\u{a:04x}{b}y\"")
        }),
        1 => "\"[a\u{0}-\u{1f}\"\\\\]{0,4}\"".prop_map(|s| s),
    ]
    .boxed()
}

fn doc(leaf: BoxedStrategy<String>, key: BoxedStrategy<String>) -> impl Strategy<Value = Doc> {
    leaf.prop_map(Doc::Leaf)
        .prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Doc::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(Doc::Object),
            ]
        })
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        // Few distinct names, so keys repeat.
        prop::sample::select(vec!["\"a\"", "\"type\"", "\"a\\u0062\"", "\"ab\""])
            .prop_map(str::to_owned),
        fast_string(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn generated_documents_take_the_fast_path(
        doc in doc(fast_leaf(), key()),
        ws in prop::collection::vec(0usize..6, 0..8),
    ) {
        let text = text_of(&doc, &ws);
        prop_assert!(agrees(&text), "fast parser declined {:?}", text);
    }

    #[test]
    fn anything_parsed_is_what_serde_json_parses(
        doc in doc(any_leaf(), key()),
        ws in prop::collection::vec(0usize..6, 0..8),
    ) {
        agrees(&text_of(&doc, &ws));
    }

    #[test]
    fn mutated_documents_are_declined_or_agree(
        doc in doc(fast_leaf(), key()),
        ws in prop::collection::vec(0usize..6, 0..4),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), 0u8..4, prop_oneof![
                prop::sample::select(b"\"\\{}[],:0123456789.eE+-tfnu \t\n\r\x0b\x0c\x00\x1f".to_vec()),
                any::<u8>(),
            ]),
            1..4,
        ),
    ) {
        let mut bytes = text_of(&doc, &ws).into_bytes();
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 if i < bytes.len() => {
                    bytes.remove(i);
                }
                2 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        agrees(&String::from_utf8_lossy(&bytes));
    }
}
