//! Segment's mapping language, compiled once and applied to many events.
//!
//! A mapping is JSON in which objects with a single `@directive` key compute values from the
//! event (`{"@path": "$.properties.revenue"}`); every other value is copied as written.
//! [`Mapping::compile`] checks the whole tree once, turning paths and templates into ready
//! lookups, so applying it to an event does no parsing.
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
//!     "label": {"@template": "{{event}} #{{properties.order_id}}"}
//! })).unwrap();
//! let event = json!({"event": "Order Completed", "properties": {"order_id": "o-1", "email": "a@b.co"}});
//! assert_eq!(mapping.apply(&event).unwrap(), json!({
//!     "order": "o-1", "email": "a@b.co", "label": "Order Completed #o-1"
//! }));
//! ```

pub(crate) mod js;
mod path;
pub mod presets;
mod send;
mod template;

pub use path::Path;
pub use presets::{Preset, trait_chain};
pub(crate) use send::Field;
pub use send::{FIELDS, SendMapping};

use crate::Json;
use std::borrow::Cow;
use template::Template;

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

/// A mapping failed while being applied to an event (only a few directives can fail at run
/// time, such as a `@liquid` template that exceeds its limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping failed at {location}: {message}")]
#[non_exhaustive]
pub struct ApplyError {
    /// The mapping location that failed.
    pub location: String,
    /// Why.
    pub message: String,
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
    pub(crate) fn into_value(self) -> Option<Json<'a>> {
        match self {
            Resolved::Undefined => None,
            Resolved::Ref(v) => Some(v.clone()),
            Resolved::Owned(v) => Some(v),
        }
    }
    /// Neither undefined nor null: what `@if {exists}` tests.
    pub(crate) fn exists(&self) -> bool {
        !matches!(self.as_json(), None | Some(Json::Null))
    }
}

/// A compiled mapping node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// A value copied as written.
    Const(Json<'static>),
    /// An object whose members are mapped one by one.
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
    /// A computation built into this crate, with no mapping-language form.
    Builtin(presets::Builtin),
}

/// What an `@if` tests.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IfTest {
    Exists(Box<Node>),
    Blank(Box<Node>),
}

impl Node {
    /// Compiles mapping JSON at `location` (a JSON pointer, for errors).
    pub(crate) fn compile(value: &serde_json::Value, location: &str) -> Result<Node, MappingError> {
        match value {
            serde_json::Value::Object(map) => {
                if is_directive(map) {
                    return compile_directive(map, location);
                }
                let mut members = Vec::with_capacity(map.len());
                for (k, v) in map {
                    members.push((k.clone(), Node::compile(v, &format!("{location}/{k}"))?));
                }
                Ok(Node::Object(members))
            }
            serde_json::Value::Array(items) => {
                let mut nodes = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    nodes.push(Node::compile(v, &format!("{location}/{i}"))?);
                }
                Ok(Node::Array(nodes))
            }
            other => Ok(Node::Const(Json::from(other).into_owned())),
        }
    }

    /// Evaluates the node against an event.
    pub(crate) fn eval<'r, 'a>(&'r self, event: &'r Json<'a>) -> Resolved<'r, 'a> {
        match self {
            Node::Const(v) => Resolved::Ref(v),
            Node::Object(members) => {
                let mut pairs = Vec::with_capacity(members.len());
                for (k, node) in members {
                    // Undefined members vanish, as `removeUndefined` does in the reference.
                    if let Some(v) = node.eval(event).into_value() {
                        pairs.push((Cow::Owned(k.clone()), v));
                    }
                }
                Resolved::Owned(Json::Object(pairs))
            }
            Node::Array(items) => Resolved::Owned(Json::Array(
                items
                    .iter()
                    // JSON has no undefined: an undefined array item becomes null.
                    .map(|n| n.eval(event).into_value().unwrap_or(Json::Null))
                    .collect(),
            )),
            Node::Path(path) => path.lookup(event),
            Node::Coalesce(path, otherwise) => {
                let found = path.lookup(event);
                if found.exists() {
                    found
                } else {
                    match otherwise {
                        Some(node) => node.eval(event),
                        None => Resolved::Undefined,
                    }
                }
            }
            Node::If {
                test,
                then,
                otherwise,
            } => {
                let pass = match test {
                    IfTest::Exists(node) => node.eval(event).exists(),
                    IfTest::Blank(node) => match node.eval(event).as_json() {
                        None => false,
                        Some(v) => !js::loosely_empty(v),
                    },
                };
                let branch = if pass { then } else { otherwise };
                match branch {
                    Some(node) => node.eval(event),
                    None => Resolved::Undefined,
                }
            }
            Node::Template(t) => Resolved::Owned(Json::Str(Cow::Owned(t.render(event)))),
            Node::Builtin(b) => b.eval(event),
        }
    }
}

/// An object is a directive when it has an `@` key and no other keys but `_metadata`.
fn is_directive(map: &serde_json::Map<String, serde_json::Value>) -> bool {
    map.keys().any(|k| k.starts_with('@'))
        && map.keys().all(|k| k.starts_with('@') || k == "_metadata")
}

fn compile_directive(
    map: &serde_json::Map<String, serde_json::Value>,
    location: &str,
) -> Result<Node, MappingError> {
    let (name, arg) = map
        .iter()
        .find(|(k, _)| k.starts_with('@'))
        .ok_or_else(|| MappingError::new(location, "expected a directive"))?;
    let here = format!("{location}/{name}");
    match name.as_str() {
        "@path" => match arg {
            serde_json::Value::String(p) => Ok(Node::Path(Path::parse(p))),
            other => Err(MappingError::new(
                &here,
                format!("@path: expected string, got {}", json_kind(other)),
            )),
        },
        "@template" => match arg {
            serde_json::Value::String(t) => Ok(Node::Template(Template::compile(t))),
            other => Err(MappingError::new(
                &here,
                format!("@template: expected string, got {}", json_kind(other)),
            )),
        },
        // `@literal` resolves its value like any other mapping value.
        "@literal" => Node::compile(arg, &here),
        "@if" => compile_if(arg, &here),
        other => Err(MappingError::new(
            &here,
            format!("{other} is not a valid directive"),
        )),
    }
}

fn compile_if(arg: &serde_json::Value, here: &str) -> Result<Node, MappingError> {
    let opts = arg
        .as_object()
        .ok_or_else(|| MappingError::new(here, "@if requires an object with an \"exists\" key"))?;
    let truthy = |k: &str| opts.get(k).is_some_and(json_truthy);
    if !truthy("exists") && !truthy("blank") {
        return Err(MappingError::new(
            here,
            "@if requires an \"exists\" key or a \"blank\" key",
        ));
    }
    let then = match opts.get("then") {
        Some(v) => Some(Box::new(Node::compile(v, &format!("{here}/then"))?)),
        None => None,
    };
    // The reference takes `else` only when it is truthy (`opts.else && …`).
    let otherwise = match opts.get("else") {
        Some(v) if json_truthy(v) => Some(Box::new(Node::compile(v, &format!("{here}/else"))?)),
        _ => None,
    };
    let test = if let Some(v) = opts.get("exists") {
        let node = Node::compile(v, &format!("{here}/exists"))?;
        if let (Node::Path(p), Some(t)) = (&node, then.as_deref()) {
            if Node::Path(p.clone()) == *t {
                return Ok(Node::Coalesce(p.clone(), otherwise));
            }
        }
        IfTest::Exists(Box::new(node))
    } else {
        let v = opts.get("blank").unwrap_or(&serde_json::Value::Null);
        IfTest::Blank(Box::new(Node::compile(v, &format!("{here}/blank"))?))
    };
    Ok(Node::If {
        test,
        then,
        otherwise,
    })
}

fn json_truthy(v: &serde_json::Value) -> bool {
    js::truthy(&Json::from(v))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    Json::from(v).kind()
}

/// A compiled mapping: the value it gives for an event is the mapping JSON with every
/// directive replaced by its result, and undefined members removed.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    root: Node,
}

impl Mapping {
    /// Compiles mapping JSON, checking every directive.
    pub fn compile(mapping: &serde_json::Value) -> Result<Mapping, MappingError> {
        Ok(Mapping {
            root: Node::compile(mapping, "")?,
        })
    }

    /// Applies the mapping to an event held as a `serde_json::Value`.
    pub fn apply(&self, event: &serde_json::Value) -> Result<serde_json::Value, ApplyError> {
        self.apply_json(&Json::from(event))
    }

    /// Applies the mapping to a parsed [`Json`] event.
    pub fn apply_json(&self, event: &Json<'_>) -> Result<serde_json::Value, ApplyError> {
        Ok(match self.root.eval(event) {
            Resolved::Undefined => serde_json::Value::Object(Default::default()),
            other => other.as_json().map(Json::to_value).unwrap_or_default(),
        })
    }
}
