//! JavaScript semantics the reference relies on (truthiness, `String(x)`, loose blankness,
//! property order, `JSON.stringify`), so mappings behave here exactly as they do in Segment.

//!
//! Also `Date.parse` ([`date`]), `String.prototype.slice` on UTF-16 code units, and the names of
//! built-in prototype members that a property lookup finds even when the JSON data lacks them.

pub(crate) mod date;

use crate::Json;
use std::borrow::Cow;
use std::collections::HashMap;

/// JavaScript truthiness of a JSON value.
pub(crate) fn truthy(value: &Json<'_>) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Json::Str(s) => !s.is_empty(),
        Json::Array(_) | Json::Object(_) => true,
    }
}

/// `value != ''` in JavaScript's loose equality: what `@if {blank}` counts as blank, besides
/// undefined and null.
pub(crate) fn loosely_empty(value: &Json<'_>) -> bool {
    match value {
        Json::Null => true,
        Json::Bool(b) => !*b,
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::Str(s) => s.is_empty(),
        Json::Array(_) => {
            let mut out = String::new();
            push_js_string(&mut out, value);
            out.is_empty()
        }
        Json::Object(_) => false,
    }
}

/// JavaScript's `Number.prototype.toString` for a finite number.
///
/// An integer written without fraction or exponent keeps every digit, even beyond 2^53, where
/// JavaScript would print the nearest double (`12345678901234567890` → `12345678901234567000`):
/// rounding an id or an amount is never what the sender meant.
pub(crate) fn number_to_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return itoa::Buffer::new().format(i).to_owned();
    }
    if let Some(u) = n.as_u64() {
        return itoa::Buffer::new().format(u).to_owned();
    }
    f64_to_string(n.as_f64().unwrap_or(0.0))
}

/// `Number(s)` for a string (ECMAScript `StringToNumber`).
pub(crate) fn string_to_number(s: &str) -> f64 {
    let s = trim(s);
    if s.is_empty() {
        return 0.0;
    }
    match s {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let bytes = s.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let radix = match bytes[1] {
            b'x' | b'X' => Some(16),
            b'o' | b'O' => Some(8),
            b'b' | b'B' => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            return parse_power_of_two_radix(&s[2..], radix);
        }
    }
    if is_decimal_literal(bytes) {
        // Rust's parser is correctly rounded, like JS; the grammar check above keeps out the
        // spellings Rust accepts and JS does not ("inf", "nan", ...).
        s.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// `StrDecimalLiteral` without the `Infinity` spellings: `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Parses `0x` / `0o` / `0b` digits with round-half-to-even, as JS does for long literals.
fn parse_power_of_two_radix(digits: &str, radix: u32) -> f64 {
    let bits_per_digit = radix.trailing_zeros() as usize;
    let mut bits: Vec<bool> = Vec::with_capacity(digits.len() * bits_per_digit);
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return f64::NAN;
        };
        for shift in (0..bits_per_digit).rev() {
            bits.push((d >> shift) & 1 == 1);
        }
    }
    if bits.is_empty() {
        return f64::NAN;
    }
    let first_one = bits.iter().position(|&b| b).unwrap_or(bits.len());
    let bits = &bits[first_one..];
    const MANTISSA_BITS: usize = 53;
    if bits.len() <= MANTISSA_BITS {
        return bits
            .iter()
            .fold(0.0, |acc, &b| acc * 2.0 + f64::from(u8::from(b)));
    }
    let mut mantissa: u64 = bits[..MANTISSA_BITS]
        .iter()
        .fold(0, |acc, &b| (acc << 1) | u64::from(b));
    let round_bit = bits[MANTISSA_BITS];
    let sticky = bits[MANTISSA_BITS + 1..].iter().any(|&b| b);
    if round_bit && (sticky || mantissa & 1 == 1) {
        mantissa += 1;
    }
    let exponent = i32::try_from(bits.len() - MANTISSA_BITS).unwrap_or(i32::MAX);
    // 2^exponent overflows to infinity exactly when the JS result does.
    (mantissa as f64) * 2f64.powi(exponent)
}

/// JavaScript's `String(x)` for an f64.
pub(crate) fn f64_to_string(f: f64) -> String {
    // ryu-js prints -0 as "-0"; JavaScript prints it as "0".
    if f == 0.0 {
        return "0".to_owned();
    }
    let mut buf = ryu_js::Buffer::new();
    buf.format(f).to_owned()
}

/// How Liquid prints a value (`{{ x }}`): strings as they are, numbers as JavaScript text,
/// booleans as text, null as nothing, arrays as their elements so printed with nothing between
/// them (nested arrays flattened), objects as `[object Object]`.
pub(crate) fn push_liquid(out: &mut String, value: &Json<'_>) {
    match value {
        Json::Null => {}
        Json::Array(items) => items.iter().for_each(|item| push_liquid(out, item)),
        Json::Object(_) => out.push_str("[object Object]"),
        scalar => push_js_string(out, scalar),
    }
}

/// JavaScript's `String(x)`, as template placeholders render values.
pub(crate) fn push_js_string(out: &mut String, value: &Json<'_>) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&number_to_string(n)),
        Json::Str(s) => out.push_str(s),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Array#join renders null and undefined elements as empty strings.
                if !item.is_null() {
                    push_js_string(out, item);
                }
            }
        }
        Json::Object(_) => out.push_str("[object Object]"),
    }
}

/// The type name the reference puts in its error messages (`realTypeOf`).
pub(crate) fn type_name(value: Option<&Json<'_>>) -> &'static str {
    match value {
        None => "undefined",
        Some(v) => v.kind(),
    }
}

/// `a` or `an`, as the reference's validator picks it (by the first letter only).
pub(crate) fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

/// A key JavaScript treats as an array index: it enumerates those first, in numeric order.
pub(crate) fn index_key(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    // 2^32 - 1 is the one all-digit key below 2^32 that is not an index.
    u32::try_from(n).ok().filter(|&n| n != u32::MAX)
}

/// An object's entries as JavaScript holds them: a repeated key keeps its first position and its
/// last value (`JSON.parse`, `Object.assign`), and index keys come first, in numeric order.
pub(crate) fn js_order<K: AsRef<str>, V>(entries: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut out = JsEntries::default();
    for (k, v) in entries {
        out.set(k, v);
    }
    out.finish()
}

/// Builds an object's entries with JavaScript's assignment semantics.
pub(crate) struct JsEntries<K, V> {
    entries: Vec<(K, V)>,
    // Built only for large objects, where a linear scan per key would be quadratic.
    index: Option<HashMap<String, usize>>,
}

impl<K, V> Default for JsEntries<K, V> {
    fn default() -> Self {
        JsEntries {
            entries: Vec::new(),
            index: None,
        }
    }
}

const LINEAR_SCAN_MAX: usize = 16;

impl<K: AsRef<str>, V> JsEntries<K, V> {
    /// `obj[key] = value`.
    pub(crate) fn set(&mut self, key: K, value: V) {
        let found = match &self.index {
            Some(index) => index.get(key.as_ref()).copied(),
            None => self
                .entries
                .iter()
                .position(|(k, _)| k.as_ref() == key.as_ref()),
        };
        match found {
            Some(i) => self.entries[i].1 = value,
            None => {
                if let Some(index) = &mut self.index {
                    index.insert(key.as_ref().to_owned(), self.entries.len());
                } else if self.entries.len() >= LINEAR_SCAN_MAX {
                    let mut index: HashMap<String, usize> = self
                        .entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.as_ref().to_owned(), i))
                        .collect();
                    index.insert(key.as_ref().to_owned(), self.entries.len());
                    self.index = Some(index);
                }
                self.entries.push((key, value));
            }
        }
    }

    /// The entries in JavaScript's enumeration order.
    pub(crate) fn finish(mut self) -> Vec<(K, V)> {
        if self
            .entries
            .iter()
            .any(|(k, _)| index_key(k.as_ref()).is_some())
        {
            // Stable: the other keys keep their insertion order.
            self.entries
                .sort_by_key(|(k, _)| index_key(k.as_ref()).map_or((1, 0), |i| (0, i)));
        }
        self.entries
    }
}

/// Whether an object's entries are already in JavaScript's order with no repeated key, so they
/// can be used as they are.
pub(crate) fn is_js_ordered<V>(pairs: &[(Cow<'_, str>, V)]) -> bool {
    if pairs.iter().any(|(k, _)| index_key(k).is_some()) {
        return false;
    }
    if pairs.len() <= LINEAR_SCAN_MAX {
        pairs
            .iter()
            .enumerate()
            .all(|(i, (k, _))| pairs[..i].iter().all(|(j, _)| j != k))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        pairs.iter().all(|(k, _)| seen.insert(k.as_ref()))
    }
}

/// An object's entries by reference, in JavaScript's order; no copying when they already are.
pub(crate) fn entries<'p, 'a>(pairs: &'p [(Cow<'a, str>, Json<'a>)]) -> Entries<'p, 'a> {
    if is_js_ordered(pairs) {
        Entries::InOrder(pairs.iter())
    } else {
        Entries::Reordered(js_order(pairs.iter().map(|(k, v)| (k.as_ref(), v))).into_iter())
    }
}

/// The iterator of [`entries`].
pub(crate) enum Entries<'p, 'a> {
    InOrder(std::slice::Iter<'p, (Cow<'a, str>, Json<'a>)>),
    Reordered(std::vec::IntoIter<(&'p str, &'p Json<'a>)>),
}

impl<'p, 'a> Iterator for Entries<'p, 'a> {
    type Item = (&'p str, &'p Json<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::InOrder(it) => it.next().map(|(k, v)| (k.as_ref(), v)),
            Entries::Reordered(it) => it.next(),
        }
    }
}

/// A JSON value as `JSON.parse` would have built it: repeated keys merged and index keys
/// first, at every level. Integers beyond 2^53 keep every digit (JavaScript would round them).
pub(crate) fn normalize(value: Json<'_>) -> Json<'_> {
    match value {
        Json::Object(pairs) => {
            let pairs = if is_js_ordered(&pairs) {
                pairs
            } else {
                js_order(pairs)
            };
            Json::Object(pairs.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        Json::Array(items) => Json::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// Appends `s` as `JSON.stringify` quotes a string.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `JSON.stringify` of a JSON value: JavaScript's number forms and property order.
pub(crate) fn push_json(out: &mut String, value: &Json<'_>) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&number_to_string(n)),
        Json::Str(s) => push_json_string(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        Json::Object(pairs) => {
            out.push('{');
            for (i, (k, v)) in entries(pairs).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, k);
                out.push(':');
                push_json(out, v);
            }
            out.push('}');
        }
    }
}

/// The length of a string in UTF-16 code units, as JavaScript counts it.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The UTF-16 code unit at `index` as a one-unit string (`"abc"[1]`). Half of a surrogate pair
/// cannot be held in a Rust string; it becomes U+FFFD.
pub(crate) fn utf16_unit_at(s: &str, index: usize) -> Option<String> {
    let unit = s.encode_utf16().nth(index)?;
    Some(String::from_utf16_lossy(&[unit]))
}

/// Whether JavaScript's `String.prototype.trim` removes `c`: its WhiteSpace and
/// LineTerminator sets, which differ from Rust's `char::is_whitespace` (JavaScript trims
/// U+FEFF and keeps U+0085).
pub(crate) fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{A}' | '\u{B}' | '\u{C}' | '\u{D}' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JavaScript's `trim()`.
pub(crate) fn trim(s: &str) -> &str {
    // Almost every value starts and ends with a visible ASCII character; checking the two end
    // bytes spares the char-by-char Unicode whitespace test for them.
    let visible = |b: u8| b > b' ' && b < 0x7f;
    match s.as_bytes() {
        [first, .., last] if visible(*first) && visible(*last) => s,
        [only] if visible(*only) => s,
        _ => s.trim_matches(is_js_whitespace),
    }
}

/// `s.slice(start, end)` measured in UTF-16 code units, as the reference slices `match()`
/// patterns. May split a surrogate pair, hence the `Vec<u16>`.
pub(crate) fn slice_utf16(s: &str, drop_front: usize, drop_back: usize) -> Vec<u16> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let end = units.len().saturating_sub(drop_back);
    units
        .get(drop_front.min(end)..end)
        .unwrap_or_default()
        .to_vec()
}

/// Members of `Object.prototype` (Node 20), which every JS object inherits.
pub(crate) const OBJECT_PROTO: &[&str] = &[
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
    "__proto__",
    "constructor",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "toString",
    "valueOf",
];

/// Members of `Array.prototype` (Node 20).
pub(crate) const ARRAY_PROTO: &[&str] = &[
    "at",
    "concat",
    "constructor",
    "copyWithin",
    "entries",
    "every",
    "fill",
    "filter",
    "find",
    "findIndex",
    "findLast",
    "findLastIndex",
    "flat",
    "flatMap",
    "forEach",
    "includes",
    "indexOf",
    "join",
    "keys",
    "lastIndexOf",
    "map",
    "pop",
    "push",
    "reduce",
    "reduceRight",
    "reverse",
    "shift",
    "slice",
    "some",
    "sort",
    "splice",
    "toLocaleString",
    "toReversed",
    "toSorted",
    "toSpliced",
    "toString",
    "unshift",
    "values",
    "with",
];

/// Members of `String.prototype` (Node 20).
pub(crate) const STRING_PROTO: &[&str] = &[
    "anchor",
    "at",
    "big",
    "blink",
    "bold",
    "charAt",
    "charCodeAt",
    "codePointAt",
    "concat",
    "constructor",
    "endsWith",
    "fixed",
    "fontcolor",
    "fontsize",
    "includes",
    "indexOf",
    "isWellFormed",
    "italics",
    "lastIndexOf",
    "link",
    "localeCompare",
    "match",
    "matchAll",
    "normalize",
    "padEnd",
    "padStart",
    "repeat",
    "replace",
    "replaceAll",
    "search",
    "slice",
    "small",
    "split",
    "startsWith",
    "strike",
    "sub",
    "substr",
    "substring",
    "sup",
    "toLocaleLowerCase",
    "toLocaleUpperCase",
    "toLowerCase",
    "toString",
    "toUpperCase",
    "toWellFormed",
    "trim",
    "trimEnd",
    "trimLeft",
    "trimRight",
    "trimStart",
    "valueOf",
];

/// Members of `Number.prototype` (Node 20).
pub(crate) const NUMBER_PROTO: &[&str] = &[
    "constructor",
    "toExponential",
    "toFixed",
    "toLocaleString",
    "toPrecision",
    "toString",
    "valueOf",
];

/// Members of `Boolean.prototype` (Node 20).
pub(crate) const BOOLEAN_PROTO: &[&str] = &["constructor", "toString", "valueOf"];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #[test]
        fn trim_fast_path_agrees_with_the_full_trim(
            s in "[ \t\n\u{a0}\u{3000}\u{feff}\u{85}a-z\u{7f}é]{0,6}"
        ) {
            prop_assert_eq!(trim(&s), s.trim_matches(is_js_whitespace));
        }
    }

    fn stringify(v: serde_json::Value) -> String {
        let mut out = String::new();
        push_json(&mut out, &Json::from(&v));
        out
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let s = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => number_to_string(&n),
            _ => unreachable!(),
        };
        assert_eq!(s(json!(19.5)), "19.5");
        assert_eq!(s(json!(100.0)), "100");
        assert_eq!(s(json!(1e21)), "1e+21");
        assert_eq!(s(json!(1e-7)), "1e-7");
        assert_eq!(s(json!(-0.0)), "0");
        // node: String(12345678901234567890) === "12345678901234567000"; an integer written
        // in full keeps every digit here on purpose (it is an id or an amount, not a double).
        assert_eq!(s(json!(12345678901234567890u64)), "12345678901234567890");
        assert_eq!(s(json!(9007199254740993i64)), "9007199254740993");
        assert_eq!(s(json!(-9007199254740993i64)), "-9007199254740993");
        assert_eq!(s(json!(1e300)), "1e+300");
    }

    #[test]
    fn stringify_matches_node() {
        // node: JSON.stringify(JSON.parse('{"b":1,"1":2,"a":[1.0,"x\\n\\u0001"],"b":3}'))
        let v = Json::parse(r#"{"b":1,"1":2,"a":[1.0,"x\n\u0001"],"b":3}"#).unwrap();
        let mut out = String::new();
        push_json(&mut out, &v);
        assert_eq!(out, r#"{"1":2,"b":3,"a":[1,"x\n\u0001"]}"#);
        assert_eq!(stringify(json!("é/\u{2028}")), "\"é/\u{2028}\"");
        assert_eq!(
            stringify(json!({"4294967295": 1, "10": 2, "9": 3})),
            r#"{"9":3,"10":2,"4294967295":1}"#
        );
    }

    #[test]
    fn index_keys() {
        assert_eq!(index_key("0"), Some(0));
        assert_eq!(index_key("4294967294"), Some(4294967294));
        assert_eq!(index_key("4294967295"), None);
        assert_eq!(index_key("01"), None);
        assert_eq!(index_key("-1"), None);
        assert_eq!(index_key(""), None);
    }

    #[test]
    fn large_objects_keep_first_position_and_last_value() {
        let entries: Vec<(String, usize)> = (0..40).map(|i| (format!("k{}", i % 20), i)).collect();
        let out = js_order(entries);
        assert_eq!(out.len(), 20);
        assert_eq!(out[3], ("k3".to_owned(), 23));
    }

    #[test]
    fn trims_like_javascript() {
        assert_eq!(trim("\u{feff} a \n"), "a");
        assert_eq!(trim("\u{85}a"), "\u{85}a");
    }

    #[test]
    fn utf16() {
        assert_eq!(utf16_len("a😀"), 3);
        assert_eq!(utf16_unit_at("a😀b", 3).as_deref(), Some("b"));
        assert_eq!(utf16_unit_at("a😀b", 1).as_deref(), Some("\u{fffd}"));
    }
}
