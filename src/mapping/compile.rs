//! The mapping compiler: checks mapping JSON as the reference does and builds the node tree.
//!
//! The reference checks a mapping twice: `validate` before running (strict about directive
//! shapes, but it does not look inside arrays, nor inside plain values given to `@literal`,
//! `@excludeWhenNull` and the like), then each directive's own checks as it runs. Where the
//! validator does not look, an object with an `@` key next to other keys is a plain object, and
//! only the run-time checks apply. Both are mirrored here: [`Mode::Strict`] where the validator
//! looks, [`Mode::Loose`] where it does not. Run-time checks that do not depend on the event
//! fail here, at load time, instead of on every event.

use super::objects::{Flatten, Merge};
use super::path::Path;
use super::presets::Builtin;
use super::template::Template;
use super::text::{Case, Replace};
use super::{ArrayPath, Computed, IfTest, JsonCodec, JsonMode, MappingError, Node, Transform};
use crate::Json;
use crate::js;
use std::borrow::Cow;

/// The key by which Segment nests a mapping under a root directive.
const ROOT_MAPPING_FIELD_KEY: &str = "__segment_internal_directive";

/// The longest `@liquid` template the reference accepts, in UTF-16 code units.
const LIQUID_MAX_LENGTH: usize = 1000;

/// Why a build without the `liquid` feature refuses a `@liquid` template (the reference's own
/// Liquid defaults are built in and need no feature).
#[cfg(not(feature = "liquid"))]
const LIQUID_FEATURE_OFF: &str =
    "@liquid needs rokt-capi's `liquid` feature, which is off by default (features = [\"liquid\"])";

/// How deeply a mapping may nest; deeper mappings are refused rather than risk the stack.
const MAX_DEPTH: usize = 128;

/// Whether the reference's validator checks a position (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Strict,
    Loose,
}

#[derive(Clone, Copy)]
struct Cx {
    mode: Mode,
    depth: usize,
}

impl Cx {
    fn with(self, mode: Mode) -> Cx {
        Cx { mode, ..self }
    }
}

/// Compiles a mapping as the reference validates and runs it (the mapping of a field, or a
/// whole mapping after [`root_mapping`]).
pub(crate) fn compile(value: &Json<'_>, location: &str) -> Result<Node, MappingError> {
    node(
        value,
        location,
        Cx {
            mode: Mode::Strict,
            depth: 0,
        },
    )
}

/// The reference's `getMappingToProcess`: a mapping with a `__segment_internal_directive` key
/// is that directive, given the mapping's other keys as its `mapping`.
pub(crate) fn root_mapping<'p, 'j>(
    mapping: &'p Json<'j>,
    location: &str,
) -> Result<Cow<'p, Json<'j>>, MappingError> {
    let Json::Object(pairs) = mapping else {
        return Ok(Cow::Borrowed(mapping));
    };
    let Some(root) = mapping.get(ROOT_MAPPING_FIELD_KEY) else {
        return Ok(Cow::Borrowed(mapping));
    };
    let at = child(location, ROOT_MAPPING_FIELD_KEY);
    let single = || {
        err(
            &at,
            "The root mapping must only have a single directive object",
        )
    };
    let not_object = || err(&at, "The root directive must be an object");
    let customer = Json::Object(
        pairs
            .iter()
            .filter(|(k, _)| k != ROOT_MAPPING_FIELD_KEY)
            .cloned()
            .collect(),
    );
    let with_mapping = |directive: &Json<'j>| -> Result<Json<'j>, MappingError> {
        let Json::Object(members) = directive else {
            return Err(not_object());
        };
        let mut members: Vec<_> = members
            .iter()
            .filter(|(k, _)| k != "mapping")
            .cloned()
            .collect();
        members.push((Cow::Borrowed("mapping"), customer.clone()));
        Ok(Json::Object(js::js_order(members)))
    };
    // `Object.keys(root)` must have one key, whose value is the directive object.
    match root {
        Json::Object(members) => {
            let members = js::js_order(members.iter().map(|(k, v)| (k.as_ref(), v)));
            if members.len() > 1 {
                return Err(single());
            }
            let Some((name, directive)) = members.first() else {
                return Err(not_object());
            };
            Ok(Cow::Owned(Json::Object(vec![(
                Cow::Owned((*name).to_owned()),
                with_mapping(directive)?,
            )])))
        }
        Json::Array(items) => match items.as_slice() {
            [item] => Ok(Cow::Owned(Json::Array(vec![with_mapping(item)?]))),
            [] => Err(not_object()),
            _ => Err(single()),
        },
        Json::Str(s) if js::utf16_len(s) > 1 => Err(single()),
        Json::Null => Err(err(&at, "Cannot convert undefined or null to object")),
        _ => Err(not_object()),
    }
}

fn child(location: &str, key: &str) -> String {
    let mut out = String::with_capacity(location.len() + key.len() + 1);
    out.push_str(location);
    out.push('/');
    // JSON pointer escaping.
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

fn err(location: &str, message: impl Into<String>) -> MappingError {
    MappingError::new(location, message)
}

/// `realTypeOrDirective`: an object with any `@` key is a "directive".
fn type_or_directive(v: Option<&Json<'_>>) -> &'static str {
    match v {
        Some(Json::Object(pairs)) if pairs.iter().any(|(k, _)| k.starts_with('@')) => "directive",
        other => js::type_name(other),
    }
}

fn a_type(t: &str) -> String {
    format!("{} {t}", js::article(t))
}

fn has_directive_key(v: &Json<'_>) -> bool {
    matches!(v, Json::Object(pairs) if pairs.iter().any(|(k, _)| k.starts_with('@')))
}

/// The reference's run-time `isDirective`: an `@` key, and no other key but `_metadata`.
fn is_directive(pairs: &[(Cow<'_, str>, Json<'_>)]) -> bool {
    pairs.iter().any(|(k, _)| k.starts_with('@'))
        && pairs
            .iter()
            .all(|(k, _)| k.starts_with('@') || k == "_metadata")
}

fn node(value: &Json<'_>, location: &str, cx: Cx) -> Result<Node, MappingError> {
    if cx.depth > MAX_DEPTH {
        return Err(err(location, "the mapping is nested too deeply"));
    }
    let cx = Cx {
        depth: cx.depth + 1,
        ..cx
    };
    match value {
        Json::Object(pairs) => {
            let directive = match cx.mode {
                Mode::Strict => pairs.iter().any(|(k, _)| k.starts_with('@')),
                Mode::Loose => is_directive(pairs),
            };
            if directive {
                return self::directive(pairs, location, cx);
            }
            let mut members = Vec::with_capacity(pairs.len());
            for (k, v) in js::entries(pairs) {
                members.push((k.to_owned(), node(v, &child(location, k), cx)?));
            }
            Ok(fold_object(members))
        }
        Json::Array(items) => {
            // The validator does not look inside arrays.
            let cx = cx.with(Mode::Loose);
            let mut nodes = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                nodes.push(node(v, &child(location, &i.to_string()), cx)?);
            }
            if nodes.iter().all(|n| matches!(n, Node::Const(_))) {
                Ok(Node::Const(Json::Array(
                    nodes.into_iter().filter_map(into_const).collect(),
                )))
            } else {
                Ok(Node::Array(nodes))
            }
        }
        other => Ok(Node::Const(other.clone().into_owned())),
    }
}

/// An object of constants is itself a constant, borrowed per event instead of rebuilt.
fn fold_object(members: Vec<(String, Node)>) -> Node {
    if members.iter().all(|(_, n)| matches!(n, Node::Const(_))) {
        Node::Const(Json::Object(
            members
                .into_iter()
                .filter_map(|(k, n)| into_const(n).map(|v| (Cow::Owned(k), v)))
                .collect(),
        ))
    } else {
        Node::Object(members)
    }
}

fn into_const(n: Node) -> Option<Json<'static>> {
    match n {
        Node::Const(v) => Some(v),
        _ => None,
    }
}

/// `validateDirectiveOrRaw`: a directive is checked, a plain value is not looked inside.
fn raw(value: &Json<'_>, location: &str, cx: Cx) -> Result<Node, MappingError> {
    match (cx.mode, value) {
        (Mode::Strict, Json::Object(pairs)) if has_directive_key(value) => {
            directive(pairs, location, cx)
        }
        _ => node(value, location, cx.with(Mode::Loose)),
    }
}

fn directive(
    pairs: &[(Cow<'_, str>, Json<'_>)],
    location: &str,
    cx: Cx,
) -> Result<Node, MappingError> {
    let pairs = js::js_order(pairs.iter().map(|(k, v)| (k.as_ref(), v)));
    let at_keys = pairs.iter().filter(|(k, _)| k.starts_with('@')).count();
    if cx.mode == Mode::Strict {
        let others = pairs
            .iter()
            .any(|(k, _)| !k.starts_with('@') && *k != "_metadata");
        if at_keys > 1 || others {
            let n = if others { pairs.len() } else { at_keys };
            return Err(err(
                location,
                format!("should only have one @-prefixed key but it has {n} keys"),
            ));
        }
    }
    let Some(&(name, arg)) = pairs.iter().find(|(k, _)| k.starts_with('@')) else {
        return Err(err(location, "expected a directive"));
    };
    let here = child(location, name);
    let strict = cx.mode == Mode::Strict;
    match name {
        "@path" | "@template" => path_or_template(name, arg, &here, cx),
        "@literal" => raw(arg, &here, cx),
        "@excludeWhenNull" => Ok(Node::ExcludeWhenNull(Box::new(raw(arg, &here, cx)?))),
        "@if" => compile_if(arg, &here, cx),
        "@case" => compile_case(arg, &here, cx),
        "@replace" => compile_replace(arg, &here, cx),
        "@arrayPath" => compile_array_path(arg, &here, cx),
        "@json" => compile_json(arg, &here, cx),
        "@flatten" => compile_flatten(arg, &here, cx),
        "@merge" => compile_merge(arg, &here, cx),
        "@transform" => compile_transform(arg, &here, cx),
        "@liquid" => compile_liquid(arg, &here, cx),
        other if strict => Err(err(location, format!("has an invalid directive: {other}"))),
        other => Err(err(
            &here,
            format!("{other} is not a valid directive, got undefined"),
        )),
    }
}

/// A directive's object argument, with its members: checked and compiled up front where the
/// validator looks (it checks every member of such an object), compiled on demand elsewhere.
struct Args<'p, 'j> {
    here: String,
    pairs: Vec<(&'p str, &'p Json<'j>)>,
    nodes: Vec<Option<Node>>,
    cx: Cx,
}

impl<'p, 'j> Args<'p, 'j> {
    /// `validateObject` where strict, `isObject` (with `runtime` as the message) where loose.
    fn new(arg: &'p Json<'j>, here: &str, cx: Cx, runtime: &str) -> Result<Self, MappingError> {
        Self::skipping(arg, here, cx, runtime, &[])
    }

    /// As [`Args::new`], leaving the `skip` members for the caller to check and compile.
    fn skipping(
        arg: &'p Json<'j>,
        here: &str,
        cx: Cx,
        runtime: &str,
        skip: &[&str],
    ) -> Result<Self, MappingError> {
        let kind = type_or_directive(Some(arg));
        let raw_pairs = match arg {
            Json::Object(pairs) if cx.mode == Mode::Loose || kind == "object" => pairs,
            _ => {
                return Err(match cx.mode {
                    Mode::Strict => err(
                        here,
                        format!("should be an object but it is {}", a_type(kind)),
                    ),
                    Mode::Loose => err(here, runtime),
                });
            }
        };
        let pairs = js::js_order(raw_pairs.iter().map(|(k, v)| (k.as_ref(), v)));
        let mut nodes = Vec::new();
        if cx.mode == Mode::Strict {
            for (k, v) in &pairs {
                nodes.push(if skip.contains(k) {
                    None
                } else {
                    Some(node(v, &child(here, k), cx)?)
                });
            }
        }
        Ok(Args {
            here: here.to_owned(),
            pairs,
            nodes,
            cx,
        })
    }

    fn strict(&self) -> bool {
        self.cx.mode == Mode::Strict
    }

    fn get(&self, key: &str) -> Option<&'p Json<'j>> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(js::truthy)
    }

    fn at(&self, key: &str) -> String {
        child(&self.here, key)
    }

    /// The compiled member, if present.
    fn node(&mut self, key: &str) -> Result<Option<Node>, MappingError> {
        let Some(i) = self.pairs.iter().position(|(k, _)| *k == key) else {
            return Ok(None);
        };
        if self.strict() {
            return Ok(self.nodes[i].take());
        }
        node(self.pairs[i].1, &child(&self.here, key), self.cx).map(Some)
    }

    /// A member a check has found present.
    fn required_node(&mut self, key: &str) -> Result<Node, MappingError> {
        Ok(self.node(key)?.unwrap_or(Node::Undefined))
    }

    /// `required`: the validator's "should have field" check, where strict.
    fn require(&self, key: &str) -> Result<(), MappingError> {
        if self.strict() && self.get(key).is_none() {
            return Err(err(
                &self.here,
                format!("should have field \"{key}\" but it doesn't"),
            ));
        }
        Ok(())
    }

    /// Runs a value check on a member, where strict and present.
    fn check(
        &self,
        key: &str,
        check: impl Fn(&Json<'j>) -> Result<(), String>,
    ) -> Result<(), MappingError> {
        if let (true, Some(v)) = (self.strict(), self.get(key)) {
            check(v).map_err(|m| err(&self.at(key), m))?;
        }
        Ok(())
    }
}

fn check_string(v: &Json<'_>) -> Result<(), String> {
    match type_or_directive(Some(v)) {
        "string" => Ok(()),
        t => Err(format!("should be a string but it is {}", a_type(t))),
    }
}

fn check_boolean(v: &Json<'_>) -> Result<(), String> {
    match type_or_directive(Some(v)) {
        "boolean" => Ok(()),
        t => Err(format!("should be a boolean but it is {}", a_type(t))),
    }
}

fn check_directive_or_string(v: Option<&Json<'_>>) -> Result<(), String> {
    match type_or_directive(v) {
        "directive" | "string" => Ok(()),
        t => Err(format!(
            "should be a string or a mapping directive but it is {}",
            a_type(t)
        )),
    }
}

fn check_directive_or_object(v: &Json<'_>) -> Result<(), String> {
    match type_or_directive(Some(v)) {
        "directive" | "object" => Ok(()),
        t => Err(format!(
            "should be a object or a mapping directive but it is {}",
            a_type(t)
        )),
    }
}

fn check_length(min: usize, max: usize) -> impl Fn(&Json<'_>) -> Result<(), String> {
    move |v| {
        if let Json::Str(s) = v {
            let n = js::utf16_len(s);
            if n < min {
                return Err(format!("should be a string of length {min} or greater"));
            }
            if n > max {
                return Err(format!("should be a string of length {max} or less"));
            }
        }
        Ok(())
    }
}

fn check_one_of(allowed: &'static [&'static str]) -> impl Fn(&Json<'_>) -> Result<(), String> {
    move |v| {
        check_string(v)?;
        let s = v.as_str().unwrap_or_default();
        // The validator compares in lower case; the directive then compares exactly.
        if !allowed.contains(&s.to_lowercase().as_str()) {
            let mut quoted = String::new();
            js::push_json_string(&mut quoted, s);
            return Err(format!(
                "should be one of {} but it is {quoted}",
                allowed.join(", ")
            ));
        }
        Ok(())
    }
}

fn path_or_template(name: &str, arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let template = name == "@template";
    if let Json::Str(s) = arg {
        return Ok(if template {
            Node::Template(Template::compile(s))
        } else {
            Node::Path(Path::parse(s))
        });
    }
    let argument = match cx.mode {
        Mode::Strict => {
            check_directive_or_string(Some(arg)).map_err(|m| err(here, m))?;
            let Json::Object(pairs) = arg else {
                return Err(err(here, "expected a directive"));
            };
            directive(pairs, here, cx)?
        }
        Mode::Loose => node(arg, here, cx)?,
    };
    if let Node::Const(v) = &argument {
        // A constant argument is known now: a string compiles as if written directly, and
        // anything else fails on every event.
        return match v {
            Json::Str(s) if template => Ok(Node::Template(Template::compile(s))),
            Json::Str(s) => Ok(Node::Path(Path::parse(s))),
            other => Err(err(
                here,
                format!("{name}: expected string, got {}", other.kind()),
            )),
        };
    }
    Ok(Node::Computed(Box::new(Computed {
        template,
        argument,
        location: here.to_owned(),
    })))
}

fn compile_if(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::new(
        arg,
        here,
        cx,
        "@if requires an object with an \"exists\" key",
    )?;
    if !args.truthy("exists") && !args.truthy("blank") {
        return Err(err(
            here,
            "@if requires an \"exists\" key or a \"blank\" key",
        ));
    }
    let then = args.node("then")?.map(Box::new);
    // The reference takes `else` only when it is truthy (`opts.else && …`).
    let otherwise = if args.truthy("else") {
        args.node("else")?.map(Box::new)
    } else {
        None
    };
    // `exists` wins whenever present, even when falsy (then `blank` made the check pass).
    let test = if args.get("exists").is_some() {
        let node = args.required_node("exists")?;
        if let (Node::Path(p), Some(Node::Path(t))) = (&node, then.as_deref()) {
            if p == t {
                return Ok(Node::Coalesce(p.clone(), otherwise));
            }
        }
        IfTest::Exists(Box::new(node))
    } else {
        IfTest::Blank(Box::new(args.required_node("blank")?))
    };
    Ok(Node::If {
        test,
        then,
        otherwise,
    })
}

fn compile_case(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::new(
        arg,
        here,
        cx,
        "@case requires an object with a \"operator\" key",
    )?;
    args.check("operator", check_string)?;
    args.check("value", |v| check_directive_or_string(Some(v)))?;
    if !args.truthy("operator") {
        return Err(err(here, "@case requires a \"operator\" key"));
    }
    let operator = args.get("operator").and_then(Json::as_str).unwrap_or("");
    let value = if args.truthy("value") {
        args.node("value")?
    } else {
        None
    };
    Ok(Node::Case(Box::new(Case::new(operator, value, here))))
}

fn compile_replace(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::new(
        arg,
        here,
        cx,
        "@replace requires an object with a \"pattern\" key",
    )?;
    args.require("pattern")?;
    args.check("pattern", |v| {
        check_string(v)?;
        check_length(1, super::text::MAX_PATTERN_LENGTH)(v)
    })?;
    args.check("replacement", |v| {
        check_string(v)?;
        check_length(0, super::text::MAX_REPLACEMENT_LENGTH)(v)
    })?;
    args.require("value")?;
    args.check("value", |v| check_directive_or_string(Some(v)))?;
    args.check("ignorecase", check_boolean)?;
    args.check("global", check_boolean)?;
    if !args.truthy("pattern") {
        return Err(err(here, "@replace requires a \"pattern\" key"));
    }
    let value = if args.truthy("value") {
        args.node("value")?
    } else {
        None
    };
    Ok(Node::Replace(Box::new(Replace::new(
        |k| args.get(k),
        value,
        here,
    ))))
}

fn compile_array_path(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let Json::Array(items) = arg else {
        return Err(match cx.mode {
            Mode::Strict => err(
                here,
                format!(
                    "should be an array but it is {}",
                    a_type(js::type_name(Some(arg)))
                ),
            ),
            Mode::Loose => err(
                here,
                format!("@arrayPath expected array, got {}", arg.kind()),
            ),
        });
    };
    let (first, second) = (items.first(), items.get(1));
    let root = match (cx.mode, first) {
        (_, Some(Json::Str(p))) => Node::Path(Path::parse(p)),
        (Mode::Strict, Some(v @ Json::Object(pairs))) if has_directive_key(v) => {
            directive(pairs, &child(here, "0"), cx)?
        }
        (Mode::Strict, other) => {
            return Err(err(
                here,
                format!(
                    "should be a string or a mapping directive but it is {}",
                    a_type(type_or_directive(other))
                ),
            ));
        }
        // `resolve(undefined)` is undefined.
        (Mode::Loose, None) => Node::Undefined,
        (Mode::Loose, Some(v)) => node(v, &child(here, "0"), cx)?,
    };
    let shape = match second {
        Some(v) => Some(node(v, &child(here, "1"), cx)?),
        None => None,
    };
    // Only a non-empty object shape maps the items.
    let shape_used = matches!(second, Some(Json::Object(p)) if !p.is_empty());
    Ok(Node::ArrayPath(Box::new(ArrayPath {
        root,
        shape: if shape_used { shape } else { None },
    })))
}

fn compile_json(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::new(
        arg,
        here,
        cx,
        "@json requires an object with a \"value\" key",
    )?;
    args.require("value")?;
    args.require("mode")?;
    args.check("mode", check_one_of(&["encode", "decode"]))?;
    if !args.truthy("mode") {
        return Err(err(here, "@json requires a \"mode\" key"));
    }
    if !args.truthy("value") {
        return Err(err(here, "@json requires a \"value\" key"));
    }
    let mode = match args.get("mode").and_then(Json::as_str) {
        Some("encode") => JsonMode::Encode,
        Some("decode") => JsonMode::Decode,
        _ => JsonMode::Neither,
    };
    let value = args.required_node("value")?;
    Ok(Node::JsonCodec(Box::new(JsonCodec { mode, value })))
}

fn compile_flatten(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::new(
        arg,
        here,
        cx,
        "@flatten requires an object with a \"separator\" key",
    )?;
    args.check("separator", check_string)?;
    args.require("value")?;
    if !args.truthy("separator") {
        return Err(err(here, "@flatten requires a \"separator\" key"));
    }
    let separator = args.required_node("separator")?;
    if let Node::Const(v) = &separator {
        if v.as_str().is_none() {
            return Err(err(here, "@flatten requires a string separator"));
        }
    }
    let omit_arrays = args.truthy("omitArrays");
    let value = args.node("value")?.unwrap_or(Node::Undefined);
    Ok(Node::Flatten(Box::new(Flatten::new(
        separator,
        value,
        omit_arrays,
        here,
    ))))
}

fn compile_merge(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::skipping(
        arg,
        here,
        cx,
        "@merge requires an object with an \"objects\" key and a \"direction\" key",
        &["objects"],
    )?;
    args.check("direction", check_one_of(&["left", "right"]))?;
    args.require("objects")?;
    args.check("objects", |v| match v {
        Json::Array(_) => Ok(()),
        other => Err(format!(
            "should be an array but it is {}",
            a_type(js::type_name(Some(other)))
        )),
    })?;
    let objects_at = args.at("objects");
    let mut objects = Vec::new();
    if let Some(Json::Array(items)) = args.get("objects") {
        for (i, item) in items.iter().enumerate() {
            let at = child(&objects_at, &i.to_string());
            objects.push(match cx.mode {
                Mode::Strict => {
                    check_directive_or_object(item).map_err(|m| err(&at, m))?;
                    node(item, &at, cx)?
                }
                Mode::Loose => node(item, &at, cx)?,
            });
        }
    }
    if !args.truthy("direction") {
        return Err(err(here, "@merge requires a \"direction\" key"));
    }
    let direction = args.required_node("direction")?;
    match args.get("objects") {
        None => return Err(err(here, "@merge requires a \"objects\" key")),
        Some(Json::Array(_)) => {}
        Some(other) => {
            return Err(err(
                here,
                format!("@merge: expected opts.array, got {}", js_typeof(other)),
            ));
        }
    }
    Ok(Node::Merge(Box::new(Merge::new(direction, objects))))
}

/// JavaScript's `typeof` of a JSON value.
fn js_typeof(v: &Json<'_>) -> &'static str {
    match v {
        Json::Null | Json::Array(_) | Json::Object(_) => "object",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::Str(_) => "string",
    }
}

fn compile_transform(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let mut args = Args::skipping(
        arg,
        here,
        cx,
        "@transform requires an object with an \"apply\" key and a \"mapping\" key",
        &["apply"],
    )?;
    args.require("apply")?;
    args.check("apply", check_directive_or_object)?;
    args.require("mapping")?;
    args.check("mapping", check_directive_or_object)?;
    if !args.truthy("mapping") {
        return Err(err(here, "@transform requires a \"mapping\" key"));
    }
    if !args.truthy("apply") {
        return Err(err(here, "@transform requires a \"apply\" key"));
    }
    let Some(apply @ Json::Object(_)) = args.get("apply") else {
        return Err(err(here, "@transform \"apply\" key should be an object"));
    };
    // `apply` runs through a fresh `transform`, which validates it from the top (after the
    // validator here has checked it as written).
    let apply_at = args.at("apply");
    if args.strict() {
        node(apply, &apply_at, cx)?;
    }
    let apply = root_mapping(apply, &apply_at)?;
    let apply = node(&apply, &apply_at, cx.with(Mode::Strict))?;
    let mapping = args.required_node("mapping")?;
    Ok(Node::Transform(Box::new(Transform {
        apply,
        mapping,
        location: here.to_owned(),
    })))
}

fn compile_liquid(arg: &Json<'_>, here: &str, cx: Cx) -> Result<Node, MappingError> {
    let Json::Str(source) = arg else {
        return Err(match cx.mode {
            Mode::Strict => err(
                here,
                format!(
                    "should be a string but it is {}",
                    a_type(type_or_directive(Some(arg)))
                ),
            ),
            Mode::Loose => err(here, "liquid template value must be a string"),
        });
    };
    if source.is_empty() {
        return Ok(Node::Const(Json::Str(Cow::Borrowed(""))));
    }
    if js::utf16_len(source) > LIQUID_MAX_LENGTH {
        return Err(err(
            here,
            "liquid template values are limited to 1000 characters",
        ));
    }
    if let Some(builtin) = Builtin::recognize(source) {
        return Ok(Node::Builtin(builtin));
    }
    #[cfg(feature = "liquid")]
    {
        super::liquid::Liquid::compile(source, here).map(|l| Node::Liquid(Box::new(l)))
    }
    #[cfg(not(feature = "liquid"))]
    {
        Err(err(here, LIQUID_FEATURE_OFF))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mapping;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn error(mapping: Value) -> (String, String) {
        let e = Mapping::compile(&mapping).unwrap_err();
        (e.location, e.message)
    }

    #[test]
    fn errors_name_the_location_as_a_json_pointer() {
        assert_eq!(
            error(json!({"v": {"@nope": 1}})),
            ("/v".into(), "has an invalid directive: @nope".into())
        );
        assert_eq!(
            error(json!({"v": [1, {"@nope": 1}]})),
            (
                "/v/1/@nope".into(),
                "@nope is not a valid directive, got undefined".into()
            )
        );
        assert_eq!(
            error(json!({"a/b~": {"@if": "x"}})),
            (
                "/a~1b~0/@if".into(),
                "should be an object but it is a string".into()
            )
        );
        assert_eq!(
            error(json!({"v": {"@replace": {"pattern": "abcdefghijk", "value": "x"}}})),
            (
                "/v/@replace/pattern".into(),
                "should be a string of length 10 or less".into()
            )
        );
        assert_eq!(
            error(json!({"v": {"@merge": {"direction": "right", "objects": ["x"]}}})),
            (
                "/v/@merge/objects/0".into(),
                "should be a object or a mapping directive but it is a string".into()
            )
        );
        assert_eq!(
            error(json!({"v": {"@path": "x", "k": 1}})).1,
            "should only have one @-prefixed key but it has 2 keys"
        );
    }

    #[test]
    fn liquid_is_checked_when_loaded() {
        let long = "x".repeat(1001);
        assert_eq!(
            error(json!({"v": {"@liquid": long}})).1,
            "liquid template values are limited to 1000 characters"
        );
        #[cfg(feature = "liquid")]
        assert!(Mapping::compile(&json!({"v": {"@liquid": "x".repeat(1000)}})).is_ok());
        assert_eq!(
            Mapping::compile(&json!({"v": {"@liquid": ""}}))
                .unwrap()
                .apply(&json!({}))
                .unwrap(),
            json!({"v": ""})
        );
        #[cfg(feature = "liquid")]
        {
            let (at, message) = error(json!({"v": {"@liquid": "{% for p in a %}{% endfor %}"}}));
            assert_eq!(
                (at.as_str(), message.as_str()),
                ("/v/@liquid", "tag \"for\" is disabled")
            );
            assert_eq!(
                error(json!({"v": {"@liquid": "{{ a | map: 'b' }}"}})).1,
                "filter \"map\" is disabled"
            );
            assert!(Mapping::compile(&json!({"v": {"@liquid": "{% if a %}"}})).is_err());
        }
        #[cfg(not(feature = "liquid"))]
        assert_eq!(
            error(json!({"v": {"@liquid": "{{ a }}"}})),
            ("/v/@liquid".into(), super::LIQUID_FEATURE_OFF.into())
        );
    }

    #[test]
    fn a_liquid_override_needs_the_feature_and_the_error_says_which() {
        let built = crate::Pipeline::builder()
            .overrides(json!({"eventProperties": {"@liquid": "{{ properties.plan | upcase }}"}}))
            .build();
        #[cfg(feature = "liquid")]
        assert!(built.is_ok(), "{built:?}");
        #[cfg(not(feature = "liquid"))]
        {
            let e = built.unwrap_err();
            assert!(
                matches!(&e, crate::Error::Mapping(m) if m.location == "/eventProperties/@liquid"),
                "{e:?}"
            );
            assert!(!e.is_bad_input() && e.is_permanent());
            assert_eq!(e.error_type(), "INVALID_CONFIGURATION");
            assert!(e.to_string().contains("`liquid` feature"), "{e}");
        }
    }

    #[test]
    fn the_reference_liquid_defaults_need_no_engine() {
        // The presets' device defaults compile to builtins, with or without the feature.
        let mapping = Mapping::compile(&json!({
            "id": {"@liquid": "{% if context.device.advertisingId and context.device.type == 'ios' %}{{ context.device.advertisingId }}{% endif %}"}
        }))
        .unwrap();
        let event = json!({"context": {"device": {"type": "ios", "advertisingId": "A"}}});
        assert_eq!(mapping.apply(&event).unwrap(), json!({"id": "A"}));
    }

    #[test]
    fn deep_mappings_are_refused_not_overflowed() {
        let mut v = json!(1);
        for _ in 0..200 {
            v = json!({"a": v});
        }
        assert_eq!(
            Mapping::compile(&v).unwrap_err().message,
            "the mapping is nested too deeply"
        );
    }

    #[test]
    fn events_must_be_objects() {
        let m = Mapping::compile(&json!({"a": 1})).unwrap();
        assert_eq!(
            m.apply(&json!([1])).unwrap_err().message,
            "data must be an object, got array"
        );
    }

    fn arb_json(keys: bool) -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            Just("$.a".to_owned()),
            Just("$.a.b".to_owned()),
            Just("$.".to_owned()),
            Just("encode".to_owned()),
            Just("decode".to_owned()),
            Just("left".to_owned()),
            Just("upper".to_owned()),
            Just("{{a}}{{{b}}}".to_owned()),
            Just("{% if a == 1 %}{{ a | plus: 1 }}{% endif %}".to_owned()),
            Just("{{ a | append: a | size }}".to_owned()),
            "[a-z$.{}@% |]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|n| json!(n)),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 5, move |inner| {
            let key = prop_oneof![
                Just("@path".to_owned()),
                Just("@if".to_owned()),
                Just("@template".to_owned()),
                Just("@literal".to_owned()),
                Just("@case".to_owned()),
                Just("@replace".to_owned()),
                Just("@arrayPath".to_owned()),
                Just("@json".to_owned()),
                Just("@flatten".to_owned()),
                Just("@merge".to_owned()),
                Just("@transform".to_owned()),
                Just("@excludeWhenNull".to_owned()),
                Just("@liquid".to_owned()),
                Just("exists".to_owned()),
                Just("blank".to_owned()),
                Just("then".to_owned()),
                Just("else".to_owned()),
                Just("value".to_owned()),
                Just("mode".to_owned()),
                Just("operator".to_owned()),
                Just("pattern".to_owned()),
                Just("pattern2".to_owned()),
                Just("separator".to_owned()),
                Just("objects".to_owned()),
                Just("direction".to_owned()),
                Just("apply".to_owned()),
                Just("mapping".to_owned()),
                "[a-b]{1,2}",
            ];
            let key = if keys {
                key.boxed()
            } else {
                "[a-b0-9]{1,2}".boxed()
            };
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_mapping_on_any_event_returns_ok_or_err(
            mapping in arb_json(true),
            event in arb_json(false),
        ) {
            if let Ok(m) = Mapping::compile(&mapping) {
                let event = match event {
                    Value::Object(_) => event,
                    other => json!({"a": other, "b": 1}),
                };
                let _ = m.apply(&event);
            }
        }
    }
}
