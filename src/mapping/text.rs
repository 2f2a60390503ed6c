//! `@case` and `@replace`.
//!
//! `@replace` searches for its pattern literally (the reference escapes every regular
//! expression character before building its `RegExp`), so the pattern is prepared once as
//! UTF-16 code units and matched directly, with JavaScript's case-insensitive comparison and
//! `String.prototype.replace`'s `$` substitutions.

use super::value::Val;
use super::{ApplyError, Node};
use crate::Json;
use crate::js;

/// The longest `@replace` pattern, in UTF-16 code units.
pub(crate) const MAX_PATTERN_LENGTH: usize = 10;
/// The longest `@replace` replacement, in UTF-16 code units.
pub(crate) const MAX_REPLACEMENT_LENGTH: usize = 10;

/// `@case`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Case {
    operator: Operator,
    /// Absent when the mapping's `value` is falsy: the directive then gives undefined.
    value: Option<Node>,
    location: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Lower,
    Upper,
    /// Anything else, an error only once the value turns out to be a string.
    Other,
}

impl Case {
    pub(crate) fn new(operator: &str, value: Option<Node>, location: &str) -> Case {
        Case {
            operator: match operator {
                "lower" => Operator::Lower,
                "upper" => Operator::Upper,
                _ => Operator::Other,
            },
            value,
            location: location.to_owned(),
        }
    }

    pub(crate) fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let Some(node) = &self.value else {
            return Ok(Val::Undefined);
        };
        let value = node.eval_val(payload)?;
        let Some(s) = value.as_str() else {
            return Ok(value);
        };
        Ok(match self.operator {
            Operator::Lower => Val::string(s.to_lowercase()),
            Operator::Upper => Val::string(s.to_uppercase()),
            Operator::Other => {
                return Err(ApplyError::new(
                    &self.location,
                    "operator key should have a value of \"lower\" or \"upper\"",
                ));
            }
        })
    }
}

/// `@replace`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Replace {
    /// Absent when the mapping's `value` is falsy: the directive then gives undefined.
    value: Option<Node>,
    /// Absent when an option has the wrong type: the directive then gives `''`.
    first: Option<Pass>,
    second: Option<Pass>,
    location: String,
}

/// One search and replace.
#[derive(Clone, Debug, PartialEq)]
struct Pass {
    /// The pattern's UTF-16 code units, canonicalized when matching ignores case.
    pattern: Vec<u16>,
    replacement: Vec<Piece>,
    global: bool,
    ignore_case: bool,
    /// The reference's length check, made when the pass runs.
    too_long: Option<&'static str>,
}

/// A piece of a replacement string, with its `$` substitutions resolved once.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(Vec<u16>),
    /// `$&`.
    Match,
    /// `` $` ``.
    Before,
    /// `$'`.
    After,
}

impl Replace {
    /// Builds the directive from its options (`get` reads one, as written), applying the
    /// reference's defaults: replacement `''`, `ignorecase` false, `global` true.
    pub(crate) fn new<'g, 'j: 'g>(
        get: impl Fn(&str) -> Option<&'g Json<'j>>,
        value: Option<Node>,
        location: &str,
    ) -> Replace {
        let defaulted = |key: &str, default: Json<'static>| match get(key) {
            None | Some(Json::Null) => default,
            Some(v) => v.clone().into_owned(),
        };
        let replacement = defaulted("replacement", Json::from(""));
        let ignore_case = defaulted("ignorecase", Json::Bool(false));
        let global = defaulted("global", Json::Bool(true));
        let first = match (get("pattern"), &replacement, &ignore_case, &global) {
            (Some(Json::Str(p)), Json::Str(r), Json::Bool(i), Json::Bool(g)) => {
                Some(Pass::new(p, r, *g, *i))
            }
            _ => None,
        };
        let second = match (get("pattern2"), &ignore_case, &global) {
            (Some(Json::Str(p)), Json::Bool(i), Json::Bool(g)) if !p.is_empty() => {
                match defaulted("replacement2", Json::from("")) {
                    Json::Str(r) => Some(Pass::new(p, &r, *g, *i)),
                    _ => None,
                }
            }
            _ => None,
        };
        Replace {
            value,
            first,
            second,
            location: location.to_owned(),
        }
    }

    pub(crate) fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let Some(node) = &self.value else {
            return Ok(Val::Undefined);
        };
        let value = node.eval_val(payload)?;
        let text = match value.json() {
            Some(Json::Str(s)) => s.to_string(),
            Some(v @ (Json::Bool(_) | Json::Number(_))) => {
                let mut s = String::new();
                js::push_js_string(&mut s, v);
                s
            }
            _ => return Ok(Val::string(String::new())),
        };
        let Some(first) = &self.first else {
            return Ok(Val::string(String::new()));
        };
        let mut out = first
            .run(&text)
            .map_err(|m| ApplyError::new(&self.location, m))?;
        if let Some(second) = &self.second {
            out = second
                .run(&out)
                .map_err(|m| ApplyError::new(&self.location, m))?;
        }
        Ok(Val::string(out))
    }
}

impl Pass {
    fn new(pattern: &str, replacement: &str, global: bool, ignore_case: bool) -> Pass {
        let too_long = if js::utf16_len(pattern) > MAX_PATTERN_LENGTH {
            Some("@replace requires a \"pattern\" less than 10 characters")
        } else if js::utf16_len(replacement) > MAX_REPLACEMENT_LENGTH {
            Some("@replace requires a \"replacement\" less than 10 characters")
        } else {
            None
        };
        let mut units: Vec<u16> = pattern.encode_utf16().collect();
        if ignore_case {
            units.iter_mut().for_each(|u| *u = canonicalize(*u));
        }
        Pass {
            pattern: units,
            replacement: parse_replacement(replacement),
            global,
            ignore_case,
            too_long,
        }
    }

    fn run(&self, text: &str) -> Result<String, &'static str> {
        if let Some(message) = self.too_long {
            return Err(message);
        }
        let units: Vec<u16> = text.encode_utf16().collect();
        let n = self.pattern.len();
        let matches_at = |i: usize| {
            units[i..i + n].iter().zip(&self.pattern).all(|(&u, &p)| {
                if self.ignore_case {
                    canonicalize(u) == p
                } else {
                    u == p
                }
            })
        };
        let mut out: Vec<u16> = Vec::with_capacity(units.len());
        let mut copied = 0;
        let mut i = 0;
        // The pattern is never empty (the reference refuses one), so every match advances.
        while n > 0 && i + n <= units.len() {
            if !matches_at(i) {
                i += 1;
                continue;
            }
            out.extend_from_slice(&units[copied..i]);
            for piece in &self.replacement {
                match piece {
                    Piece::Text(t) => out.extend_from_slice(t),
                    Piece::Match => out.extend_from_slice(&units[i..i + n]),
                    Piece::Before => out.extend_from_slice(&units[..i]),
                    Piece::After => out.extend_from_slice(&units[i + n..]),
                }
            }
            i += n;
            copied = i;
            if !self.global {
                break;
            }
        }
        out.extend_from_slice(&units[copied..]);
        // Matches start and end on whole characters, so no surrogate pair is split.
        Ok(String::from_utf16_lossy(&out))
    }
}

/// `GetSubstitution` for a pattern without capture groups: `$$`, `$&`, `` $` `` and `$'` are
/// special; `$1` or `$<name>` stay as written, as there is nothing to refer to.
fn parse_replacement(replacement: &str) -> Vec<Piece> {
    let units: Vec<u16> = replacement.encode_utf16().collect();
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let special = if units[i] == u16::from(b'$') {
            match units.get(i + 1).and_then(|&u| u8::try_from(u).ok()) {
                Some(b'$') => Some(None),
                Some(b'&') => Some(Some(Piece::Match)),
                Some(b'`') => Some(Some(Piece::Before)),
                Some(b'\'') => Some(Some(Piece::After)),
                _ => None,
            }
        } else {
            None
        };
        match special {
            Some(None) => {
                text.push(u16::from(b'$'));
                i += 2;
            }
            Some(Some(piece)) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
                i += 2;
            }
            None => {
                text.push(units[i]);
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// The ECMAScript `Canonicalize` of a non-Unicode, case-insensitive `RegExp`: a code unit's
/// upper case, unless that takes more than one code unit or maps a non-ASCII unit to ASCII.
fn canonicalize(unit: u16) -> u16 {
    let Some(c) = char::from_u32(u32::from(unit)) else {
        // Half of a surrogate pair has no case.
        return unit;
    };
    let mut upper = c.to_uppercase();
    let (Some(u), None) = (upper.next(), upper.next()) else {
        return unit;
    };
    let Ok(u) = u16::try_from(u32::from(u)) else {
        return unit;
    };
    if unit >= 128 && u < 128 { unit } else { u }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        pattern: &str,
        replacement: &str,
        global: bool,
        ignore_case: bool,
        text: &str,
    ) -> String {
        Pass::new(pattern, replacement, global, ignore_case)
            .run(text)
            .unwrap()
    }

    #[test]
    fn literal_patterns() {
        // node: 'a.b.c'.replace(/\./g, '-') === 'a-b-c'
        assert_eq!(run(".", "-", true, false, "a.b.c"), "a-b-c");
        assert_eq!(run("(x)", "y", true, false, "(x)x"), "yx");
        assert_eq!(run("l", "L", false, false, "hello"), "heLlo");
        assert_eq!(run("aa", "b", true, false, "aaaaa"), "bba");
    }

    #[test]
    fn dollar_substitutions() {
        // node: 'abc'.replace(/b/g, '[$&|$`|$\'|$$|$1|$<n>]') === 'a[b|a|c|$|$1|$<n>]c'
        assert_eq!(run("b", "[$&|$`|$']", true, false, "abc"), "a[b|a|c]c");
        assert_eq!(run("b", "$$|$1|$<n>", true, false, "abc"), "a$|$1|$<n>c");
        assert_eq!(run("b", "$", true, false, "abc"), "a$c");
    }

    #[test]
    fn ignore_case_is_javascripts() {
        assert_eq!(run("HELLO", "bye", true, true, "Hello hello"), "bye bye");
        // node: 'ſ'.replace(/s/gi, 'x') === 'ſ' (U+017F upper-cases to ASCII 'S')
        assert_eq!(run("s", "x", true, true, "ſ"), "ſ");
        // node: 'ß'.replace(/ß/gi, 'x') === 'x'; 'SS'.replace(/ß/gi, 'x') === 'SS'
        assert_eq!(run("ß", "x", true, true, "ßSS"), "xSS");
        assert_eq!(run("é", "x", true, true, "É"), "x");
        assert_eq!(run("😀", "x", true, true, "a😀b"), "axb");
    }

    #[test]
    fn length_limits_apply_when_run() {
        let p = Pass::new("abcdefghijk", "", true, false);
        assert_eq!(
            p.run("x"),
            Err("@replace requires a \"pattern\" less than 10 characters")
        );
        let p = Pass::new("a", "abcdefghijk", true, false);
        assert!(p.run("x").is_err());
    }
}
