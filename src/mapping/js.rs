//! JavaScript value semantics the reference relies on (truthiness, `String(x)`, loose blankness),
//! so mappings behave here exactly as they do in Segment.

use crate::Json;

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
pub(crate) fn number_to_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    f64_to_string(f)
}

/// JavaScript's `String(x)` for an f64.
pub(crate) fn f64_to_string(f: f64) -> String {
    let mut buf = ryu_js::Buffer::new();
    buf.format(f).to_owned()
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
    s.trim_matches(is_js_whitespace)
}
