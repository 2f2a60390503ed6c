//! Open attribute maps: insertion-ordered, values restricted to what Rokt accepts.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::HashMap;

use crate::text::Text;

/// A scalar attribute value: string, number or boolean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeScalar<S = String> {
    /// A string.
    String(S),
    /// A number; integral floats are kept as integers so they print as JavaScript prints them.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

/// An attribute value: a scalar or a list of scalars.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue<S = String> {
    /// A string.
    String(S),
    /// A number.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
    /// A list of scalars.
    List(Vec<AttributeScalar<S>>),
    /// `null`: how JSON writes a JavaScript number it cannot hold (an infinite amount).
    Null,
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        AttributeValue::String(s.to_owned())
    }
}
impl From<String> for AttributeValue {
    fn from(s: String) -> Self {
        AttributeValue::String(s)
    }
}
impl<S: Text> AttributeScalar<S> {
    /// The same scalar holding an owned string.
    pub fn into_owned(self) -> AttributeScalar {
        match self {
            AttributeScalar::String(s) => AttributeScalar::String(s.into()),
            AttributeScalar::Number(n) => AttributeScalar::Number(n),
            AttributeScalar::Bool(b) => AttributeScalar::Bool(b),
        }
    }
}

impl<S: Text> AttributeValue<S> {
    /// The same value holding owned strings.
    pub fn into_owned(self) -> AttributeValue {
        match self {
            AttributeValue::String(s) => AttributeValue::String(s.into()),
            AttributeValue::Number(n) => AttributeValue::Number(n),
            AttributeValue::Bool(b) => AttributeValue::Bool(b),
            AttributeValue::List(items) => {
                AttributeValue::List(items.into_iter().map(AttributeScalar::into_owned).collect())
            }
            AttributeValue::Null => AttributeValue::Null,
        }
    }
}

impl<S> From<bool> for AttributeValue<S> {
    fn from(b: bool) -> Self {
        AttributeValue::Bool(b)
    }
}
impl<S> From<f64> for AttributeValue<S> {
    fn from(n: f64) -> Self {
        AttributeValue::Number(js_number(n))
    }
}

/// A conversion amount after coercion: a number (an integer written in the event keeps every
/// digit), or an infinite one, which a string such as `"Infinity"` or `"1e400"` coerces to and
/// JSON writes as `null`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Amount {
    /// A finite number.
    Number(serde_json::Number),
    /// Positive or negative infinity.
    Infinite {
        /// Negative infinity.
        negative: bool,
    },
}

impl Amount {
    /// The amount as a JavaScript number.
    pub fn as_f64(&self) -> f64 {
        match self {
            Amount::Number(n) => n.as_f64().unwrap_or(0.0),
            Amount::Infinite { negative: false } => f64::INFINITY,
            Amount::Infinite { negative: true } => f64::NEG_INFINITY,
        }
    }

    /// Whether JavaScript counts it as true: every amount but zero.
    pub fn is_truthy(&self) -> bool {
        self.as_f64() != 0.0
    }
}

impl From<f64> for Amount {
    /// NaN, which coercion never gives, becomes 0.
    fn from(f: f64) -> Self {
        if f.is_infinite() {
            Amount::Infinite { negative: f < 0.0 }
        } else {
            Amount::Number(js_number(f))
        }
    }
}

impl<S> From<Amount> for AttributeValue<S> {
    fn from(a: Amount) -> Self {
        match a {
            Amount::Number(n) => AttributeValue::Number(n),
            Amount::Infinite { .. } => AttributeValue::Null,
        }
    }
}

/// A JSON number as JavaScript would print it: integral values without a fraction.
pub(crate) fn js_number(n: f64) -> serde_json::Number {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        serde_json::Number::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

/// Attributes in insertion order; inserting an existing key replaces its value in place, as
/// JavaScript's object spread does.
#[derive(Clone)]
pub struct AttributeMap<S = String> {
    entries: Vec<(Cow<'static, str>, AttributeValue<S>)>,
    /// Where each key is, once the map is past [`INDEX_FROM`] entries: an event with thousands
    /// of properties would otherwise cost time quadratic in their number.
    index: Option<HashMap<Cow<'static, str>, usize>>,
}

/// The size from which an [`AttributeMap`] indexes its keys; below it a scan is cheaper.
const INDEX_FROM: usize = 32;

// Not derived: the derive would require `S: Default` for an empty map.
impl<S> Default for AttributeMap<S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: None,
        }
    }
}

impl<S: PartialEq> PartialEq for AttributeMap<S> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for AttributeMap<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AttributeMap").field(&self.entries).finish()
    }
}

impl AttributeMap {
    /// An empty map of owned strings (`AttributeMap::default()` makes one of any string type).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> AttributeMap<S> {
    /// Sets `key`, replacing an earlier value in its original position.
    pub fn insert(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AttributeValue<S>>,
    ) {
        let key = key.into();
        let value = value.into();
        if let Some(i) = self.position(&key) {
            self.entries[i].1 = value;
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.entries.len());
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() > INDEX_FROM {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            self.index = Some(index);
        }
    }
    /// Appends a key the map cannot hold yet (a fresh map's first, distinct keys), skipping
    /// the search `insert` makes for it.
    pub(crate) fn push_new(&mut self, key: &'static str, value: AttributeValue<S>) {
        debug_assert!(self.position(key).is_none(), "{key} is already in the map");
        debug_assert!(self.index.is_none(), "push_new is for small fresh maps");
        self.entries.push((Cow::Borrowed(key), value));
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&AttributeValue<S>> {
        self.position(key).map(|i| &self.entries[i].1)
    }
    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }
    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttributeValue<S>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<S: Text> AttributeMap<S> {
    /// The same map holding owned strings.
    pub fn into_owned(self) -> AttributeMap {
        AttributeMap {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (k, v.into_owned()))
                .collect(),
            index: self.index,
        }
    }
}

impl<S> IntoIterator for AttributeMap<S> {
    type Item = (Cow<'static, str>, AttributeValue<S>);
    type IntoIter = std::vec::IntoIter<(Cow<'static, str>, AttributeValue<S>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<S: Serialize> Serialize for AttributeMap<S> {
    fn serialize<W: Serializer>(&self, serializer: W) -> Result<W::Ok, W::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        self.serialize_entries(&mut map, |_| Ok(()))?;
        map.end()
    }
}

impl<S: Serialize> AttributeMap<S> {
    /// Writes the entries as `JSON.stringify` orders an object's keys: array-index keys
    /// (`"7"`, `"123"`, not `"01"`) first, ascending, then the rest in insertion order.
    /// `between` runs after the index keys, for an object whose other members (which are never
    /// index keys) go before this map's (see [`UserAttributes`](super::UserAttributes)).
    pub(crate) fn serialize_entries<M: SerializeMap>(
        &self,
        map: &mut M,
        between: impl FnOnce(&mut M) -> Result<(), M::Error>,
    ) -> Result<(), M::Error> {
        let index = |k: &str| crate::js::index_key(k);
        if self.entries.iter().any(|(k, _)| index(k).is_some()) {
            let mut indexed: Vec<(u32, usize)> = (self.entries.iter().enumerate())
                .filter_map(|(at, (k, _))| index(k).map(|i| (i, at)))
                .collect();
            indexed.sort_unstable();
            for (_, at) in indexed {
                let (k, v) = &self.entries[at];
                map.serialize_entry(k.as_ref(), v)?;
            }
        }
        between(map)?;
        for (k, v) in &self.entries {
            if index(k).is_none() {
                map.serialize_entry(k.as_ref(), v)?;
            }
        }
        Ok(())
    }
}

impl<'de, S: Deserialize<'de>> Deserialize<'de> for AttributeMap<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<S> {
            type Value = AttributeMap<S>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of attributes")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<Self::Value, A::Error> {
                let mut map = AttributeMap::default();
                while let Some((k, v)) = access.next_entry::<String, AttributeValue<S>>()? {
                    map.insert(k, v);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_in_place_below_and_above_the_index_threshold() {
        for n in [3, INDEX_FROM, INDEX_FROM + 1, 500] {
            let mut m = AttributeMap::new();
            for i in 0..n {
                m.insert(format!("k{i}"), i as f64);
            }
            m.insert("k0", "again");
            m.insert(format!("k{}", n - 1), true);
            m.insert("new", false);
            assert_eq!(m.len(), n + 1);
            assert_eq!(m.keys().next(), Some("k0"));
            assert_eq!(m.keys().last(), Some("new"));
            assert_eq!(m.get("k0"), Some(&AttributeValue::from("again")));
            assert_eq!(
                m.get(&format!("k{}", n - 1)),
                Some(&AttributeValue::Bool(true))
            );
            assert_eq!(m.get("missing"), None);
            let positions: Vec<usize> = (0..n)
                .map(|i| m.keys().position(|k| k == format!("k{i}")).unwrap())
                .collect();
            assert!(positions.iter().enumerate().all(|(i, &p)| i == p));
        }
    }

    #[test]
    fn equality_ignores_the_index() {
        let mut a = AttributeMap::new();
        for i in 0..(INDEX_FROM + 5) {
            a.insert(format!("k{i}"), true);
        }
        assert!(a.index.is_some());
        let unindexed = AttributeMap {
            entries: a.entries.clone(),
            index: None,
        };
        assert_eq!(a, unindexed);
        let json = serde_json::to_string(&a).unwrap();
        let back: AttributeMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
