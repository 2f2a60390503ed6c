//! Segment subscription triggers: the condition strings ("FQL" subset) that decide which events
//! an action fires for, such as
//! `type = "track" and (event = "Order Completed" or event = "Subscription Started")`.
//!
//! [`Trigger::parse`] and [`Trigger::matches`] reproduce Segment's own implementation, the
//! `parseFql` and `validate` functions of `@segment/destination-subscriptions` (3.37, over the
//! `@segment/fql-ts` 1.10 lexer), including where it departs from what the syntax suggests,
//! because a trigger must select the same events here as it does in Segment:
//!
//! - `!` negates only `contains(...)` and `match(...)`. Anywhere else it is ignored, so
//!   `!(type = "page")` matches page events.
//! - `and` and `or` have no precedence: each parenthesised level takes the operator of its
//!   *last* conjunction, so `a and b or c` means `a or b or c`. Parentheses do not nest.
//! - A field is always followed by exactly one operator token and one value token.
//!   `type =` is a valid trigger that compares `type` with the string `"eos"` (the end-of-input
//!   marker). Unknown fields, stray tokens and `AND`/`OR` in capitals are skipped.
//! - Strings have no escapes; single-quoted strings keep their quotes as part of the value.
//!   A closing quote must be followed by a space, `)`, `,`, `]` or the end of the text.
//! - `!=` must be followed by a space; `=` need not be.
//! - `type`, `event` and `name` compare as strings only (`event = null` looks for the string
//!   `"null"`); `name` and `userId` also know `= null`/`!= null`, and `userId` `= true`/`= false`.
//!   `properties.*`, `traits.*` and `context.*` know all of these and compare `= 5` as a number.
//! - `f != "x"` holds whenever `f` is not the string `"x"`, including when it is missing or
//!   not a string; `properties.n != 5` instead requires `n` to be a number.
//! - `match(f, "pre*")` is "starts with" and anything else is "ends with" minus the first
//!   character: `match(f, "abc")` tests the suffix `"bc"`.
//! - `contains(type, ...)` and `match(type, ...)` are dropped without error.
//! - Field paths are read as JavaScript reads them: `properties.items.length`, a falsy value
//!   ending the walk (`properties.a.b = 0` holds when `a` is `0`), inherited members such as
//!   `properties.constructor` existing on every object.
//!
//! Evaluating a trigger can make the reference throw (an empty `()` group, an event that is
//! `null`, a path such as `properties.\.`); Segment then drops the event, so
//! [`Trigger::matches`] returns `false`.

mod eval;
mod lexer;
mod parser;
mod strict;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A parsed trigger. Cheap to clone; compiled once, evaluated many times.
///
/// Two triggers are equal when they were parsed from the same text.
#[derive(Clone)]
pub struct Trigger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: String,
    condition: Condition,
}

/// The condition a trigger tests, as the reference parser understands it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// Every condition holds (an `and` group).
    And(Vec<Condition>),
    /// At least one condition holds (an `or` group).
    Or(Vec<Condition>),
    /// A test of one field of the event.
    Test {
        /// The field read from the event.
        field: Field,
        /// What is checked about its value.
        test: Test,
    },
    /// An empty `()` group. The reference accepts it but throws when it evaluates it, so an
    /// event that reaches it does not match.
    Empty,
}

/// A field of the event that a trigger reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `type` (`type.anything` also reads `type`).
    Type,
    /// `event`, the track event name.
    Event,
    /// `name`, the page or screen name.
    Name,
    /// `userId`.
    UserId,
    /// `properties.<path>`; the path is split on `.`, `[` and `]`.
    Property(String),
    /// `traits.<path>`; the path is split on `.`, `[` and `]`.
    Trait(String),
    /// `context.<path>`; the path is split on `.`, `[` and `]`.
    Context(String),
}

/// What a [`Condition::Test`] checks about a field's value. Numbers are JavaScript numbers,
/// and a comparison that needs a type the value does not have is false.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Test {
    /// The value is a string equal to this (`=`).
    Equals(String),
    /// The value is not a string equal to this, including when it is missing (`!=`).
    NotEquals(String),
    /// The value is a number equal to this (`properties.x = 5`).
    NumberEquals(f64),
    /// The value is a number other than this (`properties.x != 5`).
    NumberNotEquals(f64),
    /// The value is a number below this (`<`).
    LessThan(f64),
    /// The value is a number at most this (`<=`).
    LessThanOrEqual(f64),
    /// The value is a number above this (`>`).
    GreaterThan(f64),
    /// The value is a number at least this (`>=`).
    GreaterThanOrEqual(f64),
    /// The value is a string containing this (`contains(f, "s")`).
    Contains(String),
    /// The value is a string not containing this (`!contains(f, "s")`).
    NotContains(String),
    /// The value is a string starting with this (`match(f, "s*")`).
    StartsWith(String),
    /// The value is a string not starting with this (`!match(f, "s*")`).
    NotStartsWith(String),
    /// The value is a string ending with this (`match(f, "*s")`).
    EndsWith(String),
    /// The value is a string not ending with this (`!match(f, "*s")`).
    NotEndsWith(String),
    /// `match(f, "😀s")` without a `*`: the reference drops the pattern's first UTF-16 code
    /// unit, which here is half of a character. The value is a string ending with `rest`
    /// preceded by a character whose low surrogate is `low_surrogate` (or, when `negated`, a
    /// string that does not).
    EndsWithSplitCharacter {
        /// The second half of the cut character.
        low_surrogate: u16,
        /// The rest of the pattern.
        rest: String,
        /// Whether the match was negated with `!`.
        negated: bool,
    },
    /// The value is present and not `null` (`!= null`).
    Exists,
    /// The value is missing or `null` (`= null`).
    NotExists,
    /// The value is the boolean `true` (`= true`).
    IsTrue,
    /// The value is the boolean `false` (`= false`).
    IsFalse,
    /// An operator the reference parses but never matches with (the operator as written, for
    /// example `.` in `properties.123 = 1`).
    Unsupported(String),
}

/// Why a trigger failed to parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {}", location(*.line, *.column))]
#[non_exhaustive]
pub struct TriggerError {
    /// What went wrong.
    pub message: String,
    /// Byte offset into the trigger text.
    pub offset: usize,
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

fn location(line: usize, column: usize) -> String {
    if line > 1 {
        format!("line {line}, column {column}")
    } else {
        format!("column {column}")
    }
}

impl TriggerError {
    /// Builds the error for a position given in UTF-16 code units, as the lexer counts.
    fn at_unit(source: &str, unit_offset: usize, message: String) -> TriggerError {
        let mut units = 0;
        let mut offset = source.len();
        for (byte, c) in source.char_indices() {
            units += c.len_utf16();
            // An offset inside a surrogate pair points at the whole character.
            if units > unit_offset {
                offset = byte;
                break;
            }
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source[line_start..offset].chars().count() + 1;
        TriggerError {
            message,
            offset,
            line,
            column,
        }
    }
}

/// The text of [`Trigger::all`]: Segment has no "all events" keyword (`all` does not parse
/// there either), so this is a condition its parser accepts that every event satisfies.
const ALL: &str = "userId = null or userId != null";

impl Trigger {
    /// Parses a trigger, accepting exactly what Segment accepts.
    ///
    /// # Errors
    ///
    /// A [`TriggerError`] saying what is wrong and where, for any text Segment rejects.
    pub fn parse(source: &str) -> Result<Trigger, TriggerError> {
        let units: Vec<u16> = source.encode_utf16().collect();
        let tokens =
            lexer::lex(&units).map_err(|e| TriggerError::at_unit(source, e.at, e.message))?;
        let condition = parser::parse(parser::normalize(tokens), false)
            .map_err(|e| TriggerError::at_unit(source, e.at, e.message))?;
        match condition {
            Some(condition) if condition != Condition::Empty => Ok(Trigger {
                inner: Arc::new(Inner {
                    source: source.to_owned(),
                    condition,
                }),
            }),
            _ => Err(TriggerError::at_unit(
                source,
                0,
                "found no condition: expected a test such as `type = \"track\"`, \
                 `properties.total > 10` or `contains(event, \"Order\")`"
                    .to_owned(),
            )),
        }
    }

    /// Parses a trigger as [`parse`](Self::parse) does, then refuses what Segment accepts
    /// but a reader would not expect, as [`check_strict`](Self::check_strict) says.
    ///
    /// ```
    /// use rokt_capi::trigger::Trigger;
    /// // Segment accepts this and matches every track call; strictly, it is cut short.
    /// assert!(Trigger::parse(r#"type = "track" and"#).is_ok());
    /// let err = Trigger::parse_strict(r#"type = "track" and"#).unwrap_err();
    /// assert_eq!(err.to_string(), "the trigger ends after `and`: a condition is missing at column 19");
    /// assert!(Trigger::parse_strict(r#"type = "track" and (event = "A" or event = "B")"#).is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// A [`TriggerError`] saying what is wrong and where (naming fields and operators, never
    /// the values compared with).
    pub fn parse_strict(source: &str) -> Result<Trigger, TriggerError> {
        let trigger = Trigger::parse(source)?;
        trigger.check_strict()?;
        Ok(trigger)
    }

    /// Checks a parsed trigger against a strict grammar, refusing what the reference accepts
    /// but gives a surprising meaning: a condition cut short (`type = "track" and`, `type =`),
    /// an unknown field or operator (skipped by the reference), a capitalised `AND`, `and`
    /// and `or` mixed at one level (the last one wins there), nested or unbalanced
    /// parentheses, an empty `()`, `!` before anything but `contains()`/`match()`, a
    /// single-quoted string (its quotes kept), a value that is not a double-quoted string,
    /// number, `null`, `true` or `false`, `contains(type, …)`, and a `match()` pattern
    /// without exactly one leading or trailing `*`.
    ///
    /// # Errors
    ///
    /// The first such thing, as a [`TriggerError`].
    pub fn check_strict(&self) -> Result<(), TriggerError> {
        let source = self.inner.source.as_str();
        let units: Vec<u16> = source.encode_utf16().collect();
        let tokens =
            lexer::lex(&units).map_err(|e| TriggerError::at_unit(source, e.at, e.message))?;
        strict::check(parser::normalize(tokens))
            .map_err(|e| TriggerError::at_unit(source, e.at, e.message))
    }

    /// Whether the event matches: any event the crate takes (a [`Json`](crate::Json)
    /// document, a `serde_json::Value`, a typed [`Event`](crate::segment::Event), JSON text).
    /// Text that is not JSON matches nothing.
    #[must_use]
    pub fn matches(&self, event: impl crate::segment::AsEvent) -> bool {
        event.read(Matches(self)).unwrap_or(false)
    }

    /// [`matches`](Self::matches) for an event in any form the crate reads.
    pub(crate) fn matches_value<'d>(&self, event: impl crate::json::DocValue<'d>) -> bool {
        eval::eval(&self.inner.condition, event).unwrap_or(false)
    }

    /// The source text it was parsed from.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.inner.source
    }

    /// What the trigger tests.
    #[must_use]
    pub fn condition(&self) -> &Condition {
        &self.inner.condition
    }

    /// A trigger that matches every event.
    ///
    /// Segment has no "all" keyword (`Trigger::parse("all")` fails, as in Segment), so this is
    /// `userId = null or userId != null`, which Segment also accepts and which every event
    /// satisfies.
    #[must_use]
    pub fn all() -> Trigger {
        Trigger {
            inner: Arc::new(Inner {
                source: ALL.to_owned(),
                condition: Condition::Or(vec![
                    Condition::Test {
                        field: Field::UserId,
                        test: Test::NotExists,
                    },
                    Condition::Test {
                        field: Field::UserId,
                        test: Test::Exists,
                    },
                ]),
            }),
        }
    }
}

/// A trigger's verdict on an event as it is held (a `Value` or a typed event in place).
struct Matches<'t>(&'t Trigger);

impl crate::segment::sealed::Reader for Matches<'_> {
    type Output = bool;
    fn direct<'d>(&mut self, event: impl crate::json::DocValue<'d>) -> Option<bool> {
        Some(self.0.matches_value(event))
    }
    fn general(self, doc: &crate::Json<'_>) -> Result<bool, crate::Error> {
        Ok(self.0.matches_value(doc))
    }
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trigger")
            .field("source", &self.inner.source)
            .field("condition", &self.inner.condition)
            .finish()
    }
}

impl PartialEq for Trigger {
    fn eq(&self, other: &Trigger) -> bool {
        // The condition is a function of the text, and comparing it would make a trigger with
        // a NaN literal unequal to itself.
        self.inner.source == other.inner.source
    }
}

impl Eq for Trigger {}

impl std::hash::Hash for Trigger {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.source.hash(state);
    }
}

impl FromStr for Trigger {
    type Err = TriggerError;

    fn from_str(source: &str) -> Result<Trigger, TriggerError> {
        Trigger::parse(source)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Trigger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Trigger, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Trigger;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Segment trigger condition string")
            }

            fn visit_str<E: serde::de::Error>(self, source: &str) -> Result<Trigger, E> {
                Trigger::parse(source).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}
