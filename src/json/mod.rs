//! A borrowed JSON document: the form the pipeline reads events in.
//!
//! Strings without escapes point into the input buffer and objects are small vectors of pairs,
//! so parsing an event costs a handful of allocations instead of one per key and value.
//! Key lookup is linear, which for Segment events (a dozen keys per object) beats hashing.
//!
//! [`Json::parse`] goes through a hand-written parser (`parse.rs`) that only answers when its
//! result is exactly serde_json's, and through serde_json for everything else (errors included).

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

pub(crate) use node::{DocValue, View};

mod node;
mod parse;
#[cfg(test)]
mod parse_tests;

/// A JSON value whose strings may borrow from the text it was parsed from.
#[derive(Clone, PartialEq, Default)]
pub enum Json<'a> {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, kept exactly as parsed (integer or float).
    Number(serde_json::Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object, in document order. When a key repeats, the last one wins on lookup, as in
    /// JavaScript's `JSON.parse`.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl fmt::Debug for Json<'_> {
    /// Prints the document's shape only: events carry personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(_) => f.write_str("<bool>"),
            Json::Number(_) => f.write_str("<number>"),
            Json::Str(_) => f.write_str("<string>"),
            Json::Array(items) => write!(f, "<array of {}>", items.len()),
            Json::Object(pairs) => {
                f.write_str("{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v:?}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'a> Json<'a> {
    /// Parses JSON text, borrowing its strings where they have no escapes.
    ///
    /// ```
    /// let doc = rokt_capi::Json::parse(r#"{"type":"track","event":"Order Completed"}"#).unwrap();
    /// assert_eq!(doc.get("event").and_then(|e| e.as_str()), Some("Order Completed"));
    /// ```
    pub fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        // The fast parser answers only when its result is exactly serde_json's; for everything
        // else (errors included) serde_json has the last word.
        match parse::parse(text) {
            Some(doc) => Ok(doc),
            None => serde_json::from_str(text),
        }
    }

    /// Parses JSON bytes (must be UTF-8).
    pub fn parse_slice(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        // Invalid UTF-8 and failures go to `from_slice` itself, so its errors are unchanged.
        match std::str::from_utf8(bytes).ok().and_then(parse::parse) {
            Some(doc) => Ok(doc),
            None => serde_json::from_slice(bytes),
        }
    }

    /// The member `key` of an object (the last one, if the key repeats).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| key_eq(k, key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as f64, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The pairs, if this is an object.
    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Json<'a>)]> {
        match self {
            Json::Object(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// The JavaScript type name of the value, as error messages say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// A copy that owns all its strings, independent of the input.
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Number(n) => Json::Number(n),
            Json::Str(s) => Json::Str(Cow::Owned(s.into_owned())),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(pairs) => Json::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// The value as a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::Value::from(self)
    }
}

/// Key equality for member lookups. Keys of one object mostly differ in length or first byte;
/// testing those inline spares a `memcmp` call for nearly every key that is not the one sought.
#[inline]
pub(crate) fn key_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.first() == b.first() && a == b
}

impl From<&Json<'_>> for serde_json::Value {
    fn from(json: &Json<'_>) -> Self {
        match json {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::Str(s) => serde_json::Value::String(s.to_string()),
            Json::Array(items) => serde_json::Value::Array(items.iter().map(Into::into).collect()),
            Json::Object(pairs) => {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    map.insert(k.to_string(), v.into());
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

impl<'a> From<&'a serde_json::Value> for Json<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(n.clone()),
            serde_json::Value::String(s) => Json::Str(Cow::Borrowed(s)),
            serde_json::Value::Array(items) => Json::Array(items.iter().map(Into::into).collect()),
            serde_json::Value::Object(map) => Json::from(map),
        }
    }
}

impl<'a> From<&'a serde_json::Map<String, serde_json::Value>> for Json<'a> {
    /// The object, in the map's order, its strings borrowed.
    fn from(map: &'a serde_json::Map<String, serde_json::Value>) -> Self {
        Json::Object(
            map.iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), v.into()))
                .collect(),
        )
    }
}

/// For `#[serde(deserialize_with)]`: an optional document read from configuration, owned so
/// that it outlives the text it was read from.
pub(crate) fn owned_option<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Json<'static>>, D::Error> {
    Ok(Option::<Json<'de>>::deserialize(d)?.map(Json::into_owned))
}

impl From<serde_json::Value> for Json<'static> {
    /// The value as a document, its objects in the value's own order (insertion order only
    /// where serde_json's `preserve_order` feature is on; sorted otherwise).
    fn from(value: serde_json::Value) -> Self {
        Json::from(&value).into_owned()
    }
}

impl<'a> From<&Json<'a>> for Json<'a> {
    fn from(json: &Json<'a>) -> Self {
        json.clone()
    }
}

impl From<&str> for Json<'static> {
    fn from(s: &str) -> Self {
        Json::Str(Cow::Owned(s.to_owned()))
    }
}

impl From<String> for Json<'static> {
    fn from(s: String) -> Self {
        Json::Str(Cow::Owned(s))
    }
}

impl From<bool> for Json<'static> {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::Str(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Segment objects rarely have more than eight members; sizing for that up front saves
        // the reallocations of growing from empty.
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value()?;
            pairs.push((key, value));
        }
        Ok(Json::Object(pairs))
    }
}

/// Deserializes an object key, borrowing it from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let doc = Json::parse(r#"{"a":"plain","b":"esc\"aped"}"#).unwrap();
        assert!(matches!(
            doc.get("a"),
            Some(Json::Str(Cow::Borrowed("plain")))
        ));
        assert!(matches!(doc.get("b"), Some(Json::Str(Cow::Owned(_)))));
    }

    #[test]
    fn last_duplicate_key_wins_like_json_parse() {
        let doc = Json::parse(r#"{"k":1,"k":2}"#).unwrap();
        assert_eq!(doc.get("k").and_then(Json::as_f64), Some(2.0));
    }

    #[test]
    fn round_trips_through_serde_json_value() {
        let text = r#"{"n":1.5,"i":-3,"u":18446744073709551615,"s":"x","a":[null,true],"o":{}}"#;
        let doc = Json::parse(text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc.to_value(), value);
        assert_eq!(Json::from(&value).to_value(), value);
        assert_eq!(serde_json::to_value(&doc).unwrap(), value);
    }

    #[test]
    fn debug_hides_values() {
        let doc = Json::parse(r#"{"email":"jane@example.com"}"#).unwrap();
        assert!(!format!("{doc:?}").contains("jane"));
    }
}
