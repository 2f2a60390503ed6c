//! Segment mapping paths (`$.context.traits.email`, `properties.products[0].sku`), compiled once
//! into their keys and looked up with the reference's JavaScript semantics.

use super::memo::PrefixId;
use super::value::Val;
use crate::Json;
use crate::js;
use std::borrow::Cow;

/// A compiled path: the keys to walk, in order. An empty path is the whole event.
#[derive(Clone, Debug)]
pub struct Path {
    source: String,
    keys: Vec<String>,
    /// Where a send mapping's per-event memo keeps this path's lookup (see `memo`), when the
    /// path is one its fast entry evaluates against the event.
    slot: Option<PrefixId>,
}

/// The memo slot is bookkeeping of the mapping that holds the path, not part of what the path
/// reads: two paths with the same source are the same path.
impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.source == other.source && self.keys == other.keys
    }
}

impl Eq for Path {}

impl Path {
    /// Compiles a path as `@path` reads it: the first `$.` is removed, then the rest is split on
    /// dots and brackets (`a.b[0]["c d"]`), and quotes are dropped.
    pub fn parse(source: &str) -> Path {
        let trimmed = source.replacen("$.", "", 1);
        Path {
            source: source.to_owned(),
            keys: split_keys(&trimmed),
            slot: None,
        }
    }

    /// Compiles a template placeholder, which has no `$.` prefix to remove.
    pub(crate) fn placeholder(source: &str) -> Path {
        Path {
            source: source.to_owned(),
            keys: split_keys(source),
            slot: None,
        }
    }

    /// A path of exactly these keys, including ones no source text splits into.
    #[cfg(test)]
    pub(crate) fn from_keys(keys: Vec<String>) -> Path {
        Path {
            source: keys.join("."),
            keys,
            slot: None,
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The keys walked.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The memo slot of the path's full key list, if it has one.
    pub(crate) fn slot(&self) -> Option<PrefixId> {
        self.slot
    }

    pub(crate) fn set_slot(&mut self, slot: Option<PrefixId>) {
        self.slot = slot;
    }

    /// Looks the path up in `root`.
    pub(crate) fn lookup<'r, 'a>(&self, root: &'r Json<'a>) -> Val<'r, 'a> {
        lookup_keys(root, &self.keys)
    }
}

/// Splits like the reference's regex `\[(?="|'|\d)|\.|(?<="|'|\d)]+`: at every dot, at a `[`
/// followed by a quote or digit, and at `]`s preceded by a quote or digit.
fn split_keys(path: &str) -> Vec<String> {
    if path.is_empty() || path == "." {
        return Vec::new();
    }
    let chars: Vec<char> = path.chars().collect();
    let is_anchor = |c: char| c == '"' || c == '\'' || c.is_ascii_digit();
    let mut keys = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens_index = c == '[' && chars.get(i + 1).is_some_and(|&n| is_anchor(n));
        let split_len = if c == '.' || opens_index {
            1
        } else if c == ']' && i > 0 && is_anchor(chars[i - 1]) {
            chars[i..].iter().take_while(|&&b| b == ']').count()
        } else {
            0
        };
        if split_len > 0 {
            keys.push(std::mem::take(&mut current));
            i += split_len;
        } else {
            current.push(c);
            i += 1;
        }
    }
    keys.push(current);
    keys.into_iter()
        .filter(|k| !k.is_empty())
        .map(|k| k.replace(['"', '\''], ""))
        .collect()
}

/// `keys.reduce((obj, key) => obj && obj[key], root)`.
pub(crate) fn lookup_keys<'r, 'a>(root: &'r Json<'a>, keys: &[String]) -> Val<'r, 'a> {
    let mut current = root;
    for (i, key) in keys.iter().enumerate() {
        // `obj && obj[key]` stops at a falsy value and yields it.
        if !crate::js::truthy(current) {
            return Val::Ref(current);
        }
        match current {
            Json::Object(_) => match current.get(key) {
                Some(next) => current = next,
                None => return Val::Undefined,
            },
            Json::Array(items) => {
                if key == "length" {
                    return descend_owned(Json::Number(items.len().into()), &keys[i + 1..]);
                }
                match array_index(key).and_then(|n| items.get(n)) {
                    Some(next) => current = next,
                    None => return Val::Undefined,
                }
            }
            Json::Str(s) => {
                // Strings index by UTF-16 code unit, as in JavaScript.
                let made = if key == "length" {
                    Json::Number(js::utf16_len(s).into())
                } else {
                    match array_index(key).and_then(|n| js::utf16_unit_at(s, n)) {
                        Some(c) => Json::Str(Cow::Owned(c)),
                        None => return Val::Undefined,
                    }
                };
                return descend_owned(made, &keys[i + 1..]);
            }
            _ => return Val::Undefined,
        }
    }
    Val::Ref(current)
}

/// Continues a lookup inside a value made along the way (a string's character, a length).
fn descend_owned<'r, 'a>(value: Json<'a>, rest: &[String]) -> Val<'r, 'a> {
    if rest.is_empty() {
        return Val::Owned(value);
    }
    match lookup_keys(&value, rest) {
        Val::Ref(v) => Val::Owned(v.clone()),
        other => other.detach(),
    }
}

/// A canonical array index (`"0"`, `"12"`, not `"01"`).
fn array_index(key: &str) -> Option<usize> {
    js::index_key(key).and_then(|i| usize::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &str) -> Vec<String> {
        Path::parse(p).keys().to_vec()
    }

    #[test]
    fn splits_like_the_reference() {
        assert_eq!(
            keys("$.context.traits.email"),
            ["context", "traits", "email"]
        );
        assert_eq!(
            keys("properties.products[1].sku"),
            ["properties", "products", "1", "sku"]
        );
        assert_eq!(
            keys("$.integrations['Rokt Conversions API'].rtid"),
            ["integrations", "Rokt Conversions API", "rtid"]
        );
        assert_eq!(
            keys("$.integrations.Rokt Conversions API.rtid"),
            ["integrations", "Rokt Conversions API", "rtid"]
        );
        assert!(keys("$.").is_empty());
    }

    #[test]
    fn falsy_values_stop_the_walk() {
        let doc = Json::parse(r#"{"a":{"zero":0,"s":"héllo"}}"#).unwrap();
        let got = Path::parse("a.zero.x")
            .lookup(&doc)
            .into_json()
            .map(|v| v.to_value());
        assert_eq!(got, Some(serde_json::json!(0)));
        let got = Path::parse("a.s.1")
            .lookup(&doc)
            .into_json()
            .map(|v| v.to_value());
        assert_eq!(got, Some(serde_json::json!("é")));
        let got = Path::parse("a.s.length")
            .lookup(&doc)
            .into_json()
            .map(|v| v.to_value());
        assert_eq!(got, Some(serde_json::json!(5)));
        assert!(!Path::parse("a.missing.x").lookup(&doc).exists());
        // node: get({s: "a😀b"}, "s.3") === "b", get(…, "s.length") === 4
        let doc = Json::parse(r#"{"s":"a😀b","l":[1,2]}"#).unwrap();
        let got = |p: &str| {
            Path::parse(p)
                .lookup(&doc)
                .into_json()
                .map(|v| v.to_value())
        };
        assert_eq!(got("s.3"), Some(serde_json::json!("b")));
        assert_eq!(got("s.length"), Some(serde_json::json!(4)));
        assert_eq!(got("l.length"), Some(serde_json::json!(2)));
        assert_eq!(got("l.01"), None);
        assert_eq!(got("l[1]"), Some(serde_json::json!(2)));
    }
}
