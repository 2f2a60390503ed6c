//! Segment's event model: track, identify, page, screen, group and alias calls.
//!
//! The types name the fields Segment defines and keep every other field in `extra`, so parsing
//! an event and serializing it again loses nothing.
//!
//! ```
//! use rokt_capi::segment::Event;
//! let text = r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1",
//!               "properties":{"revenue":9.5},"custom":{"kept":true}}"#;
//! let event = Event::from_json(text).unwrap();
//! assert!(matches!(event, Event::Track(ref t) if t.event == "Order Completed"));
//! let back = serde_json::to_value(&event).unwrap();
//! assert_eq!(back, serde_json::from_str::<serde_json::Value>(text).unwrap());
//! ```

#[cfg(feature = "segment-crate")]
mod external;
pub mod intake;

use crate::Json;
use crate::error::{Error, EventError};
use crate::json::View;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Any JSON object, for open members such as `properties` and `traits`.
pub type Object = Map<String, Value>;

/// A Segment call, tagged by its `type`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Event {
    /// A user action.
    Track(Track),
    /// Who the user is.
    Identify(Identify),
    /// A web page view.
    Page(Page),
    /// A mobile screen view.
    Screen(Screen),
    /// Membership of a group or account.
    Group(Group),
    /// A new id for a known user.
    Alias(Alias),
}

impl std::fmt::Debug for Event {
    /// Prints the call type and message id only: events carry personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Event::{:?}(messageId: {:?})",
            self.kind(),
            self.common().message_id
        )
    }
}

/// The six call types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// `track`
    Track,
    /// `identify`
    Identify,
    /// `page`
    Page,
    /// `screen`
    Screen,
    /// `group`
    Group,
    /// `alias`
    Alias,
}

impl EventType {
    /// The `type` field's text.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    /// From the `type` field's text.
    pub fn from_name(name: &str) -> Option<EventType> {
        Some(match name {
            "track" => EventType::Track,
            "identify" => EventType::Identify,
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            _ => return None,
        })
    }
}

/// A user or anonymous id: Segment takes strings, and numbers appear in the wild.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// A string id.
    String(String),
    /// A numeric id.
    Number(serde_json::Number),
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Id(<redacted>)")
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id::String(s.to_owned())
    }
}

/// Fields every call has.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Common {
    /// The known user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Id>,
    /// The device or browser's anonymous id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<Id>,
    /// Unique per call; Rokt de-duplicates on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// When the call happened, as sent (ISO 8601, or a number of milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
    /// Context about the user and device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// Per-destination settings, e.g. `{"Rokt Conversions API": {"rtid": "…"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrations: Option<Object>,
    /// Every other field, kept as is.
    #[serde(flatten)]
    pub extra: Object,
}

/// A track call.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Track {
    /// The action, e.g. `Order Completed`.
    pub event: String,
    /// The action's properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Object>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// An identify call.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Identify {
    /// The user's traits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Object>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// A page call.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page {
    /// The page's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The page's properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Object>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// A screen call.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Screen {
    /// The screen's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The screen's properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Object>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// A group call.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Group {
    /// The group's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Id>,
    /// The group's traits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Object>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// An alias call.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Alias {
    /// The user's previous id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<Id>,
    /// The shared fields.
    #[serde(flatten)]
    pub common: Common,
}

/// `context`: what Segment knows about the user's environment.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Context {
    /// The user's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The browser's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The user's traits at the time of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Object>,
    /// The mobile device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// The web page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageContext>,
    /// Engage (Personas) audience and journey details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personas: Option<Personas>,
    /// Every other context field.
    #[serde(flatten)]
    pub extra: Object,
}

/// `context.device`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Device {
    /// The device id (IDFV on iOS, the device UUID on Android).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The advertising id (IDFA or AAID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertising_id: Option<String>,
    /// `ios` or `android`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// Every other device field.
    #[serde(flatten)]
    pub extra: Object,
}

/// `context.page`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PageContext {
    /// The full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The query string, with its `?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Every other page field.
    #[serde(flatten)]
    pub extra: Object,
}

/// `context.personas`: set by Segment Engage on audience and journey calls.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Personas {
    /// The audience or journey step key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computation_key: Option<String>,
    /// `audience` or `journey_step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computation_class: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Object,
}

/// `Debug` for the event types: their shape, never the personal data they carry. Open objects
/// (`properties`, `traits`, `extra`) show their keys only; ids, IP address, user agent, device
/// ids and page URLs show as `<redacted>`.
mod debug {
    use super::*;
    use std::fmt::{self, Debug, Formatter};

    /// An open object's keys.
    struct Keys<'a>(&'a Object);

    impl Debug for Keys<'_> {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_set().entries(self.0.keys()).finish()
        }
    }

    fn keys(o: &Option<Object>) -> Option<Keys<'_>> {
        o.as_ref().map(Keys)
    }

    fn redacted<T>(o: &Option<T>) -> Option<&'static str> {
        o.as_ref().map(|_| "<redacted>")
    }

    /// A JSON value's type, not its content.
    fn kind(v: &Option<Value>) -> Option<&'static str> {
        v.as_ref().map(|v| match v {
            Value::Null => "null",
            Value::Bool(_) => "<boolean>",
            Value::Number(_) => "<number>",
            Value::String(_) => "<string>",
            Value::Array(_) => "<array>",
            Value::Object(_) => "<object>",
        })
    }

    impl Debug for Common {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Common")
                .field("user_id", &self.user_id)
                .field("anonymous_id", &self.anonymous_id)
                .field("message_id", &self.message_id)
                .field("timestamp", &kind(&self.timestamp))
                .field("context", &self.context)
                .field("integrations", &keys(&self.integrations))
                .field("extra", &Keys(&self.extra))
                .finish()
        }
    }

    impl Debug for Track {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Track")
                .field("event", &self.event)
                .field("properties", &keys(&self.properties))
                .field("common", &self.common)
                .finish()
        }
    }

    impl Debug for Identify {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Identify")
                .field("traits", &keys(&self.traits))
                .field("common", &self.common)
                .finish()
        }
    }

    impl Debug for Page {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Page")
                .field("name", &self.name)
                .field("properties", &keys(&self.properties))
                .field("common", &self.common)
                .finish()
        }
    }

    impl Debug for Screen {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Screen")
                .field("name", &self.name)
                .field("properties", &keys(&self.properties))
                .field("common", &self.common)
                .finish()
        }
    }

    impl Debug for Group {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Group")
                .field("group_id", &self.group_id)
                .field("traits", &keys(&self.traits))
                .field("common", &self.common)
                .finish()
        }
    }

    impl Debug for Alias {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Alias")
                .field("previous_id", &self.previous_id)
                .field("common", &self.common)
                .finish()
        }
    }

    impl Debug for Context {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Context")
                .field("ip", &redacted(&self.ip))
                .field("user_agent", &redacted(&self.user_agent))
                .field("traits", &keys(&self.traits))
                .field("device", &self.device)
                .field("page", &self.page)
                .field("personas", &self.personas)
                .field("extra", &Keys(&self.extra))
                .finish()
        }
    }

    impl Debug for Device {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Device")
                .field("id", &redacted(&self.id))
                .field("advertising_id", &redacted(&self.advertising_id))
                .field("device_type", &self.device_type)
                .field("extra", &Keys(&self.extra))
                .finish()
        }
    }

    impl Debug for PageContext {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("PageContext")
                .field("url", &redacted(&self.url))
                .field("search", &redacted(&self.search))
                .field("extra", &Keys(&self.extra))
                .finish()
        }
    }

    impl Debug for Personas {
        fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
            f.debug_struct("Personas")
                .field("computation_key", &self.computation_key)
                .field("computation_class", &self.computation_class)
                .field("extra", &Keys(&self.extra))
                .finish()
        }
    }
}

impl Event {
    /// Parses one event; an error names the JSON path that failed, never the value.
    pub fn from_json(text: &str) -> Result<Event, EventError> {
        let value: Value = serde_json::from_str(text).map_err(|e| EventError::syntax(&e))?;
        Event::from_value(value)
    }

    /// Reads an event from JSON; an error names the JSON path that failed.
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        check_event(&Json::from(&value))?;
        check_shape(&value)?;
        serde_json::from_value(value).map_err(|_| EventError::new("$", "not a valid Segment event"))
    }

    /// The call type.
    pub fn kind(&self) -> EventType {
        match self {
            Event::Track(_) => EventType::Track,
            Event::Identify(_) => EventType::Identify,
            Event::Page(_) => EventType::Page,
            Event::Screen(_) => EventType::Screen,
            Event::Group(_) => EventType::Group,
            Event::Alias(_) => EventType::Alias,
        }
    }

    /// The fields every call has.
    pub fn common(&self) -> &Common {
        match self {
            Event::Track(e) => &e.common,
            Event::Identify(e) => &e.common,
            Event::Page(e) => &e.common,
            Event::Screen(e) => &e.common,
            Event::Group(e) => &e.common,
            Event::Alias(e) => &e.common,
        }
    }

    /// The event as JSON, the form mappings read.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Checks that a parsed document can be mapped: any JSON object. Mapping and building never
/// read the event's `type` (only triggers do), so an event of any type, or none, is mapped as
/// Segment maps it.
pub fn check_mappable(doc: &Json<'_>) -> Result<(), EventError> {
    match doc {
        Json::Object(_) => Ok(()),
        _ => Err(EventError::new(
            "$",
            format!("an event must be a JSON object, not {}", doc.kind()),
        )),
    }
}

/// Checks that a parsed document is a Segment call: an object whose `type` is one of the six
/// (what the typed [`Event`] requires; mapping needs only [`check_mappable`]).
pub fn check_event(doc: &Json<'_>) -> Result<EventType, EventError> {
    check_mappable(doc)?;
    match doc.get("type") {
        Some(Json::Str(t)) => EventType::from_name(t).ok_or_else(|| {
            EventError::new(
                "$.type",
                "`type` must be one of track, identify, page, screen, group, alias",
            )
        }),
        Some(other) => Err(EventError::new(
            "$.type",
            format!("`type` must be a string, not {}", other.kind()),
        )),
        None => Err(EventError::new("$.type", "the event has no `type`")),
    }
}

/// The JSON type each typed member must have, by path: where parsing into [`Event`] fails,
/// this says where (serde loses the path inside flattened and tagged types).
const SHAPE: &[(&[&str], Kind)] = &[
    (&["event"], Kind::String),
    (&["name"], Kind::String),
    (&["messageId"], Kind::String),
    (&["userId"], Kind::Id),
    (&["anonymousId"], Kind::Id),
    (&["groupId"], Kind::Id),
    (&["previousId"], Kind::Id),
    (&["properties"], Kind::Object),
    (&["traits"], Kind::Object),
    (&["integrations"], Kind::Object),
    (&["context"], Kind::Object),
    (&["context", "ip"], Kind::String),
    (&["context", "userAgent"], Kind::String),
    (&["context", "traits"], Kind::Object),
    (&["context", "device"], Kind::Object),
    (&["context", "device", "id"], Kind::String),
    (&["context", "device", "advertisingId"], Kind::String),
    (&["context", "device", "type"], Kind::String),
    (&["context", "page"], Kind::Object),
    (&["context", "page", "url"], Kind::String),
    (&["context", "page", "search"], Kind::String),
    (&["context", "personas"], Kind::Object),
    (&["context", "personas", "computation_key"], Kind::String),
    (&["context", "personas", "computation_class"], Kind::String),
];

#[derive(Clone, Copy)]
enum Kind {
    String,
    Id,
    Object,
}

fn check_shape(value: &Value) -> Result<(), EventError> {
    for (path, kind) in SHAPE {
        let mut v = Some(value);
        for key in *path {
            v = v.and_then(|x| x.get(key));
        }
        let Some(v) = v else { continue };
        let ok = match kind {
            Kind::String => v.is_string(),
            Kind::Id => v.is_string() || v.is_number(),
            Kind::Object => v.is_object(),
        };
        // A null member is the same as an absent one.
        if !ok && !v.is_null() {
            let at = format!("$.{}", path.join("."));
            let want = match kind {
                Kind::String => "a string",
                Kind::Id => "a string or a number",
                Kind::Object => "an object",
            };
            return Err(EventError::new(at.clone(), format!("{at} must be {want}")));
        }
    }
    if let Value::Object(map) = value {
        if map.get("type").and_then(Value::as_str) == Some("track")
            && !map.get("event").is_some_and(Value::is_string)
        {
            return Err(EventError::new(
                "$.event",
                "a track call needs an `event` name",
            ));
        }
    }
    Ok(())
}

pub(crate) mod sealed {
    use crate::json::DocValue;
    use crate::{Error, Json};

    /// Only the crate's types are events: the crate relies on exactly their behaviour.
    pub trait Sealed {
        /// `reader`'s answer for the event, read in the form it is held in: a `Value` or a
        /// typed event in place, text once parsed.
        fn read<R: Reader>(&self, reader: R) -> Result<R::Output, Error>
        where
            Self: super::AsEvent,
        {
            self.with_json(|doc| reader.parsed(doc))
        }
    }

    /// What reads an event in whichever form it is held in (a closure generic over the form).
    pub trait Reader: Sized {
        /// The answer.
        type Output;
        /// The answer from the event as it is held, or `None` to have [`general`](Self::general)
        /// read it as a document.
        fn direct<'d>(&mut self, event: impl DocValue<'d>) -> Option<Self::Output>;
        /// The answer from the event's document.
        fn general(self, doc: &Json<'_>) -> Result<Self::Output, Error>;
        /// The answer for a parsed event: [`direct`](Self::direct), else
        /// [`general`](Self::general).
        fn parsed(mut self, doc: &Json<'_>) -> Result<Self::Output, Error> {
            match self.direct(doc) {
                Some(answer) => Ok(answer),
                None => self.general(doc),
            }
        }
    }
}

/// Anything the pipeline reads one event from: JSON text (`&str`, `String`), a parsed
/// [`Json`], a `serde_json::Value`, a typed [`Event`], an intake
/// [`Message`](intake::Message), and with the `segment-crate` feature the `segment` crate's
/// `message::{Track, Identify, Page, Screen, Group, Alias, BatchMessage, Message}` (their
/// `type` supplied from the Rust type; a `Message::Batch` is refused as many events). Sealed:
/// only these.
///
/// Text is parsed once. A `serde_json::Value`, a typed [`Event`] and an intake message are read
/// in place (by the pipeline's direct plan, the triggers and the dispatcher), with no document
/// made of them first; only an event the direct plan leaves to the general path, or a mapping
/// beyond the plan, is turned into a [`Json`] document, once.
///
/// ```
/// use rokt_capi::Pipeline;
/// let pipeline = Pipeline::builder().build().unwrap();
/// let text = r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1",
///     "timestamp":"2026-01-01T00:00:00Z"}"#;
/// let value: serde_json::Value = serde_json::from_str(text).unwrap();
/// assert_eq!(pipeline.encode(text).unwrap(), pipeline.encode(&value).unwrap());
/// assert!(pipeline.encode("{not json").unwrap_err().is_bad_input());
/// ```
pub trait AsEvent: sealed::Sealed {
    /// Calls `f` with the event as a parsed document. Text that is not JSON is this event's
    /// error ([`Error::InvalidEvent`]), and `f` is not called.
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error>;
}

impl sealed::Sealed for Json<'_> {}
impl AsEvent for Json<'_> {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        f(self)
    }
}

impl sealed::Sealed for Value {
    fn read<R: sealed::Reader>(&self, mut reader: R) -> Result<R::Output, Error> {
        match reader.direct(View::Value(self)) {
            Some(answer) => Ok(answer),
            None => reader.general(&Json::from(self)),
        }
    }
}
impl AsEvent for Value {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        f(&Json::from(self))
    }
}

impl sealed::Sealed for Event {
    fn read<R: sealed::Reader>(&self, mut reader: R) -> Result<R::Output, Error> {
        view(self, |event| match reader.direct(event) {
            Some(answer) => Ok(answer),
            None => reader.general(&event.to_json()),
        })
    }
}
impl AsEvent for Event {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        f(&document(self))
    }
}

/// The event as the document [`Event::to_value`] gives, its strings borrowed from the event.
fn document(event: &Event) -> Json<'_> {
    view(event, |event| event.to_json())
}

/// Calls `f` with the event as the tree [`Event::to_value`] gives, read in place: its maps and
/// strings borrowed, its typed structs gathered into short member lists.
///
/// Building a `Value` allocates a string and a map entry for every member; this allocates one
/// list per typed struct. It follows the types' serde derives: the `type` tag first, then the
/// fields in declaration order (absent ones skipped), a flattened `extra` in the place of its
/// struct, and where a key comes twice (an `extra` member named like a field) the last value
/// in the first one's place, as a `Map` keeps it. `typed_events_read_as_their_value_does`
/// holds the two together.
pub(crate) fn view<'a, R>(event: &'a Event, f: impl for<'s> FnOnce(View<'s, 'a>) -> R) -> R {
    let common = event.common();
    // The nested structs first: their parents' members point at them.
    let (mut device, mut page, mut personas) = (Vec::new(), Vec::new(), Vec::new());
    let mut context = Vec::new();
    if let Some(c) = &common.context {
        if let Some(d) = &c.device {
            let mut m = Members::with_capacity(3 + d.extra.len());
            m.string("id", &d.id);
            m.string("advertisingId", &d.advertising_id);
            m.string("type", &d.device_type);
            device = m.extra(&d.extra);
        }
        if let Some(p) = &c.page {
            let mut m = Members::with_capacity(2 + p.extra.len());
            m.string("url", &p.url);
            m.string("search", &p.search);
            page = m.extra(&p.extra);
        }
        if let Some(p) = &c.personas {
            let mut m = Members::with_capacity(2 + p.extra.len());
            m.string("computation_key", &p.computation_key);
            m.string("computation_class", &p.computation_class);
            personas = m.extra(&p.extra);
        }
        let mut m = Members::with_capacity(6 + c.extra.len());
        m.string("ip", &c.ip);
        m.string("userAgent", &c.user_agent);
        m.object("traits", &c.traits);
        if c.device.is_some() {
            m.put("device", View::Object(&device));
        }
        if c.page.is_some() {
            m.put("page", View::Object(&page));
        }
        if c.personas.is_some() {
            m.put("personas", View::Object(&personas));
        }
        context = m.extra(&c.extra);
    }

    let mut top = Members::with_capacity(10 + common.extra.len());
    top.put("type", View::Str(event.kind().name()));
    match event {
        Event::Track(t) => {
            top.put("event", View::Str(&t.event));
            top.object("properties", &t.properties);
        }
        Event::Identify(i) => top.object("traits", &i.traits),
        Event::Page(Page {
            name, properties, ..
        })
        | Event::Screen(Screen {
            name, properties, ..
        }) => {
            top.string("name", name);
            top.object("properties", properties);
        }
        Event::Group(g) => {
            top.id("groupId", &g.group_id);
            top.object("traits", &g.traits);
        }
        Event::Alias(a) => top.id("previousId", &a.previous_id),
    }
    top.id("userId", &common.user_id);
    top.id("anonymousId", &common.anonymous_id);
    top.string("messageId", &common.message_id);
    if let Some(timestamp) = &common.timestamp {
        top.put("timestamp", View::Value(timestamp));
    }
    if common.context.is_some() {
        top.put("context", View::Object(&context));
    }
    top.object("integrations", &common.integrations);
    let top = top.extra(&common.extra);
    f(View::Object(&top))
}

/// An object's members as a `Map` collects them.
struct Members<'s, 'a>(Vec<(&'a str, View<'s, 'a>)>);

impl<'s, 'a> Members<'s, 'a> {
    fn with_capacity(members: usize) -> Self {
        Members(Vec::with_capacity(members))
    }

    /// A member, in the place of an earlier one with the same key if there is one.
    fn put(&mut self, key: &'a str, value: View<'s, 'a>) {
        match self.0.iter_mut().find(|(k, _)| crate::json::key_eq(k, key)) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    fn string(&mut self, key: &'a str, value: &'a Option<String>) {
        if let Some(s) = value {
            self.put(key, View::Str(s));
        }
    }

    fn id(&mut self, key: &'a str, value: &'a Option<Id>) {
        match value {
            Some(Id::String(s)) => self.put(key, View::Str(s)),
            Some(Id::Number(n)) => self.put(key, View::Number(n)),
            None => {}
        }
    }

    fn object(&mut self, key: &'a str, value: &'a Option<Object>) {
        if let Some(map) = value {
            self.put(key, View::Map(map));
        }
    }

    /// The members of a flattened `extra`, then the whole list.
    fn extra(mut self, extra: &'a Object) -> Vec<(&'a str, View<'s, 'a>)> {
        for (key, value) in extra {
            self.put(key, View::Value(value));
        }
        self.0
    }
}

impl sealed::Sealed for str {}
impl AsEvent for str {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        let doc = Json::parse(self).map_err(|e| Error::from(EventError::from_json(&e)))?;
        f(&doc)
    }
}

impl sealed::Sealed for String {}
impl AsEvent for String {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        self.as_str().with_json(f)
    }
}

impl<T: AsEvent + ?Sized> sealed::Sealed for &T {
    fn read<R: sealed::Reader>(&self, reader: R) -> Result<R::Output, Error> {
        (**self).read(reader)
    }
}
impl<T: AsEvent + ?Sized> AsEvent for &T {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        (**self).with_json(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The borrowed document of `event` is the one its `Value` gives, and the pipeline makes
    /// the same bytes from the event, its `Value` and its text.
    fn typed_agrees(event: &Event, pipelines: &[crate::Pipeline]) {
        let value = event.to_value();
        assert_eq!(document(event).to_value(), value, "{}", value);
        let text = value.to_string();
        for pipeline in pipelines {
            let from_text = pipeline.encode(text.as_str()).ok();
            assert_eq!(pipeline.encode(event).ok(), from_text, "{text}");
            assert_eq!(pipeline.encode(&value).ok(), from_text, "{text}");
        }
    }

    fn pipelines() -> Vec<crate::Pipeline> {
        let hash_all = json!({"hashingConfiguration": {"hashEmail": true,
            "hashFirstName": true, "hashLastName": true, "hashMobile": true,
            "hashBillingZipcode": true}});
        let mut all = Vec::new();
        for preset in [
            crate::mapping::Preset::Send,
            crate::mapping::Preset::SyncEngageAudience,
        ] {
            for direct in [true, false] {
                for overrides in [json!({}), hash_all.clone()] {
                    all.push(
                        crate::Pipeline::builder()
                            .preset(preset)
                            .overrides(overrides)
                            .direct_encoding(direct)
                            .build()
                            .unwrap(),
                    );
                }
            }
        }
        all
    }

    #[test]
    fn typed_events_read_as_their_value_does() {
        let pipelines = pipelines();
        for i in 0..200 {
            let event = Event::from_value(crate::synthetic::synthetic_event(i)).unwrap();
            typed_agrees(&event, &pipelines);
        }
        for text in [
            r#"{"type":"page","name":"Home","properties":{"a":1},"userId":7,"context":{"x":1}}"#,
            r#"{"type":"screen","anonymousId":"a","timestamp":1700000000000,"integrations":{}}"#,
            r#"{"type":"group","groupId":3.5,"traits":{"n":"g"},"messageId":"m","extra":[1]}"#,
            r#"{"type":"alias","previousId":"p","userId":"u","context":{"device":{"type":"ios",
                "id":"d","advertisingId":"ad","model":"m"},"personas":{"computation_key":"k",
                "computation_class":"audience","space":"s"},"page":{"search":"?rtid=r","t":1}}}"#,
        ] {
            typed_agrees(&Event::from_json(text).unwrap(), &pipelines);
        }
    }

    #[test]
    fn an_extra_member_named_like_a_field_reads_as_in_the_value() {
        let mut event =
            Event::from_json(r#"{"type":"track","event":"E","userId":"u","messageId":"m"}"#)
                .unwrap();
        let Event::Track(track) = &mut event else {
            panic!("a track call")
        };
        track.common.extra.insert("userId".into(), json!("shadow"));
        track.common.extra.insert("type".into(), json!("identify"));
        let mut context = Context {
            ip: Some("1.2.3.4".into()),
            ..Context::default()
        };
        context.extra.insert("ip".into(), json!("5.6.7.8"));
        track.common.context = Some(context);
        typed_agrees(&event, &pipelines());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn edited_typed_events_read_as_their_value_does(
            seed in 0usize..64,
            edits in prop::collection::vec((0usize..6, "[a-zA-Z]{1,8}", "[ -~]{0,8}"), 0..4),
        ) {
            let mut value = crate::synthetic::synthetic_event(seed);
            let places = ["", "/context", "/context/device", "/context/page",
                "/context/personas", "/properties"];
            for (at, key, text) in edits {
                if let Some(Value::Object(map)) = value.pointer_mut(places[at]) {
                    map.insert(key, Value::String(text));
                } else if let Some(Value::Object(map)) = value.pointer_mut("/context") {
                    map.insert(places[at].rsplit('/').next().unwrap_or("x").into(),
                        json!({ key: text }));
                }
            }
            if let Ok(event) = Event::from_value(value) {
                let value = event.to_value();
                prop_assert_eq!(document(&event).to_value(), value.clone());
                let text = value.to_string();
                for pipeline in pipelines() {
                    let from_text = pipeline.encode(text.as_str()).ok();
                    prop_assert_eq!(pipeline.encode(&event).ok(), from_text.clone());
                    prop_assert_eq!(pipeline.encode(&value).ok(), from_text);
                }
            }
        }
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"type":"identify","userId":12345,"traits":{"a":1},"context":{"ip":"1.2.3.4","device":{"type":"ios","model":"x"},"page":{"search":"?a","title":"t"},"library":{"name":"n"}},"sentAt":"s","version":2}"#;
        let event = Event::from_json(text).unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(event.to_value(), v);
    }

    #[test]
    fn errors_name_the_path_not_the_value() {
        let err = Event::from_json(
            r#"{"type":"track","event":"x","context":{"ip":["jane@example.com"]}}"#,
        )
        .unwrap_err();
        assert!(err.path.contains("context"), "{err:?}");
        assert!(!err.to_string().contains("jane"));
    }

    #[test]
    fn debug_shows_shape_not_personal_data() {
        let text = r#"{"type":"track","event":"Order Completed","userId":"u-jane","properties":{"email":"jane@example.com"},"context":{"ip":"203.0.113.9","userAgent":"UA-jane","traits":{"first_name":"Jane"},"device":{"id":"dev-jane","advertisingId":"ad-jane","type":"ios"},"page":{"url":"https://x/?email=jane","search":"?email=jane"},"personas":{"computation_key":"vip"}}}"#;
        let event = Event::from_json(text).unwrap();
        let Event::Track(track) = &event else {
            panic!("a track call")
        };
        let printed = format!("{event:?} {track:?} {track:#?}");
        assert!(
            !printed.contains("jane") && !printed.contains("203.0"),
            "{printed}"
        );
        assert!(printed.contains("Order Completed") && printed.contains("\"email\""));
    }

    #[test]
    fn check_event_wants_a_known_type() {
        assert!(check_event(&Json::parse(r#"{"type":"track"}"#).unwrap()).is_ok());
        assert_eq!(
            check_event(&Json::parse(r#"{"type":"nope"}"#).unwrap())
                .unwrap_err()
                .path,
            "$.type"
        );
        assert_eq!(
            check_event(&Json::parse(r#"[1]"#).unwrap())
                .unwrap_err()
                .path,
            "$"
        );
    }
}
