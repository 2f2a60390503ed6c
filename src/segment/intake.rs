//! Segment-compatible intake: turns the body of a request made to Segment's HTTP Tracking API
//! (by Segment's own SDKs, or by hand) into events, as Segment's servers would.
//!
//! Pure: no I/O and no clock. The caller passes the time the request was received, and the
//! source of generated message ids is pluggable ([`MessageIds::seeded`] for tests).
//!
//! What it does, following Segment's public HTTP Tracking API documentation:
//!
//! - **Calls.** A batch (`/v1/batch`, `/v1/import`, the browser's `/v1/b`) is an envelope
//!   `{"batch": [...], "sentAt", "context", "integrations", "writeKey"}`; a single call
//!   (`/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`, or the
//!   browser's `/v1/t`, `/v1/i`, …) is one message whose `type` comes from the path.
//! - **Merging.** The envelope's `context` and `integrations` are merged into each message,
//!   key by key; the message's own values win.
//! - **Filling.** A message without a `messageId` gets one. The write key (`writeKey`, in the
//!   envelope or in a message) is taken out of the events and returned on its own.
//! - **Time.** `receivedAt` is the receive time; the client's `timestamp` is kept as
//!   `originalTimestamp`, and `timestamp` is corrected for the client's clock as Segment does:
//!   `timestamp = receivedAt − (sentAt − originalTimestamp)`. Without `sentAt` the client's time
//!   is kept; without a (readable) client time, `timestamp` is the receive time. Times are
//!   written in ISO 8601 with milliseconds and `Z`.
//! - **Limits.** A request body over [`MAX_REQUEST_BYTES`], a call or any event of a batch
//!   over [`MAX_EVENT_BYTES`], a batch of more than [`MAX_BATCH_EVENTS`] events, or a body
//!   that is not a JSON object fails as a whole ([`RequestError`]: Segment answers `400`).
//!   Anything else wrong with one message of a batch (no `userId` or `anonymousId`, a track
//!   call without `event`, a bad `type`, not an object) is that message's own
//!   [`MessageError`]; the others go on (Segment answers `200`).
//!
//! Errors name the message's position, the field and the rule, never a value: events carry
//! personal data and the write key is a secret.
//!
//! ```
//! use rokt_capi::segment::intake::{Call, Intake, MessageIds};
//! use rokt_capi::subscription::Destination;
//!
//! let body = br#"{"writeKey":"wk-1","sentAt":"2026-03-04T05:00:10.000Z",
//!   "context":{"library":{"name":"analytics-python"}},
//!   "batch":[
//!     {"type":"track","event":"Order Completed","userId":"u-1",
//!      "timestamp":"2026-03-04T05:00:00.000Z","properties":{"order_id":"o-1","revenue":10}},
//!     {"type":"track","userId":"u-2"}
//!   ]}"#;
//! let received_at = "2026-03-04T05:00:30Z".parse().unwrap();
//! let mut intake = Intake::new().message_ids(MessageIds::seeded(7));
//! let unpacked = intake.unpack(Call::from_path("/v1/batch").unwrap(), body, received_at)?;
//!
//! assert!(unpacked.write_key.as_ref().is_some_and(|k| k.matches("wk-1")));
//! let (events, errors) = unpacked.split();
//! assert_eq!(errors.len(), 1); // a track call without `event`
//! assert_eq!(errors[0].index(), 1);
//!
//! let event = events[0].value();
//! // The client's clock was 20 s behind: corrected by `receivedAt − (sentAt − timestamp)`.
//! assert_eq!(event["timestamp"], "2026-03-04T05:00:20.000Z");
//! assert_eq!(event["originalTimestamp"], "2026-03-04T05:00:00.000Z");
//! assert_eq!(event["receivedAt"], "2026-03-04T05:00:30.000Z");
//! assert_eq!(event["context"]["library"]["name"], "analytics-python");
//! assert!(event["messageId"].is_string() && event.get("writeKey").is_none());
//!
//! // Each event goes on to routing (or a dispatcher) as it is.
//! let destination = Destination::presets();
//! let routed = destination.route(&events[0]);
//! assert!(routed[0].batch.is_ok());
//! # Ok::<(), rokt_capi::segment::intake::RequestError>(())
//! ```

use super::{AsEvent, EventType, check_event, check_shape};
use crate::Json;
use crate::error::EventError;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The largest single call, and the largest event in a batch, in bytes of JSON (32 KB).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;

/// The largest request body, in bytes (500 KB).
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// The most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 2_500;

/// What a request to the tracking API is, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `/v1/batch`, `/v1/import` or `/v1/b`: an envelope with a `batch` of messages.
    Batch,
    /// `/v1/track`, `/v1/identify`, … or `/v1/t`, `/v1/i`, …: one message of this type.
    Single(EventType),
}

impl Call {
    /// The call a path names: its last two segments must be `v1` and a call name (so
    /// `/v1/batch` and `/any/prefix/v1/batch` both name a batch); a trailing `/` and a query
    /// string are ignored. `None` for anything else.
    ///
    /// ```
    /// use rokt_capi::segment::{EventType, intake::Call};
    /// assert_eq!(Call::from_path("/v1/import"), Some(Call::Batch));
    /// assert_eq!(Call::from_path("/v1/t"), Some(Call::Single(EventType::Track)));
    /// assert_eq!(Call::from_path("/v2/track"), None);
    /// ```
    pub fn from_path(path: &str) -> Option<Call> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.strip_suffix('/').unwrap_or(path);
        let (rest, name) = path.rsplit_once('/')?;
        if !(rest == "/v1" || rest.ends_with("/v1") || rest == "v1") {
            return None;
        }
        Some(match name {
            "batch" | "import" | "b" => Call::Batch,
            "track" | "t" => Call::Single(EventType::Track),
            "identify" | "i" => Call::Single(EventType::Identify),
            "page" | "p" => Call::Single(EventType::Page),
            "screen" | "s" => Call::Single(EventType::Screen),
            "group" | "g" => Call::Single(EventType::Group),
            "alias" | "a" => Call::Single(EventType::Alias),
            _ => return None,
        })
    }
}

/// Where generated message ids come from: random version-4 UUIDs, from a seed when tests need
/// the same ids every run.
pub struct MessageIds {
    rng: fastrand::Rng,
}

impl MessageIds {
    /// Random ids.
    pub fn random() -> MessageIds {
        MessageIds {
            rng: fastrand::Rng::new(),
        }
    }

    /// The same sequence of ids for the same seed.
    pub fn seeded(seed: u64) -> MessageIds {
        MessageIds {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The next id: a version-4 UUID in lower-case hex.
    pub fn next_id(&mut self) -> String {
        let mut b = self.rng.u128(..).to_be_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl Default for MessageIds {
    fn default() -> Self {
        MessageIds::random()
    }
}

impl std::fmt::Debug for MessageIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageIds")
    }
}

/// Unpacks tracking API requests. One per task or request handler: it holds the message id
/// source.
#[derive(Debug, Default)]
pub struct Intake {
    ids: MessageIds,
}

/// A write key, as a request carried it. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteKey(String);

impl WriteKey {
    /// A write key (e.g. one of a service's configured keys).
    pub fn new(key: impl Into<String>) -> WriteKey {
        WriteKey(key.into())
    }

    /// Whether this is `key`, compared in time independent of where they first differ.
    pub fn matches(&self, key: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), key.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKey(<redacted>)")
    }
}

/// One accepted message, completed: an event for [`Destination::route`], a
/// [`Pipeline`](crate::Pipeline) or a [`Dispatcher`](crate::client::Dispatcher).
///
/// [`Destination::route`]: crate::subscription::Destination::route
#[derive(Clone, PartialEq)]
pub struct Message {
    index: usize,
    event: Value,
}

impl Message {
    /// Its position in the request (0 for a single call).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The event as JSON.
    pub fn value(&self) -> &Value {
        &self.event
    }

    /// The event as JSON, owned.
    pub fn into_value(self) -> Value {
        self.event
    }

    /// Its `messageId` (always present).
    pub fn message_id(&self) -> &str {
        self.event
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The call type.
    pub fn kind(&self) -> Option<EventType> {
        self.event
            .get("type")
            .and_then(Value::as_str)
            .and_then(EventType::from_name)
    }
}

impl std::fmt::Debug for Message {
    /// The position, call type and message id only: events carry personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("index", &self.index)
            .field("kind", &self.kind())
            .field("message_id", &self.message_id())
            .finish()
    }
}

impl super::sealed::Sealed for Message {
    fn read<R: super::sealed::Reader>(&self, reader: R) -> Result<R::Output, crate::Error> {
        self.event.read(reader)
    }
}
impl AsEvent for Message {
    fn with_json<R>(
        &self,
        f: impl FnOnce(&Json<'_>) -> Result<R, crate::Error>,
    ) -> Result<R, crate::Error> {
        f(&Json::from(&self.event))
    }
}

/// What one request held.
#[derive(Debug)]
pub struct Unpacked {
    /// The write key from the body (the envelope's, else the first message's), if any.
    pub write_key: Option<WriteKey>,
    /// Each message in order: the completed event, or why it was refused.
    pub messages: Vec<Result<Message, MessageError>>,
}

impl Unpacked {
    /// The accepted events and the refusals, apart.
    pub fn split(self) -> (Vec<Message>, Vec<MessageError>) {
        let mut events = Vec::with_capacity(self.messages.len());
        let mut errors = Vec::new();
        for m in self.messages {
            match m {
                Ok(e) => events.push(e),
                Err(e) => errors.push(e),
            }
        }
        (events, errors)
    }
}

/// Why a whole request was refused (Segment answers `400`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not JSON (or not UTF-8); the message gives the position, never the text.
    #[error("the body is not JSON: {0}")]
    NotJson(EventError),
    /// The body is JSON but not an object.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// A batch's `batch` member is missing or not an array.
    #[error("`batch` must be an array of messages")]
    NoBatch,
    /// The body is over the size limit.
    #[error("the body is {bytes} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit that applies ([`MAX_EVENT_BYTES`] for a single call).
        limit: usize,
    },
    /// One event of a batch is over [`MAX_EVENT_BYTES`].
    #[error("message {index} is {bytes} bytes, over the limit of {limit} bytes per event")]
    EventTooLarge {
        /// Its position in the batch.
        index: usize,
        /// Its size as JSON.
        bytes: usize,
        /// [`MAX_EVENT_BYTES`].
        limit: usize,
    },
    /// A batch carries too many messages.
    #[error("the batch has {count} messages, over the limit of {limit}")]
    TooManyEvents {
        /// How many it carries.
        count: usize,
        /// [`MAX_BATCH_EVENTS`].
        limit: usize,
    },
}

impl RequestError {
    /// A short code for the answer's `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::NotJson(_) => "invalid_json",
            RequestError::NotAnObject | RequestError::NoBatch => "invalid_request",
            RequestError::TooLarge { .. } | RequestError::EventTooLarge { .. } => {
                "payload_too_large"
            }
            RequestError::TooManyEvents { .. } => "too_many_events",
        }
    }
}

/// Why one message of a request was refused; the others go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The message is not a JSON object.
    #[error("message {index}: a message must be a JSON object")]
    NotAnObject {
        /// Its position in the request.
        index: usize,
    },
    /// Neither `userId` nor `anonymousId` is set (a non-empty string or a number).
    #[error("message {index}: `userId` or `anonymousId` is required")]
    NoIdentity {
        /// Its position in the request.
        index: usize,
    },
    /// The message is not a valid Segment call (a bad or missing `type`, a track call without
    /// `event`, a member of the wrong JSON type); the error names the path and the rule.
    #[error("message {index}: {error} (at {})", error.path)]
    Invalid {
        /// Its position in the request.
        index: usize,
        /// What is wrong, and where.
        error: EventError,
    },
}

impl MessageError {
    /// The message's position in the request.
    pub fn index(&self) -> usize {
        match self {
            MessageError::NotAnObject { index }
            | MessageError::NoIdentity { index }
            | MessageError::Invalid { index, .. } => *index,
        }
    }

    /// A short code for logs and counters.
    pub fn code(&self) -> &'static str {
        match self {
            MessageError::NotAnObject { .. } => "not_an_object",
            MessageError::NoIdentity { .. } => "missing_identity",
            MessageError::Invalid { .. } => "invalid_event",
        }
    }
}

/// What the envelope gives every message of a batch.
#[derive(Default)]
struct Shared {
    sent_at: Option<Value>,
    context: Option<Map<String, Value>>,
    integrations: Option<Map<String, Value>>,
}

impl Intake {
    /// An intake with random message ids.
    pub fn new() -> Intake {
        Intake::default()
    }

    /// Uses `ids` for the message ids it fills in.
    pub fn message_ids(mut self, ids: MessageIds) -> Intake {
        self.ids = ids;
        self
    }

    /// Unpacks one request body (already decompressed) received at `received_at`.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] when the request as a whole cannot be taken; each message's own
    /// problem is in [`Unpacked::messages`].
    pub fn unpack(
        &mut self,
        call: Call,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Unpacked, RequestError> {
        let limit = match call {
            Call::Batch => MAX_REQUEST_BYTES,
            Call::Single(_) => MAX_EVENT_BYTES,
        };
        if body.len() > limit {
            return Err(RequestError::TooLarge {
                bytes: body.len(),
                limit,
            });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| RequestError::NotJson(EventError::from_json(&e)))?;
        let Value::Object(mut object) = value else {
            return Err(RequestError::NotAnObject);
        };
        let mut write_key = take_write_key(&mut object);
        let received = received_at.timestamp_millis();
        let messages = match call {
            Call::Single(kind) => {
                object.insert("type".into(), Value::String(kind.name().into()));
                vec![self.complete(0, object, &Shared::default(), received)]
            }
            Call::Batch => {
                let Some(Value::Array(batch)) = object.remove("batch") else {
                    return Err(RequestError::NoBatch);
                };
                if batch.len() > MAX_BATCH_EVENTS {
                    return Err(RequestError::TooManyEvents {
                        count: batch.len(),
                        limit: MAX_BATCH_EVENTS,
                    });
                }
                // Segment refuses the whole request when one event is over the limit.
                for (index, message) in batch.iter().enumerate() {
                    let bytes = json_len(message);
                    if bytes > MAX_EVENT_BYTES {
                        return Err(RequestError::EventTooLarge {
                            index,
                            bytes,
                            limit: MAX_EVENT_BYTES,
                        });
                    }
                }
                let shared = Shared {
                    sent_at: object.remove("sentAt").filter(|v| !v.is_null()),
                    context: take_object(&mut object, "context"),
                    integrations: take_object(&mut object, "integrations"),
                };
                batch
                    .into_iter()
                    .enumerate()
                    .map(|(index, message)| {
                        let Value::Object(mut message) = message else {
                            return Err(MessageError::NotAnObject { index });
                        };
                        let key = take_write_key(&mut message);
                        if write_key.is_none() {
                            write_key = key;
                        }
                        self.complete(index, message, &shared, received)
                    })
                    .collect()
            }
        };
        Ok(Unpacked {
            write_key,
            messages,
        })
    }

    /// Merges, fills and checks one message.
    fn complete(
        &mut self,
        index: usize,
        mut m: Map<String, Value>,
        shared: &Shared,
        received: i64,
    ) -> Result<Message, MessageError> {
        merge_into(&mut m, "context", shared.context.as_ref());
        merge_into(&mut m, "integrations", shared.integrations.as_ref());
        match m.get("messageId") {
            Some(Value::String(id)) if !id.is_empty() => {}
            // Some hand-written calls send a number; the id is text everywhere downstream.
            Some(Value::Number(n)) => {
                let text = n.to_string();
                m.insert("messageId".into(), Value::String(text));
            }
            _ => {
                m.insert("messageId".into(), Value::String(self.ids.next_id()));
            }
        }
        set_times(&mut m, shared.sent_at.as_ref(), received);
        let event = Value::Object(m);
        // The checks `Event::from_value` makes, on the value in place.
        if let Err(error) = check_event(&Json::from(&event)).and_then(|_| check_shape(&event)) {
            return Err(MessageError::Invalid { index, error });
        }
        if !has_identity(&event) {
            return Err(MessageError::NoIdentity { index });
        }
        Ok(Message { index, event })
    }
}

fn take_write_key(object: &mut Map<String, Value>) -> Option<WriteKey> {
    match object.remove("writeKey") {
        Some(Value::String(k)) if !k.is_empty() => Some(WriteKey(k)),
        _ => None,
    }
}

fn take_object(object: &mut Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    match object.remove(key) {
        Some(Value::Object(o)) => Some(o),
        _ => None,
    }
}

/// The size of a message as compact JSON.
fn json_len(message: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Map` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, message);
    count.0
}

/// Adds each of `shared`'s keys the message's own `key` object lacks. A message whose member
/// is missing or null takes the shared object whole; one whose member is not an object keeps
/// it (validation names it).
fn merge_into(m: &mut Map<String, Value>, key: &str, shared: Option<&Map<String, Value>>) {
    let Some(shared) = shared else { return };
    match m.get_mut(key) {
        Some(Value::Object(own)) => {
            for (k, v) in shared {
                if !own.contains_key(k) {
                    own.insert(k.clone(), v.clone());
                }
            }
        }
        None | Some(Value::Null) => {
            m.insert(key.into(), Value::Object(shared.clone()));
        }
        Some(_) => {}
    }
}

/// A client time in Unix milliseconds: an ISO 8601 (or other `Date.parse`-readable) string,
/// or a number of milliseconds.
fn millis(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => crate::js::date::parse(s),
        Value::Number(n) => n.as_f64().and_then(crate::js::date::from_number),
        _ => None,
    }
}

/// ISO 8601 in UTC with milliseconds, as Segment writes times.
fn iso(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Sets `receivedAt`, `sentAt`, `originalTimestamp` and the corrected `timestamp`.
fn set_times(m: &mut Map<String, Value>, envelope_sent_at: Option<&Value>, received: i64) {
    let received_iso = iso(received).unwrap_or_default();
    let client = m
        .get("timestamp")
        .filter(|v| !v.is_null())
        .or_else(|| m.get("originalTimestamp").filter(|v| !v.is_null()))
        .cloned();
    if m.get("sentAt").is_none_or(Value::is_null) {
        if let Some(sent_at) = envelope_sent_at {
            m.insert("sentAt".into(), sent_at.clone());
        }
    }
    let sent = m.get("sentAt").and_then(millis);
    let timestamp = match client.as_ref().and_then(|c| millis(c).map(|ms| (c, ms))) {
        Some((raw, original)) => {
            m.insert("originalTimestamp".into(), raw.clone());
            let corrected = match sent {
                Some(sent) => sent
                    .checked_sub(original)
                    .and_then(|skew| received.checked_sub(skew)),
                None => Some(original),
            };
            corrected
                .and_then(iso)
                .unwrap_or_else(|| received_iso.clone())
        }
        None => {
            if let Some(raw) = client {
                // Unreadable: kept as sent, for the record; the receive time stands in.
                m.insert("originalTimestamp".into(), raw);
            }
            received_iso.clone()
        }
    };
    m.insert("timestamp".into(), Value::String(timestamp));
    m.insert("receivedAt".into(), Value::String(received_iso));
}

fn has_identity(event: &Value) -> bool {
    let set = |key: &str| match event.get(key) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    };
    set("userId") || set("anonymousId")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn intake() -> Intake {
        Intake::new().message_ids(MessageIds::seeded(1))
    }

    fn one(call: Call, body: &Value) -> Result<Message, MessageError> {
        let now = at("2026-03-04T05:06:07.891Z");
        let mut u = intake()
            .unpack(call, body.to_string().as_bytes(), now)
            .unwrap();
        assert_eq!(u.messages.len(), 1);
        u.messages.remove(0)
    }

    #[test]
    fn every_documented_path_names_its_call() {
        use EventType::*;
        let cases = [
            ("/v1/batch", Call::Batch),
            ("/v1/import", Call::Batch),
            ("/v1/b", Call::Batch),
            ("/v1/batch/", Call::Batch),
            ("/prefix/v1/batch?x=1", Call::Batch),
            ("/v1/track", Call::Single(Track)),
            ("/v1/t", Call::Single(Track)),
            ("/v1/identify", Call::Single(Identify)),
            ("/v1/i", Call::Single(Identify)),
            ("/v1/page", Call::Single(Page)),
            ("/v1/p", Call::Single(Page)),
            ("/v1/screen", Call::Single(Screen)),
            ("/v1/s", Call::Single(Screen)),
            ("/v1/group", Call::Single(Group)),
            ("/v1/g", Call::Single(Group)),
            ("/v1/alias", Call::Single(Alias)),
            ("/v1/a", Call::Single(Alias)),
        ];
        for (path, call) in cases {
            assert_eq!(Call::from_path(path), Some(call), "{path}");
        }
        for path in [
            "/segment",
            "/v2/track",
            "/v1",
            "/v1/",
            "/v1/nope",
            "/xv1/track",
        ] {
            assert_eq!(Call::from_path(path), None, "{path}");
        }
    }

    #[test]
    fn a_single_call_takes_its_type_from_the_path_and_gets_an_id_and_times() {
        let m = one(
            Call::Single(EventType::Track),
            &json!({"event": "Order Completed", "userId": "u-1"}),
        )
        .unwrap();
        let v = m.value();
        assert_eq!(v["type"], "track");
        assert_eq!(m.kind(), Some(EventType::Track));
        assert_eq!(v["messageId"].as_str().unwrap().len(), 36);
        assert_eq!(v["timestamp"], "2026-03-04T05:06:07.891Z");
        assert_eq!(v["receivedAt"], "2026-03-04T05:06:07.891Z");
        assert!(v.get("originalTimestamp").is_none());
    }

    #[test]
    fn each_call_type_name_reads_back() {
        use EventType::*;
        for t in [Track, Identify, Page, Screen, Group, Alias] {
            assert_eq!(EventType::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn the_path_decides_the_type_of_a_single_call() {
        let m = one(
            Call::Single(EventType::Identify),
            &json!({"type": "track", "userId": "u-1"}),
        )
        .unwrap();
        assert_eq!(m.value()["type"], "identify");
    }

    #[test]
    fn seeded_ids_repeat_and_differ_from_each_other() {
        let a: Vec<String> = {
            let mut ids = MessageIds::seeded(9);
            (0..3).map(|_| ids.next_id()).collect()
        };
        let mut ids = MessageIds::seeded(9);
        assert_eq!(a, (0..3).map(|_| ids.next_id()).collect::<Vec<_>>());
        assert_ne!(a[0], a[1]);
        assert_eq!(&a[0][14..15], "4");
        assert!(matches!(&a[0][19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_given_message_id_is_kept() {
        let m = one(
            Call::Single(EventType::Page),
            &json!({"messageId": "mine", "anonymousId": "a"}),
        )
        .unwrap();
        assert_eq!(m.message_id(), "mine");
        let m = one(
            Call::Single(EventType::Page),
            &json!({"messageId": 42, "anonymousId": "a"}),
        )
        .unwrap();
        assert_eq!(m.message_id(), "42");
    }

    #[test]
    fn a_clock_forty_days_behind_is_corrected_by_the_sent_at_skew() {
        let body = json!({
            "sentAt": "2026-01-23T05:06:00.000Z",
            "batch": [{"type": "track", "event": "E", "userId": "u",
                       "timestamp": "2026-01-23T05:05:00.000Z"}]
        });
        let now = at("2026-03-04T05:06:07.891Z");
        let u = intake()
            .unpack(Call::Batch, body.to_string().as_bytes(), now)
            .unwrap();
        let v = u.messages[0].as_ref().unwrap().value().clone();
        assert_eq!(v["timestamp"], "2026-03-04T05:05:07.891Z");
        assert_eq!(v["originalTimestamp"], "2026-01-23T05:05:00.000Z");
        assert_eq!(v["sentAt"], "2026-01-23T05:06:00.000Z");
        assert_eq!(v["receivedAt"], "2026-03-04T05:06:07.891Z");
    }

    #[test]
    fn a_message_sent_at_wins_over_the_envelope() {
        let body = json!({
            "sentAt": "2020-01-01T00:00:00Z",
            "batch": [{"type": "track", "event": "E", "userId": "u",
                       "timestamp": "2026-03-04T05:06:00.000Z",
                       "sentAt": "2026-03-04T05:06:07.000Z"}]
        });
        let u = intake()
            .unpack(
                Call::Batch,
                body.to_string().as_bytes(),
                at("2026-03-04T05:06:07.000Z"),
            )
            .unwrap();
        let v = u.messages[0].as_ref().unwrap().value();
        assert_eq!(v["timestamp"], "2026-03-04T05:06:00.000Z");
    }

    #[test]
    fn without_sent_at_the_client_time_stands_and_unreadable_times_take_the_receive_time() {
        let m = one(
            Call::Single(EventType::Track),
            &json!({"event": "E", "userId": "u", "timestamp": "2025-01-02T03:04:05+01:00"}),
        )
        .unwrap();
        assert_eq!(m.value()["timestamp"], "2025-01-02T02:04:05.000Z");
        assert_eq!(m.value()["originalTimestamp"], "2025-01-02T03:04:05+01:00");
        let m = one(
            Call::Single(EventType::Track),
            &json!({"event": "E", "userId": "u", "timestamp": "not a time"}),
        )
        .unwrap();
        assert_eq!(m.value()["timestamp"], "2026-03-04T05:06:07.891Z");
        assert_eq!(m.value()["originalTimestamp"], "not a time");
    }

    #[test]
    fn the_envelope_context_and_integrations_merge_and_the_message_wins() {
        let body = json!({
            "context": {"library": {"name": "lib"}, "ip": "198.51.100.1"},
            "integrations": {"All": false, "Rokt Conversions API": true},
            "batch": [
                {"type": "identify", "userId": "u", "context": {"ip": "203.0.113.9"},
                 "integrations": {"All": true}},
                {"type": "identify", "userId": "u"}
            ]
        });
        let u = intake()
            .unpack(
                Call::Batch,
                body.to_string().as_bytes(),
                at("2026-03-04T05:06:07Z"),
            )
            .unwrap();
        let (events, errors) = u.split();
        assert!(errors.is_empty());
        let a = events[0].value();
        assert_eq!(a["context"]["ip"], "203.0.113.9");
        assert_eq!(a["context"]["library"]["name"], "lib");
        assert_eq!(a["integrations"]["All"], true);
        assert_eq!(a["integrations"]["Rokt Conversions API"], true);
        let b = events[1].value();
        assert_eq!(b["context"]["ip"], "198.51.100.1");
        assert_eq!(b["integrations"]["All"], false);
    }

    #[test]
    fn the_write_key_is_returned_apart_and_never_left_in_an_event() {
        let body = json!({"batch": [{"type": "track", "event": "E", "userId": "u",
                                     "writeKey": "wk-secret"}]});
        let u = intake()
            .unpack(
                Call::Batch,
                body.to_string().as_bytes(),
                at("2026-03-04T05:06:07Z"),
            )
            .unwrap();
        let key = u.write_key.clone().unwrap();
        assert!(key.matches("wk-secret") && !key.matches("wk-secreT") && !key.matches("wk"));
        assert_eq!(key.expose(), "wk-secret");
        assert!(!format!("{u:?}").contains("wk-secret"));
        let v = u.messages[0].as_ref().unwrap().value();
        assert!(v.get("writeKey").is_none());

        let m = intake()
            .unpack(
                Call::Single(EventType::Page),
                br#"{"writeKey":"wk-2","anonymousId":"a"}"#,
                at("2026-03-04T05:06:07Z"),
            )
            .unwrap();
        assert!(m.write_key.unwrap().matches("wk-2"));
    }

    #[test]
    fn each_bad_message_gets_its_own_error_and_the_rest_go_on() {
        let body = json!({"batch": [
            {"type": "track", "event": "E", "userId": "u"},
            "not an object",
            {"type": "track", "event": "E"},
            {"type": "track", "userId": "u"},
            {"type": "nope", "userId": "u"},
            {"event": "E", "userId": "u"},
            {"type": "identify", "anonymousId": 7}
        ]});
        let u = intake()
            .unpack(
                Call::Batch,
                body.to_string().as_bytes(),
                at("2026-03-04T05:06:07Z"),
            )
            .unwrap();
        let codes: Vec<&str> = u
            .messages
            .iter()
            .map(|m| m.as_ref().map_or_else(MessageError::code, |_| "ok"))
            .collect();
        assert_eq!(
            codes,
            [
                "ok",
                "not_an_object",
                "missing_identity",
                "invalid_event",
                "invalid_event",
                "invalid_event",
                "ok"
            ]
        );
        for (i, m) in u.messages.iter().enumerate() {
            if let Err(e) = m {
                assert_eq!(e.index(), i);
            }
        }
        let Err(MessageError::Invalid { error, .. }) = &u.messages[3] else {
            panic!()
        };
        assert_eq!(error.path, "$.event");
    }

    #[test]
    fn whole_request_limits_and_unreadable_bodies_fail_the_request() {
        let now = at("2026-03-04T05:06:07Z");
        let mut i = intake();
        let big = format!(
            r#"{{"event":"E","userId":"u","properties":{{"b":"{}"}}}}"#,
            "x".repeat(40 * 1024)
        );
        assert_eq!(
            i.unpack(Call::Single(EventType::Track), big.as_bytes(), now)
                .unwrap_err()
                .code(),
            "payload_too_large"
        );
        let big = json!({"type": "track", "event": "E", "userId": "u",
                         "properties": {"blob": "x".repeat(MAX_EVENT_BYTES)}});
        let small = json!({"type": "track", "event": "E", "userId": "u"});
        let batch = json!({"batch": [small, big]}).to_string();
        assert!(matches!(
            i.unpack(Call::Batch, batch.as_bytes(), now),
            Err(RequestError::EventTooLarge {
                index: 1,
                limit: MAX_EVENT_BYTES,
                ..
            })
        ));
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            i.unpack(Call::Batch, &huge, now),
            Err(RequestError::TooLarge {
                limit: MAX_REQUEST_BYTES,
                ..
            })
        ));
        let many = json!({"batch": vec![json!({}); MAX_BATCH_EVENTS + 1]}).to_string();
        assert_eq!(
            i.unpack(Call::Batch, many.as_bytes(), now)
                .unwrap_err()
                .code(),
            "too_many_events"
        );
        let e = i
            .unpack(Call::Batch, b"{\"batch\": [jane@example.com", now)
            .unwrap_err();
        assert_eq!(e.code(), "invalid_json");
        assert!(!e.to_string().contains("jane") && !format!("{e:?}").contains("jane"));
        assert_eq!(
            i.unpack(Call::Batch, b"[1]", now).unwrap_err(),
            RequestError::NotAnObject
        );
        assert_eq!(
            i.unpack(Call::Batch, b"{\"batch\":{}}", now).unwrap_err(),
            RequestError::NoBatch
        );
        assert!(i.unpack(Call::Batch, &[0xff, 0xfe], now).is_err());
    }

    #[test]
    fn errors_and_debug_never_show_personal_data_or_the_write_key() {
        let body = json!({"writeKey": "wk-jane", "batch": [
            {"type": "track", "event": "E", "userId": "jane@example.com",
             "context": {"traits": {"email": "jane@example.com", "phone": "+15550100"},
                         "ip": "203.0.113.9"}},
            {"type": "track", "event": "E", "context": {"traits": {"email": "jane@example.com"}}},
            {"type": "track", "event": "E", "userId": "jane", "context": ["jane@example.com"]},
            {"type": 5, "userId": "jane"}
        ]});
        let u = intake()
            .unpack(
                Call::Batch,
                body.to_string().as_bytes(),
                at("2026-03-04T05:06:07Z"),
            )
            .unwrap();
        let mut printed = format!("{u:?} {u:#?}");
        for m in &u.messages {
            match m {
                Ok(m) => printed.push_str(&format!("{m:?}")),
                Err(e) => printed.push_str(&format!("{e} {e:?}")),
            }
        }
        for secret in ["jane", "wk-", "15550100", "203.0"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }

    #[test]
    fn accepted_messages_are_events_routing_takes() {
        let m = one(
            Call::Single(EventType::Track),
            &json!({"event": "Order Completed", "userId": "u",
                    "properties": {"order_id": "o-1", "revenue": 5}}),
        )
        .unwrap();
        let destination = crate::subscription::Destination::presets();
        let routed = destination.route(&m);
        assert_eq!(routed.len(), 1);
        let batch = routed.into_iter().next().unwrap().batch.unwrap();
        assert_eq!(batch.source_message_id(), Some(m.message_id()));
    }
}
