//! Strict loading: a small grammar of the triggers that mean what they say. The reference
//! parser (`parser.rs`) accepts much more, and gives it a meaning a reader would not expect
//! (a trailing `and` is dropped, `type =` compares with `"eos"`, an unknown field or a
//! capitalised `AND` is skipped, `a and b or c` is all `or`); a configuration loader that
//! wants to know runs this after the reference parser accepted the text.
//!
//! ```text
//! trigger     = level EOS
//! level       = condition { conjunction condition }     (one conjunction per level)
//! condition   = comparison | [ "!" ] function | "(" level ")"   (parentheses at the top only)
//! comparison  = field ( "=" | "!=" | "<" | "<=" | ">" | ">=" ) value
//! value       = "double-quoted" | number | null | true | false
//! function    = ( "contains" | "match" ) "(" field "," "double-quoted" ")"
//! ```
//!
//! Messages name fields and operators, never the values a trigger compares with.

use super::lexer::{Kind, Token};
use super::parser::ParseError;
use std::collections::VecDeque;

const OPERATORS: [&str; 6] = ["=", "!=", "<", "<=", ">", ">="];
const FIELDS: [&str; 4] = ["type", "event", "name", "userId"];
const PREFIXES: [&str; 3] = ["properties", "traits", "context"];

fn error(message: impl Into<String>, at: usize) -> ParseError {
    ParseError {
        message: message.into(),
        at,
    }
}

/// Whether `name` is a field a comparison can test: `type`, `event`, `name`, `userId`, or a
/// path under `properties`, `traits` or `context`.
fn is_field(name: &str) -> bool {
    FIELDS.contains(&name)
        || PREFIXES.iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.'))
        })
        || FIELDS.iter().any(|f| {
            name.strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// How a token reads in a message: operators, conjunctions and field names as written,
/// values by their kind only.
fn describe(token: &Token) -> String {
    match token.kind {
        Kind::Eos => "the end".to_owned(),
        Kind::Str => "a string".to_owned(),
        Kind::Number => "a number".to_owned(),
        _ => format!("`{}`", token.value),
    }
}

struct Checker {
    tokens: VecDeque<Token>,
    /// Where the text ends, for an error at its end.
    end: usize,
}

impl Checker {
    fn peek(&self) -> Option<&Token> {
        self.tokens.front()
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        self.tokens
            .pop_front()
            .ok_or_else(|| error("the trigger ends too early", self.end))
    }

    fn level(&mut self, nested: bool) -> Result<(), ParseError> {
        let mut conjunction: Option<Token> = None;
        loop {
            self.condition(nested, conjunction.as_ref())?;
            let Some(next) = self.peek() else {
                return Ok(());
            };
            match next.kind {
                Kind::Conditional => {
                    let next = self.next()?;
                    if let Some(first) = &conjunction {
                        if first.value != next.value {
                            return Err(error(
                                format!(
                                    "`{}` and `{}` are mixed at one level without parentheses: \
                                     the reference applies the last one to the whole level",
                                    first.value, next.value
                                ),
                                next.at,
                            ));
                        }
                    }
                    conjunction = Some(next);
                }
                Kind::Eos if !nested => return Ok(()),
                Kind::ParenRight if nested => return Ok(()),
                Kind::ParenRight => return Err(error("a `)` without its `(`", next.at)),
                Kind::Ident
                    if next.value.eq_ignore_ascii_case("and")
                        || next.value.eq_ignore_ascii_case("or") =>
                {
                    return Err(error(
                        format!(
                            "`{}` is not a conjunction (the reference skips it): write `{}`",
                            next.value,
                            next.value.to_ascii_lowercase()
                        ),
                        next.at,
                    ));
                }
                _ => {
                    return Err(error(
                        format!(
                            "expected `and`, `or` or the end after a condition, found {}",
                            describe(next)
                        ),
                        next.at,
                    ));
                }
            }
        }
    }

    fn condition(&mut self, nested: bool, after: Option<&Token>) -> Result<(), ParseError> {
        let token = self.next()?;
        match token.kind {
            Kind::ParenLeft if nested => Err(error(
                "parentheses cannot be nested (the reference refuses them)",
                token.at,
            )),
            Kind::ParenLeft => {
                if self.peek().is_some_and(|t| t.kind == Kind::ParenRight) {
                    return Err(error(
                        "an empty `()` group: the reference fails on every event that reaches it",
                        token.at,
                    ));
                }
                self.level(true)?;
                let close = self.next()?;
                if close.kind != Kind::ParenRight {
                    return Err(error("`(` is never closed", token.at));
                }
                Ok(())
            }
            Kind::Operator if token.value == "!" => match self.next()? {
                f if is_function(&f) => self.function(&f),
                other => Err(error(
                    format!(
                        "`!` negates only contains() and match(); before {} the reference \
                         ignores it",
                        describe(&other)
                    ),
                    token.at,
                )),
            },
            Kind::Ident if is_function(&token) => self.function(&token),
            Kind::Ident if is_field(&token.value) => self.comparison(&token),
            Kind::Ident if PREFIXES.contains(&token.value.as_str()) => Err(error(
                format!(
                    "`{}` needs a path of names such as `{}.total` (a part starting with a digit \
                     ends the name, and the reference reads what follows as the operator)",
                    token.value, token.value
                ),
                token.at,
            )),
            Kind::Ident => Err(error(
                format!(
                    "`{}` is not a field a trigger can test (the reference skips it); fields \
                     are `type`, `event`, `name`, `userId`, `properties.…`, `traits.…` and \
                     `context.…`, conjunctions `and` and `or`",
                    token.value
                ),
                token.at,
            )),
            Kind::Eos => Err(error(
                match after {
                    Some(c) => format!(
                        "the trigger ends after `{}`: a condition is missing",
                        c.value
                    ),
                    None => "the trigger has no condition".to_owned(),
                },
                token.at,
            )),
            Kind::ParenRight if nested => Err(error(
                match after {
                    Some(c) => {
                        format!("the group ends after `{}`: a condition is missing", c.value)
                    }
                    None => "the group has no condition".to_owned(),
                },
                token.at,
            )),
            _ => Err(error(
                format!("expected a condition, found {}", describe(&token)),
                token.at,
            )),
        }
    }

    fn comparison(&mut self, field: &Token) -> Result<(), ParseError> {
        let operator = self.next()?;
        if operator.kind == Kind::Eos {
            return Err(error(
                format!("`{}` has no operator and value", field.value),
                operator.at,
            ));
        }
        if operator.kind != Kind::Operator || !OPERATORS.contains(&operator.value.as_str()) {
            return Err(error(
                format!(
                    "unknown operator {} after `{}`: expected =, !=, <, <=, > or >=",
                    describe(&operator),
                    field.value
                ),
                operator.at,
            ));
        }
        let value = self.next()?;
        let ok = match value.kind {
            Kind::Str => is_double_quoted(&value)?,
            Kind::Number | Kind::Null => true,
            Kind::Ident => value.value == "true" || value.value == "false",
            _ => false,
        };
        if !ok {
            let what = match value.kind {
                Kind::Eos => "has no value".to_owned(),
                _ => format!(
                    "must be followed by a double-quoted string, a number, `null`, `true` or \
                     `false`, not {}",
                    describe(&value)
                ),
            };
            return Err(error(
                format!("`{} {}` {what}", field.value, operator.value),
                value.at,
            ));
        }
        Ok(())
    }

    fn function(&mut self, name: &Token) -> Result<(), ParseError> {
        let mut expect = |kind: Kind, what: &str| -> Result<Token, ParseError> {
            let t = self.next()?;
            if t.kind == kind {
                Ok(t)
            } else {
                Err(error(
                    format!("{}() expects {what}, found {}", name.value, describe(&t)),
                    t.at,
                ))
            }
        };
        expect(Kind::ParenLeft, "`(`")?;
        let field = expect(Kind::Ident, "a field")?;
        if field.value == "type" || !is_field(&field.value) {
            return Err(error(
                format!(
                    "{}() cannot test `{}` (the reference drops the test)",
                    name.value, field.value
                ),
                field.at,
            ));
        }
        expect(Kind::Comma, "`,`")?;
        let pattern = expect(Kind::Str, "a double-quoted string")?;
        is_double_quoted(&pattern)?;
        if name.value == "match" {
            let starts = pattern.value.starts_with("\"*");
            let ends = pattern.value.len() > 2 && pattern.value.ends_with("*\"");
            if starts == ends {
                return Err(error(
                    "a match() pattern must start or end with `*`, not both or neither (the \
                     reference drops its first character otherwise)",
                    pattern.at,
                ));
            }
        }
        expect(Kind::ParenRight, "`)`")?;
        Ok(())
    }
}

fn is_function(token: &Token) -> bool {
    token.kind == Kind::Ident && (token.value == "contains" || token.value == "match")
}

fn is_double_quoted(token: &Token) -> Result<bool, ParseError> {
    if token.value.starts_with('\'') {
        return Err(error(
            "a single-quoted string keeps its quotes in the reference: use double quotes",
            token.at,
        ));
    }
    Ok(true)
}

/// Checks the reference's normalized tokens against the strict grammar.
pub(super) fn check(tokens: VecDeque<Token>) -> Result<(), ParseError> {
    let end = tokens.back().map_or(0, |t| t.at);
    let mut checker = Checker { tokens, end };
    checker.level(false)?;
    match checker.next()? {
        t if t.kind == Kind::Eos => Ok(()),
        t => Err(error(format!("unexpected {}", describe(&t)), t.at)),
    }
}
