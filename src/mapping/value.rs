//! The value a mapping node computes while a mapping runs.
//!
//! The reference keeps `undefined` inside the objects and arrays it builds until the very end
//! (`removeUndefined`), and some directives see it: `@merge` lets an undefined member override
//! an earlier one, `@flatten` carries it, `@excludeWhenNull` makes it. So values computed inside
//! a mapping can hold undefined members; [`Val::finalize`] removes them, as the reference does
//! when `transform` returns.

use super::Resolved;
use crate::Json;
use crate::js;
use std::borrow::Cow;

/// A JavaScript value produced by a mapping node.
#[derive(Debug, Clone)]
pub(crate) enum Val<'r, 'a> {
    /// `undefined`.
    Undefined,
    /// A value borrowed from the event or the mapping.
    Ref(&'r Json<'a>),
    /// A value made for this event.
    Owned(Json<'a>),
    /// An object built by the mapping; members may be undefined.
    Object(Vec<(Cow<'r, str>, Val<'r, 'a>)>),
    /// An array built by the mapping; items may be undefined.
    Array(Vec<Val<'r, 'a>>),
}

/// What kind of JavaScript value a [`Val`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// The name `realTypeOf` gives.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Undefined => "undefined",
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

impl<'r, 'a> Val<'r, 'a> {
    /// A string made for this event.
    pub(crate) fn string(s: String) -> Self {
        Val::Owned(Json::Str(Cow::Owned(s)))
    }

    /// The JSON value, when this is a plain JSON value.
    pub(crate) fn json(&self) -> Option<&Json<'a>> {
        match self {
            Val::Ref(v) => Some(v),
            Val::Owned(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Val::Undefined => Kind::Undefined,
            Val::Object(_) => Kind::Object,
            Val::Array(_) => Kind::Array,
            Val::Ref(v) => json_kind(v),
            Val::Owned(v) => json_kind(v),
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.json().and_then(Json::as_str)
    }

    /// Neither undefined nor null: what `@if {exists}` tests.
    #[inline]
    pub(crate) fn exists(&self) -> bool {
        !matches!(self.kind(), Kind::Undefined | Kind::Null)
    }

    /// `value !== undefined && value !== null && value != ''`: what `@if {blank}` tests.
    pub(crate) fn not_blank(&self) -> bool {
        match self {
            Val::Undefined => false,
            Val::Ref(v) => !js::loosely_empty(v),
            Val::Owned(v) => !js::loosely_empty(v),
            Val::Object(_) => true,
            Val::Array(_) => {
                let mut s = String::new();
                self.push_js_string(&mut s);
                !s.is_empty()
            }
        }
    }

    /// `String(value)`.
    pub(crate) fn push_js_string(&self, out: &mut String) {
        match self {
            Val::Undefined => out.push_str("undefined"),
            Val::Ref(v) => js::push_js_string(out, v),
            Val::Owned(v) => js::push_js_string(out, v),
            Val::Object(_) => out.push_str("[object Object]"),
            Val::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    // Array#join renders null and undefined elements as empty strings.
                    if item.exists() {
                        item.push_js_string(out);
                    }
                }
            }
        }
    }

    /// `JSON.stringify(value)`; `None` where it returns undefined.
    pub(crate) fn to_json_string(&self) -> Option<String> {
        if matches!(self, Val::Undefined) {
            return None;
        }
        let mut out = String::new();
        self.push_json(&mut out);
        Some(out)
    }

    fn push_json(&self, out: &mut String) {
        match self {
            // Only reached inside arrays: JSON.stringify writes undefined items as null.
            Val::Undefined => out.push_str("null"),
            Val::Ref(v) => js::push_json(out, v),
            Val::Owned(v) => js::push_json(out, v),
            Val::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.push_json(out);
                }
                out.push(']');
            }
            Val::Object(members) => {
                out.push('{');
                let mut first = true;
                for (k, v) in members {
                    if matches!(v, Val::Undefined) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    js::push_json_string(out, k);
                    out.push(':');
                    v.push_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as JSON, as `removeUndefined` leaves it and serialization writes it: undefined
    /// members dropped, undefined items null. `None` for undefined itself.
    pub(crate) fn into_json(self) -> Option<Json<'a>> {
        match self {
            Val::Undefined => None,
            Val::Ref(v) => Some(v.clone()),
            Val::Owned(v) => Some(v),
            Val::Object(members) => Some(Json::Object(
                members
                    .into_iter()
                    .filter_map(|(k, v)| v.into_json().map(|v| (Cow::Owned(k.into_owned()), v)))
                    .collect(),
            )),
            Val::Array(items) => Some(Json::Array(
                items
                    .into_iter()
                    .map(|v| v.into_json().unwrap_or(Json::Null))
                    .collect(),
            )),
        }
    }

    /// The value as the crate's callers take it: borrowed where it was borrowed.
    #[inline]
    pub(crate) fn finalize(self) -> Resolved<'r, 'a> {
        match self {
            Val::Undefined => Resolved::Undefined,
            Val::Ref(v) => Resolved::Ref(v),
            Val::Owned(v) => Resolved::Owned(v),
            other => match other.into_json() {
                Some(v) => Resolved::Owned(v),
                None => Resolved::Undefined,
            },
        }
    }

    /// The same value with nothing borrowed for `'r`: what a directive returns after running
    /// a mapping over a payload it made itself.
    pub(crate) fn detach<'x>(self) -> Val<'x, 'a> {
        match self {
            Val::Undefined => Val::Undefined,
            Val::Ref(v) => Val::Owned(v.clone()),
            Val::Owned(v) => Val::Owned(v),
            Val::Object(members) => Val::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.detach()))
                    .collect(),
            ),
            Val::Array(items) => Val::Array(items.into_iter().map(Val::detach).collect()),
        }
    }

    /// The own enumerable properties `Object.assign` copies from this value, in order.
    pub(crate) fn assign_entries(self, out: &mut js::JsEntries<Cow<'r, str>, Val<'r, 'a>>) {
        match self {
            Val::Undefined => {}
            Val::Ref(v) => match v {
                Json::Object(pairs) => {
                    for (k, v) in js::entries(pairs) {
                        out.set(Cow::Borrowed(k), Val::Ref(v));
                    }
                }
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        out.set(Cow::Owned(i.to_string()), Val::Ref(item));
                    }
                }
                Json::Str(s) => assign_string(s, out),
                _ => {}
            },
            Val::Owned(v) => match v {
                Json::Object(pairs) => {
                    for (k, v) in js::js_order(pairs) {
                        out.set(Cow::Owned(k.into_owned()), Val::Owned(v));
                    }
                }
                Json::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        out.set(Cow::Owned(i.to_string()), Val::Owned(item));
                    }
                }
                Json::Str(s) => assign_string(&s, out),
                _ => {}
            },
            Val::Object(members) => {
                for (k, v) in members {
                    out.set(k, v);
                }
            }
            Val::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    out.set(Cow::Owned(i.to_string()), item);
                }
            }
        }
    }
}

/// `Object.assign` from a string copies one property per UTF-16 code unit.
fn assign_string<'r, 'a>(s: &str, out: &mut js::JsEntries<Cow<'r, str>, Val<'r, 'a>>) {
    let units: Vec<u16> = s.encode_utf16().collect();
    for (i, unit) in units.iter().enumerate() {
        out.set(
            Cow::Owned(i.to_string()),
            Val::string(String::from_utf16_lossy(&[*unit])),
        );
    }
}

fn json_kind(v: &Json<'_>) -> Kind {
    match v {
        Json::Null => Kind::Null,
        Json::Bool(_) => Kind::Boolean,
        Json::Number(_) => Kind::Number,
        Json::Str(_) => Kind::String,
        Json::Array(_) => Kind::Array,
        Json::Object(_) => Kind::Object,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_members_vanish_and_undefined_items_become_null() {
        let v = Val::Object(vec![
            (Cow::Borrowed("a"), Val::Undefined),
            (
                Cow::Borrowed("b"),
                Val::Array(vec![Val::Undefined, Val::string("x".into())]),
            ),
        ]);
        assert_eq!(v.to_json_string().as_deref(), Some(r#"{"b":[null,"x"]}"#));
        assert_eq!(
            v.into_json().map(|j| j.to_value()),
            Some(serde_json::json!({"b": [null, "x"]}))
        );
        assert_eq!(Val::Undefined.to_json_string(), None);
    }

    #[test]
    fn blankness_is_loose_inequality_with_the_empty_string() {
        let n = |v: serde_json::Value| Val::Owned(Json::from(&v).into_owned()).not_blank();
        assert!(!n(serde_json::json!(0)));
        assert!(!n(serde_json::json!(false)));
        assert!(!n(serde_json::json!([])));
        assert!(!n(serde_json::json!([[]])));
        assert!(n(serde_json::json!("0")));
        assert!(n(serde_json::json!({})));
        assert!(!Val::Array(vec![Val::Undefined]).not_blank());
    }
}
