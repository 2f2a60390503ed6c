//! A port of `destination-subscriptions`' `parseFql`: `normalize` joins dotted identifiers, then
//! `parse` walks the token list left to right. It is not a grammar-driven parser, and its
//! shortcuts are what Segment runs, so they are kept:
//!
//! - a group's operator is the *last* `and`/`or` seen at its level (`a and b or c` is `or`);
//! - `!` only negates a following `contains(...)` or `match(...)`; before anything else it is
//!   dropped, so `!(type = "page")` means `type = "page"`;
//! - every field is followed by exactly two tokens (operator, value), whatever they are;
//! - `(` takes every token up to the first `)`, so nested parentheses fail to parse;
//! - tokens that start nothing (unknown fields, stray values, `AND`) are skipped.

use std::collections::VecDeque;

use super::lexer::{Kind, Token};
use super::{Condition, Field, Test};
use crate::js::{OBJECT_PROTO, slice_utf16};

/// A primitive as the reference's `getTokenValue` produces it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Prim {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Prim {
    /// `String(value)`.
    pub(super) fn to_js_string(&self) -> String {
        match self {
            Prim::Str(s) => s.clone(),
            Prim::Num(n) => crate::js::f64_to_string(*n),
            Prim::Bool(b) => b.to_string(),
        }
    }

    /// `Number(value)`.
    pub(super) fn to_number(&self) -> f64 {
        match self {
            Prim::Str(s) => crate::js::string_to_number(s),
            Prim::Num(n) => *n,
            Prim::Bool(b) => f64::from(u8::from(*b)),
        }
    }
}

/// A parse failure, at an offset in UTF-16 code units.
#[derive(Debug)]
pub(super) struct ParseError {
    pub(super) message: String,
    pub(super) at: usize,
}

fn error(message: impl Into<String>, at: usize) -> ParseError {
    ParseError {
        message: message.into(),
        at,
    }
}

/// `normalize`: an identifier, a dot and an identifier become one identifier.
pub(super) fn normalize(tokens: Vec<Token>) -> VecDeque<Token> {
    let mut out: VecDeque<Token> = VecDeque::with_capacity(tokens.len());
    let mut iter = tokens.into_iter().peekable();
    while let Some(current) = iter.next() {
        let joins = current.kind == Kind::Dot
            && out.back().is_some_and(|last| last.kind == Kind::Ident)
            && iter.peek().is_some_and(|next| next.kind == Kind::Ident);
        if !joins {
            out.push_back(current);
            continue;
        }
        if let (Some(last), Some(next)) = (out.back_mut(), iter.next()) {
            last.value.push('.');
            last.value.push_str(&next.value);
        }
    }
    out
}

/// What a field name's first segment selects (`tokenToConditionType`).
enum Target {
    Type,
    Event,
    Name,
    UserId,
    Context,
    Properties,
    Traits,
    /// `tokenToConditionType` is a plain object, so `constructor`, `toString` and the other
    /// `Object.prototype` members look like fields too: they eat two tokens and produce nothing.
    Inherited,
}

fn target(head: &str) -> Option<Target> {
    Some(match head {
        "type" => Target::Type,
        "event" => Target::Event,
        "name" => Target::Name,
        "userId" => Target::UserId,
        "context" => Target::Context,
        "properties" => Target::Properties,
        "traits" => Target::Traits,
        _ if OBJECT_PROTO.contains(&head) => Target::Inherited,
        _ => return None,
    })
}

/// `getTokenValue`.
fn token_value(token: &Token) -> Prim {
    match token.kind {
        // Only double quotes are stripped: a single-quoted string keeps its quotes.
        Kind::Str => {
            let v = token.value.as_str();
            let v = v.strip_prefix('"').unwrap_or(v);
            Prim::Str(v.strip_suffix('"').unwrap_or(v).to_owned())
        }
        Kind::Number => Prim::Num(crate::js::string_to_number(&token.value)),
        Kind::Ident if token.value == "true" => Prim::Bool(true),
        Kind::Ident if token.value == "false" => Prim::Bool(false),
        _ => Prim::Str(token.value.clone()),
    }
}

/// The test a leaf with this `operator` and `value` performs in `validateValue`, with the
/// value converted the way that operator converts it.
fn test_for(operator: &str, value: &Prim) -> Test {
    match operator {
        "=" => Test::Equals(value.to_js_string()),
        "!=" => Test::NotEquals(value.to_js_string()),
        "number_equals" => Test::NumberEquals(value.to_number()),
        "number_not_equals" => Test::NumberNotEquals(value.to_number()),
        "<" => Test::LessThan(value.to_number()),
        "<=" => Test::LessThanOrEqual(value.to_number()),
        ">" => Test::GreaterThan(value.to_number()),
        ">=" => Test::GreaterThanOrEqual(value.to_number()),
        "contains" => Test::Contains(value.to_js_string()),
        "not_contains" => Test::NotContains(value.to_js_string()),
        "starts_with" => Test::StartsWith(value.to_js_string()),
        "not_starts_with" => Test::NotStartsWith(value.to_js_string()),
        "ends_with" => Test::EndsWith(value.to_js_string()),
        "not_ends_with" => Test::NotEndsWith(value.to_js_string()),
        "exists" => Test::Exists,
        "not_exists" => Test::NotExists,
        "is_true" => Test::IsTrue,
        "is_false" => Test::IsFalse,
        other => Test::Unsupported(other.to_owned()),
    }
}

/// A leaf whose value is `String(...)`-converted at parse time, as for `type`, `event`, `name`,
/// `userId` and the function forms.
fn string_test(operator: &str, value: &Prim) -> Test {
    test_for(operator, &Prim::Str(value.to_js_string()))
}

/// One field comparison (`type = "track"`, `properties.x > 3`, ...).
fn comparison(
    target: &Target,
    field: &Token,
    operator: &Token,
    value: &Token,
) -> Option<Condition> {
    let op = operator.value.as_str();
    let is_true = op == "=" && value.value == "true";
    let is_false = op == "=" && value.value == "false";
    let is_exists = op == "!=" && value.value == "null";
    let is_not_exists = op == "=" && value.value == "null";
    let is_number_equals = op == "=" && value.kind == Kind::Number;
    let is_number_not_equals = op == "!=" && value.kind == Kind::Number;
    let raw = token_value(value);
    let path = |prefix: &str| {
        let name = field.value.as_str();
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(name)
            .to_owned()
    };
    let (field, test) = match target {
        Target::Inherited => return None,
        Target::Event => (Field::Event, string_test(op, &raw)),
        Target::Type => (Field::Type, string_test(op, &raw)),
        Target::Name => {
            let test = if is_exists {
                Test::Exists
            } else if is_not_exists {
                Test::NotExists
            } else {
                string_test(op, &raw)
            };
            (Field::Name, test)
        }
        Target::UserId => {
            let test = if is_exists {
                Test::Exists
            } else if is_not_exists {
                Test::NotExists
            } else if is_true {
                Test::IsTrue
            } else if is_false {
                Test::IsFalse
            } else {
                string_test(op, &raw)
            };
            (Field::UserId, test)
        }
        Target::Properties | Target::Traits | Target::Context => {
            let test = if is_exists {
                Test::Exists
            } else if is_not_exists {
                Test::NotExists
            } else if is_true {
                Test::IsTrue
            } else if is_false {
                Test::IsFalse
            } else if is_number_equals {
                test_for("number_equals", &raw)
            } else if is_number_not_equals {
                test_for("number_not_equals", &raw)
            } else {
                test_for(op, &raw)
            };
            let field = match target {
                Target::Properties => Field::Property(path("properties")),
                Target::Traits => Field::Trait(path("traits")),
                _ => Field::Context(path("context")),
            };
            (field, test)
        }
    };
    Some(Condition::Test { field, test })
}

/// The fields a `contains()`/`match()` first argument can name. Unlike comparisons, only a
/// *prefix* is checked for the nested kinds, so `contains(propertiesX, "a")` reads
/// `properties.propertiesX`, and `type` is silently not supported.
fn function_fields(name: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    if ["event", "name", "userId"].contains(&name) {
        fields.push(match name {
            "event" => Field::Event,
            "name" => Field::Name,
            _ => Field::UserId,
        });
    }
    let path = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(name)
            .to_owned()
    };
    if name.starts_with("properties") {
        fields.push(Field::Property(path("properties")));
    }
    if name.starts_with("traits") {
        fields.push(Field::Trait(path("traits")));
    }
    if name.starts_with("context") {
        fields.push(Field::Context(path("context")));
    }
    fields
}

/// The test `match(f, pattern)` performs: a trailing `*` (checked on the raw token, closing
/// quote included) means "starts with"; anything else means "ends with" after dropping the
/// first code unit, which is meant to be a leading `*` but is dropped whatever it is.
fn match_test(value: &Token, negate: bool) -> Test {
    let text = token_value(value).to_js_string();
    if value.value.ends_with("*\"") {
        let units = slice_utf16(&text, 0, 1);
        let needle = String::from_utf16_lossy(&units);
        if negate {
            Test::NotStartsWith(needle)
        } else {
            Test::StartsWith(needle)
        }
    } else {
        let units = slice_utf16(&text, 1, 0);
        match String::from_utf16(&units) {
            Ok(needle) if negate => Test::NotEndsWith(needle),
            Ok(needle) => Test::EndsWith(needle),
            // Dropping one code unit cut an astral character in half; what is left starts with
            // a lone low surrogate, which JS still compares code unit by code unit.
            Err(_) => Test::EndsWithSplitCharacter {
                low_surrogate: units.first().copied().unwrap_or_default(),
                rest: String::from_utf16_lossy(units.get(1..).unwrap_or_default()),
                negated: negate,
            },
        }
    }
}

/// `parseFqlFunction`: consumes `(`, the field, `,`, the value and `)` without checking them.
fn function(
    name: &Token,
    nodes: &mut Vec<Condition>,
    tokens: &mut VecDeque<Token>,
    negate: bool,
) -> Result<(), ParseError> {
    tokens.pop_front();
    let field = tokens.pop_front().ok_or_else(|| {
        error(
            format!("{}() is missing a 1st argument", name.value),
            name.at,
        )
    })?;
    tokens.pop_front();
    let value = tokens.pop_front().ok_or_else(|| {
        error(
            format!("{}() is missing a 2nd argument", name.value),
            name.at,
        )
    })?;
    tokens.pop_front();
    let test = if name.value == "contains" {
        let text = token_value(&value).to_js_string();
        if negate {
            Test::NotContains(text)
        } else {
            Test::Contains(text)
        }
    } else {
        match_test(&value, negate)
    };
    for field in function_fields(&field.value) {
        nodes.push(Condition::Test {
            field,
            test: test.clone(),
        });
    }
    Ok(())
}

fn is_function(token: &Token) -> bool {
    token.kind == Kind::Ident && (token.value == "contains" || token.value == "match")
}

/// `parse`: `Ok(None)` is the reference's `undefined` (nothing recognised).
pub(super) fn parse(
    mut tokens: VecDeque<Token>,
    nested: bool,
) -> Result<Option<Condition>, ParseError> {
    let mut nodes: Vec<Condition> = Vec::new();
    let mut or = false;
    while let Some(token) = tokens.pop_front() {
        if token.kind == Kind::Eos {
            break;
        }
        if token.kind == Kind::Ident {
            let head = token.value.split('.').next().unwrap_or_default();
            if let Some(target) = target(head) {
                let operator = tokens.pop_front().ok_or_else(|| {
                    error(
                        format!("expected an operator after `{}`", token.value),
                        token.at,
                    )
                })?;
                // Only the end-of-input marker can be last, so it was taken as the operator.
                let value = tokens.pop_front().ok_or_else(|| {
                    error(
                        format!("expected an operator and a value after `{}`", token.value),
                        operator.at,
                    )
                })?;
                nodes.extend(comparison(&target, &token, &operator, &value));
            }
            if is_function(&token) {
                function(&token, &mut nodes, &mut tokens, false)?;
            }
        }
        if token.kind == Kind::Operator && token.value == "!" {
            let next = tokens
                .front()
                .ok_or_else(|| error("expected something after `!`", token.at))?;
            if is_function(next) {
                if let Some(name) = tokens.pop_front() {
                    function(&name, &mut nodes, &mut tokens, true)?;
                }
            }
        }
        if token.kind == Kind::ParenLeft {
            let mut group = VecDeque::new();
            let close = loop {
                match tokens.pop_front() {
                    Some(t) if t.kind == Kind::ParenRight => break t,
                    Some(t) => group.push_back(t),
                    None if nested => {
                        return Err(error("parentheses cannot be nested", token.at));
                    }
                    None => return Err(error("`(` is never closed", token.at)),
                }
            };
            group.push_back(Token::new(Kind::Eos, "eos", close.at));
            // An empty group is kept: the reference stores `undefined` and only fails on it
            // when an event reaches it.
            nodes.push(parse(group, true)?.unwrap_or(Condition::Empty));
        }
        if token.kind == Kind::Conditional {
            or = token.value == "or";
        }
    }
    if nodes.len() > 1 {
        return Ok(Some(if or {
            Condition::Or(nodes)
        } else {
            Condition::And(nodes)
        }));
    }
    Ok(nodes.pop())
}
