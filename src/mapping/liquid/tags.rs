//! Tags with liquidjs's semantics: `if` / `unless` conditions (its operators, precedence and
//! JavaScript comparisons), `echo`, and the tags the reference disables.

use super::view::{Js, js_number, js_of, js_string};
use liquid_core::error::{Error, Result};
use liquid_core::model::{Value, ValueCow, ValueView};
use liquid_core::parser::{BlockElement, FilterChain};
use liquid_core::{
    BlockReflection, Expression, Language, ParseBlock, ParseTag, Renderable, Runtime, TagBlock,
    TagReflection, TagTokenIter, Template,
};
use std::cmp::Ordering;
use std::io::Write;

/// A tag the reference disables; naming it fails when the template is loaded.
#[derive(Clone, Copy, Debug)]
pub(super) struct DisabledTag(pub(super) &'static str);

impl TagReflection for DisabledTag {
    fn tag(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        "disabled"
    }
}

impl ParseTag for DisabledTag {
    fn parse(&self, _: TagTokenIter<'_>, _: &Language) -> Result<Box<dyn Renderable>> {
        Err(Error::with_msg(format!("tag \"{}\" is disabled", self.0)))
    }
    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

/// `{% echo value | filters %}`.
#[derive(Clone, Copy, Debug)]
pub(super) struct EchoTag;

impl TagReflection for EchoTag {
    fn tag(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "outputs a value"
    }
}

impl ParseTag for EchoTag {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let chain = match arguments.next() {
            Some(token) => Some(token.expect_filter_chain(options).into_result()?),
            None => None,
        };
        arguments.expect_nothing()?;
        Ok(Box::new(Echo(chain)))
    }
    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct Echo(Option<FilterChain>);

impl Renderable for Echo {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        match &self.0 {
            Some(chain) => chain.render_to(writer, runtime),
            None => Ok(()),
        }
    }
}

/// `{% if %}` (and `{% unless %}`, which negates its first condition), with `elsif` and
/// `else`.
#[derive(Clone, Copy, Debug)]
pub(super) struct IfBlock {
    pub(super) unless: bool,
}

impl BlockReflection for IfBlock {
    fn start_tag(&self) -> &str {
        if self.unless { "unless" } else { "if" }
    }
    fn end_tag(&self) -> &str {
        if self.unless { "endunless" } else { "endif" }
    }
    fn description(&self) -> &str {
        "conditional"
    }
}

impl ParseBlock for IfBlock {
    fn parse(
        &self,
        arguments: TagTokenIter<'_>,
        mut block: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let mut branches = Vec::new();
        let mut condition = Some(Condition::parse(arguments)?);
        let mut negate = self.unless;
        let mut body = Vec::new();
        while let Some(element) = block.next()? {
            match element {
                BlockElement::Tag(tag) if tag.name() == "elsif" || tag.name() == "else" => {
                    branches.push(Branch {
                        condition: condition.take(),
                        negate,
                        body: Template::new(std::mem::take(&mut body)),
                    });
                    negate = false;
                    if tag.name() == "elsif" {
                        condition = Some(Condition::parse(tag.into_tokens())?);
                    }
                }
                BlockElement::Tag(tag) => body.push(tag.parse(&mut block, options)?),
                element => body.push(element.parse(&mut block, options)?),
            }
        }
        branches.push(Branch {
            condition,
            negate,
            body: Template::new(body),
        });
        block.assert_empty();
        Ok(Box::new(Conditional { branches }))
    }
    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Branch {
    /// `None` for `else`.
    condition: Option<Condition>,
    negate: bool,
    body: Template,
}

#[derive(Debug)]
struct Conditional {
    branches: Vec<Branch>,
}

impl Renderable for Conditional {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        for branch in &self.branches {
            let taken = match &branch.condition {
                None => true,
                Some(c) => c.evaluate(runtime)? != branch.negate,
            };
            if taken {
                return branch.body.render_to(writer, runtime);
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Contains,
    Not,
    And,
    Or,
}

impl Op {
    fn from_token(s: &str) -> Option<Op> {
        Some(match s {
            "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "contains" => Op::Contains,
            "not" => Op::Not,
            "and" => Op::And,
            "or" => Op::Or,
            _ => return None,
        })
    }

    /// liquidjs's precedences: comparisons bind tightest, then `not`, then `and` and `or`
    /// alike (so `a or b and c` is `a or (b and c)`, and `a and b or c` is `a and (b or c)`).
    fn precedence(self) -> u8 {
        match self {
            Op::Not => 1,
            Op::And | Op::Or => 0,
            _ => 2,
        }
    }
}

#[derive(Debug)]
enum Item {
    Operand(Expression),
    Op(Op),
}

/// A condition in postfix order, as liquidjs evaluates it.
#[derive(Debug)]
struct Condition {
    postfix: Vec<Item>,
}

impl Condition {
    fn parse(tokens: TagTokenIter<'_>) -> Result<Condition> {
        let mut postfix = Vec::new();
        let mut ops: Vec<Op> = Vec::new();
        let mut any = false;
        for token in tokens {
            any = true;
            match Op::from_token(token.as_str()) {
                Some(op) => {
                    while ops
                        .last()
                        .is_some_and(|top| top.precedence() > op.precedence())
                    {
                        postfix.extend(ops.pop().map(Item::Op));
                    }
                    ops.push(op);
                }
                None => postfix.push(Item::Operand(token.expect_value().into_result()?)),
            }
        }
        if !any {
            return Err(Error::with_msg("missing condition"));
        }
        while let Some(op) = ops.pop() {
            postfix.push(Item::Op(op));
        }
        Ok(Condition { postfix })
    }

    fn evaluate(&self, runtime: &dyn Runtime) -> Result<bool> {
        let mut stack: Vec<ValueCow<'_>> = Vec::new();
        let undefined = || ValueCow::Borrowed(&super::view::UNDEFINED as &dyn ValueView);
        for item in &self.postfix {
            match item {
                Item::Operand(e) => stack.push(e.evaluate(runtime)?),
                Item::Op(Op::Not) => {
                    let v = stack.pop().unwrap_or_else(undefined);
                    let falsy = !js_of(v.as_view()).truthy();
                    stack.push(ValueCow::Owned(Value::scalar(falsy)));
                }
                Item::Op(op) => {
                    let r = stack.pop().unwrap_or_else(undefined);
                    let l = stack.pop().unwrap_or_else(undefined);
                    let result = apply(*op, l.as_view(), r.as_view());
                    stack.push(ValueCow::Owned(Value::scalar(result)));
                }
            }
        }
        Ok(stack.first().is_some_and(|v| js_of(v.as_view()).truthy()))
    }
}

fn apply(op: Op, l: &dyn ValueView, r: &dyn ValueView) -> bool {
    match op {
        Op::Eq => equals(l, r),
        Op::Ne => !equals(l, r),
        Op::Gt => relation(l, r).is_some_and(|o| o == Ordering::Greater),
        Op::Lt => relation(l, r).is_some_and(|o| o == Ordering::Less),
        Op::Ge => relation(l, r).is_some_and(|o| o != Ordering::Less),
        Op::Le => relation(l, r).is_some_and(|o| o != Ordering::Greater),
        Op::Contains => contains(l, r),
        Op::And => js_of(l).truthy() && js_of(r).truthy(),
        Op::Or => js_of(l).truthy() || js_of(r).truthy(),
        Op::Not => !js_of(r).truthy(),
    }
}

/// liquidjs's `equals`: the `nil`, `empty` and `blank` literals compare their own way, arrays
/// item by item, anything else strictly (`===`).
pub(super) fn equals(l: &dyn ValueView, r: &dyn ValueView) -> bool {
    let (jl, jr) = (js_of(l), js_of(r));
    match (&jl, &jr) {
        (Js::Nil, other) | (other, Js::Nil) => other.is_nil(),
        (Js::Blank, other) | (other, Js::Blank) => blank_equals(other),
        (Js::Empty, other) | (other, Js::Empty) => empty_equals(other),
        (Js::Array(a), Js::Array(b)) => {
            a.size() == b.size() && a.values().zip(b.values()).all(|(x, y)| equals(x, y))
        }
        (Js::Undefined, Js::Undefined) | (Js::Null, Js::Null) => true,
        (Js::Bool(a), Js::Bool(b)) => a == b,
        (Js::Num(a), Js::Num(b)) => a == b,
        (Js::Str(a), Js::Str(b)) => a == b,
        // Objects are equal only to themselves.
        (Js::Object(a), Js::Object(b)) => std::ptr::addr_eq(*a, *b),
        _ => false,
    }
}

fn empty_equals(v: &Js<'_>) -> bool {
    match v {
        Js::Str(s) => s.is_empty(),
        Js::Array(a) => a.size() == 0,
        Js::Object(o) => o.size() == 0,
        _ => false,
    }
}

fn blank_equals(v: &Js<'_>) -> bool {
    match v {
        Js::Bool(false) | Js::Undefined | Js::Null | Js::Nil => true,
        Js::Str(s) => crate::js::trim(s).is_empty(),
        other => empty_equals(other),
    }
}

/// JavaScript's relational comparison; `None` where every comparison is false (NaN, or one
/// side a `nil`/`empty`/`blank` literal, whose comparisons are all false in liquidjs).
fn relation(l: &dyn ValueView, r: &dyn ValueView) -> Option<Ordering> {
    let (jl, jr) = (js_of(l), js_of(r));
    let drop = |j: &Js<'_>| matches!(j, Js::Nil | Js::Empty | Js::Blank);
    if drop(&jl) || drop(&jr) {
        return None;
    }
    let primitive = |j: &Js<'_>, v: &dyn ValueView| match j {
        Js::Str(s) => Some(s.to_string()),
        Js::Array(_) | Js::Object(_) => Some(js_string(v)),
        _ => None,
    };
    if let (Some(a), Some(b)) = (primitive(&jl, l), primitive(&jr, r)) {
        // Strings compare by UTF-16 code unit.
        return Some(a.encode_utf16().cmp(b.encode_utf16()));
    }
    let number = |j: &Js<'_>, v: &dyn ValueView| match j {
        Js::Array(_) | Js::Object(_) => super::view::string_to_number(&js_string(v)),
        _ => js_number(v),
    };
    number(&jl, l).partial_cmp(&number(&jr, r))
}

/// liquidjs's `contains`: array membership, or a substring of a string.
fn contains(l: &dyn ValueView, r: &dyn ValueView) -> bool {
    match js_of(l) {
        Js::Array(a) => a.values().any(|item| equals(item, r)),
        Js::Str(s) => {
            let needle = match js_of(r) {
                Js::Empty | Js::Blank => String::new(),
                _ => js_string(r),
            };
            s.contains(needle.as_str())
        }
        _ => false,
    }
}
