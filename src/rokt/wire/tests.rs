//! The wire serializer against serde_json: every test asserts byte equality.

use super::*;
use crate::rokt::attributes::js_number;
use crate::rokt::{
    AttributeMap, AttributeScalar, AttributeValue, Batch, CustomEvent, CustomEventData,
    CustomEventType, DeviceInfo, Environment, Gender, IntegrationAttributes, RoktIntegration,
    UserAttributes, UserIdentities,
};
use proptest::prelude::*;
use serde::Serialize;
use serde_json::Number;
use std::collections::BTreeMap;

/// Serializes with both and asserts the same bytes (as text first, for a readable diff).
#[track_caller]
fn same<T: ?Sized + Serialize>(value: &T) -> Vec<u8> {
    let ours = to_vec(value).expect("the wire serializer accepts it");
    let theirs = serde_json::to_vec(value).expect("serde_json accepts it");
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(ours, theirs);
    ours
}

/// What `JSON.stringify` writes for the value serde_json writes: the same members, with
/// JavaScript's number spelling and key order (array-index keys first).
fn same_as_stringify<T: ?Sized + Serialize>(value: &T) -> Vec<u8> {
    let ours = to_vec(value).expect("the wire serializer accepts it");
    let theirs = serde_json::to_string(value).expect("serde_json accepts it");
    let mut stringified = String::new();
    let doc: crate::Json<'_> = serde_json::from_str(&theirs).unwrap();
    crate::js::push_json(&mut stringified, &doc);
    assert_eq!(String::from_utf8_lossy(&ours), stringified);
    ours
}

/// serde_json's escaping, one byte at a time (checked against serde_json itself below).
fn reference_escaped(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

/// Both paths: the fast ones and, once they find something to escape, the slow one.
fn escaped(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_contents(&mut out, bytes);
    let mut slow = Vec::new();
    write_escaped(&mut slow, bytes);
    assert_eq!(out, slow, "{bytes:?}");
    out
}

#[test]
fn the_reference_escaper_is_serde_json_s() {
    for c in (0u8..=0x7f).map(char::from).chain(['é', '🎉']) {
        let s = format!("a{c}b");
        let mut quoted = b"\"".to_vec();
        quoted.extend(reference_escaped(s.as_bytes()));
        quoted.push(b'"');
        assert_eq!(quoted, serde_json::to_vec(&s).unwrap(), "{c:?}");
    }
}

#[test]
fn every_control_byte_and_every_special_character() {
    for b in 0u8..0x20 {
        let c = char::from(b);
        same(&c.to_string());
        same(&format!("a{c}b"));
        same(&format!("{c}{c}longer than one word{c}"));
    }
    let all_controls: String = (0u8..0x20).map(char::from).collect();
    same(&all_controls);
    for s in [
        "",
        "\"",
        "\\",
        "/",
        "\u{7f}",
        "a\"b\\c/d\u{7f}e",
        "\\\"\\\"",
        "é",
        "Zoë Müller O'Neil",
        "日本語のテキスト",
        "🎉🎉",
        "emoji 🎉 and \"quotes\" and \\ and \n",
        "\u{2028}\u{2029}\u{feff}\u{10ffff}",
    ] {
        same(s);
    }
}

#[test]
fn escapes_are_found_at_every_offset_across_word_boundaries() {
    let specials = [
        "\0", "\x1f", "\n", "\"", "\\", "é", "🎉", "/", "\u{7f}", " ",
    ];
    for len in 0..40 {
        for pos in 0..=len {
            for special in specials {
                let mut s = "x".repeat(len);
                s.insert_str(pos, special);
                same(&s);
                // And a second one further on, after a clean run.
                s.push_str(&"y".repeat(pos % 9));
                s.push_str(special);
                same(&s);
            }
        }
    }
}

#[test]
fn the_word_scan_agrees_with_a_byte_scan_for_every_pair_of_adjacent_bytes() {
    // Borrows between bytes are where SWAR tricks go wrong: try every byte value next to every
    // other, at every position, in a short slice (padded word only), one of a word and a tail,
    // and one of two whole words.
    for len in [5, 11, 16] {
        let mut bytes = vec![b'a'; len];
        for pos in 0..len - 1 {
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    bytes[pos] = a;
                    bytes[pos + 1] = b;
                    assert_eq!(escaped(&bytes), reference_escaped(&bytes), "{bytes:?}");
                }
            }
            bytes[pos] = b'a';
            bytes[pos + 1] = b'a';
        }
    }
}

#[test]
fn short_slices_load_into_the_low_bytes_padded_with_spaces() {
    let bytes = [1u8, 2, 3, 4, 5, 6, 7];
    for n in 0..8 {
        let mut expected = [b' '; 8];
        expected[..n].copy_from_slice(&bytes[..n]);
        assert_eq!(load_short(&bytes[..n]), u64::from_le_bytes(expected), "{n}");
    }
}

#[test]
fn numbers_are_spelled_as_serde_json_spells_them() {
    same(&[i64::MIN, i64::MAX, 0, -1, 1, 10, -10]);
    same(&[u64::MAX, 0, 9_007_199_254_740_993]);
    same(&[i8::MIN, i8::MAX]);
    same(&[i16::MIN, i16::MAX]);
    same(&[i32::MIN, i32::MAX]);
    same(&[u8::MAX, 0]);
    same(&[u16::MAX]);
    same(&[u32::MAX]);
    same(&[i128::MIN, i128::MAX]);
    same(&[u128::MAX]);
    let floats = [
        0.1,
        1e21,
        1e-7,
        5e-324,
        -0.0,
        0.0,
        1.5e300,
        19.9,
        123_456_789.125,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        1.0,
        -2.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for f in floats {
        let js = match f {
            f if !f.is_finite() => "null".to_owned(),
            0.0 => "0".to_owned(),
            f => ryu_js::Buffer::new().format_finite(f).to_owned(),
        };
        assert_eq!(String::from_utf8(to_vec(&f).unwrap()).unwrap(), js);
    }
    same(&[
        0.1f32,
        1e21f32,
        f32::MAX,
        f32::MIN_POSITIVE,
        -0.0f32,
        f32::NAN,
    ]);
    let numbers: Vec<Number> = floats
        .iter()
        .filter_map(|f| Number::from_f64(*f))
        .chain([Number::from(i64::MIN), Number::from(u64::MAX)])
        .chain(floats.iter().map(|f| js_number(*f)))
        .collect();
    for n in &numbers {
        let ours = String::from_utf8(to_vec(n).unwrap()).unwrap();
        if n.is_f64() {
            assert_eq!(
                ours,
                String::from_utf8(to_vec(&n.as_f64().unwrap()).unwrap()).unwrap()
            );
        } else {
            assert_eq!(ours, n.to_string());
        }
    }
}

/// Floats are written as JavaScript writes them, the spelling the reference's bodies have.
#[test]
fn floats_are_spelled_as_json_stringify_spells_them() {
    for (f, js) in [
        (0.1, "0.1"),
        (1.0, "1"),
        (-1.0, "-1"),
        (-0.0, "0"),
        (100.0, "100"),
        (2000.0, "2000"),
        (4.1555501e9, "4155550100"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (5e-324, "5e-324"),
        (123_456_789.125, "123456789.125"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::NAN, "null"),
        (f64::NEG_INFINITY, "null"),
    ] {
        assert_eq!(String::from_utf8(to_vec(&f).unwrap()).unwrap(), js, "{f:e}");
    }
}

#[test]
fn empty_and_nested_collections() {
    same(&AttributeMap::new());
    same(&Vec::<AttributeScalar>::new());
    same(&AttributeValue::<String>::List(vec![]));
    same(&Batch::<String>::default());
    same(&UserAttributes::<String>::default());
    same(&BTreeMap::<String, Vec<BTreeMap<String, ()>>>::new());
    let mut nested = BTreeMap::new();
    nested.insert(
        "a".to_owned(),
        vec![BTreeMap::new(), BTreeMap::from([("b", ())])],
    );
    nested.insert("c\n".to_owned(), vec![]);
    same(&nested);
    same(&(1, "two", [3.5], (), Some(false), None::<u8>));
}

#[test]
fn every_shape_of_the_serde_data_model() {
    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Newtype(&'static str);
    #[derive(Serialize)]
    struct Tuple(u8, &'static str);
    #[derive(Serialize)]
    enum Shapes {
        Unit,
        #[serde(rename = "re\"named")]
        Renamed,
        Newtype(i32),
        Tuple(u8, Option<u8>),
        Struct {
            a: bool,
            b: Vec<u8>,
        },
        EmptyTuple(),
        EmptyStruct {},
    }
    #[derive(Serialize)]
    struct Inner {
        x: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        y: Option<u8>,
    }
    #[derive(Serialize)]
    struct Outer {
        #[serde(flatten)]
        inner: Inner,
        #[serde(flatten)]
        map: BTreeMap<String, Shapes>,
        #[serde(with = "serde_bytes_as_bytes")]
        bytes: Vec<u8>,
        c: char,
        quote: char,
        unit: Unit,
        newtype: Newtype,
        tuple: Tuple,
    }
    mod serde_bytes_as_bytes {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }
    same(&vec![
        Shapes::Unit,
        Shapes::Renamed,
        Shapes::Newtype(-7),
        Shapes::Tuple(1, None),
        Shapes::Struct { a: true, b: vec![] },
        Shapes::EmptyTuple(),
        Shapes::EmptyStruct {},
    ]);
    let outer = Outer {
        inner: Inner { x: 1, y: None },
        map: BTreeMap::from([
            ("k".to_owned(), Shapes::Newtype(3)),
            ("🎉".to_owned(), Shapes::Unit),
        ]),
        bytes: vec![0, 34, 255],
        c: 'é',
        quote: '"',
        unit: Unit,
        newtype: Newtype("n\t"),
        tuple: Tuple(2, "t"),
    };
    same(&outer);
    // Unit-variant and char map keys are strings to serde_json too.
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        A,
        #[serde(rename = "b\"")]
        B,
    }
    same(&BTreeMap::from([(Key::A, 1), (Key::B, 2)]));
    same(&BTreeMap::from([('a', 1), ('\n', 2)]));
    // collect_str goes through serialize_str.
    struct Displayed;
    impl Serialize for Displayed {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{}\"{}", 1, "\u{1}"))
        }
    }
    same(&Displayed);
}

#[test]
fn what_it_cannot_spell_is_an_error_not_a_panic() {
    assert!(to_vec(&BTreeMap::from([(1, 2)])).is_err());
    assert!(to_vec(&BTreeMap::from([(true, 2)])).is_err());
    assert!(to_vec(&BTreeMap::from([((1, 2), 2)])).is_err());
    assert!(to_vec(&BTreeMap::from([(Some("a"), 2)])).is_err());
    // serde_json's private tokens (arbitrary_precision / raw_value): only serde_json knows how to
    // write those, so they must not come out as an ordinary object.
    struct Private;
    impl Serialize for Private {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let mut st = s.serialize_struct("$serde_json::private::Number", 1)?;
            st.serialize_field("$serde_json::private::Number", "1.0")?;
            st.end()
        }
    }
    assert!(to_vec(&Private).is_err());
    let e = <Error as ser::Error>::custom("boom");
    assert_eq!(e.to_string(), "boom");
}

fn full_batch() -> Batch {
    let mut extra = AttributeMap::new();
    extra.insert("segment_high_value_buyers", true);
    extra.insert("plan", "pro \"gold\"");
    extra.insert("score", 4.25);
    extra.insert("count", 3.0);
    extra.insert(
        "tags",
        AttributeValue::List(vec![
            AttributeScalar::String("a\nb".into()),
            AttributeScalar::Number(Number::from(-1)),
            AttributeScalar::Bool(false),
            AttributeScalar::Number(js_number(1e21)),
        ]),
    );
    let mut attrs = AttributeMap::new();
    attrs.insert("conversiontype", "Order Completed");
    attrs.insert("amount", 19.9);
    attrs.insert("currency", "USD");
    attrs.insert("products", AttributeValue::List(vec![]));
    Batch {
        environment: Environment::Development,
        device_info: DeviceInfo {
            http_header_user_agent: Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)".into()),
            ios_advertising_id: Some("ad-1".into()),
            android_advertising_id: None,
            ios_idfv: Some("v".into()),
            android_uuid: Some("u\u{0}".into()),
        },
        user_attributes: UserAttributes {
            firstname: Some("Zoë".into()),
            firstnamesha256: None,
            lastname: None,
            lastnamesha256: Some(crate::hashing::sha256_hex("O'Neil")),
            mobile: Some("+1 (415) 555-0100".into()),
            mobilesha256: None,
            billingzipcode: None,
            billingzipsha256: Some(crate::hashing::sha256_hex("94107")),
            dob: Some("19700101".into()),
            gender: Some(Gender::Female),
            extra,
        },
        user_identities: UserIdentities {
            email: Some("jane@example.com".into()),
            other: None,
            customerid: Some("user-1".into()),
            other2: Some("rt-1".into()),
        },
        integration_attributes: Some(IntegrationAttributes {
            rokt: RoktIntegration {
                passbackconversiontrackingid: "rt-1".into(),
            },
        }),
        events: vec![
            CustomEvent::new(CustomEventData {
                custom_event_type: CustomEventType::Other,
                source_message_id: "aud_msg-1".into(),
                timestamp_unixtime_ms: i64::MIN,
                event_name: "audiencemembershipupdate".into(),
                custom_attributes: AttributeMap::new(),
            }),
            CustomEvent::new(CustomEventData {
                custom_event_type: CustomEventType::Transaction,
                source_message_id: "msg-1".into(),
                timestamp_unixtime_ms: 1_772_600_767_891,
                event_name: "conversion".into(),
                custom_attributes: attrs,
            }),
        ],
        ip: Some("203.0.113.7".into()),
    }
}

#[test]
fn batches_are_byte_identical() {
    let batch = full_batch();
    same(&batch);
    assert_eq!(batch.to_json_bytes(), serde_json::to_vec(&batch).unwrap());
    same(&Batch::<String>::default());
    assert_eq!(
        Batch::<String>::default().to_json_bytes(),
        serde_json::to_vec(&Batch::<String>::default()).unwrap()
    );
}

#[test]
fn arena_cut_bytes_equal_the_vector_across_blocks_and_for_outsized_batches() {
    let small = full_batch();
    let mut big = full_batch();
    for i in 0..400 {
        big.user_attributes
            .extra
            .insert(format!("attribute_{i}"), "a value long enough to add up");
    }
    let expected_small = serde_json::to_vec(&small).unwrap();
    let expected_big = serde_json::to_vec(&big).unwrap();
    assert!(expected_big.len() > super::super::ARENA_BLOCK);
    // Enough batches to fill several blocks, all kept alive so no block is reused early.
    let mut kept = Vec::new();
    for i in 0..100 {
        let (batch, expected) = if i % 37 == 0 {
            (&big, &expected_big)
        } else {
            (&small, &expected_small)
        };
        let bytes = batch.to_bytes();
        assert_eq!(&bytes[..], &expected[..], "batch {i}");
        kept.push((bytes, expected));
    }
    for (i, (bytes, expected)) in kept.iter().enumerate() {
        assert_eq!(&bytes[..], &expected[..], "batch {i}, read again");
    }
}

#[test]
fn batches_built_from_the_example_events_are_byte_identical() {
    let pipeline = crate::Pipeline::new(crate::mapping::Preset::Send);
    let text = include_str!("../../../examples/data/events.ndjson");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(doc) = crate::Json::parse(line) else {
            continue;
        };
        if let Ok(batch) = pipeline.batch(&doc) {
            same(&batch);
            assert_eq!(batch.to_json_bytes(), serde_json::to_vec(&batch).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "some example event builds a batch");
}

#[test]
fn batches_built_from_the_conformance_corpus_are_byte_identical() {
    // The conformance suite compares bodies as JSON values; this holds the bytes to what
    // JSON.stringify writes for them.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/send");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("the corpus is there") {
        let path = entry.expect("readable").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let case: serde_json::Value = serde_json::from_str(&text).expect("a JSON case");
        let preset = crate::mapping::Preset::from_key(case["preset"].as_str().unwrap_or("send"))
            .expect("a known preset");
        let Ok(pipeline) = crate::Pipeline::builder()
            .preset(preset)
            .overrides(case["mapping"].clone())
            .build()
        else {
            continue;
        };
        for event in case["events"].as_array().into_iter().flatten() {
            if let Ok(batch) = pipeline.batch(event) {
                let ours = same_as_stringify(&batch);
                assert_eq!(batch.to_json_bytes(), ours);
                n += 1;
            }
        }
    }
    assert!(n >= 20, "the corpus builds batches ({n})");
}

// --- property tests -----------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => any::<char>(),
        2 => (0u8..0x20).prop_map(char::from),
        2 => prop::sample::select(vec!['"', '\\', '/', '\u{7f}', 'é', '€', '🎉', '\u{2028}']),
        4 => prop::char::range('a', 'z'),
    ];
    prop::collection::vec(ch, 0..40).prop_map(String::from_iter)
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        any::<f64>().prop_filter_map("finite", |f| f.is_finite().then(|| js_number(f))),
        (-1e6..1e6f64).prop_map(js_number),
    ]
}

fn arb_scalar() -> impl Strategy<Value = AttributeScalar> {
    prop_oneof![
        arb_string().prop_map(AttributeScalar::String),
        arb_number().prop_map(AttributeScalar::Number),
        any::<bool>().prop_map(AttributeScalar::Bool),
    ]
}

fn arb_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        arb_string().prop_map(AttributeValue::String),
        arb_number().prop_map(AttributeValue::Number),
        any::<bool>().prop_map(AttributeValue::Bool),
        prop::collection::vec(arb_scalar(), 0..4).prop_map(AttributeValue::List),
    ]
}

fn arb_map() -> impl Strategy<Value = AttributeMap> {
    prop::collection::vec((arb_string(), arb_value()), 0..6).prop_map(|entries| {
        let mut map = AttributeMap::new();
        for (k, v) in entries {
            map.insert(k, v);
        }
        map
    })
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(arb_string())
}

fn arb_event() -> impl Strategy<Value = CustomEvent> {
    (
        any::<bool>(),
        arb_string(),
        any::<i64>(),
        arb_string(),
        arb_map(),
    )
        .prop_map(|(transaction, id, ms, name, attrs)| {
            CustomEvent::new(CustomEventData {
                custom_event_type: if transaction {
                    CustomEventType::Transaction
                } else {
                    CustomEventType::Other
                },
                source_message_id: id,
                timestamp_unixtime_ms: ms,
                event_name: name,
                custom_attributes: attrs,
            })
        })
}

fn arb_user_attributes() -> impl Strategy<Value = UserAttributes> {
    (
        prop::collection::vec(opt_string(), 9),
        proptest::option::of(prop_oneof![Just(Gender::Male), Just(Gender::Female)]),
        arb_map(),
    )
        .prop_map(|(s, gender, extra)| {
            let mut s = s.into_iter();
            let mut next = || s.next().flatten();
            UserAttributes {
                firstname: next(),
                firstnamesha256: next(),
                lastname: next(),
                lastnamesha256: next(),
                mobile: next(),
                mobilesha256: next(),
                billingzipcode: next(),
                billingzipsha256: next(),
                dob: next(),
                gender,
                extra,
            }
        })
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    (
        any::<bool>(),
        prop::collection::vec(opt_string(), 5),
        arb_user_attributes(),
        prop::collection::vec(opt_string(), 4),
        opt_string(),
        prop::collection::vec(arb_event(), 0..3),
        opt_string(),
    )
        .prop_map(|(dev, device, user_attributes, ids, rtid, events, ip)| {
            let mut device = device.into_iter();
            let mut ids = ids.into_iter();
            Batch {
                environment: if dev {
                    Environment::Development
                } else {
                    Environment::Production
                },
                device_info: DeviceInfo {
                    http_header_user_agent: device.next().flatten(),
                    ios_advertising_id: device.next().flatten(),
                    android_advertising_id: device.next().flatten(),
                    ios_idfv: device.next().flatten(),
                    android_uuid: device.next().flatten(),
                },
                user_attributes,
                user_identities: UserIdentities {
                    email: ids.next().flatten(),
                    other: ids.next().flatten(),
                    customerid: ids.next().flatten(),
                    other2: ids.next().flatten(),
                },
                integration_attributes: rtid.map(|r| IntegrationAttributes {
                    rokt: RoktIntegration {
                        passbackconversiontrackingid: r,
                    },
                }),
                events,
                ip,
            }
        })
}

proptest! {
    #[test]
    fn any_string_is_written_as_serde_json_writes_it(s in arb_string(), prefix in 0usize..9) {
        // A prefix shifts the string against the 8-byte words.
        let s = format!("{}{s}", "p".repeat(prefix));
        same(&s);
    }

    #[test]
    fn any_bytes_are_escaped_as_one_byte_at_a_time(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(escaped(&bytes), reference_escaped(&bytes));
    }

    #[test]
    fn any_attribute_map_is_written_as_json_stringify_writes_it(map in arb_map()) {
        same_as_stringify(&map);
    }

    #[test]
    fn any_batch_is_written_as_json_stringify_writes_it(batch in arb_batch()) {
        let ours = same_as_stringify(&batch);
        prop_assert_eq!(batch.to_json_bytes(), ours);
    }
}
