//! Segment's mapping language, compiled once and applied to many events.
//!
//! A mapping is JSON in which objects with a single `@directive` key compute values from the
//! event (`{"@path": "$.properties.revenue"}`); every other value is copied as written.
//! [`Mapping::compile`] checks the whole tree once — unknown directives, wrong shapes, Liquid
//! syntax — turning paths, templates, patterns and Liquid into ready structures, so applying it
//! to an event does no parsing.
//!
//! The directives are those of Segment's `actions-core` mapping kit, with its quirks: `@path`,
//! `@if` (`exists` / `blank`), `@template`, `@literal`, `@case`, `@replace`, `@arrayPath`,
//! `@json`, `@flatten`, `@merge`, `@transform`, `@excludeWhenNull` and `@liquid` (with the
//! `liquid` feature, off by default).
//!
//! Checks the reference makes only when a directive runs, but that do not depend on the event
//! (an unknown directive inside an array, an `@if` without `exists` or `blank`, a disabled
//! Liquid tag), fail here when the mapping is loaded. Those that depend on the event (a `@case`
//! operator that is neither `lower` nor `upper` meeting a string, a second `@replace` pattern
//! over the length limit, a Liquid template over its memory budget) fail when it is applied,
//! as [`ApplyError`].
//!
//! Where this differs from the reference:
//!
//! - Key order of a mapping given as `serde_json::Value` is serde_json's (sorted, unless its
//!   `preserve_order` feature is on); [`Mapping::parse`] keeps the written order.
//! - Lookups never see JavaScript's prototype: `$.constructor` or `$.toString` are undefined
//!   here, where the reference finds functions.
//! - An undefined item of an array the mapping builds is `null` as soon as the array is used
//!   again as a payload (by `@arrayPath` or `@transform`); the reference keeps it undefined
//!   until the end. Half of a surrogate pair (a string indexed by `@path`, or assigned by
//!   `@merge`) becomes U+FFFD, as Rust strings cannot hold it.
//! - `@liquid` runs on the `liquid` crate's parser with liquidjs's semantics re-created (see
//!   the Liquid module): the `liquid` tag and `#` comments are not supported, an unknown filter
//!   is refused when loaded (liquidjs ignores it), number literals such as `1e3` are refused,
//!   objects that pass through a filter or `assign` lose their key order, dates are read in
//!   UTC and named time zones other than UTC are refused, and variable lookups count towards a
//!   budget of about V8's longest string.
//! - The reference's Liquid defaults for the device ids and the rtid compile to native code;
//!   the rtid one parses the query as docs/behaviour.md §7 says.
//!
//! ```
//! use rokt_capi::mapping::Mapping;
//! use serde_json::json;
//!
//! let mapping = Mapping::compile(&json!({
//!     "order": {"@path": "$.properties.order_id"},
//!     "email": {"@if": {
//!         "exists": {"@path": "$.context.traits.email"},
//!         "then": {"@path": "$.context.traits.email"},
//!         "else": {"@path": "$.properties.email"}
//!     }},
//!     "label": {"@template": "{{event}} #{{properties.order_id}}"},
//!     "currency": {"@case": {"operator": "upper", "value": {"@path": "$.properties.currency"}}}
//! })).unwrap();
//! let event = json!({"event": "Order Completed",
//!                    "properties": {"order_id": "o-1", "email": "a@b.co", "currency": "usd"}});
//! assert_eq!(mapping.apply(&event).unwrap(), json!({
//!     "order": "o-1", "email": "a@b.co", "label": "Order Completed #o-1", "currency": "USD"
//! }));
//! ```

mod builder;
mod compile;
#[cfg(feature = "liquid")]
mod liquid;
mod memo;
mod objects;
mod path;
pub mod presets;
mod send;
mod template;
mod text;
mod value;

#[cfg(test)]
mod reference_tests;

pub use builder::{ChainLinks, SendMappingBuilder, Source};
pub(crate) use memo::{EventMemo, PrefixId, Prefixes};
pub use path::Path;
pub use presets::{Preset, trait_chain};
pub use send::{FIELDS, SendMapping};
pub(crate) use send::{Field, Member};

use crate::Json;
use std::borrow::Cow;
use template::Template;
pub(crate) use value::Val;

/// A mapping that could not be compiled: what is wrong and where (a JSON pointer into the
/// mapping).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping error at {location}: {message}")]
#[non_exhaustive]
pub struct MappingError {
    /// Where in the mapping, as a JSON pointer (`/user_attributes/firstname/@if`).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl MappingError {
    pub(crate) fn new(location: &str, message: impl Into<String>) -> Self {
        Self {
            location: if location.is_empty() {
                "/".into()
            } else {
                location.into()
            },
            message: message.into(),
        }
    }
}

/// A mapping failed while being applied to an event: the reference fails there too, for
/// conditions that depend on the event (a `@case` operator that is neither `lower` nor `upper`
/// meeting a string, a computed `@path` that is not a string, a `@liquid` template exceeding
/// its limits…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping failed at {location}: {message}")]
#[non_exhaustive]
pub struct ApplyError {
    /// The mapping location that failed, as a JSON pointer.
    pub location: String,
    /// Why.
    pub message: String,
}

impl ApplyError {
    pub(crate) fn new(location: &str, message: impl Into<String>) -> Self {
        Self {
            location: if location.is_empty() {
                "/".into()
            } else {
                location.into()
            },
            message: message.into(),
        }
    }
}

/// The value a mapping node gives for one event: nothing (JavaScript's `undefined`), a value
/// borrowed from the event or the mapping, or a value made for this event.
#[derive(Debug, Clone)]
pub(crate) enum Resolved<'r, 'a> {
    Undefined,
    Ref(&'r Json<'a>),
    Owned(Json<'a>),
}

impl<'r, 'a> Resolved<'r, 'a> {
    pub(crate) fn as_json(&self) -> Option<&Json<'a>> {
        match self {
            Resolved::Undefined => None,
            Resolved::Ref(v) => Some(v),
            Resolved::Owned(v) => Some(v),
        }
    }
}

/// A compiled mapping node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// A value copied as written (also an object or array with no directive inside).
    Const(Json<'static>),
    /// A value that is always undefined (a directive argument left out).
    Undefined,
    /// An object whose members are mapped one by one, in JavaScript's key order.
    Object(Vec<(String, Node)>),
    /// An array whose items are mapped one by one.
    Array(Vec<Node>),
    /// `@path`.
    Path(Path),
    /// `@if` whose test and `then` are the same path: the value if it exists, else `otherwise`.
    /// This is how trait fallbacks are written, and it saves a second lookup.
    Coalesce(Path, Option<Box<Node>>),
    /// `@if`.
    If {
        test: IfTest,
        then: Option<Box<Node>>,
        otherwise: Option<Box<Node>>,
    },
    /// `@template`.
    Template(Template),
    /// `@path` or `@template` whose argument is itself computed.
    Computed(Box<Computed>),
    /// `@case`.
    Case(Box<text::Case>),
    /// `@replace`.
    Replace(Box<text::Replace>),
    /// `@arrayPath`.
    ArrayPath(Box<ArrayPath>),
    /// `@json`.
    JsonCodec(Box<JsonCodec>),
    /// `@flatten`.
    Flatten(Box<objects::Flatten>),
    /// `@merge`.
    Merge(Box<objects::Merge>),
    /// `@transform`.
    Transform(Box<Transform>),
    /// `@excludeWhenNull`.
    ExcludeWhenNull(Box<Node>),
    /// `@liquid`.
    #[cfg(feature = "liquid")]
    Liquid(Box<liquid::Liquid>),
    /// A computation built into this crate for a template the reference writes in Liquid.
    Builtin(presets::Builtin),
}

/// What an `@if` tests.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IfTest {
    Exists(Box<Node>),
    Blank(Box<Node>),
}

/// `@path` / `@template` with a computed argument.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Computed {
    pub(crate) template: bool,
    pub(crate) argument: Node,
    pub(crate) location: String,
}

/// `@arrayPath`: a root, and the shape each item is mapped through (when the shape is a
/// non-empty object, as the reference requires).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArrayPath {
    pub(crate) root: Node,
    pub(crate) shape: Option<Node>,
}

/// `@json`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JsonCodec {
    pub(crate) mode: JsonMode,
    pub(crate) value: Node,
}

/// The `@json` mode, compared exactly at run time (`"Encode"` passes the reference's validation
/// but neither encodes nor decodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonMode {
    Encode,
    Decode,
    Neither,
}

/// `@transform`: `apply` maps the payload into a new one, `mapping` maps that.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Transform {
    pub(crate) apply: Node,
    pub(crate) mapping: Node,
    pub(crate) location: String,
}

impl Node {
    /// Compiles mapping JSON at `location` (a JSON pointer, for errors), checking it as the
    /// reference's validator does.
    pub(crate) fn compile(value: &Json<'_>, location: &str) -> Result<Node, MappingError> {
        compile::compile(value, location)
    }

    /// Evaluates a node of a send mapping against the event, through the memo of its lookups
    /// (see [`memo`]).
    pub(crate) fn eval<'r, 'a>(
        &'r self,
        event: &EventMemo<'_, 'r, 'a>,
    ) -> Result<Resolved<'r, 'a>, ApplyError> {
        // The nodes the presets are made of, without the general path's intermediate value.
        Ok(match self {
            Node::Const(v) => Resolved::Ref(v),
            Node::Path(path) => event.lookup(path).finalize(),
            Node::Coalesce(path, otherwise) => {
                // Each arm takes what it matched, so a miss (the common case) drops nothing.
                match event.lookup(path) {
                    Val::Ref(v) => {
                        if !v.is_null() {
                            return Ok(Resolved::Ref(v));
                        }
                    }
                    Val::Undefined => {}
                    made => {
                        if made.exists() {
                            return Ok(made.finalize());
                        }
                    }
                }
                match otherwise {
                    Some(node) => return node.eval(event),
                    None => Resolved::Undefined,
                }
            }
            Node::Builtin(b) => event.builtin(b).finalize(),
            other => other.eval_val(event.root())?.finalize(),
        })
    }

    /// Evaluates the node against a payload (the event, or what a directive maps into).
    pub(crate) fn eval_val<'r, 'a>(
        &'r self,
        payload: &'r Json<'a>,
    ) -> Result<Val<'r, 'a>, ApplyError> {
        Ok(match self {
            Node::Const(v) => Val::Ref(v),
            Node::Undefined => Val::Undefined,
            Node::Object(members) => {
                let mut out = Vec::with_capacity(members.len());
                for (k, node) in members {
                    out.push((Cow::Borrowed(k.as_str()), node.eval_val(payload)?));
                }
                Val::Object(out)
            }
            Node::Array(items) => Val::Array(
                items
                    .iter()
                    .map(|n| n.eval_val(payload))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Path(path) => path.lookup(payload),
            Node::Coalesce(path, otherwise) => {
                let found = path.lookup(payload);
                if found.exists() {
                    found
                } else {
                    match otherwise {
                        Some(node) => node.eval_val(payload)?,
                        None => Val::Undefined,
                    }
                }
            }
            Node::If {
                test,
                then,
                otherwise,
            } => {
                let pass = match test {
                    IfTest::Exists(node) => node.eval_val(payload)?.exists(),
                    IfTest::Blank(node) => node.eval_val(payload)?.not_blank(),
                };
                match if pass { then } else { otherwise } {
                    Some(node) => node.eval_val(payload)?,
                    None => Val::Undefined,
                }
            }
            Node::Template(t) => Val::string(t.render(payload)),
            Node::Computed(c) => c.eval(payload)?,
            Node::Case(c) => c.eval(payload)?,
            Node::Replace(r) => r.eval(payload)?,
            Node::ArrayPath(a) => a.eval(payload)?,
            Node::JsonCodec(j) => j.eval(payload)?,
            Node::Flatten(f) => f.eval(payload)?,
            Node::Merge(m) => m.eval(payload)?,
            Node::Transform(t) => t.eval(payload)?,
            Node::ExcludeWhenNull(node) => objects::exclude_when_null(node.eval_val(payload)?),
            #[cfg(feature = "liquid")]
            Node::Liquid(l) => l.eval(payload)?,
            Node::Builtin(b) => b.eval(payload),
        })
    }
}

impl Computed {
    fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let arg = self.argument.eval_val(payload)?;
        let name = if self.template { "@template" } else { "@path" };
        let Some(source) = arg.as_str() else {
            return Err(ApplyError::new(
                &self.location,
                format!("{name}: expected string, got {}", arg.kind().name()),
            ));
        };
        Ok(if self.template {
            template::render_dynamic(source, payload)
        } else {
            Path::parse(source).lookup(payload)
        })
    }
}

impl ArrayPath {
    fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let root = self.root.eval_val(payload)?;
        let Some(shape) = &self.shape else {
            return Ok(root);
        };
        Ok(match root {
            Val::Ref(Json::Array(items)) => Val::Array(
                items
                    .iter()
                    .map(|item| shape.eval_val(item))
                    .collect::<Result<_, _>>()?,
            ),
            Val::Ref(obj @ Json::Object(_)) => Val::Array(vec![shape.eval_val(obj)?]),
            made @ (Val::Owned(Json::Array(_) | Json::Object(_))
            | Val::Object(_)
            | Val::Array(_)) => {
                // Mapped through a value made for this event: the results cannot borrow it.
                let made = made.into_json().unwrap_or_default();
                let items = match &made {
                    Json::Array(items) => items.iter().collect::<Vec<_>>(),
                    other => vec![other],
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(shape.eval_val(item)?.detach());
                }
                Val::Array(out)
            }
            other => other,
        })
    }
}

impl JsonCodec {
    fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let value = self.value.eval_val(payload)?;
        Ok(match self.mode {
            JsonMode::Encode => match value.to_json_string() {
                Some(s) => Val::string(s),
                None => Val::Undefined,
            },
            JsonMode::Decode => match value.as_str() {
                Some(s) => match Json::parse(s) {
                    Ok(parsed) => Val::Owned(crate::js::normalize(parsed.into_owned())),
                    // The reference returns the string unchanged when it is not JSON.
                    Err(_) => value,
                },
                None => value,
            },
            JsonMode::Neither => Val::Undefined,
        })
    }
}

impl Transform {
    fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        if !matches!(payload, Json::Object(_)) {
            return Err(ApplyError::new(
                &self.location,
                format!("data must be an object, got {}", payload.kind()),
            ));
        }
        // `transform(apply, payload)` ends in removeUndefined; an undefined result leaves an
        // empty payload.
        let made = self
            .apply
            .eval_val(payload)?
            .into_json()
            .unwrap_or_else(|| Json::Object(Vec::new()));
        Ok(self.mapping.eval_val(&made)?.detach())
    }
}

/// A compiled mapping: the value it gives for an event is the mapping JSON with every
/// directive replaced by its result, and undefined members removed.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    root: Node,
}

impl Mapping {
    /// Compiles mapping JSON, checking every directive.
    ///
    /// A `serde_json::Value` without serde_json's `preserve_order` feature has its keys sorted;
    /// [`Mapping::parse`] keeps them in the order written, as the reference does.
    pub fn compile(mapping: &serde_json::Value) -> Result<Mapping, MappingError> {
        Self::compile_json(&Json::from(mapping))
    }

    /// Parses and compiles mapping JSON text, keeping its key order.
    pub fn parse(text: &str) -> Result<Mapping, MappingError> {
        let json = Json::parse(text)
            .map_err(|e| MappingError::new("/", format!("the mapping is not JSON: {e}")))?;
        Self::compile_json(&json)
    }

    /// Compiles a mapping held as [`Json`].
    pub fn compile_json(mapping: &Json<'_>) -> Result<Mapping, MappingError> {
        let root = compile::root_mapping(mapping, "")?;
        Ok(Mapping {
            root: compile::compile(&root, "")?,
        })
    }

    /// Applies the mapping to an event held as a `serde_json::Value`. A mapping whose root is a
    /// directive giving undefined yields `null`.
    pub fn apply(&self, event: &serde_json::Value) -> Result<serde_json::Value, ApplyError> {
        Ok(self
            .apply_json(&Json::from(event))?
            .map(|v| v.to_value())
            .unwrap_or_default())
    }

    /// Applies the mapping to a parsed [`Json`] event, keeping the output's key order and
    /// borrowing the event's strings. `None` when the result is undefined.
    pub fn apply_json<'a>(&self, event: &Json<'a>) -> Result<Option<Json<'a>>, ApplyError> {
        if !matches!(event, Json::Object(_)) {
            return Err(ApplyError::new(
                "/",
                format!("data must be an object, got {}", event.kind()),
            ));
        }
        Ok(self.root.eval_val(event)?.into_json())
    }
}
