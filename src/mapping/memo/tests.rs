use super::*;
use crate::mapping::path::lookup_keys;
use crate::mapping::{Preset, SendMapping};
use proptest::prelude::*;
use std::borrow::Cow;

/// The same answer, and for a borrowed value the very same value (so the same one of repeated
/// keys).
fn same(a: &Val<'_, '_>, b: &Val<'_, '_>) -> bool {
    match (a, b) {
        (Val::Undefined, Val::Undefined) => true,
        (Val::Ref(x), Val::Ref(y)) => std::ptr::eq(*x, *y),
        (Val::Owned(x), Val::Owned(y)) => x == y,
        _ => false,
    }
}

fn show(v: &Val<'_, '_>) -> String {
    match v {
        Val::Undefined => "undefined".into(),
        Val::Ref(x) => format!("ref {:?} at {:p}", x.to_value(), *x),
        Val::Owned(x) => format!("owned {:?}", x.to_value()),
        _ => "built".into(),
    }
}

/// Paths of these keys, interned into one table in order.
fn interned(paths: &[Vec<String>]) -> (Vec<Path>, Prefixes) {
    let mut interner = Interner::default();
    let paths = paths
        .iter()
        .map(|keys| {
            let mut path = Path::from_keys(keys.clone());
            path.set_slot(interner.intern(keys));
            path
        })
        .collect();
    (paths, interner.finish())
}

fn parse(text: &str) -> Json<'_> {
    Json::parse(text).unwrap()
}

fn keys(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

/// Looks `paths` up through one memo, in the order given, checking each against `lookup_keys`
/// and, where the memo answers as Liquid, against a chain of `Json::get`.
fn check(root: &Json<'_>, paths: &[Vec<String>], order: &[usize]) -> Result<(), TestCaseError> {
    let (compiled, prefixes) = interned(paths);
    EventMemo::with(&prefixes, root, |memo| {
        check_in(memo, root, paths, &compiled, order)
    })
}

fn check_in(
    memo: &EventMemo<'_, '_, '_>,
    root: &Json<'_>,
    paths: &[Vec<String>],
    compiled: &[Path],
    order: &[usize],
) -> Result<(), TestCaseError> {
    for &i in order.iter().chain(&(0..paths.len()).collect::<Vec<_>>()) {
        let keys = &paths[i];
        let want = lookup_keys(root, keys);
        let got = memo.lookup(&compiled[i]);
        prop_assert!(
            same(&got, &want),
            "{:?}: memo {} but lookup_keys {}",
            keys,
            show(&got),
            show(&want)
        );
        if let Some(id) = compiled[i].slot() {
            let chain = keys.iter().try_fold(root, |v, k| v.get(k));
            let liquid = memo.get(id);
            prop_assert!(
                match (liquid, chain) {
                    (Some(x), Some(y)) => std::ptr::eq(x, y),
                    (None, None) => true,
                    _ => false,
                },
                "{:?}: memo get {:?} but Json::get chain {:?}",
                keys,
                liquid,
                chain
            );
        }
    }
    Ok(())
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "length", "0", "1"]).prop_map(str::to_owned)
}

fn leaf() -> impl Strategy<Value = Json<'static>> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        prop::sample::select(vec![0i64, 1, -1, 7]).prop_map(|n| Json::Number(n.into())),
        prop::sample::select(vec![0.0f64, -0.0, 0.5])
            .prop_map(|f| Json::Number(serde_json::Number::from_f64(f).unwrap())),
        prop::sample::select(vec!["", "x", "héllo", "a😀b", "0"])
            .prop_map(|s| Json::Str(Cow::Borrowed(s))),
    ]
}

fn object(
    keys: impl Strategy<Value = String>,
    values: impl Strategy<Value = Json<'static>>,
) -> impl Strategy<Value = Json<'static>> {
    // Few keys, so objects often repeat one.
    prop::collection::vec((keys, values), 0..5).prop_map(|pairs| {
        Json::Object(pairs.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
    })
}

fn doc() -> impl Strategy<Value = Json<'static>> {
    let value = leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            object(key(), inner),
        ]
    });
    prop_oneof![4 => object(key(), value.clone()), 1 => value]
}

fn paths_and_order() -> impl Strategy<Value = (Vec<Vec<String>>, Vec<usize>)> {
    prop::collection::vec(prop::collection::vec(key(), 0..5), 1..10).prop_flat_map(|paths| {
        let order = (0..paths.len()).collect::<Vec<_>>();
        (Just(paths), Just(order).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Paths sharing prefixes, resolved in any order against one memo, give exactly what
    /// `lookup_keys` gives each of them.
    #[test]
    fn memo_agrees_with_lookup_keys(root in doc(), (paths, order) in paths_and_order()) {
        check(&root, &paths, &order)?;
    }
}

#[test]
fn a_falsy_value_on_the_way_is_the_result() {
    let doc = parse(r#"{"a":{"zero":0,"empty":"","no":false,"nil":null,"yes":{"x":1}}}"#);
    let paths = [
        "a.zero.x.y",
        "a.empty.x",
        "a.no.x",
        "a.nil.x",
        "a.yes.x",
        "a.zero",
    ]
    .map(keys)
    .to_vec();
    check(&doc, &paths, &[0, 1, 2, 3, 4, 5]).unwrap();
    let (compiled, prefixes) = interned(&paths);
    EventMemo::with(&prefixes, &doc, |memo| {
        let zero = doc.get("a").and_then(|a| a.get("zero")).unwrap();
        assert!(matches!(memo.lookup(&compiled[0]), Val::Ref(v) if std::ptr::eq(v, zero)));
        // As Liquid reads it, `a.zero.x.y` is not there at all; `a.zero` is.
        assert_eq!(memo.get(compiled[0].slot().unwrap()), None);
        assert!(
            memo.get(compiled[5].slot().unwrap())
                .is_some_and(|v| std::ptr::eq(v, zero))
        );
    });
}

#[test]
fn a_truthy_scalar_on_the_way_gives_undefined() {
    let doc = parse(r#"{"n":5,"t":true,"f":0.5}"#);
    let paths = ["n.x", "t.x", "f.x", "n"].map(keys).to_vec();
    check(&doc, &paths, &[3, 0, 1, 2]).unwrap();
    let (compiled, prefixes) = interned(&paths);
    EventMemo::with(&prefixes, &doc, |memo| {
        assert!(matches!(memo.lookup(&compiled[0]), Val::Undefined));
    });
}

#[test]
fn the_last_of_repeated_keys_wins() {
    let doc = parse(r#"{"a":{"b":1,"c":3},"x":0,"a":{"b":2}}"#);
    let paths = ["a.b", "a.c", "a"].map(keys).to_vec();
    check(&doc, &paths, &[0, 1, 2]).unwrap();
    let (compiled, prefixes) = interned(&paths);
    EventMemo::with(&prefixes, &doc, |memo| {
        assert_eq!(
            memo.lookup(&compiled[0]).into_json().map(|v| v.to_value()),
            Some(serde_json::json!(2))
        );
        assert!(matches!(memo.lookup(&compiled[1]), Val::Undefined));
    });
}

#[test]
fn arrays_and_strings_on_the_way_fall_back_to_javascript_indexing() {
    let doc = parse(r#"{"l":[{"x":1},2],"s":"héllo","o":{"length":3}}"#);
    let paths = [
        "l.0.x",
        "l.length",
        "l.01",
        "s.1",
        "s.length",
        "s.length.x",
        "o.length",
        "l",
    ]
    .map(keys)
    .to_vec();
    check(&doc, &paths, &[7, 0, 1, 2, 3, 4, 5, 6]).unwrap();
    let (compiled, prefixes) = interned(&paths);
    EventMemo::with(&prefixes, &doc, |memo| {
        let value = |i: usize| memo.lookup(&compiled[i]).into_json().map(|v| v.to_value());
        assert_eq!(value(0), Some(serde_json::json!(1)));
        assert_eq!(value(1), Some(serde_json::json!(2)));
        assert_eq!(value(2), None);
        assert_eq!(value(3), Some(serde_json::json!("é")));
        assert_eq!(value(4), Some(serde_json::json!(5)));
        assert_eq!(value(6), Some(serde_json::json!(3)));
        // Liquid never indexes an array or a string by a key.
        assert_eq!(memo.get(compiled[0].slot().unwrap()), None);
        assert_eq!(memo.get(compiled[4].slot().unwrap()), None);
    });
}

#[test]
fn prefixes_are_shared_and_deep_paths_are_left_uncached() {
    let mut interner = Interner::default();
    let email = interner.intern(&["context", "traits", "email"]);
    let name = interner.intern(&["context", "traits", "first_name"]);
    let traits = interner.intern(&["context", "traits"]);
    assert_eq!((email, name, traits), (Some(2), Some(3), Some(1)));
    assert_eq!(interner.intern::<&str>(&[]), None);
    assert_eq!(interner.intern(&["k"; MAX_DEPTH + 1]), None);
    assert_eq!(interner.finish().len(), 4);
}

fn scalar() -> BoxedStrategy<Json<'static>> {
    prop_oneof![
        leaf(),
        prop::sample::select(vec![
            "ios",
            "android",
            " ",
            "?rtid=r1&a=2",
            "rtid=",
            "https://x/?rtid=u#f",
            "a@b.co",
        ])
        .prop_map(|s| Json::Str(Cow::Borrowed(s))),
    ]
    .boxed()
}

/// An object with these members, each present zero, one or two times, in any order; or now
/// and then something else in its place.
fn shaped(
    members: Vec<(&'static str, BoxedStrategy<Json<'static>>)>,
) -> BoxedStrategy<Json<'static>> {
    let groups: Vec<_> = members
        .into_iter()
        .map(|(key, value)| {
            prop::collection::vec(value, 0..=2).prop_map(move |values| {
                values
                    .into_iter()
                    .map(|v| (Cow::Borrowed(key), v))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let object = groups
        .prop_map(|groups| groups.concat())
        .prop_shuffle()
        .prop_map(Json::Object);
    prop_oneof![
        1 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Json::Array),
        6 => object,
    ]
    .boxed()
}

/// Events shaped like Segment's, with the members the presets read often present, often odd.
fn event() -> impl Strategy<Value = Json<'static>> {
    let traits = || {
        shaped(vec![
            ("email", scalar()),
            ("first_name", scalar()),
            ("address", shaped(vec![("postal_code", scalar())])),
        ])
    };
    let context = shaped(vec![
        (
            "device",
            shaped(vec![
                (
                    "type",
                    prop_oneof![
                        scalar(),
                        prop::sample::select(vec!["ios", "android"])
                            .prop_map(|s| Json::Str(Cow::Borrowed(s))),
                    ]
                    .boxed(),
                ),
                ("id", scalar()),
                ("advertisingId", scalar()),
            ]),
        ),
        (
            "page",
            shaped(vec![("search", scalar()), ("url", scalar())]),
        ),
        ("traits", traits()),
        ("ip", scalar()),
        (
            "personas",
            shaped(vec![
                ("computation_key", scalar()),
                ("computation_class", scalar()),
            ]),
        ),
    ]);
    shaped(vec![
        ("context", context),
        ("traits", traits()),
        (
            "properties",
            shaped(vec![
                ("email", scalar()),
                ("order_id", scalar()),
                ("length", scalar()),
            ]),
        ),
        (
            "integrations",
            shaped(vec![(
                "Rokt Conversions API",
                shaped(vec![("rtid", scalar())]),
            )]),
        ),
        ("userId", scalar()),
    ])
}

/// Every node the fast entry evaluates, with what the uncached evaluation gives.
fn check_mapping(mapping: &SendMapping, event: &Json<'_>) -> Result<(), TestCaseError> {
    mapping.with_memo(event, |memo| check_mapping_in(mapping, event, memo))
}

fn check_mapping_in<'r, 'a>(
    mapping: &'r SendMapping,
    event: &'r Json<'a>,
    memo: &EventMemo<'_, 'r, 'a>,
) -> Result<(), TestCaseError> {
    for field in mapping.field_nodes() {
        let nodes: Vec<&Node> = match field {
            Node::Object(members) => members.iter().map(|(_, n)| n).collect(),
            node => vec![node],
        };
        for node in nodes {
            let got = node.eval(memo).unwrap();
            let want = node.eval_val(event).unwrap().finalize();
            prop_assert_eq!(
                got.as_json().map(Json::to_value),
                want.as_json().map(Json::to_value),
                "{:?}",
                node
            );
        }
    }
    Ok(())
}

fn mappings() -> Vec<SendMapping> {
    vec![
        SendMapping::preset_defaults(Preset::Send),
        SendMapping::preset_defaults(Preset::SyncEngageAudience),
        SendMapping::new(
            Preset::Send,
            serde_json::json!({
                "eventProperties": {
                    "a": {"@path": "$.context.traits"},
                    "b": {"@path": "$.context.device.type.length"},
                    "c": {"@path": "$.context.0"},
                    "d": {"@if": {"exists": {"@path": "$.properties.email"},
                                  "then": {"@path": "$.properties.email"},
                                  "else": {"@path": "$.context.device"}}},
                    "e": {"@if": {"exists": {"@path": "$.context.ip"},
                                  "then": {"@path": "$.traits.email"},
                                  "else": {"@path": "$.context.ip"}}}
                },
                "ip": {"@if": {"exists": {"@path": "$.context.traits.address.postal_code"},
                               "then": {"@path": "$.context.traits.address.postal_code"},
                               "else": {"@path": "$.context.traits.address"}}},
                "traitsOrProps": {"@path": "$.traits"}
            }),
        )
        .unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The fast entry through the memo maps an event exactly as the uncached evaluation does,
    /// built-in device and rtid defaults included.
    #[test]
    fn mappings_evaluate_as_without_the_memo(event in event()) {
        for mapping in mappings() {
            check_mapping(&mapping, &event)?;
        }
    }
}

#[test]
fn the_presets_share_their_prefixes() {
    let mapping = SendMapping::preset_defaults(Preset::Send);
    let event = parse(
        r#"{"context":{"device":{"type":"ios","advertisingId":"ad","id":"v"},
            "page":{"search":"?rtid=s"},"traits":{"email":"e"}},
            "integrations":{"Rokt Conversions API":{"rtid":7}}}"#,
    );
    check_mapping(&mapping, &event).unwrap();
    mapping.with_memo(&event, |memo| {
        let device = memo.device().unwrap();
        assert_eq!(
            memo.get(device.kind).and_then(Json::as_str),
            Some("ios"),
            "context.device.type"
        );
        let rtid = memo.rtid().unwrap();
        assert_eq!(memo.get(rtid.plugin).and_then(Json::as_f64), Some(7.0));
    });
}

#[test]
fn a_large_table_keeps_its_memo_on_the_heap() {
    let doc = parse(r#"{"a":{"k7":{"x":1},"k7":{"x":2}},"b":[0]}"#);
    let mut paths: Vec<Vec<String>> = (0..2 * INLINE)
        .map(|i| keys(&format!("a.k{i}.x")))
        .collect();
    paths.push(keys("b.0"));
    let order: Vec<usize> = (0..paths.len()).rev().collect();
    check(&doc, &paths, &order).unwrap();
    let (_, prefixes) = interned(&paths);
    assert!(prefixes.len() > INLINE);
}
