//! The send action's mapping from Rust, without writing mapping JSON.
//!
//! The builder writes the Segment mapping JSON a user would have written in Segment's UI and
//! compiles it, so what it builds is exactly what that JSON does, and
//! [`SendMapping::overrides`] shows it.

use super::MappingError;
use super::presets::Preset;
use super::send::SendMapping;
use crate::Json;
use serde_json::{Value, json};
use std::borrow::Cow;

/// Where a field's value comes from: one of the mapping language's forms, as a value.
///
/// ```
/// use rokt_capi::mapping::Source;
/// use serde_json::json;
///
/// assert_eq!(Source::path("$.userId").to_mapping(), json!({"@path": "$.userId"}));
/// // The trait chain of a key: context.traits, then traits, then properties.
/// let email = Source::chain("email");
/// // An explicit chain: the first path that exists (neither undefined nor null).
/// let phone = Source::chain(["$.context.traits.phone", "$.properties.phone"]);
/// assert_eq!(phone.to_mapping(), json!({"@if": {
///     "exists": {"@path": "$.context.traits.phone"},
///     "then": {"@path": "$.context.traits.phone"},
///     "else": {"@path": "$.properties.phone"}
/// }}));
/// // Fallbacks and case changes compose.
/// let tier = Source::path("$.properties.tier").or(Source::literal("standard")).lowercase();
/// # let _ = (email, tier);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Source {
    /// `{"@path": …}`: the value at a path of the event.
    Path(String),
    /// The value of the first path that exists (neither undefined nor null).
    Chain(Vec<String>),
    /// A constant, copied as written (a constant object must not have `@` keys, which would
    /// make it a directive).
    Literal(Value),
    /// `{"@template": …}`: `{{path}}` placeholders in text.
    Template(String),
    /// `{"@liquid": …}` (needs the `liquid` feature, unless it is one of the reference's own
    /// defaults).
    Liquid(String),
    /// Any mapping JSON, as written.
    Mapping(Value),
    /// The first source if it exists, else the second.
    Or(Box<Source>, Box<Source>),
    /// The source in lower case (`@case`; values that are not strings pass unchanged).
    Lowercase(Box<Source>),
    /// The source in upper case.
    Uppercase(Box<Source>),
}

/// What [`Source::chain`] accepts: a trait key (`"email"` reads `$.context.traits.email`, then
/// `$.traits.email`, then `$.properties.email`) or a list of paths.
pub trait ChainLinks {
    /// The paths, in order.
    fn links(self) -> Vec<String>;
}

impl ChainLinks for &str {
    fn links(self) -> Vec<String> {
        ["context.traits", "traits", "properties"]
            .iter()
            .map(|root| format!("$.{root}.{self}"))
            .collect()
    }
}

impl ChainLinks for String {
    fn links(self) -> Vec<String> {
        self.as_str().links()
    }
}

impl<const N: usize> ChainLinks for [&str; N] {
    fn links(self) -> Vec<String> {
        self.iter().map(|p| (*p).to_owned()).collect()
    }
}

impl ChainLinks for &[&str] {
    fn links(self) -> Vec<String> {
        self.iter().map(|p| (*p).to_owned()).collect()
    }
}

impl ChainLinks for Vec<String> {
    fn links(self) -> Vec<String> {
        self
    }
}

impl ChainLinks for Vec<&str> {
    fn links(self) -> Vec<String> {
        self.into_iter().map(str::to_owned).collect()
    }
}

impl Source {
    /// The value at `path` (`$.properties.tier`).
    pub fn path(path: impl Into<String>) -> Source {
        Source::Path(path.into())
    }

    /// The first of several paths that exists: a trait key, or a list of paths.
    pub fn chain(links: impl ChainLinks) -> Source {
        Source::Chain(links.links())
    }

    /// A constant.
    pub fn literal(value: impl Into<Value>) -> Source {
        Source::Literal(value.into())
    }

    /// A `@template` string.
    pub fn template(template: impl Into<String>) -> Source {
        Source::Template(template.into())
    }

    /// A `@liquid` template.
    pub fn liquid(template: impl Into<String>) -> Source {
        Source::Liquid(template.into())
    }

    /// Mapping JSON as written, for directives this type has no shorthand for.
    pub fn mapping(mapping: Value) -> Source {
        Source::Mapping(mapping)
    }

    /// This source if its value exists (neither undefined nor null), else `fallback`.
    pub fn or(self, fallback: Source) -> Source {
        Source::Or(Box::new(self), Box::new(fallback))
    }

    /// This source in lower case.
    pub fn lowercase(self) -> Source {
        Source::Lowercase(Box::new(self))
    }

    /// This source in upper case.
    pub fn uppercase(self) -> Source {
        Source::Uppercase(Box::new(self))
    }

    /// The mapping JSON this source stands for.
    pub fn to_mapping(&self) -> Value {
        match self {
            Source::Path(p) => json!({"@path": p}),
            Source::Chain(paths) => match paths.split_last() {
                None => json!({"@literal": null}),
                Some((last, rest)) => {
                    rest.iter()
                        .rev()
                        .fold(json!({"@path": last}), |otherwise, p| {
                            json!({"@if": {
                                "exists": {"@path": p},
                                "then": {"@path": p},
                                "else": otherwise
                            }})
                        })
                }
            },
            Source::Literal(v) => v.clone(),
            Source::Template(t) => json!({"@template": t}),
            Source::Liquid(t) => json!({"@liquid": t}),
            Source::Mapping(m) => m.clone(),
            Source::Or(first, fallback) => {
                let first = first.to_mapping();
                json!({"@if": {"exists": first, "then": first, "else": fallback.to_mapping()}})
            }
            Source::Lowercase(s) => {
                json!({"@case": {"operator": "lower", "value": s.to_mapping()}})
            }
            Source::Uppercase(s) => {
                json!({"@case": {"operator": "upper", "value": s.to_mapping()}})
            }
        }
    }
}

impl From<&str> for Source {
    /// A path.
    fn from(path: &str) -> Source {
        Source::path(path)
    }
}

/// Builds a [`SendMapping`] field by field. Setting part of an object field (an identity, an
/// attribute) keeps the preset's defaults for the rest of that field; [`field`] replaces a
/// whole top-level field.
///
/// [`field`]: SendMappingBuilder::field
///
/// The same mapping, written as Segment mapping JSON and with the builder, gives the same
/// batch:
///
/// ```
/// use rokt_capi::Pipeline;
/// use rokt_capi::mapping::{Preset, SendMapping, SendMappingBuilder, Source};
/// use serde_json::json;
///
/// // As written in Segment: each overridden field is given whole.
/// let segment = SendMapping::new(Preset::Send, &json!({
///     "user_identities": {
///         "email": {"@if": {
///             "exists": {"@path": "$.properties.contact_email"},
///             "then": {"@path": "$.properties.contact_email"},
///             "else": {"@path": "$.context.traits.email"}
///         }},
///         "customerid": {"@path": "$.userId"}
///     },
///     "user_attributes": {
///         "firstname": {"@if": {
///             "exists": {"@path": "$.context.traits.first_name"},
///             "then": {"@path": "$.context.traits.first_name"},
///             "else": {"@if": {
///                 "exists": {"@path": "$.traits.first_name"},
///                 "then": {"@path": "$.traits.first_name"},
///                 "else": {"@path": "$.properties.first_name"}
///             }}
///         }},
///         "lastname": {"@if": {
///             "exists": {"@path": "$.context.traits.last_name"},
///             "then": {"@path": "$.context.traits.last_name"},
///             "else": {"@if": {
///                 "exists": {"@path": "$.traits.last_name"},
///                 "then": {"@path": "$.traits.last_name"},
///                 "else": {"@path": "$.properties.last_name"}
///             }}
///         }},
///         "loyalty_tier": {"@path": "$.properties.tier"}
///     },
///     "hashingConfiguration": {
///         "hashEmail": true, "hashFirstName": true, "hashLastName": true,
///         "hashMobile": true, "hashBillingZipcode": true
///     }
/// })).unwrap();
///
/// // With the builder.
/// let built = SendMappingBuilder::new(Preset::Send)
///     .email(Source::chain(["$.properties.contact_email", "$.context.traits.email"]))
///     .omit("user_attributes", "mobile")
///     .omit("user_attributes", "billingzipcode")
///     .omit("user_attributes", "dob")
///     .omit("user_attributes", "gender")
///     .user_attribute("loyalty_tier", Source::path("$.properties.tier"))
///     .hash_all()
///     .build()
///     .unwrap();
///
/// let event = json!({
///     "type": "track", "event": "Order Completed", "messageId": "m-1", "userId": "u-1",
///     "timestamp": "2026-03-04T05:06:07.891Z",
///     "context": {"traits": {"email": "Jane@Example.com", "first_name": "Jane"}},
///     "properties": {"order_id": "o-1", "revenue": 20, "tier": "gold",
///                    "contact_email": "orders@example.com"}
/// });
/// let via_json = Pipeline::builder().mapping(segment).build().unwrap();
/// let via_builder = Pipeline::builder().mapping(built.clone()).build().unwrap();
/// assert!(via_json.batch(&event).unwrap() == via_builder.batch(&event).unwrap());
///
/// // The builder's mapping is plain Segment mapping JSON.
/// assert_eq!(built.overrides().to_value()["user_attributes"]["loyalty_tier"], json!({"@path": "$.properties.tier"}));
/// ```
#[derive(Clone, Debug)]
pub struct SendMappingBuilder {
    preset: Preset,
    /// The overridden fields, each an object's members in the order they were set (the
    /// order attributes are sent in).
    overrides: Members,
}

/// An object's members in order; setting a member again keeps its place.
type Members = Vec<(Cow<'static, str>, Json<'static>)>;

fn set(members: &mut Members, key: &str, value: Json<'static>) {
    match members.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => members.push((Cow::Owned(key.to_owned()), value)),
    }
}

fn take(members: &mut Members, key: &str) -> Option<Json<'static>> {
    let i = members.iter().position(|(k, _)| k == key)?;
    Some(members.remove(i).1)
}

impl SendMappingBuilder {
    /// A builder starting from a preset's defaults.
    pub fn new(preset: Preset) -> Self {
        SendMappingBuilder {
            preset,
            overrides: Vec::new(),
        }
    }

    /// Replaces a whole top-level field (`"ip"`, `"eventProperties"`, …) with a source.
    pub fn field(mut self, field: &str, source: Source) -> Self {
        set(&mut self.overrides, field, Json::from(source.to_mapping()));
        self
    }

    /// Sets one member of an object field, keeping the field's other members (the preset's
    /// defaults, or what was set before) and their order; a new member comes last.
    pub fn member(self, field: &str, key: &str, source: Source) -> Self {
        self.with_object(field, |m| set(m, key, Json::from(source.to_mapping())))
    }

    /// Removes one member of an object field, default or not (the field is then sent without
    /// it).
    pub fn omit(self, field: &str, key: &str) -> Self {
        self.with_object(field, |m| {
            take(m, key);
        })
    }

    /// Edits the override object of a field, started from the preset's default for it (a
    /// field given as a directive is replaced by an object).
    fn with_object(mut self, field: &str, edit: impl FnOnce(&mut Members)) -> Self {
        let plain = |v: Option<Json<'static>>| match v {
            Some(Json::Object(m)) if !m.iter().any(|(k, _)| k.starts_with('@')) => Some(m),
            _ => None,
        };
        let mut object = plain(take(&mut self.overrides, field))
            .or_else(|| plain(self.preset.default_mapping(field)))
            .unwrap_or_default();
        edit(&mut object);
        set(&mut self.overrides, field, Json::Object(object));
        self
    }

    /// The conversion name (`eventDetails.conversiontype`).
    pub fn conversion_type(self, source: Source) -> Self {
        self.member("eventDetails", "conversiontype", source)
    }

    /// The order id (`eventDetails.confirmationref`).
    pub fn confirmation_ref(self, source: Source) -> Self {
        self.member("eventDetails", "confirmationref", source)
    }

    /// The revenue (`eventDetails.amount`).
    pub fn amount(self, source: Source) -> Self {
        self.member("eventDetails", "amount", source)
    }

    /// The currency (`eventDetails.currency`).
    pub fn currency(self, source: Source) -> Self {
        self.member("eventDetails", "currency", source)
    }

    /// The event id (`eventDetails.source_message_id`).
    pub fn source_message_id(self, source: Source) -> Self {
        self.member("eventDetails", "source_message_id", source)
    }

    /// When the event happened (`eventDetails.timestamp_unixtime_ms`).
    pub fn timestamp(self, source: Source) -> Self {
        self.member("eventDetails", "timestamp_unixtime_ms", source)
    }

    /// An extra conversion attribute (`eventProperties.<key>`).
    pub fn event_property(self, key: &str, source: Source) -> Self {
        self.member("eventProperties", key, source)
    }

    /// The email (`user_identities.email`).
    pub fn email(self, source: Source) -> Self {
        self.member("user_identities", "email", source)
    }

    /// The customer id (`user_identities.customerid`).
    pub fn customer_id(self, source: Source) -> Self {
        self.member("user_identities", "customerid", source)
    }

    /// The first name (`user_attributes.firstname`).
    pub fn first_name(self, source: Source) -> Self {
        self.member("user_attributes", "firstname", source)
    }

    /// The last name (`user_attributes.lastname`).
    pub fn last_name(self, source: Source) -> Self {
        self.member("user_attributes", "lastname", source)
    }

    /// The mobile number (`user_attributes.mobile`).
    pub fn mobile(self, source: Source) -> Self {
        self.member("user_attributes", "mobile", source)
    }

    /// The billing zip code (`user_attributes.billingzipcode`).
    pub fn billing_zipcode(self, source: Source) -> Self {
        self.member("user_attributes", "billingzipcode", source)
    }

    /// The date of birth, `YYYY-MM-DD` (`user_attributes.dob`).
    pub fn dob(self, source: Source) -> Self {
        self.member("user_attributes", "dob", source)
    }

    /// The gender, `m` or `f` (`user_attributes.gender`).
    pub fn gender(self, source: Source) -> Self {
        self.member("user_attributes", "gender", source)
    }

    /// An extra user attribute (`user_attributes.<key>`).
    pub fn user_attribute(self, key: &str, source: Source) -> Self {
        self.member("user_attributes", key, source)
    }

    /// The user agent (`device_info.http_header_user_agent`).
    pub fn user_agent(self, source: Source) -> Self {
        self.member("device_info", "http_header_user_agent", source)
    }

    /// The iOS advertising id (`device_info.ios_advertising_id`).
    pub fn ios_advertising_id(self, source: Source) -> Self {
        self.member("device_info", "ios_advertising_id", source)
    }

    /// The Android advertising id (`device_info.android_advertising_id`).
    pub fn android_advertising_id(self, source: Source) -> Self {
        self.member("device_info", "android_advertising_id", source)
    }

    /// The iOS id for vendor (`device_info.ios_idfv`).
    pub fn ios_idfv(self, source: Source) -> Self {
        self.member("device_info", "ios_idfv", source)
    }

    /// The Android UUID (`device_info.android_uuid`).
    pub fn android_uuid(self, source: Source) -> Self {
        self.member("device_info", "android_uuid", source)
    }

    /// The IP address (`ip`).
    pub fn ip(self, source: Source) -> Self {
        self.field("ip", source)
    }

    /// The Rokt click id (`rtid`).
    pub fn rtid(self, source: Source) -> Self {
        self.field("rtid", source)
    }

    /// A custom audience's name (`audienceDetails.customAudienceName`).
    pub fn audience_name(self, source: Source) -> Self {
        self.member("audienceDetails", "customAudienceName", source)
    }

    /// A custom audience's membership (`audienceDetails.customAudienceMembership`).
    pub fn audience_membership(self, source: Source) -> Self {
        self.member("audienceDetails", "customAudienceMembership", source)
    }

    /// The Engage audience's name (`engageAudienceName`).
    pub fn engage_audience_name(self, source: Source) -> Self {
        self.field("engageAudienceName", source)
    }

    /// The object holding Engage audience membership (`traitsOrProps`).
    pub fn traits_or_props(self, source: Source) -> Self {
        self.field("traitsOrProps", source)
    }

    /// The Engage computation class (`computationAction`).
    pub fn computation_action(self, source: Source) -> Self {
        self.field("computationAction", source)
    }

    fn hash(self, key: &str, on: bool) -> Self {
        self.member("hashingConfiguration", key, Source::literal(on))
    }

    /// Hashes every identifier the action can hash.
    pub fn hash_all(self) -> Self {
        self.hash_email(true)
            .hash_first_name(true)
            .hash_last_name(true)
            .hash_mobile(true)
            .hash_billing_zipcode(true)
    }

    /// Whether to hash the email.
    pub fn hash_email(self, on: bool) -> Self {
        self.hash("hashEmail", on)
    }

    /// Whether to hash the first name.
    pub fn hash_first_name(self, on: bool) -> Self {
        self.hash("hashFirstName", on)
    }

    /// Whether to hash the last name.
    pub fn hash_last_name(self, on: bool) -> Self {
        self.hash("hashLastName", on)
    }

    /// Whether to hash the mobile number.
    pub fn hash_mobile(self, on: bool) -> Self {
        self.hash("hashMobile", on)
    }

    /// Whether to hash the billing zip code.
    pub fn hash_billing_zipcode(self, on: bool) -> Self {
        self.hash("hashBillingZipcode", on)
    }

    /// The overrides built so far, as Segment mapping JSON, in order.
    pub fn overrides(&self) -> Json<'static> {
        Json::Object(self.overrides.clone())
    }

    /// Compiles the mapping.
    pub fn build(self) -> Result<SendMapping, MappingError> {
        SendMapping::new(self.preset, Json::Object(self.overrides))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_chain_is_the_presets_trait_chain() {
        assert_eq!(
            Source::chain("email").to_mapping(),
            super::super::trait_chain("email").to_value()
        );
    }

    #[test]
    fn members_keep_the_other_defaults() {
        let b = SendMappingBuilder::new(Preset::Send).email(Source::path("$.properties.e"));
        let o = b.overrides().to_value();
        assert_eq!(
            o["user_identities"]["email"],
            json!({"@path": "$.properties.e"})
        );
        assert_eq!(
            o["user_identities"]["customerid"],
            json!({"@path": "$.userId"})
        );
        let m = b.hash_email(true).build().unwrap();
        assert_eq!(
            m.overrides().to_value()["hashingConfiguration"]["hashEmail"],
            json!(true)
        );
        assert_eq!(
            m.overrides().to_value()["hashingConfiguration"]["hashMobile"],
            json!(false)
        );
    }

    #[test]
    fn device_members_keep_the_liquid_defaults_without_an_engine() {
        // The other device defaults are the reference's Liquid, compiled natively.
        let m = SendMappingBuilder::new(Preset::Send)
            .user_agent(Source::literal("agent"))
            .build()
            .unwrap();
        assert!(m.overrides().to_value()["device_info"]["ios_idfv"]["@liquid"].is_string());
    }

    #[test]
    fn bad_sources_fail_at_build() {
        let e = SendMappingBuilder::new(Preset::Send)
            .email(Source::mapping(json!({"@nope": 1})))
            .build()
            .unwrap_err();
        assert_eq!(e.location, "/user_identities/email");
    }

    #[test]
    fn sources_compose() {
        let s = Source::path("$.a").or(Source::literal("x")).uppercase();
        assert_eq!(
            s.to_mapping(),
            json!({"@case": {"operator": "upper", "value": {"@if": {
                "exists": {"@path": "$.a"}, "then": {"@path": "$.a"}, "else": "x"
            }}}})
        );
        let m = super::super::Mapping::compile(&json!({"v": s.to_mapping()})).unwrap();
        assert_eq!(m.apply(&json!({})).unwrap(), json!({"v": "X"}));
        assert_eq!(m.apply(&json!({"a": "b"})).unwrap(), json!({"v": "B"}));
    }
}
