//! The send action's presets and the defaults behind every field (SPEC §3).

use super::{MappingError, Node, Resolved};
use crate::Json;
use serde_json::{Value, json};
use std::borrow::Cow;

/// A preset: a trigger plus the default mapping of the send action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// "Send": conversions, fired by `event = "Order Completed"`.
    Send,
    /// "Sync Engage Audience": Engage audience membership, fired by `type = "identify"`, with
    /// the rtid read from `$.traits.rtid`.
    SyncEngageAudience,
}

impl Preset {
    /// The preset's name in Segment's UI.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Send => "Send",
            Preset::SyncEngageAudience => "Sync Engage Audience",
        }
    }

    /// The preset's trigger, in Segment's subscription syntax.
    pub fn trigger(self) -> &'static str {
        match self {
            Preset::Send => r#"event = "Order Completed""#,
            Preset::SyncEngageAudience => r#"type = "identify""#,
        }
    }

    /// Looks a preset up by its snake_case key (`send`, `sync_engage_audience`) or UI name.
    pub fn from_key(key: &str) -> Option<Preset> {
        match key {
            "send" | "Send" => Some(Preset::Send),
            "sync_engage_audience" | "Sync Engage Audience" => Some(Preset::SyncEngageAudience),
            _ => None,
        }
    }

    /// The compiled default of one top-level field under this preset.
    pub(crate) fn default_node(self, field: &str) -> Result<Option<Node>, MappingError> {
        if field == "rtid" {
            return Ok(Some(match self {
                Preset::Send => Node::Builtin(Builtin::Rtid),
                Preset::SyncEngageAudience => {
                    Node::compile(&json!({"@path": "$.traits.rtid"}), "/rtid")?
                }
            }));
        }
        if field == "device_info" {
            return Ok(Some(device_info_default()));
        }
        match default_json(field) {
            Some(v) => Node::compile(&v, &format!("/{field}")).map(Some),
            None => Ok(None),
        }
    }
}

/// `chain(k)`: the first of `context.traits.k`, `traits.k`, `properties.k` that exists (D1).
pub fn trait_chain(key: &str) -> Value {
    let link = |p: String, otherwise: Value| json!({"@if": {"exists": {"@path": p.clone()}, "then": {"@path": p}, "else": otherwise}});
    link(
        format!("$.context.traits.{key}"),
        link(
            format!("$.traits.{key}"),
            json!({"@path": format!("$.properties.{key}")}),
        ),
    )
}

/// The default mapping JSON of a top-level field, where it has a mapping-language form.
fn default_json(field: &str) -> Option<Value> {
    Some(match field {
        "eventDetails" => json!({
            "conversiontype": {"@path": "$.event"},
            "confirmationref": {"@path": "$.properties.order_id"},
            "amount": {"@path": "$.properties.revenue"},
            "currency": {"@path": "$.properties.currency"},
            "source_message_id": {"@path": "$.messageId"},
            "timestamp_unixtime_ms": {"@path": "$.timestamp"}
        }),
        "hashingConfiguration" => json!({
            "hashEmail": false, "hashFirstName": false, "hashLastName": false,
            "hashMobile": false, "hashBillingZipcode": false
        }),
        "user_identities" => json!({
            "email": trait_chain("email"),
            "customerid": {"@path": "$.userId"}
        }),
        "user_attributes" => json!({
            "firstname": trait_chain("first_name"),
            "lastname": trait_chain("last_name"),
            "mobile": trait_chain("phone"),
            "billingzipcode": trait_chain("address.postal_code"),
            "dob": trait_chain("birthday"),
            "gender": trait_chain("gender")
        }),
        "ip" => json!({"@path": "$.context.ip"}),
        "audienceDetails" => json!({
            "customAudienceName": {"@path": "$.properties.audience_name"},
            "customAudienceMembership": {"@path": "$.properties.audience_membership"}
        }),
        "engageAudienceName" => json!({"@path": "$.context.personas.computation_key"}),
        "traitsOrProps" => json!({"@if": {
            "exists": {"@path": "$.properties"},
            "then": {"@path": "$.properties"},
            "else": {"@path": "$.traits"}
        }}),
        "computationAction" => json!({"@path": "$.context.personas.computation_class"}),
        _ => return None,
    })
}

fn device_info_default() -> Node {
    let id = |source, device_type| {
        Node::Builtin(Builtin::DeviceId {
            source,
            device_type,
        })
    };
    Node::Object(vec![
        (
            "http_header_user_agent".into(),
            Node::Path(super::Path::parse("$.context.userAgent")),
        ),
        (
            "ios_advertising_id".into(),
            id(DeviceIdSource::AdvertisingId, "ios"),
        ),
        (
            "android_advertising_id".into(),
            id(DeviceIdSource::AdvertisingId, "android"),
        ),
        ("ios_idfv".into(), id(DeviceIdSource::Id, "ios")),
        ("android_uuid".into(), id(DeviceIdSource::Id, "android")),
    ])
}

/// Which `context.device` id a device default reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceIdSource {
    AdvertisingId,
    Id,
}

/// Defaults the reference writes in Liquid, computed natively so the presets need no template
/// engine and cost no template rendering per event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Builtin {
    /// `{% if context.device.<id> and context.device.type == '<type>' %}{{ … }}{% endif %}`.
    DeviceId {
        source: DeviceIdSource,
        device_type: &'static str,
    },
    /// The Rokt click id: `integrations["Rokt Conversions API"].rtid`, else the `rtid` query
    /// parameter of the page (D2).
    Rtid,
}

impl Builtin {
    pub(crate) fn eval<'r, 'a>(&'r self, event: &'r Json<'a>) -> Resolved<'r, 'a> {
        match self {
            Builtin::DeviceId {
                source,
                device_type,
            } => {
                let device = event.get("context").and_then(|c| c.get("device"));
                let key = match source {
                    DeviceIdSource::AdvertisingId => "advertisingId",
                    DeviceIdSource::Id => "id",
                };
                let id = device.and_then(|d| d.get(key));
                let kind = device.and_then(|d| d.get("type")).and_then(Json::as_str);
                match id {
                    Some(v) if liquid_truthy(v) && kind == Some(*device_type) => {
                        Resolved::Owned(Json::Str(Cow::Owned(liquid_string(v))))
                    }
                    // The Liquid template renders the empty string when its test fails.
                    _ => Resolved::Owned(Json::Str(Cow::Borrowed(""))),
                }
            }
            Builtin::Rtid => match crate::rtid::from_event(event) {
                Some(rtid) => Resolved::Owned(Json::Str(Cow::Owned(rtid))),
                None => Resolved::Owned(Json::Str(Cow::Borrowed(""))),
            },
        }
    }
}

/// Liquid's truthiness: everything but nil and false.
fn liquid_truthy(v: &Json<'_>) -> bool {
    !matches!(v, Json::Null | Json::Bool(false))
}

/// How Liquid prints a scalar.
fn liquid_string(v: &Json<'_>) -> String {
    let mut out = String::new();
    super::js::push_js_string(&mut out, v);
    out
}
