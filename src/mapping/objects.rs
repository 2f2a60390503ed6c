//! `@flatten`, `@merge` and `@excludeWhenNull`: the directives that rebuild objects, with
//! JavaScript's property semantics (`Object.assign`, spread, enumeration order).

use super::js::JsEntries;
use super::value::{Kind, Val};
use super::{ApplyError, Node};
use crate::Json;
use std::borrow::Cow;

/// `@flatten`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Flatten {
    separator: Node,
    value: Node,
    omit_arrays: bool,
    location: String,
}

impl Flatten {
    pub(crate) fn new(separator: Node, value: Node, omit_arrays: bool, location: &str) -> Flatten {
        Flatten {
            separator,
            value,
            omit_arrays,
            location: location.to_owned(),
        }
    }

    pub(crate) fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let separator = self.separator.eval_val(payload)?;
        let Some(separator) = separator.as_str() else {
            return Err(ApplyError::new(
                &self.location,
                "@flatten requires a string separator",
            ));
        };
        let value = self.value.eval_val(payload)?;
        let mut out = JsEntries::default();
        flatten(value, String::new(), separator, self.omit_arrays, &mut out);
        Ok(Val::Object(out.finish()))
    }
}

/// `flattenObject`: objects (and arrays, unless omitted) are walked, anything else is a leaf
/// stored under the path so far. An empty prefix is falsy, so a key under it stands alone.
fn flatten<'r, 'a>(
    value: Val<'r, 'a>,
    prefix: String,
    separator: &str,
    omit_arrays: bool,
    out: &mut JsEntries<Cow<'r, str>, Val<'r, 'a>>,
) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}{separator}{k}")
        }
    };
    match value {
        Val::Ref(Json::Object(pairs)) => {
            for (k, v) in super::js::entries(pairs) {
                flatten(Val::Ref(v), key(k), separator, omit_arrays, out);
            }
        }
        Val::Ref(Json::Array(items)) if !omit_arrays => {
            for (i, v) in items.iter().enumerate() {
                flatten(
                    Val::Ref(v),
                    key(&i.to_string()),
                    separator,
                    omit_arrays,
                    out,
                );
            }
        }
        Val::Owned(Json::Object(pairs)) => {
            for (k, v) in super::js::js_order(pairs) {
                flatten(Val::Owned(v), key(&k), separator, omit_arrays, out);
            }
        }
        Val::Owned(Json::Array(items)) if !omit_arrays => {
            for (i, v) in items.into_iter().enumerate() {
                flatten(
                    Val::Owned(v),
                    key(&i.to_string()),
                    separator,
                    omit_arrays,
                    out,
                );
            }
        }
        Val::Object(members) => {
            for (k, v) in members {
                flatten(v, key(&k), separator, omit_arrays, out);
            }
        }
        Val::Array(items) if !omit_arrays => {
            for (i, v) in items.into_iter().enumerate() {
                flatten(v, key(&i.to_string()), separator, omit_arrays, out);
            }
        }
        leaf => out.set(Cow::Owned(prefix), leaf),
    }
}

/// `@merge`: `Object.assign({}, ...objects)`, the objects reversed when the direction is
/// `left`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Merge {
    direction: Node,
    objects: Vec<Node>,
}

impl Merge {
    pub(crate) fn new(direction: Node, objects: Vec<Node>) -> Merge {
        Merge { direction, objects }
    }

    pub(crate) fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let direction = self.direction.eval_val(payload)?;
        let mut objects = Vec::with_capacity(self.objects.len());
        for node in &self.objects {
            objects.push(node.eval_val(payload)?);
        }
        if direction.as_str() == Some("left") {
            objects.reverse();
        }
        let mut out = JsEntries::default();
        for object in objects {
            object.assign_entries(&mut out);
        }
        Ok(Val::Object(out.finish()))
    }
}

/// `@excludeWhenNull`: null becomes undefined, and so do the null members of an object (and of
/// the objects inside it; arrays are left alone).
pub(crate) fn exclude_when_null<'r, 'a>(value: Val<'r, 'a>) -> Val<'r, 'a> {
    match value.kind() {
        Kind::Null => Val::Undefined,
        Kind::Object => clean_nulls(value),
        _ => value,
    }
}

fn clean_nulls<'r, 'a>(value: Val<'r, 'a>) -> Val<'r, 'a> {
    let clean = |v: Val<'r, 'a>| match v.kind() {
        Kind::Null => Val::Undefined,
        Kind::Object => clean_nulls(v),
        _ => v,
    };
    match value {
        Val::Ref(Json::Object(pairs)) => Val::Object(
            super::js::entries(pairs)
                .map(|(k, v)| (Cow::Borrowed(k), clean(Val::Ref(v))))
                .collect(),
        ),
        Val::Owned(Json::Object(pairs)) => Val::Object(
            super::js::js_order(pairs)
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), clean(Val::Owned(v))))
                .collect(),
        ),
        Val::Object(members) => {
            Val::Object(members.into_iter().map(|(k, v)| (k, clean(v))).collect())
        }
        other => other,
    }
}
