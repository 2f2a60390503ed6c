//! The send action's mapping: one compiled node per top-level field, from a preset's defaults
//! with the user's overrides on top.

use super::memo::{EventMemo, Interner, Prefixes};
use super::{MappingError, Node, Preset};
use crate::Json;
use serde_json::Value;

/// The top-level fields of the send action (SPEC §3), in the reference's order.
pub const FIELDS: [&str; 12] = [
    "eventDetails",
    "eventProperties",
    "hashingConfiguration",
    "device_info",
    "user_identities",
    "user_attributes",
    "ip",
    "audienceDetails",
    "engageAudienceName",
    "traitsOrProps",
    "computationAction",
    "rtid",
];

/// Settings the reference accepts at the top level that only steer Segment's own batching.
const IGNORED_FIELDS: [&str; 2] = ["batch_size", "enable_batching"];

/// The send action's compiled mapping: a preset's defaults, each top-level field optionally
/// replaced by an override written in Segment's mapping JSON. Compile once, apply to many.
///
/// ```
/// use rokt_capi::mapping::{Preset, SendMapping};
/// let mapping = SendMapping::new(Preset::Send, &serde_json::json!({
///     "hashingConfiguration": {"hashEmail": true}
/// })).unwrap();
/// assert_eq!(mapping.preset(), Preset::Send);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SendMapping {
    preset: Preset,
    overrides: Value,
    nodes: Vec<Option<Node>>,
    /// The key prefixes of the paths the fast entry reads from the event.
    prefixes: Prefixes,
}

impl SendMapping {
    /// A preset's mapping with no overrides.
    pub fn preset_defaults(preset: Preset) -> SendMapping {
        // The presets are fixed data; compiling them cannot fail (a unit test holds this).
        Self::new(preset, &Value::Object(Default::default()))
            .unwrap_or_else(|e| unreachable!("preset {preset:?} does not compile: {e}"))
    }

    /// A preset's mapping with `overrides`: an object whose keys are top-level fields, each
    /// replacing that whole field (an object field's defaults are not merged into it).
    pub fn new(preset: Preset, overrides: &Value) -> Result<SendMapping, MappingError> {
        let map = overrides
            .as_object()
            .ok_or_else(|| MappingError::new("/", "the mapping must be an object of fields"))?;
        for key in map.keys() {
            if !FIELDS.contains(&key.as_str()) && !IGNORED_FIELDS.contains(&key.as_str()) {
                return Err(MappingError::new(
                    &format!("/{key}"),
                    format!(
                        "unknown field; the send action's fields are {}",
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
        let mut nodes = Vec::with_capacity(FIELDS.len());
        for field in FIELDS {
            nodes.push(match map.get(field) {
                Some(v) => Some(Node::compile(v, &format!("/{field}"))?),
                None => preset.default_node(field)?,
            });
        }
        // What payload.rs evaluates through the fast entry: each field, or each member of a
        // field written as a literal object.
        let mut interner = Interner::default();
        for node in nodes.iter_mut().flatten() {
            match node {
                Node::Object(members) => {
                    for (_, member) in members {
                        interner.fast_entry(member);
                    }
                }
                other => interner.fast_entry(other),
            }
        }
        Ok(SendMapping {
            preset,
            overrides: overrides.clone(),
            nodes,
            prefixes: interner.finish(),
        })
    }

    /// The preset this mapping starts from.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The overrides, as given.
    pub fn overrides(&self) -> &Value {
        &self.overrides
    }

    /// The compiled node of a top-level field, if the field is mapped.
    pub(crate) fn field(&self, field: Field) -> Option<&Node> {
        self.nodes[field as usize].as_ref()
    }

    /// Runs `f` with a fresh memo of this mapping's path lookups on `event`, for
    /// [`Node::eval`].
    pub(crate) fn with_memo<'r, 'a, T>(
        &'r self,
        event: &'r Json<'a>,
        f: impl FnOnce(&EventMemo<'_, 'r, 'a>) -> T,
    ) -> T {
        EventMemo::with(&self.prefixes, event, f)
    }
}

/// A top-level field, by position in [`FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    EventDetails = 0,
    EventProperties,
    HashingConfiguration,
    DeviceInfo,
    UserIdentities,
    UserAttributes,
    Ip,
    AudienceDetails,
    EngageAudienceName,
    TraitsOrProps,
    ComputationAction,
    Rtid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_compile() {
        for p in [Preset::Send, Preset::SyncEngageAudience] {
            let m = SendMapping::new(p, &serde_json::json!({})).unwrap();
            assert!(m.field(Field::EventDetails).is_some());
            assert!(m.field(Field::EventProperties).is_none());
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let err =
            SendMapping::new(Preset::Send, &serde_json::json!({"user_atributes": {}})).unwrap_err();
        assert_eq!(err.location, "/user_atributes");
    }
}
