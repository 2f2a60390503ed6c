//! The event as Liquid sees it, with liquidjs's JavaScript semantics: how values print, what
//! counts as empty, how they convert to numbers.
//!
//! Event data is not copied into Liquid's own value type: [`Json`] implements Liquid's view
//! traits directly, so a lookup borrows from the event.

use crate::Json;
use crate::js;
use liquid_core::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, ScalarCow, State, Value, ValueView,
};
use std::borrow::Cow;
use std::fmt;

/// JavaScript's `undefined`: what a lookup of a missing variable gives. liquidjs tells it from
/// `null` (event data) and from the `nil` literal in comparisons.
#[derive(Debug, Clone, Copy)]
pub(super) struct Undefined;

/// The one `undefined`, for lookups to borrow.
pub(super) static UNDEFINED: Undefined = Undefined;

impl ValueView for Undefined {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Borrowed(&"")
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Borrowed(&"undefined")
    }
    fn type_name(&self) -> &'static str {
        "undefined"
    }
    fn query_state(&self, state: State) -> bool {
        !matches!(state, State::Truthy)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_static("")
    }
    fn to_value(&self) -> Value {
        Value::Nil
    }
    fn is_nil(&self) -> bool {
        true
    }
}

impl ValueView for Json<'_> {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        match self {
            Json::Str(s) => DisplayCow::Borrowed(s),
            other => {
                let mut out = String::new();
                stringify_json(&mut out, other);
                DisplayCow::Owned(Box::new(out))
            }
        }
    }
    fn source(&self) -> DisplayCow<'_> {
        let mut out = String::new();
        js::push_json(&mut out, self);
        DisplayCow::Owned(Box::new(out))
    }
    fn type_name(&self) -> &'static str {
        match self {
            // Not Liquid's "nil": liquidjs tells event nulls from the `nil` literal.
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(n) if n.is_f64() => "fractional number",
            Json::Number(_) => "whole number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => !matches!(self, Json::Null | Json::Bool(false)),
            State::DefaultValue => matches!(self, Json::Null | Json::Bool(false)),
            State::Empty => is_empty(self),
            State::Blank => is_blank(self),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            Json::Str(s) => KStringCow::from_ref(s),
            other => {
                let mut out = String::new();
                stringify_json(&mut out, other);
                KStringCow::from_string(out)
            }
        }
    }
    fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Nil,
            Json::Bool(b) => Value::scalar(*b),
            Json::Number(n) => number(n.as_f64().unwrap_or(0.0)),
            Json::Str(s) => Value::scalar(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(ValueView::to_value).collect()),
            Json::Object(pairs) => {
                let mut o = liquid_core::Object::new();
                for (k, v) in js::entries(pairs) {
                    o.insert(k.to_owned().into(), ValueView::to_value(v));
                }
                Value::Object(o)
            }
        }
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Json::Bool(b) => Some(ScalarCow::new(*b)),
            Json::Number(n) => Some(match n.as_i64() {
                Some(i) if i.unsigned_abs() <= 1 << 53 => ScalarCow::new(i),
                _ => ScalarCow::new(n.as_f64().unwrap_or(0.0)),
            }),
            Json::Str(s) => Some(ScalarCow::new(s.as_ref())),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Json::Array(_) => Some(self),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Json::Object(_) => Some(self),
            _ => None,
        }
    }
    fn is_nil(&self) -> bool {
        matches!(self, Json::Null)
    }
}

impl ArrayView for Json<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.as_array().map_or(0, |a| a.len() as i64)
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        let items: &'k [Json<'_>] = Json::as_array(self).unwrap_or_default();
        Box::new(items.iter().map(|v| v as &dyn ValueView))
    }
    fn contains_key(&self, index: i64) -> bool {
        ArrayView::get(self, index).is_some()
    }
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let items = Json::as_array(self)?;
        let index = if index < 0 {
            (items.len() as i64).checked_add(index)?
        } else {
            index
        };
        usize::try_from(index)
            .ok()
            .and_then(|i| items.get(i))
            .map(|v| v as &dyn ValueView)
    }
}

impl ObjectView for Json<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.as_object()
            .map_or(0, |o| js::entries(o).count() as i64)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        let pairs = Json::as_object(self).unwrap_or_default();
        Box::new(js::entries(pairs).map(|(k, _)| KStringCow::from_ref(k)))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        let pairs = Json::as_object(self).unwrap_or_default();
        Box::new(js::entries(pairs).map(|(_, v)| v as &dyn ValueView))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        let pairs = Json::as_object(self).unwrap_or_default();
        Box::new(js::entries(pairs).map(|(k, v)| (KStringCow::from_ref(k), v as &dyn ValueView)))
    }
    fn contains_key(&self, index: &str) -> bool {
        Json::get(self, index).is_some()
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        Json::get(self, index).map(|v| v as &dyn ValueView)
    }
}

fn is_empty(v: &Json<'_>) -> bool {
    match v {
        Json::Str(s) => s.is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(pairs) => pairs.is_empty(),
        _ => false,
    }
}

fn is_blank(v: &Json<'_>) -> bool {
    match v {
        Json::Null | Json::Bool(false) => true,
        Json::Str(s) => js::trim(s).is_empty(),
        other => is_empty(other),
    }
}

/// liquidjs's `stringify` of event data: nil prints nothing, arrays print their items run
/// together, objects print `[object Object]`.
fn stringify_json(out: &mut String, v: &Json<'_>) {
    match v {
        Json::Null => {}
        Json::Array(items) => items.iter().for_each(|i| stringify_json(out, i)),
        other => js::push_js_string(out, other),
    }
}

/// A number as a Liquid value that prints as JavaScript prints it. Liquid prints floats the
/// Rust way, which differs outside [1e-6, 1e21) and for non-finite values: those are kept as
/// their JavaScript text, which the numeric filters read back as the same number.
pub(super) fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        // `f` is integral and within i64, so the conversion is exact.
        return Value::scalar(f as i64);
    }
    if f.is_finite() && (1e-6..1e21).contains(&f.abs()) {
        Value::scalar(f)
    } else {
        Value::scalar(js::f64_to_string(f))
    }
}

/// A Liquid value as liquidjs sees it.
#[derive(Debug)]
pub(super) enum Js<'v> {
    /// A missing variable.
    Undefined,
    /// `null` in the event.
    Null,
    /// The `nil` literal (liquidjs's `NullDrop`), also Liquid's own nil values.
    Nil,
    /// The `empty` literal.
    Empty,
    /// The `blank` literal.
    Blank,
    Bool(bool),
    Num(f64),
    Str(Cow<'v, str>),
    Array(&'v dyn ArrayView),
    Object(&'v dyn ObjectView),
}

/// Classifies a Liquid value.
pub(super) fn js_of(v: &dyn ValueView) -> Js<'_> {
    if let Some(state) = v.as_state() {
        return match state {
            State::Empty => Js::Empty,
            State::Blank => Js::Blank,
            _ => Js::Nil,
        };
    }
    if let Some(a) = v.as_array() {
        return Js::Array(a);
    }
    if let Some(o) = v.as_object() {
        return Js::Object(o);
    }
    if v.is_nil() {
        return match v.type_name() {
            "undefined" => Js::Undefined,
            "null" => Js::Null,
            _ => Js::Nil,
        };
    }
    match v.as_scalar() {
        Some(s) => scalar(s),
        None => Js::Undefined,
    }
}

fn scalar(s: ScalarCow<'_>) -> Js<'_> {
    if let Some(b) = s.to_bool() {
        return Js::Bool(b);
    }
    match s.type_name() {
        "whole number" | "fractional number" => Js::Num(s.to_float().unwrap_or(0.0)),
        "string" => Js::Str(s.into_cow_str()),
        _ => Js::Str(Cow::Owned(s.to_kstr().to_string())),
    }
}

impl Js<'_> {
    /// liquidjs's `isFalsy`: only `false`, `null` and `undefined` (and `nil`).
    pub(super) fn truthy(&self) -> bool {
        !matches!(self, Js::Undefined | Js::Null | Js::Nil | Js::Bool(false))
    }

    /// `isNil(toValue(v))`.
    pub(super) fn is_nil(&self) -> bool {
        matches!(self, Js::Undefined | Js::Null | Js::Nil)
    }
}

/// liquidjs's `stringify`.
pub(super) fn stringify(v: &dyn ValueView) -> Cow<'_, str> {
    match js_of(v) {
        Js::Str(s) => s,
        _ => {
            let mut out = String::new();
            push_stringify(&mut out, v);
            Cow::Owned(out)
        }
    }
}

fn push_stringify(out: &mut String, v: &dyn ValueView) {
    match js_of(v) {
        Js::Undefined | Js::Null | Js::Nil | Js::Empty | Js::Blank => {}
        Js::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Js::Num(n) => out.push_str(&js::f64_to_string(n)),
        Js::Str(s) => out.push_str(&s),
        Js::Array(a) => a.values().for_each(|i| push_stringify(out, i)),
        Js::Object(_) => out.push_str("[object Object]"),
    }
}

/// JavaScript's `String(v)` (what `Array#join` and `indexOf` apply): unlike `stringify`, nested
/// arrays are joined with commas and `null` prints as `null`.
pub(super) fn js_string(v: &dyn ValueView) -> String {
    match js_of(v) {
        Js::Undefined => "undefined".into(),
        Js::Null | Js::Nil => "null".into(),
        Js::Empty | Js::Blank => String::new(),
        Js::Bool(b) => b.to_string(),
        Js::Num(n) => js::f64_to_string(n),
        Js::Str(s) => s.into_owned(),
        Js::Array(a) => join(a, ","),
        Js::Object(_) => "[object Object]".into(),
    }
}

/// `Array.prototype.join`: null and undefined items print as nothing.
pub(super) fn join(a: &dyn ArrayView, separator: &str) -> String {
    let mut out = String::new();
    for (i, item) in a.values().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        if !js_of(item).is_nil() {
            out.push_str(&js_string(item));
        }
    }
    out
}

/// `+toValue(v) || 0`: liquidjs's `toNumber`.
pub(super) fn to_number(v: &dyn ValueView) -> f64 {
    let n = js_number(v);
    if n.is_nan() { 0.0 } else { n }
}

/// JavaScript's `Number(v)`.
pub(super) fn js_number(v: &dyn ValueView) -> f64 {
    match js_of(v) {
        Js::Undefined => f64::NAN,
        Js::Null | Js::Nil => 0.0,
        Js::Empty | Js::Blank => 0.0,
        Js::Bool(b) => f64::from(u8::from(b)),
        Js::Num(n) => n,
        Js::Str(s) => string_to_number(&s),
        Js::Array(a) => string_to_number(&join(a, ",")),
        Js::Object(_) => f64::NAN,
    }
}

/// JavaScript's `StringToNumber`: surrounding white space ignored, empty is 0, `0x`/`0o`/`0b`
/// prefixes, `Infinity`, and decimal literals (no `inf`, `nan` or `_`).
pub(super) fn string_to_number(s: &str) -> f64 {
    let t = js::trim(s);
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits.chars().fold(0.0, |acc, c| {
                acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
            });
        }
    }
    let (sign, body) = match t.as_bytes()[0] {
        b'+' => (1.0, &t[1..]),
        b'-' => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    let valid = {
        let b = body.as_bytes();
        let mut i = 0;
        let digits = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - start
        };
        let int = digits(&mut i);
        let mut frac = 0;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            frac = digits(&mut i);
        }
        let mut ok = int + frac > 0;
        if ok && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            ok = digits(&mut i) > 0;
        }
        ok && i == b.len()
    };
    if !valid {
        return f64::NAN;
    }
    body.parse::<f64>().map_or(f64::NAN, |f| sign * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_convert_to_numbers_as_in_javascript() {
        assert_eq!(string_to_number(" 12.5 "), 12.5);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x1A"), 26.0);
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(string_to_number(".5"), 0.5);
        assert_eq!(string_to_number("5."), 5.0);
        assert_eq!(string_to_number("1e3"), 1000.0);
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("1_000").is_nan());
        assert!(string_to_number("12abc").is_nan());
        assert!(string_to_number("-").is_nan());
        assert!(string_to_number("e5").is_nan());
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        assert_eq!(number(1950.0).render().to_string(), "1950");
        assert_eq!(number(2.5).render().to_string(), "2.5");
        assert_eq!(number(1e24).render().to_string(), "1e+24");
        assert_eq!(number(f64::INFINITY).render().to_string(), "Infinity");
        assert_eq!(number(f64::NAN).render().to_string(), "NaN");
        assert_eq!(to_number(&number(f64::NAN)), 0.0);
        assert_eq!(to_number(&number(1e24)), 1e24);
    }
}
