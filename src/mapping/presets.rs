//! The send action's presets and the defaults behind every field (docs/behaviour.md §3).

use super::value::Val;
use super::{MappingError, Node};
use crate::Json;
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
        match self.default_mapping(field) {
            Some(v) => Node::compile(&v, &format!("/{field}")).map(Some),
            None => Ok(None),
        }
    }

    /// The default mapping of a top-level field under this preset, in Segment's mapping JSON
    /// (`None` for a field with no default, such as `eventProperties`).
    ///
    /// ```
    /// use rokt_capi::Json;
    /// use rokt_capi::mapping::Preset;
    /// assert_eq!(
    ///     Preset::Send.default_mapping("ip"),
    ///     Some(Json::parse(r#"{"@path": "$.context.ip"}"#).unwrap())
    /// );
    /// ```
    pub fn default_mapping(self, field: &str) -> Option<Json<'static>> {
        match (self, field) {
            (Preset::SyncEngageAudience, "rtid") => Some(path("$.traits.rtid")),
            _ => default_json(field),
        }
    }
}

/// The reference's Liquid defaults. The compiler recognizes these exact templates and runs
/// them natively (see [`Builtin`]), so the presets need no template engine.
const IOS_ADVERTISING_ID: &str = "{% if context.device.advertisingId and context.device.type == 'ios' %}{{ context.device.advertisingId }}{% endif %}";
const ANDROID_ADVERTISING_ID: &str = "{% if context.device.advertisingId and context.device.type == 'android' %}{{ context.device.advertisingId }}{% endif %}";
const IOS_IDFV: &str =
    "{% if context.device.id and context.device.type == 'ios' %}{{ context.device.id }}{% endif %}";
const ANDROID_UUID: &str = "{% if context.device.id and context.device.type == 'android' %}{{ context.device.id }}{% endif %}";
const RTID: &str = "{% assign rokt_rtid = integrations['Rokt Conversions API'].rtid %}{% if rokt_rtid %}{{ rokt_rtid }}{% else %}{% assign parts = context.page.search | split: 'rtid=' %}{% if parts[1] %}{{ parts[1] | split: '&' | first }}{% endif %}{% endif %}";

/// `chain(k)`: the first of `context.traits.k`, `traits.k`, `properties.k` that exists (D1).
pub fn trait_chain(key: &str) -> Json<'static> {
    let link = |p: String, otherwise| {
        directive(
            "@if",
            object(vec![
                ("exists", path(p.clone())),
                ("then", path(p)),
                ("else", otherwise),
            ]),
        )
    };
    link(
        format!("$.context.traits.{key}"),
        link(
            format!("$.traits.{key}"),
            path(format!("$.properties.{key}")),
        ),
    )
}

/// An object of mapping JSON, its members in the order given (the order attributes are sent
/// in).
fn object(members: Vec<(&'static str, Json<'static>)>) -> Json<'static> {
    Json::Object(
        members
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

/// `{"<name>": arg}`.
fn directive(name: &'static str, arg: Json<'static>) -> Json<'static> {
    object(vec![(name, arg)])
}

/// `{"@path": path}`.
fn path(p: impl Into<String>) -> Json<'static> {
    directive("@path", Json::from(p.into()))
}

/// `{"@liquid": template}`.
fn liquid(template: &'static str) -> Json<'static> {
    directive("@liquid", Json::from(template))
}

/// The default mapping JSON of a top-level field, where it has a mapping-language form.
fn default_json(field: &str) -> Option<Json<'static>> {
    let off = || Json::Bool(false);
    Some(match field {
        "eventDetails" => object(vec![
            ("conversiontype", path("$.event")),
            ("confirmationref", path("$.properties.order_id")),
            ("amount", path("$.properties.revenue")),
            ("currency", path("$.properties.currency")),
            ("source_message_id", path("$.messageId")),
            ("timestamp_unixtime_ms", path("$.timestamp")),
        ]),
        "hashingConfiguration" => object(vec![
            ("hashEmail", off()),
            ("hashFirstName", off()),
            ("hashLastName", off()),
            ("hashMobile", off()),
            ("hashBillingZipcode", off()),
        ]),
        "user_identities" => object(vec![
            ("email", trait_chain("email")),
            ("customerid", path("$.userId")),
        ]),
        "user_attributes" => object(vec![
            ("firstname", trait_chain("first_name")),
            ("lastname", trait_chain("last_name")),
            ("mobile", trait_chain("phone")),
            ("billingzipcode", trait_chain("address.postal_code")),
            ("dob", trait_chain("birthday")),
            ("gender", trait_chain("gender")),
        ]),
        "device_info" => object(vec![
            ("http_header_user_agent", path("$.context.userAgent")),
            ("ios_advertising_id", liquid(IOS_ADVERTISING_ID)),
            ("android_advertising_id", liquid(ANDROID_ADVERTISING_ID)),
            ("ios_idfv", liquid(IOS_IDFV)),
            ("android_uuid", liquid(ANDROID_UUID)),
        ]),
        "ip" => path("$.context.ip"),
        "audienceDetails" => object(vec![
            ("customAudienceName", path("$.properties.audience_name")),
            (
                "customAudienceMembership",
                path("$.properties.audience_membership"),
            ),
        ]),
        "engageAudienceName" => path("$.context.personas.computation_key"),
        "traitsOrProps" => directive(
            "@if",
            object(vec![
                ("exists", path("$.properties")),
                ("then", path("$.properties")),
                ("else", path("$.traits")),
            ]),
        ),
        "computationAction" => path("$.context.personas.computation_class"),
        "rtid" => liquid(RTID),
        _ => return None,
    })
}

/// Which `context.device` id a device default reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceIdSource {
    AdvertisingId,
    Id,
}

/// Defaults the reference writes in Liquid, computed natively so the presets need no template
/// engine and cost no template rendering per event. A `@liquid` directive whose template is
/// exactly one of the reference's defaults compiles to one of these.
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
    /// The builtin computing a reference Liquid default, if `source` is one.
    pub(crate) fn recognize(source: &str) -> Option<Builtin> {
        let device = |source, device_type| {
            Some(Builtin::DeviceId {
                source,
                device_type,
            })
        };
        match source {
            IOS_ADVERTISING_ID => device(DeviceIdSource::AdvertisingId, "ios"),
            ANDROID_ADVERTISING_ID => device(DeviceIdSource::AdvertisingId, "android"),
            IOS_IDFV => device(DeviceIdSource::Id, "ios"),
            ANDROID_UUID => device(DeviceIdSource::Id, "android"),
            RTID => Some(Builtin::Rtid),
            _ => None,
        }
    }

    pub(crate) fn eval<'r, 'a>(&'r self, event: &'r Json<'a>) -> Val<'r, 'a> {
        match self {
            Builtin::DeviceId {
                source,
                device_type,
            } => {
                let device = event.get("context").and_then(|c| c.get("device"));
                let id = device.and_then(|d| d.get(source.key()));
                let kind = device.and_then(|d| d.get("type"));
                device_id(id, kind, device_type)
            }
            Builtin::Rtid => {
                let plugin = event
                    .get("integrations")
                    .and_then(|i| i.get(crate::rtid::INTEGRATION_NAME))
                    .and_then(|r| r.get("rtid"));
                rtid_value(crate::rtid::from_parts(plugin, || {
                    event.get("context").and_then(|c| c.get("page"))
                }))
            }
        }
    }
}

impl DeviceIdSource {
    /// The `context.device` member read.
    fn key(self) -> &'static str {
        match self {
            DeviceIdSource::AdvertisingId => "advertisingId",
            DeviceIdSource::Id => "id",
        }
    }
}

/// A device default from `context.device`'s id and type, as found by Liquid.
pub(crate) fn device_id<'r, 'a>(
    id: Option<&Json<'_>>,
    kind: Option<&Json<'_>>,
    device_type: &str,
) -> Val<'r, 'a> {
    match id {
        Some(v) if liquid_truthy(v) && kind.and_then(Json::as_str) == Some(device_type) => {
            Val::Owned(Json::Str(Cow::Owned(liquid_string(v))))
        }
        // The Liquid template renders the empty string when its test fails.
        _ => Val::Owned(Json::Str(Cow::Borrowed(""))),
    }
}

/// The rtid default's value: the rtid, or the empty string the Liquid template renders.
pub(crate) fn rtid_value<'r, 'a>(rtid: Option<Cow<'a, str>>) -> Val<'r, 'a> {
    match rtid {
        Some(rtid) => Val::Owned(Json::Str(rtid)),
        None => Val::Owned(Json::Str(Cow::Borrowed(""))),
    }
}

/// Liquid's truthiness: everything but nil and false.
fn liquid_truthy(v: &Json<'_>) -> bool {
    !matches!(v, Json::Null | Json::Bool(false))
}

/// How Liquid prints a value.
fn liquid_string(v: &Json<'_>) -> String {
    let mut out = String::new();
    crate::js::push_liquid(&mut out, v);
    out
}
