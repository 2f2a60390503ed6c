//! Segment mapping paths (`$.context.traits.email`, `properties.products[0].sku`), compiled once
//! into their keys and looked up with the reference's JavaScript semantics.

use super::Resolved;
use crate::Json;
use std::borrow::Cow;

/// A compiled path: the keys to walk, in order. An empty path is the whole event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    source: String,
    keys: Vec<String>,
}

impl Path {
    /// Compiles a path as `@path` reads it: the first `$.` is removed, then the rest is split on
    /// dots and brackets (`a.b[0]["c d"]`), and quotes are dropped.
    pub fn parse(source: &str) -> Path {
        let trimmed = source.replacen("$.", "", 1);
        Path {
            source: source.to_owned(),
            keys: split_keys(&trimmed),
        }
    }

    /// Compiles a template placeholder, which has no `$.` prefix to remove.
    pub(crate) fn placeholder(source: &str) -> Path {
        Path {
            source: source.to_owned(),
            keys: split_keys(source),
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

    /// Looks the path up in `root`.
    pub(crate) fn lookup<'r, 'a>(&self, root: &'r Json<'a>) -> Resolved<'r, 'a> {
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
pub(crate) fn lookup_keys<'r, 'a>(root: &'r Json<'a>, keys: &[String]) -> Resolved<'r, 'a> {
    let mut current = root;
    for (i, key) in keys.iter().enumerate() {
        // `obj && obj[key]` stops at a falsy value and yields it.
        if !super::js::truthy(current) {
            return Resolved::Ref(current);
        }
        match current {
            Json::Object(_) => match current.get(key) {
                Some(next) => current = next,
                None => return Resolved::Undefined,
            },
            Json::Array(items) => {
                if key == "length" {
                    return descend_owned(Json::Number(items.len().into()), &keys[i + 1..]);
                }
                match array_index(key).and_then(|n| items.get(n)) {
                    Some(next) => current = next,
                    None => return Resolved::Undefined,
                }
            }
            Json::Str(s) => {
                // Strings index by UTF-16 unit in JavaScript; characters are the honest
                // approximation for the text events carry.
                let made = if key == "length" {
                    Json::Number(s.encode_utf16().count().into())
                } else {
                    match array_index(key).and_then(|n| s.chars().nth(n)) {
                        Some(c) => Json::Str(Cow::Owned(c.to_string())),
                        None => return Resolved::Undefined,
                    }
                };
                return descend_owned(made, &keys[i + 1..]);
            }
            _ => return Resolved::Undefined,
        }
    }
    Resolved::Ref(current)
}

/// Continues a lookup inside a value made along the way (a string's character, a length).
fn descend_owned<'r, 'a>(value: Json<'a>, rest: &[String]) -> Resolved<'r, 'a> {
    if rest.is_empty() {
        return Resolved::Owned(value);
    }
    match lookup_keys(&value, rest) {
        Resolved::Undefined => Resolved::Undefined,
        Resolved::Ref(v) => Resolved::Owned(v.clone()),
        Resolved::Owned(v) => Resolved::Owned(v),
    }
}

/// A canonical array index (`"0"`, `"12"`, not `"01"`).
fn array_index(key: &str) -> Option<usize> {
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    key.parse().ok()
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
            .into_value()
            .map(|v| v.to_value());
        assert_eq!(got, Some(serde_json::json!(0)));
        let got = Path::parse("a.s.1")
            .lookup(&doc)
            .into_value()
            .map(|v| v.to_value());
        assert_eq!(got, Some(serde_json::json!("é")));
        let got = Path::parse("a.s.length")
            .lookup(&doc)
            .into_value()
            .map(|v| v.to_value());
        assert_eq!(got, Some(serde_json::json!(5)));
        assert!(Path::parse("a.missing.x").lookup(&doc).as_json().is_none());
    }
}
