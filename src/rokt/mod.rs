//! Rokt's inbound model: the mParticle server-to-server batch (docs/behaviour.md §5).
//!
//! Every type here serializes to exactly the keys Rokt expects; none of them is built by hand as
//! JSON. Keys appear only when they carry a value, except `environment`, `device_info`,
//! `user_attributes` and `user_identities`, which the reference always sends.

mod attributes;
pub(crate) mod wire;

pub use crate::text::Text;
pub use attributes::{Amount, AttributeMap, AttributeScalar, AttributeValue};

use serde::{Deserialize, Serialize};

/// Rokt's integration id under `integration_attributes`, which carries the click id (rtid).
pub const ROKT_INTEGRATION_ID: &str = "1277";

/// Prefix of an audience event's `source_message_id`, so it never collides with the conversion's.
pub const AUDIENCE_ID_PREFIX: &str = "aud_";

/// The `source_message_id` of the audience event an event's message id gives.
pub(crate) fn audience_message_id(message_id: &str) -> String {
    format!("{AUDIENCE_ID_PREFIX}{message_id}")
}

/// The user attribute that records membership of the audience `name`.
pub(crate) fn membership_attribute(name: &str) -> String {
    format!("segment_{name}")
}

/// The audience event's `status` for a membership.
pub(crate) fn membership_status(member: bool) -> &'static str {
    if member { "add" } else { "drop" }
}

/// The amount a conversion event carries: the reference keeps it only when it is truthy, so an
/// amount of 0 is left out.
pub(crate) fn conversion_amount(amount: Option<Amount>) -> Option<Amount> {
    amount.filter(Amount::is_truthy)
}

/// One batch object: everything Rokt learns from one Segment event.
///
/// `S` is the string type (see [`Text`]): owned `String`s by default; the encoder builds
/// batches of `Cow<str>` borrowing from the event.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Batch<S = String> {
    /// Always `production` in the reference.
    pub environment: Environment,
    /// Browser and mobile device identifiers.
    pub device_info: DeviceInfo<S>,
    /// Profile attributes, plain or hashed, plus open extras and `segment_<audience>` flags.
    pub user_attributes: UserAttributes<S>,
    /// Identities Rokt matches users by.
    pub user_identities: UserIdentities<S>,
    /// Present only when an rtid is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_attributes: Option<IntegrationAttributes<S>>,
    /// The audience event (first) and the conversion event, when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<CustomEvent<S>>,
    /// The end user's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<S>,
}

/// Keeps personal data out of logs: only the shape of a batch is printed.
impl<S> std::fmt::Debug for Batch<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("environment", &self.environment)
            .field("events", &self.events.len())
            .field("has_ip", &self.ip.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Text> Batch<S> {
    /// The Segment `messageId` this batch was built from, as carried by its events: the id
    /// Rokt de-duplicates on. `None` for a batch without events (an identify call that only
    /// updates the profile).
    pub fn source_message_id(&self) -> Option<&str> {
        let conversion = self
            .events
            .iter()
            .find(|e| e.data.custom_event_type == CustomEventType::Transaction);
        match conversion {
            Some(e) => Some(&e.data.source_message_id),
            None => self.events.first().map(|e| {
                let id: &str = &e.data.source_message_id;
                id.strip_prefix(AUDIENCE_ID_PREFIX).unwrap_or(id)
            }),
        }
    }

    /// The batch as the JSON bytes sent on the wire.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write_json(&mut out);
        out
    }

    /// The wire bytes as shared [`bytes::Bytes`], cut from a per-thread arena (see
    /// [`arena_bytes`]).
    pub(crate) fn to_bytes(&self) -> bytes::Bytes {
        let Ok(bytes) = arena_bytes(|out| {
            self.write_json(out);
            Ok::<(), std::convert::Infallible>(())
        });
        bytes
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        // The wire serializer writes serde_json's bytes, only faster (see `wire`). It refuses
        // what it cannot spell exactly, which these types never hold; should that change,
        // serde_json writes the batch instead, so the bytes are the same either way.
        if wire::to_writer(out, self).is_err() {
            out.clear();
            if serde_json::to_writer(&mut *out, self).is_err() {
                out.clear();
            }
        }
    }
}

/// What `write` writes, as shared [`bytes::Bytes`] cut from a per-thread arena: encoding a
/// stream of batches then allocates once per [`ARENA_BLOCK`] instead of once per batch (each
/// batch is just over a kilobyte, where malloc's slow path starts). A returned value keeps its
/// block alive until it is dropped, so at most one block per live batch is held. `write`'s
/// error when it gives up (what it wrote is discarded).
pub(crate) fn arena_bytes<E>(
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<bytes::Bytes, E> {
    thread_local! {
        static ARENA: std::cell::RefCell<(Vec<u8>, bytes::BytesMut)> =
            std::cell::RefCell::new((Vec::new(), bytes::BytesMut::new()));
    }
    ARENA.with(|cell| {
        let Ok(mut guard) = cell.try_borrow_mut() else {
            let mut out = Vec::with_capacity(1024);
            write(&mut out)?;
            return Ok(bytes::Bytes::from(out));
        };
        let (scratch, arena) = &mut *guard;
        scratch.clear();
        write(scratch)?;
        if scratch.len() > ARENA_BLOCK / 4 {
            let out = bytes::Bytes::copy_from_slice(scratch);
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
            return Ok(out);
        }
        if arena.capacity() < scratch.len() {
            *arena = bytes::BytesMut::with_capacity(ARENA_BLOCK);
        }
        arena.extend_from_slice(scratch);
        Ok(arena.split().freeze())
    })
}

/// The size of the blocks [`arena_bytes`] cuts encoded batches from.
const ARENA_BLOCK: usize = 16 * 1024;

/// The largest scratch buffer a thread keeps between batches; an outsized batch's buffer is
/// released rather than held for the thread's lifetime.
const SCRATCH_KEPT: usize = 64 * 1024;

/// The mParticle environment a batch is recorded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Live data; what the reference always sends.
    #[default]
    Production,
    /// Test data kept apart from production.
    Development,
}

/// Device identifiers (`device_info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct DeviceInfo<S = String> {
    /// The browser's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_user_agent: Option<S>,
    /// IDFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios_advertising_id: Option<S>,
    /// Google advertising id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_advertising_id: Option<S>,
    /// iOS identifier for vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios_idfv: Option<S>,
    /// Android device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_uuid: Option<S>,
}

impl<S: Text> DeviceInfo<S> {
    /// The same identifiers as owned strings.
    pub fn into_owned(self) -> DeviceInfo {
        let own = |s: Option<S>| s.map(Into::into);
        DeviceInfo {
            http_header_user_agent: own(self.http_header_user_agent),
            ios_advertising_id: own(self.ios_advertising_id),
            android_advertising_id: own(self.android_advertising_id),
            ios_idfv: own(self.ios_idfv),
            android_uuid: own(self.android_uuid),
        }
    }
}

/// Identities (`user_identities`): email in the clear or hashed, customer id, and the rtid.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct UserIdentities<S = String> {
    /// Cleaned email address (hashing off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<S>,
    /// SHA-256 hex of the cleaned email (hashing on, or already hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<S>,
    /// The Segment `userId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customerid: Option<S>,
    /// The Rokt click id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other2: Option<S>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for UserIdentities<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserIdentities")
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("other", &self.other.as_ref().map(|_| "<sha256>"))
            .field(
                "customerid",
                &self.customerid.as_ref().map(|_| "<redacted>"),
            )
            .field("other2", &self.other2)
            .finish()
    }
}

/// Profile attributes (`user_attributes`): the six known ones and any extras.
#[derive(Clone, PartialEq, Deserialize, Default)]
#[non_exhaustive]
pub struct UserAttributes<S = String> {
    /// First name, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstname: Option<S>,
    /// SHA-256 hex of the first name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firstnamesha256: Option<S>,
    /// Last name, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastname: Option<S>,
    /// SHA-256 hex of the last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastnamesha256: Option<S>,
    /// Mobile number, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<S>,
    /// SHA-256 hex of the mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobilesha256: Option<S>,
    /// Billing zip code, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billingzipcode: Option<S>,
    /// SHA-256 hex of the billing zip code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billingzipsha256: Option<S>,
    /// Date of birth as `YYYYMMDD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dob: Option<S>,
    /// `m` or `f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    /// Extra attributes the mapping adds, then `segment_<audience>` membership flags.
    #[serde(flatten)]
    pub extra: AttributeMap<S>,
}

impl<S: Serialize> Serialize for UserAttributes<S> {
    /// The known attributes, then the extras, except that extras named like array indexes come
    /// first, as `JSON.stringify` orders an object's keys.
    fn serialize<W: serde::Serializer>(&self, serializer: W) -> Result<W::Ok, W::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        self.extra.serialize_entries(&mut map, |map| {
            let known: [(&str, Option<&S>); 9] = [
                ("firstname", self.firstname.as_ref()),
                ("firstnamesha256", self.firstnamesha256.as_ref()),
                ("lastname", self.lastname.as_ref()),
                ("lastnamesha256", self.lastnamesha256.as_ref()),
                ("mobile", self.mobile.as_ref()),
                ("mobilesha256", self.mobilesha256.as_ref()),
                ("billingzipcode", self.billingzipcode.as_ref()),
                ("billingzipsha256", self.billingzipsha256.as_ref()),
                ("dob", self.dob.as_ref()),
            ];
            for (key, value) in known {
                if let Some(v) = value {
                    map.serialize_entry(key, v)?;
                }
            }
            if let Some(g) = &self.gender {
                map.serialize_entry("gender", g)?;
            }
            Ok(())
        })?;
        map.end()
    }
}

impl<S> std::fmt::Debug for UserAttributes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.extra.keys().collect();
        f.debug_struct("UserAttributes")
            .field("extra_keys", &keys)
            .finish_non_exhaustive()
    }
}

/// Gender as Rokt takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    /// Male.
    #[serde(rename = "m")]
    Male,
    /// Female.
    #[serde(rename = "f")]
    Female,
}

impl Gender {
    /// The letter Rokt takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "m",
            Gender::Female => "f",
        }
    }
}

/// `integration_attributes`, keyed by integration id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IntegrationAttributes<S = String> {
    /// Rokt's own integration (id 1277).
    #[serde(rename = "1277")]
    pub rokt: RoktIntegration<S>,
}

/// What Rokt's integration carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RoktIntegration<S = String> {
    /// The rtid, for conversion attribution.
    pub passbackconversiontrackingid: S,
}

/// One event in a batch. Rokt's CAPI takes only custom events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CustomEvent<S = String> {
    /// Always `custom_event`.
    pub event_type: EventType,
    /// The event's content.
    pub data: CustomEventData<S>,
}

impl<S> CustomEvent<S> {
    /// Wraps event data as a custom event.
    pub fn new(data: CustomEventData<S>) -> Self {
        Self {
            event_type: EventType::CustomEvent,
            data,
        }
    }
}

/// mParticle's event type: only `custom_event` is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A custom event.
    CustomEvent,
}

/// The body of a custom event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CustomEventData<S = String> {
    /// `transaction` for conversions, `other` for audience updates.
    pub custom_event_type: CustomEventType,
    /// The Segment `messageId` (prefixed `aud_` for audience events): Rokt de-duplicates on it.
    pub source_message_id: S,
    /// When the event happened, in Unix milliseconds.
    pub timestamp_unixtime_ms: i64,
    /// `conversion` or `audiencemembershipupdate`.
    pub event_name: S,
    /// The event's attributes.
    pub custom_attributes: AttributeMap<S>,
}

/// mParticle's custom event category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomEventType {
    /// A conversion.
    Transaction,
    /// Anything else (audience membership updates).
    Other,
}
