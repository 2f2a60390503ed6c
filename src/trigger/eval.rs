//! `validate` from `destination-subscriptions`, over the event as JavaScript would see it.
//!
//! Field paths are read with the reference's `get` helper, `path.split(/[.[\]]/)` followed by
//! `obj && obj[key]` at each step, so JS property semantics leak into what matches: a falsy
//! value stops the walk and *is* the result (`properties.a.b` reads `0` when `a` is `0`),
//! strings and arrays have `length` and numeric indexes, and every object inherits
//! `Object.prototype` members such as `constructor`.

use super::{Condition, Field, Test};
use crate::js::{ARRAY_PROTO, BOOLEAN_PROTO, NUMBER_PROTO, OBJECT_PROTO, STRING_PROTO};
use crate::json::DocValue;

/// The reference threw a `TypeError` (reading a field of a `null` event, an empty `()` group,
/// a path made only of separators). `validate` does not catch it, so the event fails.
pub(super) struct Thrown;

/// A JavaScript string: either borrowed JSON text or the single code unit that indexing a
/// string (`properties.s.0`) yields, which may be half of a surrogate pair.
#[derive(Clone, Copy)]
enum JsStr<'a> {
    Text(&'a str),
    Unit(u16),
}

/// A value as the reference sees it while walking an event (held in any form `N`).
#[derive(Clone, Copy)]
enum JsVal<'a, N> {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(JsStr<'a>),
    Array(N),
    /// A JSON object (the value itself, so that only [`member`] reads its entries).
    Object(N),
    /// A built-in method or prototype object: present, but not a string, number or boolean.
    /// Looking further inside one is not modelled and yields `undefined`.
    Builtin,
}

fn from_json<'a, N: DocValue<'a>>(value: N) -> JsVal<'a, N> {
    if let Some(s) = value.as_str() {
        JsVal::Str(JsStr::Text(s))
    } else if let Some(n) = value.as_number() {
        JsVal::Num(n.as_f64().unwrap_or(f64::NAN))
    } else if let Some(b) = value.as_bool() {
        JsVal::Bool(b)
    } else if value.is_object() {
        JsVal::Object(value)
    } else if value.array_len().is_some() {
        JsVal::Array(value)
    } else {
        JsVal::Null
    }
}

/// A canonical array index (`"0"`, `"12"`, not `"01"` or `"-0"`) below `len`.
fn index(key: &str, len: usize) -> Option<usize> {
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<usize>().ok().filter(|&i| i < len)
}

fn inherited(key: &str, proto: &[&str]) -> bool {
    proto.contains(&key) || OBJECT_PROTO.contains(&key)
}

fn builtin_or_undefined<'a, N>(found: bool) -> JsVal<'a, N> {
    if found {
        JsVal::Builtin
    } else {
        JsVal::Undefined
    }
}

/// `base[key]`. An object's own member is the last of its repeated keys, as `JSON.parse`
/// keeps it.
fn member<'a, N: DocValue<'a>>(base: JsVal<'a, N>, key: &str) -> Result<JsVal<'a, N>, Thrown> {
    Ok(match base {
        JsVal::Undefined | JsVal::Null => return Err(Thrown),
        JsVal::Bool(_) => builtin_or_undefined(inherited(key, BOOLEAN_PROTO)),
        JsVal::Num(_) => builtin_or_undefined(inherited(key, NUMBER_PROTO)),
        JsVal::Str(s) => {
            let len = s.len_utf16();
            if let Some(i) = index(key, len) {
                JsVal::Str(JsStr::Unit(s.unit(i)))
            } else if key == "length" {
                JsVal::Num(len as f64)
            } else {
                builtin_or_undefined(inherited(key, STRING_PROTO))
            }
        }
        JsVal::Array(items) => {
            let len = items.array_len().unwrap_or(0);
            if let Some(i) = index(key, len) {
                items.item(i).map_or(JsVal::Undefined, from_json)
            } else if key == "length" {
                JsVal::Num(len as f64)
            } else {
                builtin_or_undefined(inherited(key, ARRAY_PROTO))
            }
        }
        JsVal::Object(object) => match object.get(key) {
            Some(value) => from_json(value),
            None => builtin_or_undefined(OBJECT_PROTO.contains(&key)),
        },
        JsVal::Builtin => JsVal::Undefined,
    })
}

fn truthy<N>(value: JsVal<'_, N>) -> bool {
    match value {
        JsVal::Undefined | JsVal::Null => false,
        JsVal::Bool(b) => b,
        JsVal::Num(n) => n != 0.0 && !n.is_nan(),
        JsVal::Str(JsStr::Text(s)) => !s.is_empty(),
        JsVal::Str(JsStr::Unit(_)) | JsVal::Array(_) | JsVal::Object(_) | JsVal::Builtin => true,
    }
}

/// The reference's `get(object, path)`.
fn get<'a, N: DocValue<'a>>(object: JsVal<'a, N>, path: &str) -> Result<JsVal<'a, N>, Thrown> {
    if path.is_empty() {
        return Ok(JsVal::Undefined);
    }
    let mut keys = path
        .split(['.', '[', ']'])
        .filter(|k| !k.is_empty())
        .peekable();
    // `path.match(...)` is null when there is no key at all, and `null.reduce` throws.
    if keys.peek().is_none() {
        return Err(Thrown);
    }
    let mut current = object;
    for key in keys {
        if truthy(current) {
            current = member(current, key)?;
        }
    }
    Ok(current)
}

fn field_value<'a, N: DocValue<'a>>(event: N, field: &Field) -> Result<JsVal<'a, N>, Thrown> {
    let data = from_json(event);
    Ok(match field {
        Field::Type => member(data, "type")?,
        Field::Event => member(data, "event")?,
        Field::Name => member(data, "name")?,
        Field::UserId => member(data, "userId")?,
        Field::Property(path) => get(member(data, "properties")?, path)?,
        Field::Trait(path) => get(member(data, "traits")?, path)?,
        Field::Context(path) => get(member(data, "context")?, path)?,
    })
}

impl JsStr<'_> {
    fn len_utf16(self) -> usize {
        match self {
            JsStr::Text(s) => s.encode_utf16().count(),
            JsStr::Unit(_) => 1,
        }
    }

    fn unit(self, i: usize) -> u16 {
        match self {
            JsStr::Text(s) => s.encode_utf16().nth(i).unwrap_or_default(),
            JsStr::Unit(u) => u,
        }
    }

    /// Whether this one-unit string equals `needle`.
    fn unit_is(u: u16, needle: &str) -> bool {
        let mut units = needle.encode_utf16();
        units.next() == Some(u) && units.next().is_none()
    }

    fn equals(self, needle: &str) -> bool {
        match self {
            JsStr::Text(s) => s == needle,
            JsStr::Unit(u) => Self::unit_is(u, needle),
        }
    }

    fn contains(self, needle: &str) -> bool {
        match self {
            JsStr::Text(s) => s.contains(needle),
            JsStr::Unit(u) => needle.is_empty() || Self::unit_is(u, needle),
        }
    }

    fn starts_with(self, needle: &str) -> bool {
        match self {
            JsStr::Text(s) => s.starts_with(needle),
            JsStr::Unit(u) => needle.is_empty() || Self::unit_is(u, needle),
        }
    }

    fn ends_with(self, needle: &str) -> bool {
        match self {
            JsStr::Text(s) => s.ends_with(needle),
            JsStr::Unit(u) => needle.is_empty() || Self::unit_is(u, needle),
        }
    }

    /// `endsWith("\u{low}" + rest)`, compared code unit by code unit.
    fn ends_with_split(self, low: u16, rest: &str) -> bool {
        match self {
            JsStr::Text(s) => s
                .strip_suffix(rest)
                .and_then(|head| head.chars().next_back())
                .is_some_and(|c| {
                    let mut pair = [0u16; 2];
                    let units = c.encode_utf16(&mut pair);
                    units.len() == 2 && units[1] == low
                }),
            JsStr::Unit(u) => u == low && rest.is_empty(),
        }
    }
}

/// `validateValue(actual, operator, expected)`.
fn check<N>(test: &Test, actual: JsVal<'_, N>) -> bool {
    let number = match actual {
        JsVal::Num(n) => Some(n),
        _ => None,
    };
    let string = match actual {
        JsVal::Str(s) => Some(s),
        _ => None,
    };
    match test {
        Test::Equals(s) => string.is_some_and(|a| a.equals(s)),
        Test::NotEquals(s) => !string.is_some_and(|a| a.equals(s)),
        Test::NumberEquals(n) => number.is_some_and(|a| a == *n),
        Test::NumberNotEquals(n) => number.is_some_and(|a| a != *n),
        Test::LessThan(n) => number.is_some_and(|a| a < *n),
        Test::LessThanOrEqual(n) => number.is_some_and(|a| a <= *n),
        Test::GreaterThan(n) => number.is_some_and(|a| a > *n),
        Test::GreaterThanOrEqual(n) => number.is_some_and(|a| a >= *n),
        Test::Contains(s) => string.is_some_and(|a| a.contains(s)),
        Test::NotContains(s) => string.is_some_and(|a| !a.contains(s)),
        Test::StartsWith(s) => string.is_some_and(|a| a.starts_with(s)),
        Test::NotStartsWith(s) => string.is_some_and(|a| !a.starts_with(s)),
        Test::EndsWith(s) => string.is_some_and(|a| a.ends_with(s)),
        Test::NotEndsWith(s) => string.is_some_and(|a| !a.ends_with(s)),
        Test::EndsWithSplitCharacter {
            low_surrogate,
            rest,
            negated,
        } => string.is_some_and(|a| a.ends_with_split(*low_surrogate, rest) != *negated),
        Test::Exists => !matches!(actual, JsVal::Undefined | JsVal::Null),
        Test::NotExists => matches!(actual, JsVal::Undefined | JsVal::Null),
        Test::IsTrue => matches!(actual, JsVal::Bool(true)),
        Test::IsFalse => matches!(actual, JsVal::Bool(false)),
        Test::Unsupported(_) => false,
    }
}

/// `validateCondition`; `every`/`some` short-circuit, so a later throw can be skipped.
pub(super) fn eval<'a>(condition: &Condition, event: impl DocValue<'a>) -> Result<bool, Thrown> {
    match condition {
        Condition::And(children) => {
            for child in children {
                if !eval(child, event)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Or(children) => {
            for child in children {
                if eval(child, event)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Test { field, test } => Ok(check(test, field_value(event, field)?)),
        Condition::Empty => Err(Thrown),
    }
}
