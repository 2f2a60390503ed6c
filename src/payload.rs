//! Coercion and validation (docs/behaviour.md §4): the mapped values of one event become a typed
//! [`SendPayload`], or the event is rejected with every violation named.
//!
//! This mirrors what Segment's runtime does between mapping and the action: empty values are
//! removed, scalars are coerced to the field's declared type (`12345` → `"12345"`, `"12.50"` →
//! `12.5`), the field schema is checked, and finally the action's own identifier rule runs.

use crate::Json;
use crate::js;
use crate::mapping::{ApplyError, EventMemo, Field, Member, Node, Resolved, SendMapping};
use crate::rokt::{
    Amount, AttributeMap, AttributeScalar, AttributeValue, DeviceInfo, Gender, Text,
};
use chrono::NaiveDate;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

mod build;
pub use build::build;
pub(crate) use build::{build_borrowed, compact_date};

/// The error type Segment reports for a payload that fails validation.
pub const PAYLOAD_VALIDATION_FAILED: &str = "PAYLOAD_VALIDATION_FAILED";

/// The message of the identifier rule, word for word as the reference has it.
pub const IDENTIFIER_REQUIRED: &str = "At least one of the following is required: iOS Advertising ID, Android Advertising ID, iOS ID for Vendor, Android UUID, Email, Customer ID, RTID.";

/// Every field violation of one event. Its message never contains the offending value, only
/// the field and the rule, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ValidationError {
    /// The violations, in field order.
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&v.message)?;
        }
        Ok(())
    }
}

impl ValidationError {
    /// Segment's error type for this kind of failure.
    pub fn error_type(&self) -> &'static str {
        PAYLOAD_VALIDATION_FAILED
    }
}

/// One broken rule on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The field, as a dotted path of the action's keys (`user_attributes.gender`).
    pub field: String,
    /// The rule it breaks.
    pub rule: Rule,
    /// A sentence naming the field by its label and the rule, as Segment words it.
    pub message: String,
}

/// The rules a field can break.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// A required field is missing or blank.
    Required,
    /// The value is of a type that cannot be coerced to the field's type.
    Type {
        /// The field's type.
        expected: &'static str,
        /// The value's type.
        got: &'static str,
    },
    /// The value is not one of the allowed choices.
    OneOf(&'static [&'static str]),
    /// The value is not a `YYYY-MM-DD` calendar date.
    Date,
    /// The timestamp is neither an ISO 8601 date-time nor Unix milliseconds (D3).
    Timestamp,
    /// None of the identifiers is present.
    Identifier,
    /// The mapping failed on this event (a directive's run-time check, as in the reference).
    Mapping,
}

/// Hashing switches (`hashingConfiguration`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashingConfiguration {
    /// Hash the email into `user_identities.other`.
    pub email: bool,
    /// Hash the first name into `firstnamesha256`.
    pub first_name: bool,
    /// Hash the last name into `lastnamesha256`.
    pub last_name: bool,
    /// Hash the mobile number into `mobilesha256`.
    pub mobile: bool,
    /// Hash the billing zip code into `billingzipsha256`.
    pub billing_zipcode: bool,
}

impl HashingConfiguration {
    /// Every switch on.
    pub fn all() -> Self {
        Self {
            email: true,
            first_name: true,
            last_name: true,
            mobile: true,
            billing_zipcode: true,
        }
    }
}

/// The conversion details (`eventDetails`).
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct EventDetails<S = String> {
    /// The conversion's name; without it no conversion event is sent.
    pub conversiontype: Option<S>,
    /// The order id.
    pub confirmationref: Option<S>,
    /// The revenue.
    pub amount: Option<Amount>,
    /// The currency code.
    pub currency: Option<S>,
    /// The Segment `messageId`.
    pub source_message_id: S,
    /// When the event happened, Unix milliseconds.
    pub timestamp_unixtime_ms: i64,
}

/// An audience membership change, from Engage or named by the event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudienceUpdate<S = String> {
    /// The audience's key, e.g. `high_value_buyers`.
    pub name: S,
    /// Whether the user is now in it.
    pub member: bool,
}

/// One event's values, coerced and validated: everything the Rokt batch is built from.
///
/// `S` is the string type (see [`Text`]): owned `String`s from [`SendPayload::from_event`],
/// `Cow<str>` borrowing from the event from [`SendPayload::from_event_borrowed`].
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SendPayload<S = String> {
    /// Conversion details.
    pub event_details: EventDetails<S>,
    /// Extra conversion attributes (strings, numbers and booleans only).
    pub event_properties: AttributeMap<S>,
    /// Hashing switches.
    pub hashing: HashingConfiguration,
    /// Device identifiers.
    pub device_info: DeviceInfo<S>,
    /// The email address, trimmed (cleaned and hashed when the batch is built).
    pub email: Option<S>,
    /// The customer id (Segment `userId`).
    pub customerid: Option<S>,
    /// First name.
    pub firstname: Option<S>,
    /// Last name.
    pub lastname: Option<S>,
    /// Mobile number.
    pub mobile: Option<S>,
    /// Billing zip code.
    pub billingzipcode: Option<S>,
    /// Date of birth.
    pub dob: Option<NaiveDate>,
    /// Gender.
    pub gender: Option<Gender>,
    /// Extra user attributes (primitives and arrays of primitives).
    pub extra_user_attributes: AttributeMap<S>,
    /// The user's IP address.
    pub ip: Option<S>,
    /// The audience change this event carries, if any.
    pub audience: Option<AudienceUpdate<S>>,
    /// The Rokt click id.
    pub rtid: Option<S>,
}

impl<S> fmt::Debug for SendPayload<S> {
    /// Shows which fields are present, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendPayload")
            .field("conversion", &self.event_details.conversiontype.is_some())
            .field("has_email", &self.email.is_some())
            .field("has_customerid", &self.customerid.is_some())
            .field("has_rtid", &self.rtid.is_some())
            .field("audience", &self.audience.as_ref().map(|a| a.member))
            .finish_non_exhaustive()
    }
}

impl SendPayload {
    /// Maps one event with `mapping`, coerces and validates the result.
    pub fn from_event(
        mapping: &SendMapping,
        event: &Json<'_>,
    ) -> Result<SendPayload, ValidationError> {
        SendPayload::from_event_borrowed(mapping, event).map(SendPayload::into_owned)
    }

    /// As [`from_event`](SendPayload::from_event), but the strings borrow from the event (and
    /// the mapping's constants) wherever they are used as they are, so nothing is copied.
    pub fn from_event_borrowed<'r>(
        mapping: &'r SendMapping,
        event: &'r Json<'_>,
    ) -> Result<SendPayload<Cow<'r, str>>, ValidationError> {
        let failures = RefCell::new(Vec::new());
        let mut v = Validator {
            violations: Vec::new(),
            failures: &failures,
        };
        let payload = mapping.with_memo(event, |memo| v.payload(mapping, memo));
        let failed = std::mem::take(&mut *failures.borrow_mut());
        for failure in failed {
            v.mapping_failed(failure);
        }
        if !v.violations.is_empty() {
            return Err(ValidationError {
                violations: v.violations,
            });
        }
        let d = &payload.device_info;
        if !identified(
            [&payload.email, &payload.customerid, &payload.rtid],
            [
                &d.ios_advertising_id,
                &d.android_advertising_id,
                &d.ios_idfv,
                &d.android_uuid,
            ],
        ) {
            return Err(ValidationError {
                violations: vec![Violation {
                    field: "user_identities".into(),
                    rule: Rule::Identifier,
                    message: IDENTIFIER_REQUIRED.into(),
                }],
            });
        }
        Ok(payload)
    }
}

impl<S: Text> SendPayload<S> {
    /// The same payload holding owned strings.
    pub fn into_owned(self) -> SendPayload {
        let own = |s: Option<S>| s.map(Into::into);
        let d = self.event_details;
        SendPayload {
            event_details: EventDetails {
                conversiontype: own(d.conversiontype),
                confirmationref: own(d.confirmationref),
                amount: d.amount,
                currency: own(d.currency),
                source_message_id: d.source_message_id.into(),
                timestamp_unixtime_ms: d.timestamp_unixtime_ms,
            },
            event_properties: self.event_properties.into_owned(),
            hashing: self.hashing,
            device_info: self.device_info.into_owned(),
            email: own(self.email),
            customerid: own(self.customerid),
            firstname: own(self.firstname),
            lastname: own(self.lastname),
            mobile: own(self.mobile),
            billingzipcode: own(self.billingzipcode),
            dob: self.dob,
            gender: self.gender,
            extra_user_attributes: self.extra_user_attributes.into_owned(),
            ip: own(self.ip),
            audience: self.audience.map(|a| AudienceUpdate {
                name: a.name.into(),
                member: a.member,
            }),
            rtid: own(self.rtid),
        }
    }
}

/// A top-level object field's value: its literal members (no object is built), or a value.
enum ObjectSource<'r, 'a, 'e> {
    Absent,
    /// The members, the mapping that indexes them, and where their evaluation failures go.
    Literal(
        &'r [(String, Node)],
        &'r SendMapping,
        &'e RefCell<Vec<ApplyError>>,
    ),
    /// An object written without directives, and the mapping that indexes its members.
    Constant(&'r Json<'static>, &'r SendMapping),
    Value(Resolved<'r, 'a>),
}

impl<'r, 'a> ObjectSource<'r, 'a, '_> {
    /// A member the send action reads: a literal's is found by the index the mapping made
    /// when compiled.
    #[inline(always)]
    fn member(&self, member: Member, event: &EventMemo<'_, 'r, 'a>) -> Resolved<'r, 'a> {
        match self {
            ObjectSource::Literal(members, mapping, failures) => {
                let node = mapping.member(member);
                debug_assert!(
                    node.is_none_or(|n| members.iter().any(|(_, m)| std::ptr::eq(m, n))),
                    "{member:?} is not a member of this field"
                );
                eval_member(node, event, failures)
            }
            ObjectSource::Constant(constant, mapping) => {
                let value = mapping.constant_member(member);
                debug_assert!(
                    value.is_none_or(|v| constant
                        .as_object()
                        .is_some_and(|pairs| pairs.iter().any(|(_, m)| std::ptr::eq(m, v)))),
                    "{member:?} is not a member of this field"
                );
                value.map_or(Resolved::Undefined, Resolved::Ref)
            }
            _ => self.named(member.key(), event),
        }
    }

    /// A member named at run time.
    fn named(&self, key: &str, event: &EventMemo<'_, 'r, 'a>) -> Resolved<'r, 'a> {
        let found = match self {
            ObjectSource::Absent => None,
            ObjectSource::Literal(members, _, failures) => {
                let node = members
                    .iter()
                    .rev()
                    .find(|(k, _)| crate::json::key_eq(k, key))
                    .map(|(_, node)| node);
                return eval_member(node, event, failures);
            }
            ObjectSource::Constant(constant, _) => constant.get(key),
            ObjectSource::Value(Resolved::Ref(object)) => object.get(key),
            // An object computed for this event: its members die with it, so they are copied.
            ObjectSource::Value(r) => {
                return match r.as_json().and_then(|o| o.get(key)) {
                    Some(v) => Resolved::Owned(v.clone()),
                    None => Resolved::Undefined,
                };
            }
        };
        found.map_or(Resolved::Undefined, Resolved::Ref)
    }

    /// The object, when it is a value rather than literal members.
    fn value(&self) -> Option<&Json<'a>> {
        match self {
            ObjectSource::Constant(constant, _) => Some(constant),
            ObjectSource::Value(r) => r.as_json(),
            _ => None,
        }
    }
}

/// A literal member's value; undefined when the literal has no such member.
#[inline(always)]
fn eval_member<'r, 'a>(
    node: Option<&'r Node>,
    event: &EventMemo<'_, 'r, 'a>,
    failures: &RefCell<Vec<ApplyError>>,
) -> Resolved<'r, 'a> {
    match node.map(|node| node.eval(event)) {
        Some(Ok(r)) => r,
        Some(Err(e)) => record_failure(failures, e),
        None => Resolved::Undefined,
    }
}

/// Keeps a mapping failure for the event's rejection; the value is then undefined.
#[cold]
fn record_failure<'r, 'a>(failures: &RefCell<Vec<ApplyError>>, e: ApplyError) -> Resolved<'r, 'a> {
    failures.borrow_mut().push(e);
    Resolved::Undefined
}

struct Validator<'e> {
    violations: Vec<Violation>,
    /// Mapping failures met while evaluating literal object members.
    failures: &'e RefCell<Vec<ApplyError>>,
}

const STRING: &str = "string";
const NUMBER: &str = "number";
const BOOLEAN: &str = "boolean";
const OBJECT: &str = "object";

impl<'e> Validator<'e> {
    fn payload<'r, 'a>(
        &mut self,
        mapping: &'r SendMapping,
        event: &EventMemo<'_, 'r, 'a>,
    ) -> SendPayload<Cow<'r, str>> {
        let mut p = SendPayload::default();

        let details = self.object(
            mapping,
            Field::EventDetails,
            "eventDetails",
            "Event Details",
            event,
        );
        if matches!(details, ObjectSource::Absent) {
            self.push(
                "eventDetails",
                Rule::Required,
                "The root value is missing the required field 'eventDetails'.".into(),
            );
        } else {
            // An object's missing required fields are reported before its members' failures.
            let members_from = self.violations.len();
            let mut missing = Vec::new();
            let d = &mut p.event_details;
            d.conversiontype = self.text(&details, Member::Conversiontype, event);
            d.confirmationref = self.text(&details, Member::Confirmationref, event);
            d.amount = self.number(&details, Member::Amount, event);
            d.currency = self.text(&details, Member::Currency, event);
            match self.text(&details, Member::SourceMessageId, event) {
                Some(id) => d.source_message_id = id,
                None => missing.push(Member::SourceMessageId),
            }
            match self.timestamp(details.member(Member::TimestampUnixtimeMs, event)) {
                Some(Some(ms)) => d.timestamp_unixtime_ms = ms,
                Some(None) => {}
                None => missing.push(Member::TimestampUnixtimeMs),
            }
            let failures = self.violations.split_off(members_from);
            for member in missing {
                self.missing(member.path(), "Event Details", member.key());
            }
            self.violations.extend(failures);
        }

        let props = self.object(
            mapping,
            Field::EventProperties,
            "eventProperties",
            "Additional Custom Attributes",
            event,
        );
        p.event_properties = open_attributes(&props, Field::EventProperties, event, false);

        let hashing = self.object(
            mapping,
            Field::HashingConfiguration,
            "hashingConfiguration",
            "Hashing Configuration",
            event,
        );
        let mut flag = |member: Member| self.boolean(&hashing, member, event).unwrap_or(false);
        p.hashing = HashingConfiguration {
            email: flag(Member::HashEmail),
            first_name: flag(Member::HashFirstName),
            last_name: flag(Member::HashLastName),
            mobile: flag(Member::HashMobile),
            billing_zipcode: flag(Member::HashBillingZipcode),
        };

        let device = self.object(
            mapping,
            Field::DeviceInfo,
            "device_info",
            "Device Information",
            event,
        );
        p.device_info = DeviceInfo {
            http_header_user_agent: self.text(&device, Member::HttpHeaderUserAgent, event),
            ios_advertising_id: self.text(&device, Member::IosAdvertisingId, event),
            android_advertising_id: self.text(&device, Member::AndroidAdvertisingId, event),
            ios_idfv: self.text(&device, Member::IosIdfv, event),
            android_uuid: self.text(&device, Member::AndroidUuid, event),
        };

        let ids = self.object(
            mapping,
            Field::UserIdentities,
            "user_identities",
            "User Identities",
            event,
        );
        p.email = self.text(&ids, Member::Email, event);
        p.customerid = self.text(&ids, Member::Customerid, event);

        let user = self.object(
            mapping,
            Field::UserAttributes,
            "user_attributes",
            "User Attributes",
            event,
        );
        p.firstname = self.text(&user, Member::Firstname, event);
        p.lastname = self.text(&user, Member::Lastname, event);
        p.mobile = self.text(&user, Member::Mobile, event);
        p.billingzipcode = self.text(&user, Member::Billingzipcode, event);
        if let Some(dob) = self.text(&user, Member::Dob, event) {
            match parse_date(&dob) {
                Some(d) => p.dob = Some(d),
                None => self.push(
                    Member::Dob.path(),
                    Rule::Date,
                    "Date of Birth must be a valid date string but it was not.".into(),
                ),
            }
        }
        if let Some(g) = self.text(&user, Member::Gender, event) {
            match gender(&g) {
                Some(g) => p.gender = Some(g),
                None => self.push(
                    Member::Gender.path(),
                    Rule::OneOf(&["m", "f"]),
                    "Gender must be one of: \"m\" or \"f\".".into(),
                ),
            }
        }
        p.extra_user_attributes = open_attributes(&user, Field::UserAttributes, event, true);

        p.ip = self.root_string(mapping, Field::Ip, event, "ip", "IP Address");

        let audience = self.object(
            mapping,
            Field::AudienceDetails,
            "audienceDetails",
            "Audience Details",
            event,
        );
        let custom_name = self.text(&audience, Member::CustomAudienceName, event);
        let custom_member = self.boolean(&audience, Member::CustomAudienceMembership, event);
        let engage_name = self.root_string(
            mapping,
            Field::EngageAudienceName,
            event,
            "engageAudienceName",
            "Audience Name",
        );
        let traits = self.object(
            mapping,
            Field::TraitsOrProps,
            "traitsOrProps",
            "Traits or properties object",
            event,
        );
        let action = self.root_string(
            mapping,
            Field::ComputationAction,
            event,
            "computationAction",
            "Segment Computation Action",
        );
        if action.as_deref().is_some_and(|a| !is_computation_action(a)) {
            self.push(
                "computationAction",
                Rule::OneOf(&["audience", "journey_step"]),
                "Segment Computation Action must be one of: \"audience\" or \"journey_step\"."
                    .into(),
            );
        }
        p.rtid = self.root_string(mapping, Field::Rtid, event, "rtid", "RTID");
        let traits = (!matches!(traits, ObjectSource::Absent)).then_some(traits);
        p.audience = audience_update(
            engage_name.filter(|_| action.is_some()),
            |name| match traits.as_ref()?.named(name, event).as_json() {
                Some(Json::Bool(member)) => Some(*member),
                _ => None,
            },
            custom_name.zip(custom_member),
        );
        p
    }

    /// A string member of an object field: coerced, checked, and finished as the member is.
    fn text<'r, 'a>(
        &mut self,
        object: &ObjectSource<'r, 'a, 'e>,
        member: Member,
        event: &EventMemo<'_, 'r, 'a>,
    ) -> Option<Cow<'r, str>> {
        let value = self.string(object.member(member, event), member.path(), member.label());
        finish(member, value)
    }

    /// A number member of an object field, coerced and checked.
    fn number<'r, 'a>(
        &mut self,
        object: &ObjectSource<'r, 'a, 'e>,
        member: Member,
        event: &EventMemo<'_, 'r, 'a>,
    ) -> Option<Amount> {
        let value = object.member(member, event);
        match coerce_to_number(value.as_json()?) {
            Coerced::Absent => None,
            Coerced::Value(n) => Some(n),
            Coerced::Invalid(got) => {
                self.type_error(member.path(), member.label(), NUMBER, got);
                None
            }
        }
    }

    /// A boolean member of an object field, coerced and checked.
    fn boolean<'r, 'a>(
        &mut self,
        object: &ObjectSource<'r, 'a, 'e>,
        member: Member,
        event: &EventMemo<'_, 'r, 'a>,
    ) -> Option<bool> {
        let value = object.member(member, event);
        match coerce_to_boolean(value.as_json()?) {
            Coerced::Absent => None,
            Coerced::Value(b) => Some(b),
            Coerced::Invalid(got) => {
                self.type_error(member.path(), member.label(), BOOLEAN, got);
                None
            }
        }
    }

    /// A mapping failure rejects the event; the message names the mapping location and the
    /// directive's check, never a value.
    fn mapping_failed(&mut self, failure: ApplyError) {
        let field = failure
            .location
            .split('/')
            .filter(|s| !s.is_empty())
            .take_while(|s| !s.starts_with('@'))
            .collect::<Vec<_>>()
            .join(".");
        self.push(&field, Rule::Mapping, failure.to_string());
    }

    fn push(&mut self, field: &str, rule: Rule, message: String) {
        self.violations.push(Violation {
            field: field.into(),
            rule,
            message,
        });
    }

    fn missing(&mut self, field: &str, parent_label: &str, key: &str) {
        self.push(
            field,
            Rule::Required,
            format!("{parent_label} is missing the required field '{key}'."),
        );
    }

    fn type_error(&mut self, field: &str, label: &str, expected: &'static str, got: &Json<'_>) {
        let got = got.kind();
        let article = if expected == OBJECT { "an" } else { "a" };
        self.push(
            field,
            Rule::Type { expected, got },
            format!(
                "{label} must be {article} {expected} but it was {}.",
                with_article(got)
            ),
        );
    }

    /// A top-level object field, checked to be an object.
    fn object<'r, 'a>(
        &mut self,
        mapping: &'r SendMapping,
        field: Field,
        key: &str,
        label: &str,
        event: &EventMemo<'_, 'r, 'a>,
    ) -> ObjectSource<'r, 'a, 'e> {
        match mapping.field(field) {
            None => ObjectSource::Absent,
            Some(Node::Object(members)) => ObjectSource::Literal(members, mapping, self.failures),
            Some(Node::Const(constant @ Json::Object(_))) => {
                ObjectSource::Constant(constant, mapping)
            }
            Some(node) => {
                let r = match node.eval(event) {
                    Ok(r) => r,
                    Err(e) => {
                        self.mapping_failed(e);
                        return ObjectSource::Absent;
                    }
                };
                match r.as_json() {
                    None | Some(Json::Null) => ObjectSource::Absent,
                    Some(Json::Object(_)) => ObjectSource::Value(r),
                    Some(other) => {
                        self.type_error(key, label, OBJECT, other);
                        ObjectSource::Absent
                    }
                }
            }
        }
    }

    fn root_string<'r, 'a>(
        &mut self,
        mapping: &'r SendMapping,
        field: Field,
        event: &EventMemo<'_, 'r, 'a>,
        key: &str,
        label: &str,
    ) -> Option<Cow<'r, str>> {
        let node = mapping.field(field)?;
        let value = match node.eval(event) {
            Ok(r) => self.string(r, key, label),
            Err(e) => {
                self.mapping_failed(e);
                None
            }
        };
        Finish::of_root(field).apply(value?)
    }

    /// A string field's value, coerced but not yet finished (see [`Finish`]): undefined and
    /// null are absent, a one-item array stands for its item, other scalars become their text.
    fn string<'r>(
        &mut self,
        value: Resolved<'r, '_>,
        field: &str,
        label: &str,
    ) -> Option<Cow<'r, str>> {
        match value {
            Resolved::Undefined => None,
            // A value in the event or the mapping is borrowed as it is.
            Resolved::Ref(v) => match self.scalar_text(v, field, label)? {
                Cow::Borrowed(s) => Some(Cow::Borrowed(s)),
                made => Some(Cow::Owned(made.into_owned())),
            },
            // A string made for this event (a built-in default, a template) is moved, not copied.
            Resolved::Owned(Json::Str(s)) => Some(s),
            Resolved::Owned(v) => {
                Some(Cow::Owned(self.scalar_text(&v, field, label)?.into_owned()))
            }
        }
    }

    /// A scalar's text; `None` for null and, after reporting it, for a non-scalar.
    fn scalar_text<'v>(
        &mut self,
        v: &'v Json<'_>,
        field: &str,
        label: &str,
    ) -> Option<Cow<'v, str>> {
        match coerce_to_string(v) {
            Coerced::Absent => None,
            Coerced::Value(text) => Some(text),
            Coerced::Invalid(got) => {
                self.type_error(field, label, STRING, got);
                None
            }
        }
    }

    /// `Some(Some(ms))` for a valid timestamp, `Some(None)` after reporting a bad one, `None`
    /// when there is none.
    fn timestamp(&mut self, value: Resolved<'_, '_>) -> Option<Option<i64>> {
        let field = "eventDetails.timestamp_unixtime_ms";
        match read_timestamp(value.as_json()?) {
            Timestamp::Missing => None,
            Timestamp::Ms(ms) => Some(Some(ms)),
            Timestamp::Unreadable => {
                self.push(field, Rule::Timestamp, TIMESTAMP_UNREADABLE.into());
                Some(None)
            }
            Timestamp::Invalid(got) => {
                self.type_error(field, "Event Timestamp", STRING, got);
                Some(None)
            }
        }
    }
}

/// What a timestamp that cannot be read is told.
const TIMESTAMP_UNREADABLE: &str = "Event Timestamp must be a date string JavaScript's Date can read, or Unix milliseconds, but it was not.";

fn with_article(kind: &str) -> String {
    match kind {
        "null" => "null".into(),
        "object" | "array" => format!("an {kind}"),
        other => format!("a {other}"),
    }
}

/// A value coerced to a field's type, as the reference's schema validator (Ajv, coercing
/// types and arrays) does it.
pub(crate) enum Coerced<'v, 'a, T> {
    /// Nothing to check: the value vanishes before validation (null; `""` where the field's
    /// type is not a string).
    Absent,
    Value(T),
    /// Cannot be coerced: what the value is, for the message.
    Invalid(&'v Json<'a>),
}

/// A one-item array stands for its item; its item null for the type's null value.
fn single<'v, 'a>(v: &'v Json<'a>) -> (&'v Json<'a>, bool) {
    match v {
        Json::Array(items) if items.len() == 1 => (&items[0], true),
        other => (other, false),
    }
}

/// A string field: a number is its JavaScript text, a boolean `"true"`/`"false"`, `[null]`
/// the empty string. Nothing is trimmed here (see [`Finish`]).
pub(crate) fn coerce_to_string<'v, 'a>(v: &'v Json<'a>) -> Coerced<'v, 'a, Cow<'v, str>> {
    let (item, unwrapped) = single(v);
    Coerced::Value(match item {
        Json::Null if unwrapped => Cow::Borrowed(""),
        Json::Null => return Coerced::Absent,
        Json::Str(s) => Cow::Borrowed(s),
        Json::Number(n) => Cow::Owned(js::number_to_string(n)),
        Json::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        other => return Coerced::Invalid(other),
    })
}

/// A number field: a string is read as JavaScript's `Number(s)` reads it (padding ignored,
/// `0x`/`0o`/`0b`, blank is 0, `Infinity`) unless that is NaN; a boolean is 1 or 0; `[null]`
/// is 0; `""` vanishes.
pub(crate) fn coerce_to_number<'v, 'a>(v: &'v Json<'a>) -> Coerced<'v, 'a, Amount> {
    if matches!(v, Json::Str(s) if s.is_empty()) {
        return Coerced::Absent;
    }
    let (item, unwrapped) = single(v);
    Coerced::Value(match item {
        Json::Null if unwrapped => Amount::from(0.0),
        Json::Null => return Coerced::Absent,
        Json::Number(n) => Amount::Number(n.clone()),
        Json::Bool(b) => Amount::from(if *b { 1.0 } else { 0.0 }),
        Json::Str(s) => match js::string_to_number(s) {
            n if n.is_nan() => return Coerced::Invalid(item),
            n => Amount::from(n),
        },
        other => return Coerced::Invalid(other),
    })
}

/// A boolean field: `"true"`/`"false"`, 1/0, `[null]` is false; `""` vanishes.
pub(crate) fn coerce_to_boolean<'v, 'a>(v: &'v Json<'a>) -> Coerced<'v, 'a, bool> {
    if matches!(v, Json::Str(s) if s.is_empty()) {
        return Coerced::Absent;
    }
    let (item, unwrapped) = single(v);
    Coerced::Value(match item {
        Json::Null if unwrapped => false,
        Json::Null => return Coerced::Absent,
        Json::Bool(b) => *b,
        Json::Str(s) if s == "true" => true,
        Json::Str(s) if s == "false" => false,
        Json::Number(n) if n.as_f64() == Some(1.0) => true,
        Json::Number(n) if n.as_f64() == Some(0.0) => false,
        other => return Coerced::Invalid(other),
    })
}

/// How a string field is finished once validated. The reference trims only some fields, after
/// validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Trimmed of JavaScript's whitespace; blank is absent (identities, device ids, names, ip).
    Trim,
    /// Sent as it is; only `""` is absent (conversion details, audience names).
    AsIs,
    /// Sent as it is and required: blank is absent, so the event is rejected (the message id,
    /// which Rokt de-duplicates on).
    NonBlank,
    /// Checked as it is, `""` included (gender and date of birth, whose rules reject it).
    Checked,
}

impl Finish {
    /// How `member` is finished.
    #[inline]
    pub(crate) fn of(member: Member) -> Finish {
        use Member::*;
        match member {
            HttpHeaderUserAgent | IosAdvertisingId | AndroidAdvertisingId | IosIdfv
            | AndroidUuid | Email | Customerid | Firstname | Lastname | Mobile | Billingzipcode => {
                Finish::Trim
            }
            SourceMessageId => Finish::NonBlank,
            Dob | Gender => Finish::Checked,
            _ => Finish::AsIs,
        }
    }

    /// How a top-level string field is finished: `ip` and `rtid` are trimmed; the audience name
    /// and computation action are sent as they are.
    #[inline]
    pub(crate) fn of_root(field: Field) -> Finish {
        match field {
            Field::Ip | Field::Rtid => Finish::Trim,
            _ => Finish::AsIs,
        }
    }

    /// The finished text, or `None` when it is absent.
    #[inline]
    pub(crate) fn apply<S: Text>(self, text: S) -> Option<S> {
        let keep = match self {
            Finish::Trim => {
                let text = text.trimmed(js::trim);
                return (!text.is_empty()).then_some(text);
            }
            Finish::AsIs => !text.is_empty(),
            Finish::NonBlank => !js::trim(&text).is_empty(),
            Finish::Checked => true,
        };
        keep.then_some(text)
    }
}

/// [`Finish::apply`] for a member's value, if any.
fn finish<S: Text>(member: Member, value: Option<S>) -> Option<S> {
    Finish::of(member).apply(value?)
}

/// An event timestamp, read.
pub(crate) enum Timestamp<'v, 'a> {
    /// None, or an empty or blank string: the required field is missing.
    Missing,
    /// Unix milliseconds.
    Ms(i64),
    /// A string JavaScript's `Date` cannot read, or a number out of its range.
    Unreadable,
    /// Neither a string nor a number nor a boolean.
    Invalid(&'v Json<'a>),
}

/// The timestamp rule: a number is Unix milliseconds (truncated toward zero) when finite and
/// within ±8.64e15; a string (a boolean as its text) is read as JavaScript's `Date.parse`
/// reads it (a one-item array stands for its item).
pub(crate) fn read_timestamp<'v, 'a>(v: &'v Json<'a>) -> Timestamp<'v, 'a> {
    // A number is read as a number: its text is never made.
    if let Json::Number(n) = single(v).0 {
        return match n.as_f64().and_then(crate::js::date::from_number) {
            Some(ms) => Timestamp::Ms(ms),
            None => Timestamp::Unreadable,
        };
    }
    let text = match coerce_to_string(v) {
        Coerced::Absent => return Timestamp::Missing,
        Coerced::Invalid(got) => return Timestamp::Invalid(got),
        Coerced::Value(text) => text,
    };
    if js::trim(&text).is_empty() {
        return Timestamp::Missing;
    }
    match parse_timestamp(&text) {
        Some(ms) => Timestamp::Ms(ms),
        None => Timestamp::Unreadable,
    }
}

/// The members of an open object field, minus those the send action reads by name, keeping
/// strings, numbers and booleans (and, where `arrays`, arrays of them with at least one such
/// item).
fn open_attributes<'r, 'a>(
    source: &ObjectSource<'r, 'a, '_>,
    field: Field,
    event: &EventMemo<'_, 'r, 'a>,
    arrays: bool,
) -> AttributeMap<Cow<'r, str>> {
    let mut out: AttributeMap<Cow<'r, str>> = AttributeMap::default();
    let mut keep = |key: &str, value: &Json<'_>| match value {
        Json::Str(s) => out.insert(key.to_owned(), AttributeValue::String(s.to_string().into())),
        Json::Number(n) => out.insert(key.to_owned(), AttributeValue::Number(n.clone())),
        Json::Bool(b) => out.insert(key.to_owned(), AttributeValue::Bool(*b)),
        Json::Array(items) if arrays => {
            let kept: Vec<AttributeScalar<Cow<'r, str>>> = items
                .iter()
                .filter_map(|i| match i {
                    Json::Str(s) => Some(AttributeScalar::String(s.to_string().into())),
                    Json::Number(n) => Some(AttributeScalar::Number(n.clone())),
                    Json::Bool(b) => Some(AttributeScalar::Bool(*b)),
                    _ => None,
                })
                .collect();
            if !kept.is_empty() {
                out.insert(key.to_owned(), AttributeValue::List(kept));
            }
        }
        _ => {}
    };
    match source {
        ObjectSource::Absent => {}
        ObjectSource::Literal(_, mapping, failures) => {
            // Known members were read already; evaluating them again would be wasted work.
            for (k, node) in mapping.open_members(field) {
                match node.eval(event) {
                    Ok(r) => {
                        if let Some(v) = r.as_json() {
                            keep(k, v);
                        }
                    }
                    Err(e) => failures.borrow_mut().push(e),
                }
            }
        }
        ObjectSource::Constant(..) | ObjectSource::Value(_) => {
            if let Some(pairs) = source.value().and_then(Json::as_object) {
                for (k, v) in pairs {
                    if !Member::is_known(field, k) {
                        keep(k, v);
                    }
                }
            }
        }
    }
    out
}

/// The rule for `gender`: exactly `m` or `f`.
pub(crate) fn gender(value: &str) -> Option<Gender> {
    match value {
        "m" => Some(Gender::Male),
        "f" => Some(Gender::Female),
        _ => None,
    }
}

/// The rule for `computationAction`: what Engage names a computation.
pub(crate) fn is_computation_action(value: &str) -> bool {
    matches!(value, "audience" | "journey_step")
}

/// The audience update an event carries: Engage's when it names an audience
/// (`engageAudienceName`, with a `computationAction`) whose membership the traits give as a
/// boolean, else the custom audience fields' (name and membership), if both are there.
pub(crate) fn audience_update<S>(
    engage_name: Option<S>,
    engage_membership: impl FnOnce(&S) -> Option<bool>,
    custom: Option<(S, bool)>,
) -> Option<AudienceUpdate<S>> {
    let engage = engage_name.and_then(|name| {
        let member = engage_membership(&name)?;
        Some((name, member))
    });
    engage
        .or(custom)
        .map(|(name, member)| AudienceUpdate { name, member })
}

/// The identifier rule: Rokt needs someone to attribute the event to, so at least one of the
/// identities (email, customer id, rtid) or device ids (iOS advertising id, Android advertising
/// id, iOS IDFV, Android UUID) must be present.
pub(crate) fn identified<S>(identities: [&Option<S>; 3], device_ids: [&Option<S>; 4]) -> bool {
    identities.iter().any(|v| v.is_some()) || device_ids.iter().any(|v| v.is_some())
}

/// `YYYY-MM-DD`, a real calendar date (ajv's `date` format).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return None;
    }
    // The shape is checked above, so plain digit arithmetic is enough (and much cheaper than
    // a format-string parse on every event).
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10))
}

/// An event timestamp string as Unix milliseconds, read exactly as JavaScript's `Date.parse`
/// (V8, in UTC) reads it: ISO 8601 with extended years, offsets with or without a colon,
/// missing seconds, `24:00`, days past a month's end rolled over, and the legacy forms
/// (`March 4, 2026`, `2026/03/04`, `03/04/2026 10:00 PM EST`, RFC 2822, `Date#toString`).
/// `None` where `Date.parse` gives NaN. The string is read as it is: a leading space makes
/// an ISO string unreadable, as it does in JavaScript.
///
/// ```
/// use rokt_capi::payload::parse_timestamp;
/// assert_eq!(parse_timestamp("2026-03-04T05:06:07.891Z"), Some(1_772_600_767_891));
/// assert_eq!(parse_timestamp("2026-03-04T10:36:07+0530"), Some(1_772_600_767_000));
/// assert_eq!(parse_timestamp("2026-02-30"), parse_timestamp("2026-03-02"));
/// assert_eq!(parse_timestamp("1772600767000"), None); // a year, out of range
/// ```
pub fn parse_timestamp(s: &str) -> Option<i64> {
    crate::js::date::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_calendar_days() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("1990-5-17").is_none());
        assert!(parse_date("05/17/1990").is_none());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2026-03-04T05:06:07.891Z"),
            Some(1772600767891)
        );
        assert_eq!(
            parse_timestamp("2026-03-04T07:06:07.891+02:00"),
            Some(1772600767891)
        );
        assert_eq!(
            parse_timestamp("2026-03-04T05:06:07.891"),
            Some(1772600767891)
        );
        // A digit string is a year, as JavaScript reads it (here one beyond Date's range).
        assert_eq!(parse_timestamp("1772600767891"), None);
        assert_eq!(parse_timestamp("2026-03-04"), Some(1772582400000));
        assert_eq!(parse_timestamp("March 4, 2026"), Some(1772582400000));
        assert_eq!(parse_timestamp(" 2026-03-04T05:06:07Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    /// The borrowed payload holds the event's own text wherever a value is used as it is, and
    /// owns exactly the values it had to make; both forms carry the same values.
    #[test]
    fn borrowed_payloads_point_into_the_event_and_agree_with_owned_ones() {
        let text = r#"{"type":"track","event":"Order Completed","userId":"u-1",
            "messageId":"m-1","timestamp":"2026-01-01T00:00:00Z",
            "context":{"ip":"203.0.113.9","traits":{"email":"  Jane@Example.com ","first_name":"Jane"}},
            "properties":{"order_id":42,"currency":"USD","revenue":"12.50"}}"#;
        let event = Json::parse(text).unwrap();
        let mapping = SendMapping::preset_defaults(crate::mapping::Preset::Send);
        let borrowed = SendPayload::from_event_borrowed(&mapping, &event).unwrap();
        let within = |s: &str| text.as_bytes().as_ptr_range().contains(&s.as_ptr());
        for value in [
            &borrowed.email,
            &borrowed.firstname,
            &borrowed.customerid,
            &borrowed.ip,
            &borrowed.event_details.currency,
            &borrowed.event_details.conversiontype,
        ] {
            assert!(matches!(value, Some(Cow::Borrowed(s)) if within(s)));
        }
        // Trimmed in place: the email borrows the text between the spaces.
        assert_eq!(borrowed.email.as_deref(), Some("Jane@Example.com"));
        assert!(matches!(
            borrowed.event_details.source_message_id,
            Cow::Borrowed("m-1")
        ));
        // A number coerced to a string is made for the payload.
        assert!(matches!(
            borrowed.event_details.confirmationref,
            Some(Cow::Owned(ref s)) if s == "42"
        ));
        assert_eq!(borrowed.event_details.amount, Some(Amount::from(12.5)));
        let owned = SendPayload::from_event(&mapping, &event).unwrap();
        assert_eq!(borrowed.clone().into_owned(), owned);
        assert_eq!(
            build(borrowed).to_json_bytes(),
            build(owned).to_json_bytes()
        );
    }

    #[test]
    fn number_fields_coerce_strings_as_javascript_reads_them() {
        let number = |text: &str| match coerce_to_number(&Json::parse(text).unwrap()) {
            Coerced::Value(a) => Some(a.as_f64()),
            Coerced::Absent => None,
            Coerced::Invalid(_) => Some(f64::NAN),
        };
        assert_eq!(number(r#"" 12.50 ""#), Some(12.5));
        assert_eq!(number(r#""1e3""#), Some(1000.0));
        assert_eq!(number(r#""0x10""#), Some(16.0));
        assert_eq!(number(r#""0b101""#), Some(5.0));
        assert_eq!(number(r#""0o17""#), Some(15.0));
        assert_eq!(number(r#"" ""#), Some(0.0));
        assert_eq!(number(r#""""#), None);
        assert_eq!(number("null"), None);
        assert_eq!(number("[null]"), Some(0.0));
        assert_eq!(number("true"), Some(1.0));
        assert_eq!(number(r#"["7.5"]"#), Some(7.5));
        assert_eq!(number(r#""Infinity""#), Some(f64::INFINITY));
        assert_eq!(number(r#""-1e400""#), Some(f64::NEG_INFINITY));
        for bad in [
            r#""inf""#,
            r#""12abc""#,
            r#""1_000""#,
            r#""-0x10""#,
            r#""NaN""#,
            "{}",
            "[1,2]",
        ] {
            assert!(number(bad).is_some_and(f64::is_nan), "{bad}");
        }
    }

    #[test]
    fn string_fields_are_finished_per_field() {
        let s = |t: &str| t.to_owned();
        assert_eq!(Finish::Trim.apply(s(" a\u{a0}")), Some(s("a")));
        assert_eq!(Finish::Trim.apply(s(" \u{feff}")), None);
        assert_eq!(Finish::AsIs.apply(s(" a ")), Some(s(" a ")));
        assert_eq!(Finish::AsIs.apply(s(" ")), Some(s(" ")));
        assert_eq!(Finish::AsIs.apply(s("")), None);
        assert_eq!(Finish::NonBlank.apply(s(" m ")), Some(s(" m ")));
        assert_eq!(Finish::NonBlank.apply(s("\u{a0}\t")), None);
        assert_eq!(Finish::Checked.apply(s("")), Some(s("")));
        // U+0085 and U+200B are not JavaScript whitespace.
        assert_eq!(Finish::Trim.apply(s("\u{85}")), Some(s("\u{85}")));
        assert_eq!(Finish::Trim.apply(s("\u{200b}")), Some(s("\u{200b}")));
    }
}
