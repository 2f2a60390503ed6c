//! Reading an event in the form it is held in.
//!
//! Text is parsed into a [`Json`] document. A `serde_json::Value` or a typed
//! [`Event`](crate::segment::Event) is already a tree: turning it into a `Json` first would
//! allocate a pair vector per object and walk every member, mapped or not, only to be read once.
//! The direct encoder reads either form through [`DocValue`]; a [`View`] is the held forms seen as
//! one tree, borrowed where they are.

use super::Json;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;

/// A value of an event document, as the direct encoder reads it. `'r` is how long what it
/// borrows lives. (Public only so that the crate's sealed event trait may name it; the module
/// is private.)
pub trait DocValue<'r>: Copy {
    /// Whether this is `null`.
    fn is_null(self) -> bool;
    /// Whether this is an object.
    fn is_object(self) -> bool;
    /// The string, if this is one.
    fn as_str(self) -> Option<&'r str>;
    /// The number, if this is one.
    fn as_number(self) -> Option<&'r Number>;
    /// The boolean, if this is one.
    fn as_bool(self) -> Option<bool>;
    /// The number of items, if this is an array.
    fn array_len(self) -> Option<usize>;
    /// The item at `index` of an array.
    fn item(self, index: usize) -> Option<Self>;
    /// Calls `f` with each member of an object, in order; nothing for other values.
    fn for_each_member(self, f: impl FnMut(&'r str, Self));
    /// The member `key` of an object (the last one, if the key repeats).
    fn get(self, key: &str) -> Option<Self>;
    /// The value as a parsed document: itself when it is one, else a copy made into `held`
    /// (its strings still borrowed), for the readers written for documents.
    fn json<'h>(self, held: &'h mut Option<Json<'r>>) -> &'h Json<'r>
    where
        'r: 'h;
}

impl<'r, 'a: 'r> DocValue<'r> for &'r Json<'a> {
    #[inline(always)]
    fn is_null(self) -> bool {
        Json::is_null(self)
    }
    #[inline(always)]
    fn is_object(self) -> bool {
        matches!(self, Json::Object(_))
    }
    #[inline(always)]
    fn as_str(self) -> Option<&'r str> {
        Json::as_str(self)
    }
    #[inline(always)]
    fn as_number(self) -> Option<&'r Number> {
        match self {
            Json::Number(n) => Some(n),
            _ => None,
        }
    }
    #[inline(always)]
    fn as_bool(self) -> Option<bool> {
        Json::as_bool(self)
    }
    #[inline(always)]
    fn array_len(self) -> Option<usize> {
        self.as_array().map(<[_]>::len)
    }
    #[inline(always)]
    fn item(self, index: usize) -> Option<Self> {
        self.as_array()?.get(index)
    }
    #[inline(always)]
    fn for_each_member(self, mut f: impl FnMut(&'r str, Self)) {
        if let Json::Object(pairs) = self {
            for (key, value) in pairs {
                f(key, value);
            }
        }
    }
    #[inline(always)]
    fn get(self, key: &str) -> Option<Self> {
        Json::get(self, key)
    }
    #[inline(always)]
    fn json<'h>(self, _: &'h mut Option<Json<'r>>) -> &'h Json<'r>
    where
        'r: 'h,
    {
        self
    }
}

/// An event held as a `serde_json::Value` or a typed event, read in place. `'s` is how long
/// the objects a typed event's fields are gathered into live; `'a`, the event's own data.
#[derive(Clone, Copy)]
pub(crate) enum View<'s, 'a> {
    /// A `serde_json` value.
    Value(&'a Value),
    /// A `serde_json` object.
    Map(&'a Map<String, Value>),
    /// A typed string field.
    Str(&'a str),
    /// A typed number field.
    Number(&'a Number),
    /// A typed struct's members, in the order its serialization writes them.
    Object(&'s [(&'a str, View<'s, 'a>)]),
}

impl<'a> View<'_, 'a> {
    /// The value as a document (what a typed event serializes to), its strings borrowed.
    pub(crate) fn to_json(self) -> Json<'a> {
        match self {
            View::Value(v) => Json::from(v),
            View::Map(map) => Json::from(map),
            View::Str(s) => Json::Str(Cow::Borrowed(s)),
            View::Number(n) => Json::Number(n.clone()),
            View::Object(members) => Json::Object(
                members
                    .iter()
                    .map(|&(k, v)| (Cow::Borrowed(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'s, 'a: 's> DocValue<'s> for View<'s, 'a> {
    #[inline]
    fn is_null(self) -> bool {
        matches!(self, View::Value(Value::Null))
    }
    #[inline]
    fn is_object(self) -> bool {
        matches!(
            self,
            View::Value(Value::Object(_)) | View::Map(_) | View::Object(_)
        )
    }
    #[inline]
    fn as_str(self) -> Option<&'s str> {
        match self {
            View::Value(Value::String(s)) => Some(s),
            View::Str(s) => Some(s),
            _ => None,
        }
    }
    #[inline]
    fn as_number(self) -> Option<&'s Number> {
        match self {
            View::Value(Value::Number(n)) | View::Number(n) => Some(n),
            _ => None,
        }
    }
    #[inline]
    fn as_bool(self) -> Option<bool> {
        match self {
            View::Value(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    #[inline]
    fn array_len(self) -> Option<usize> {
        match self {
            View::Value(Value::Array(items)) => Some(items.len()),
            _ => None,
        }
    }
    #[inline]
    fn item(self, index: usize) -> Option<Self> {
        match self {
            View::Value(Value::Array(items)) => items.get(index).map(View::Value),
            _ => None,
        }
    }
    #[inline]
    fn for_each_member(self, mut f: impl FnMut(&'s str, Self)) {
        match self {
            View::Value(Value::Object(map)) | View::Map(map) => {
                for (key, value) in map {
                    f(key, View::Value(value));
                }
            }
            View::Object(members) => {
                for &(key, value) in members {
                    f(key, value);
                }
            }
            _ => {}
        }
    }
    #[inline]
    fn get(self, key: &str) -> Option<Self> {
        match self {
            View::Value(Value::Object(map)) | View::Map(map) => map.get(key).map(View::Value),
            View::Object(members) => members
                .iter()
                .rev()
                .find(|(k, _)| super::key_eq(k, key))
                .map(|&(_, v)| v),
            _ => None,
        }
    }
    fn json<'h>(self, held: &'h mut Option<Json<'s>>) -> &'h Json<'s>
    where
        's: 'h,
    {
        held.insert(self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a reader asks of a node, as text, to compare two forms of one value.
    fn describe<'r>(node: impl DocValue<'r>) -> String {
        let mut held = None;
        let mut out = format!(
            "null={} object={} str={:?} number={:?} bool={:?} json={:?} len={:?}",
            node.is_null(),
            node.is_object(),
            node.as_str(),
            node.as_number(),
            node.as_bool(),
            node.json(&mut held).to_value(),
            node.array_len(),
        );
        for i in 0..node.array_len().unwrap_or(0) + 1 {
            out.push_str(&format!(
                " item({i})={:?}",
                node.item(i).map(|v| describe(v))
            ));
        }
        node.for_each_member(|k, v| out.push_str(&format!(" [{k}: {}]", describe(v))));
        for key in ["a", "b", "missing"] {
            out.push_str(&format!(
                " get({key})={:?}",
                node.get(key).map(|v| describe(v))
            ));
        }
        out
    }

    #[test]
    fn a_value_reads_as_its_document_does() {
        let text = r#"{"a":{"b":[1,"x",null],"c":true},"b":"s","n":-1.5,"z":null,"e":{}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let doc = Json::from(&value);
        assert_eq!(describe(View::Value(&value)), describe(&doc));
        let Value::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(describe(View::Map(map)), describe(&doc));
    }

    #[test]
    fn typed_members_read_as_their_document_does() {
        let n = Number::from(7);
        let inner = [("a", View::Str("x"))];
        let members = [
            ("a", View::Number(&n)),
            ("b", View::Object(&inner)),
            ("b", View::Str("last")),
        ];
        let view = View::Object(&members);
        assert_eq!(describe(view), describe(&view.to_json()));
        assert_eq!(view.get("b").and_then(DocValue::as_str), Some("last"));
    }
}
