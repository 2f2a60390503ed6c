//! `@flatten`, `@merge` and `@excludeWhenNull`: the directives that rebuild objects, with
//! JavaScript's property semantics (`Object.assign`, spread, enumeration order).

use super::value::{Kind, Val};
use super::{ApplyError, Node};
use crate::Json;
use crate::js::JsEntries;
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
            for (k, v) in crate::js::entries(pairs) {
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
            for (k, v) in crate::js::js_order(pairs) {
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
            crate::js::entries(pairs)
                .map(|(k, v)| (Cow::Borrowed(k), clean(Val::Ref(v))))
                .collect(),
        ),
        Val::Owned(Json::Object(pairs)) => Val::Object(
            crate::js::js_order(pairs)
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

#[cfg(test)]
mod tests {
    use super::super::Mapping;
    use crate::Json;
    use serde_json::json;

    fn apply(mapping: &str, event: &str) -> serde_json::Value {
        Mapping::parse(mapping)
            .unwrap()
            .apply_json(&Json::parse(event).unwrap())
            .unwrap()
            .map(|v| v.to_value())
            .unwrap_or_default()
    }

    #[test]
    fn flatten_joins_keys_and_keeps_javascript_order() {
        // node: {"1":"one","2":"two","b.c":1,"b.d.0":true}
        let out =
            Mapping::parse(r#"{"v": {"@flatten": {"separator": ".", "value": {"@path": "$.o"}}}}"#)
                .unwrap()
                .apply_json(
                    &Json::parse(r#"{"o": {"b": {"c": 1, "d": [true]}, "2": "two", "1": "one"}}"#)
                        .unwrap(),
                )
                .unwrap()
                .unwrap();
        let keys: Vec<&str> = out
            .get("v")
            .and_then(Json::as_object)
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_ref())
            .collect();
        assert_eq!(keys, ["1", "2", "b.c", "b.d.0"]);
        // An empty key under an empty prefix stands alone (node: {"a": 1}).
        assert_eq!(
            apply(
                r#"{"v": {"@flatten": {"separator": "/", "value": {"@path": "$.o"}}}}"#,
                r#"{"o": {"": {"a": 1}}}"#
            ),
            json!({"v": {"a": 1}})
        );
    }

    #[test]
    fn merge_is_object_assign() {
        // An undefined member overrides, as Object.assign copies it (node: {"v": {}}).
        assert_eq!(
            apply(
                r#"{"v": {"@merge": {"direction": "right", "objects": [{"@path": "$.o"}, {"a": {"@path": "$.nope"}}]}}}"#,
                r#"{"o": {"a": 1}}"#
            ),
            json!({"v": {}})
        );
        // Strings assign their characters, arrays their items (node: {"0":"x","1":"b"}).
        assert_eq!(
            apply(
                r#"{"v": {"@merge": {"direction": "right", "objects": [{"@path": "$.s"}, {"@path": "$.l"}]}}}"#,
                r#"{"s": "ab", "l": ["x"]}"#
            ),
            json!({"v": {"0": "x", "1": "b"}})
        );
        // `left` puts the first object last; anything else is `right`.
        assert_eq!(
            apply(
                r#"{"v": {"@merge": {"direction": "left", "objects": [{"a": 1}, {"a": 2}]}}}"#,
                "{}"
            ),
            json!({"v": {"a": 1}})
        );
    }

    #[test]
    fn exclude_when_null_removes_nulls_in_objects_only() {
        assert_eq!(
            apply(
                r#"{"v": {"@excludeWhenNull": {"@path": "$.o"}}, "w": {"@excludeWhenNull": {"@path": "$.n"}}}"#,
                r#"{"o": {"a": null, "b": {"c": null, "d": 1}, "l": [null]}, "n": null}"#
            ),
            json!({"v": {"b": {"d": 1}, "l": [null]}})
        );
    }
}
