//! The directives against answers recorded from the reference (node, actions-core 3.170):
//! each case is a mapping and what `transform(mapping, EVENT)` gave, or `None` where it threw.

use super::Mapping;
use crate::Json;

/// The conformance corpus event, with a few more properties.
const EVENT: &str = r#"{"type":"track","event":"Order Completed","userId":"user-42","anonymousId":"anon-42","messageId":"msg-42","timestamp":"2026-03-04T05:06:07.891Z","integrations":{"Rokt Conversions API":{"rtid":"rt-plugin"}},"context":{"ip":"203.0.113.7","page":{"search":"?utm=x&rtid=rt-q&b=2","url":"https://shop.example.com/c?rtid=rt-q"},"device":{"type":"ios","advertisingId":"IDFA-1","id":"IDFV-1"},"traits":{"email":"Jane@Example.com","first_name":"Jane","empty":"","nothing":null,"address":{"postal_code":"94107","city":"SF"}}},"properties":{"order_id":"o-1","revenue":19.5,"currency":"usd","count":0,"flag":false,"note":"Hello World hello","products":[{"sku":"s1","price":10,"name":"A"},{"sku":"s2","price":9.5,"name":"B"}],"json":"{\"a\":1,\"b\":[true,null]}","bad_json":"{nope","nested":{"a":{"b":1,"c":null},"d":[1,2]},"strs":["ab","c"],"mixed":{"1":"one","2":"two","b":1,"a":null},"big":12345678901234567890,"arr":[],"objs":{"":{"a":1},"x":{}}}}"#;

const CASES: &[(&str, Option<&str>)] = &[
    (
        r#"{"v": {"@path": "$.properties.products[1].sku"}, "w": {"@path": "properties.products.length"}, "x": {"@path": "$.properties..order_id"}, "y": {"@path": "$.properties.note.0"}}"#,
        Some(r#"{"v": "s2", "w": 2, "x": "o-1", "y": "H"}"#),
    ),
    (
        r#"{"a": {"@path": "$.properties.count.x"}, "b": {"@path": "$.properties.flag.x"}, "c": {"@path": "$.context.traits.nothing.x"}, "d": {"@path": "$.properties.nope.x"}, "e": {"@path": "x.$.userId"}}"#,
        Some(r#"{"a": 0, "b": false, "c": null}"#),
    ),
    (
        r#"{"v": {"@path": {"@literal": "$.userId"}}}"#,
        Some(r#"{"v": "user-42"}"#),
    ),
    (
        r#"{"v": {"@path": {"@path": "$.properties.revenue"}}}"#,
        None,
    ), // node: @path: expected string, got number
    (r#"{"v": {"@path": 5}}"#, None), // node: ValidationError: /v/@path should be a string or a mapping directive but it is a number. /v
    (
        r#"{"a": {"@if": {"blank": {"@path": "$.properties.arr"}, "then": 1, "else": 2}}, "b": {"@if": {"blank": {"@path": "$.properties.nested"}, "then": 1, "else": 2}}, "c": {"@if": {"blank": {"@path": "$.properties.count"}, "then": 1, "else": 2}}, "d": {"@if": {"blank": {"@path": "$.properties.flag"}, "then": 1, "else": 2}}, "e": {"@if": {"blank": "0", "then": 1, "else": 2}}}"#,
        Some(r#"{"a": 2, "b": 1, "c": 2, "d": 2, "e": 1}"#),
    ),
    (
        r#"{"a": {"@if": {"exists": {"@path": "$.userId"}}}, "b": {"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": 0}}, "c": {"@if": {"exists": null, "blank": "x", "then": 1, "else": 2}}, "d": {"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": null}}}"#,
        Some(r#"{"c": 2}"#),
    ),
    (r#"{"v": {"@if": {"exists": 0, "then": 1}}}"#, None), // node: @if requires an "exists" key or a "blank" key
    (r#"{"v": {"@if": {"then": 1, "blank": ""}}}"#, None), // node: @if requires an "exists" key or a "blank" key
    (
        r#"{"v": {"@case": {"operator": "title", "value": {"@path": "$.properties.revenue"}}}}"#,
        Some(r#"{"v": 19.5}"#),
    ),
    (
        r#"{"v": {"@case": {"operator": "title", "value": {"@path": "$.properties.currency"}}}}"#,
        None,
    ), // node: operator key should have a value of "lower" or "upper"
    (
        r#"{"v": {"@case": {"operator": "upper", "value": ""}}, "w": [{"@case": {"operator": "upper", "value": 5}}]}"#,
        Some(r#"{"w": [5]}"#),
    ),
    (
        r#"{"v": {"@case": {"operator": "upper", "value": 5}}}"#,
        None,
    ), // node: ValidationError: /v/@case/value should be a string or a mapping directive but it is a numb
    (r#"{"v": {"@case": {"value": "x"}}}"#, None), // node: @case requires a "operator" key
    (
        r#"{"a": {"@replace": {"pattern": "x", "value": {"@path": "$.nope"}}}, "b": {"@replace": {"pattern": "x", "value": {"@path": "$.properties.nested"}}}, "c": {"@replace": {"pattern": "9", "replacement": "$&$&", "value": {"@path": "$.properties.revenue"}}}, "d": {"@replace": {"pattern": "o", "replacement": "0", "pattern2": 7, "value": {"@path": "$.properties.order_id"}}}, "e": {"@replace": {"pattern": "L", "replacement": "_", "ignorecase": true, "global": false, "value": {"@path": "$.properties.note"}}}}"#,
        Some(r#"{"a": "", "b": "", "c": "199.5", "d": "0-1", "e": "He_lo World hello"}"#),
    ),
    (
        r#"{"v": {"@replace": {"pattern": "o", "value": {"@path": "$.properties.order_id"}, "pattern2": "abcdefghijk"}}}"#,
        None,
    ), // node: @replace requires a "pattern" less than 10 characters
    (
        r#"{"v": {"@replace": {"pattern": "o", "value": {"@path": "$.nope"}, "pattern2": "abcdefghijk"}}}"#,
        Some(r#"{"v": ""}"#),
    ),
    (
        r#"{"v": {"@replace": {"pattern": "abcdefghijk", "value": "x"}}}"#,
        None,
    ), // node: ValidationError: /v/@replace/pattern should be a string of length 10 or less. /v/@replace/
    (
        r#"{"v": {"@replace": {"pattern": "a", "replacement": null, "value": "x"}}}"#,
        None,
    ), // node: ValidationError: /v/@replace/replacement should be a string but it is a null. /v/@replace/
    (
        r#"{"v": [{"@replace": {"pattern": "a", "replacement": null, "value": "banana"}}, {"@replace": {"pattern": 5, "value": "banana"}}, {"@replace": {"pattern": "a", "global": "yes", "value": "banana"}}]}"#,
        Some(r#"{"v": ["bnn", "", ""]}"#),
    ),
    (
        r#"{"a": {"@arrayPath": ["$.properties.strs", {"l": {"@path": "$.length"}, "f": {"@path": "$.0"}}]}, "b": {"@arrayPath": [{"@path": "$.properties.products"}, {"s": {"@path": "$.sku"}}]}, "c": {"@arrayPath": ["$.properties.products", {}]}, "d": {"@arrayPath": ["$.properties.nope", {"a": 1}]}, "e": {"@arrayPath": ["$.properties.note", {"a": 1}]}, "f": {"@arrayPath": ["$.properties.products", {"@path": "$.sku"}]}}"#,
        Some(
            r#"{"a": [{"l": 2, "f": "a"}, {"l": 1, "f": "c"}], "b": [{"s": "s1"}, {"s": "s2"}], "c": [{"sku": "s1", "price": 10, "name": "A"}, {"sku": "s2", "price": 9.5, "name": "B"}], "e": "Hello World hello", "f": ["s1", "s2"]}"#,
        ),
    ),
    (r#"{"v": {"@arrayPath": "x"}}"#, None), // node: ValidationError: /v/@arrayPath should be an array but it is a string. /v/@arrayPath should
    (r#"{"v": {"@arrayPath": [5]}}"#, None), // node: ValidationError: /v/@arrayPath should be a string or a mapping directive but it is a numbe
    (r#"{"v": [{"@arrayPath": [5]}]}"#, Some(r#"{"v": [5]}"#)),
    (
        r#"{"a": {"@json": {"mode": "encode", "value": {"@path": "$.nope"}}}, "b": {"@json": {"mode": "encode", "value": "x\ny"}}, "c": {"@json": {"mode": "decode", "value": {"@path": "$.properties.revenue"}}}, "d": {"@json": {"mode": "Encode", "value": {"@path": "$.userId"}}}, "e": {"@json": {"mode": "decode", "value": "12345678901234567890"}}, "f": {"@json": {"mode": "encode", "value": {"@path": "$.properties.mixed"}}}, "g": {"@json": {"mode": "encode", "value": {"a": {"@path": "$.nope"}, "b": [{"@path": "$.nope"}], "c": {"@path": "$.properties.big"}}}}}"#,
        Some(
            // The reference rounds 12345678901234567890 to the double 12345678901234567000;
            // an integer written in full keeps every digit here (a deliberate deviation, see
            // `js::number_to_string`), so "e" and "g" carry it whole.
            r#"{"b": "\"x\\ny\"", "c": 19.5, "e": 12345678901234567890, "f": "{\"1\":\"one\",\"2\":\"two\",\"b\":1,\"a\":null}", "g": "{\"b\":[null],\"c\":12345678901234567890}"}"#,
        ),
    ),
    (r#"{"v": {"@json": {"mode": "encode", "value": ""}}}"#, None), // node: @json requires a "value" key
    (r#"{"v": {"@json": {"mode": "yaml", "value": "x"}}}"#, None), // node: ValidationError: /v/@json/mode should be one of encode, decode but it is "yaml". /v/@json/
    (
        r#"{"a": {"@flatten": {"separator": ".", "value": [1, [2, {"x": 3}]]}}, "b": {"@flatten": {"separator": ".", "value": "str"}}, "c": {"@flatten": {"separator": "/", "value": {"@path": "$.properties.objs"}}}, "d": {"@flatten": {"separator": "-", "value": {"@path": "$.properties.mixed"}}}, "e": {"@flatten": {"separator": ".", "value": {"@path": "$.nope"}}}, "f": {"@flatten": {"separator": ".", "omitArrays": 1, "value": {"k": [1, {"a": 2}], "m": {"n": null}}}}}"#,
        Some(
            r#"{"a": {"0": 1, "1.0": 2, "1.1.x": 3}, "b": {"": "str"}, "c": {"a": 1}, "d": {"1": "one", "2": "two", "b": 1, "a": null}, "e": {}, "f": {"k": [1, {"a": 2}], "m.n": null}}"#,
        ),
    ),
    (r#"{"v": {"@flatten": {"value": {"a": 1}}}}"#, None), // node: @flatten requires a "separator" key
    (
        r#"{"v": {"@flatten": {"separator": 5, "value": {"a": 1}}}}"#,
        None,
    ), // node: ValidationError: /v/@flatten/separator should be a string but it is a number. /v/@flatten/
    (
        r#"{"a": {"@merge": {"direction": "right", "objects": [{"@path": "$.context.traits.address"}, {"city": {"@path": "$.nope"}}]}}, "b": {"@merge": {"direction": "right", "objects": [{"@path": "$.properties.currency"}, {"@path": "$.properties.nested.d"}, {"@path": "$.nope"}, {"@path": "$.properties.count"}]}}, "c": {"@merge": {"direction": "LEFT", "objects": [{"a": 1}, {"a": 2}]}}, "d": {"@merge": {"direction": "left", "objects": [{"a": 1, "b": 1}, {"a": 2}]}}, "e": {"@merge": {"direction": "right", "objects": [{"@path": "$.properties.mixed"}, {"0": "zero", "b": 2}]}}}"#,
        Some(
            r#"{"a": {"postal_code": "94107"}, "b": {"0": 1, "1": 2, "2": "d"}, "c": {"a": 2}, "d": {"a": 1, "b": 1}, "e": {"0": "zero", "1": "one", "2": "two", "b": 2, "a": null}}"#,
        ),
    ),
    (r#"{"v": {"@merge": {"objects": [{"a": 1}]}}}"#, None), // node: @merge requires a "direction" key
    (
        r#"{"v": {"@merge": {"direction": "right", "objects": {"a": 1}}}}"#,
        None,
    ), // node: ValidationError: /v/@merge/objects should be an array but it is an object. /v/@merge/objec
    (
        r#"{"v": {"@merge": {"direction": "right", "objects": ["x"]}}}"#,
        None,
    ), // node: ValidationError: / should be a object or a mapping directive but it is a string. / should
    (
        r#"{"v": {"@merge": {"direction": "up", "objects": [{"a": 1}]}}}"#,
        None,
    ), // node: ValidationError: /v/@merge/direction should be one of left, right but it is "up". /v/@merg
    (
        r#"{"a": {"@transform": {"apply": {"o": {"@path": "$.properties.order_id"}, "n": {"@path": "$.nope"}}, "mapping": {"x": {"@path": "$.o"}, "keys": {"@path": "$."}}}}, "b": {"@arrayPath": ["$.properties.products", {"t": {"@transform": {"apply": {"s": {"@path": "$.sku"}}, "mapping": {"u": {"@case": {"operator": "upper", "value": {"@path": "$.s"}}}}}}}]}}"#,
        Some(
            r#"{"a": {"x": "o-1", "keys": {"o": "o-1"}}, "b": [{"t": {"u": "S1"}}, {"t": {"u": "S2"}}]}"#,
        ),
    ),
    (
        r#"{"v": {"@arrayPath": ["$.properties.strs", {"t": {"@transform": {"apply": {"s": 1}, "mapping": {"x": 1}}}}]}}"#,
        None,
    ), // node: data must be an object, got string
    (
        r#"{"v": {"@transform": {"apply": "x", "mapping": {"a": 1}}}}"#,
        None,
    ), // node: ValidationError: /v/@transform/apply should be a object or a mapping directive but it is a
    (r#"{"v": {"@transform": {"apply": {"a": 1}}}}"#, None), // node: ValidationError: /v/@transform should have field "mapping" but it doesn't. /v/@transform s
    (
        r#"{"a": {"@excludeWhenNull": {"@path": "$.properties.nested"}}, "b": {"@excludeWhenNull": {"x": null, "y": [null], "z": {"w": null, "k": 1}}}, "c": {"@merge": {"direction": "right", "objects": [{"c": 1, "k": 2}, {"@excludeWhenNull": {"c": null}}]}}, "d": {"@excludeWhenNull": "s"}, "e": {"@excludeWhenNull": null}}"#,
        Some(
            r#"{"a": {"a": {"b": 1}, "d": [1, 2]}, "b": {"y": [null], "z": {"k": 1}}, "c": {"k": 2}, "d": "s"}"#,
        ),
    ),
    (r#"{"a": {"@literal": {"@path": "x", "k": 1}}}"#, None), // node: ValidationError: /a/@literal should only have one @-prefixed key but it has 2 keys. /a/@li
    (
        r#"{"a": [{"@path": "x", "k": 1}], "b": {"@literal": [{"@nope": 1, "_metadata": 2}]}}"#,
        None,
    ), // node: @nope is not a valid directive, got undefined
    (
        r#"{"a": [{"_metadata": {"x": 1}, "@path": "$.userId"}], "b": {"@path": "$.userId", "_metadata": {}}}"#,
        Some(r#"{"a": ["user-42"], "b": "user-42"}"#),
    ),
    (r#"{"v": {"@nope": 1}}"#, None), // node: ValidationError: /v has an invalid directive: @nope. /v has an invalid directive: @nope.
    (r#"{"v": {"@path": "x", "@template": "y"}}"#, None), // node: ValidationError: /v should only have one @-prefixed key but it has 2 keys. /v should only
    (r#"{"v": {"@if": "x"}}"#, None), // node: ValidationError: /v/@if should be an object but it is a string. /v/@if should be an object
    (r#"{"v": {"@if": {"exists": 1, "@x": 2}}}"#, None), // node: ValidationError: /v/@if should be an object but it is a directive. /v/@if should be an obj
    (
        r#"{"v": {"@literal": {"a": {"@path": "x", "k": 1}}}}"#,
        Some(r#"{"v": {"a": {"@path": "x", "k": 1}}}"#),
    ),
    (r#"{"v": {"@json": {"mode": "encode"}}}"#, None), // node: ValidationError: /v/@json should have field "value" but it doesn't. /v/@json should have f
    (
        r#"{"v": {"@replace": {"pattern": "", "value": "x"}}}"#,
        None,
    ), // node: ValidationError: /v/@replace/pattern should be a string of length 1 or greater. /v/@replac
    (
        r#"{"v": {"@replace": {"pattern": "a", "value": "x", "global": "no"}}}"#,
        None,
    ), // node: ValidationError: /v/@replace/global should be a boolean but it is a string. /v/@replace/gl
    (r#"{"v": {"@case": {"operator": 5, "value": "x"}}}"#, None), // node: ValidationError: /v/@case/operator should be a string but it is a number. /v/@case/operato
    (r#"{"v": {"@liquid": 5}}"#, None), // node: ValidationError: /v/@liquid should be a string but it is a number. /v/@liquid should be a
    (r#"{"v": [{"@liquid": 5}]}"#, None), // node: liquid template value must be a string
    (
        r#"{"v": {"@template": {"@path": "$.properties.order_id"}}}"#,
        Some(r#"{"v": "o-1"}"#),
    ),
    (
        r#"{"__segment_internal_directive": {"@transform": {"apply": {"u": {"@path": "$.userId"}}}}, "x": {"@path": "$.u"}}"#,
        Some(r#"{"x": "user-42"}"#),
    ),
    (
        r#"{"__segment_internal_directive": {"@a": 1, "@b": 2}, "x": 1}"#,
        None,
    ), // node: The root mapping must only have a single directive object
    (
        r#"{"a": {"@merge": {"direction": "right", "objects": [[{"@path": "$.userId"}, "q"], {"@path": "$.properties.order_id"}]}}}"#,
        None,
    ), // node: ValidationError: / should be a object or a mapping directive but it is an array. / should
];

/// Equality with numbers compared as numbers.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => x.as_f64() == y.as_f64(),
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Object(x), Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn directives_match_the_reference() {
    let event = Json::parse(EVENT).unwrap();
    let mut failures = Vec::new();
    for (mapping, expected) in CASES {
        let got = Mapping::parse(mapping)
            .map_err(|e| e.to_string())
            .and_then(|m| m.apply_json(&event).map_err(|e| e.to_string()));
        match (got, expected) {
            (Ok(v), Some(e)) => {
                let v = v.map(|v| v.to_value()).unwrap_or_default();
                let e: serde_json::Value = serde_json::from_str(e).unwrap();
                if !same(&v, &e) {
                    failures.push(format!("{mapping}\n  expected {e}\n  got      {v}"));
                }
            }
            (Err(_), None) => {}
            (Ok(v), None) => failures.push(format!("{mapping}\n  expected an error, got {v:?}")),
            (Err(e), Some(x)) => {
                failures.push(format!("{mapping}\n  expected {x}\n  got error {e}"))
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
