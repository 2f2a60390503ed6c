//! The `segment` crate's message types as events (the `segment-crate` feature): a
//! [`Track`], [`Identify`], [`Page`], [`Screen`], [`Group`] or [`Alias`] built with that crate
//! can be passed wherever an event is taken.
//!
//! Those types carry no `type` member of their own (the `segment` crate adds it when it
//! batches), so it is supplied here from the type; a `type` in a message's `extra` is
//! replaced, and a `userId` or `anonymousId` there yields to the message's `user`. They have no `messageId` field either: put one in `extra`, as Segment's
//! destination requires it. A [`BatchMessage`] carries its `type` already; a
//! [`Message::Batch`] holds many events and is refused as one ([`Error::InvalidEvent`]):
//! pass its messages one by one.

use super::AsEvent;
use super::sealed::Sealed;
use crate::Json;
use crate::error::{Error, EventError};
use segment_crate::message::{Alias, BatchMessage, Group, Identify, Message, Page, Screen, Track};
use serde::Serialize;
use serde_json::{Map, Value};

/// A message written with its `type` first, then its own members.
#[derive(Serialize)]
struct Typed<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    message: &'a T,
}

/// Writes `message` as JSON text and reads it as one event.
fn with_text<T: Serialize + ?Sized, R>(
    message: &T,
    f: impl FnOnce(&Json<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    let text = serde_json::to_string(message).map_err(|_| {
        // The one way to fail: a timestamp outside what RFC 3339 can write (years 0–9999).
        Error::from(EventError::new(
            "$.timestamp",
            "the message could not be written as JSON: a timestamp outside years 0 to 9999",
        ))
    })?;
    text.as_str().with_json(f)
}

/// Members that `extra` may hold but the message writes itself: `type`, and the ids of its
/// `user` (a message *deserialized* by the `segment` crate also keeps those in `extra`, since
/// both are flattened), which would otherwise be written twice.
const WRITTEN_BY_THE_MESSAGE: [&str; 3] = ["type", "userId", "anonymousId"];

/// Writes a message of type `kind`, leaving out what its `extra` may repeat.
fn with_typed<T: Serialize + Clone, R>(
    kind: &'static str,
    message: &T,
    extra: impl Fn(&mut T) -> &mut Map<String, Value>,
    f: impl FnOnce(&Json<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut copy = message.clone();
    let repeats = extra(&mut copy);
    let before = repeats.len();
    repeats.retain(|key, _| !WRITTEN_BY_THE_MESSAGE.contains(&key.as_str()));
    if repeats.len() == before {
        return with_text(&Typed { kind, message }, f);
    }
    let message = &copy;
    with_text(&Typed { kind, message }, f)
}

macro_rules! typed_event {
    ($($ty:ident => $kind:literal),* $(,)?) => {$(
        impl Sealed for $ty {}
        #[cfg_attr(docsrs, doc(cfg(feature = "segment-crate")))]
        impl AsEvent for $ty {
            fn with_json<R>(
                &self,
                f: impl FnOnce(&Json<'_>) -> Result<R, Error>,
            ) -> Result<R, Error> {
                with_typed($kind, self, |m| &mut m.extra, f)
            }
        }
    )*};
}

typed_event! {
    Track => "track",
    Identify => "identify",
    Page => "page",
    Screen => "screen",
    Group => "group",
    Alias => "alias",
}

impl Sealed for BatchMessage {}
#[cfg_attr(docsrs, doc(cfg(feature = "segment-crate")))]
impl AsEvent for BatchMessage {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        match self {
            BatchMessage::Track(m) => m.with_json(f),
            BatchMessage::Identify(m) => m.with_json(f),
            BatchMessage::Page(m) => m.with_json(f),
            BatchMessage::Screen(m) => m.with_json(f),
            BatchMessage::Group(m) => m.with_json(f),
            BatchMessage::Alias(m) => m.with_json(f),
        }
    }
}

impl Sealed for Message {}
#[cfg_attr(docsrs, doc(cfg(feature = "segment-crate")))]
impl AsEvent for Message {
    fn with_json<R>(&self, f: impl FnOnce(&Json<'_>) -> Result<R, Error>) -> Result<R, Error> {
        match self {
            Message::Track(m) => m.with_json(f),
            Message::Identify(m) => m.with_json(f),
            Message::Page(m) => m.with_json(f),
            Message::Screen(m) => m.with_json(f),
            Message::Group(m) => m.with_json(f),
            Message::Alias(m) => m.with_json(f),
            Message::Batch(_) => Err(EventError::new(
                "$",
                "a batch holds many events: pass each of its messages",
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pipeline;
    use segment_crate::message::User;
    use serde_json::json;

    fn track() -> Track {
        // Built as the `segment` crate's users build one; the timestamp is its `OffsetDateTime`.
        let mut t: Track = serde_json::from_value(json!({
            "userId": "u-1",
            "event": "Order Completed",
            "properties": {"currency": "USD", "order_id": "o-1", "revenue": 19.9},
            "timestamp": "2026-03-04T05:06:07.891Z",
            "context": {"traits": {"email": "jane@example.com"}, "ip": "203.0.113.9"},
        }))
        .unwrap();
        assert!(t.timestamp.is_some());
        t.extra.insert("messageId".into(), json!("m-1"));
        t
    }

    /// The event a `track()` stands for, as Segment's JSON.
    const TRACK_JSON: &str = r#"{"type":"track","userId":"u-1","event":"Order Completed",
        "properties":{"currency":"USD","order_id":"o-1","revenue":19.9},
        "timestamp":"2026-03-04T05:06:07.891Z",
        "context":{"traits":{"email":"jane@example.com"},"ip":"203.0.113.9"},"messageId":"m-1"}"#;

    #[test]
    fn a_segment_crate_track_encodes_to_the_bytes_of_its_json_event() {
        let pipeline = Pipeline::builder().build().unwrap();
        let from_track = pipeline.encode(track()).unwrap();
        assert_eq!(from_track, pipeline.encode(TRACK_JSON).unwrap());
        let batch = pipeline.batch(track()).unwrap();
        assert_eq!(batch.source_message_id(), Some("m-1"));
        // The same through the enums that wrap it.
        assert_eq!(
            pipeline.encode(Message::Track(track())).unwrap(),
            from_track
        );
        assert_eq!(
            pipeline.encode(BatchMessage::Track(track())).unwrap(),
            from_track
        );
    }

    #[test]
    fn the_type_comes_from_the_rust_type_not_from_extra() {
        let mut t = track();
        t.extra.insert("type".into(), json!("identify"));
        let seen = t
            .with_json(|doc| Ok(doc.get("type").and_then(|v| v.as_str()).map(str::to_owned)))
            .unwrap();
        assert_eq!(seen.as_deref(), Some("track"));
        let pipeline = Pipeline::builder().build().unwrap();
        assert_eq!(
            pipeline.encode(t).unwrap(),
            pipeline.encode(track()).unwrap()
        );
    }

    #[test]
    fn each_message_type_reads_as_its_segment_type() {
        let user = || User::AnonymousId {
            anonymous_id: "a-1".into(),
        };
        let messages = [
            (
                Message::Identify(Identify {
                    user: user(),
                    ..Default::default()
                }),
                "identify",
            ),
            (
                Message::Page(Page {
                    user: user(),
                    ..Default::default()
                }),
                "page",
            ),
            (
                Message::Screen(Screen {
                    user: user(),
                    ..Default::default()
                }),
                "screen",
            ),
            (
                Message::Group(Group {
                    user: user(),
                    ..Default::default()
                }),
                "group",
            ),
            (
                Message::Alias(Alias {
                    user: user(),
                    ..Default::default()
                }),
                "alias",
            ),
        ];
        for (message, kind) in messages {
            let seen = message
                .with_json(|doc| {
                    let anonymous = doc.get("anonymousId").and_then(|v| v.as_str()).is_some();
                    Ok((
                        doc.get("type").and_then(|v| v.as_str()).map(str::to_owned),
                        anonymous,
                    ))
                })
                .unwrap();
            assert_eq!(seen, (Some(kind.to_owned()), true));
        }
    }

    #[test]
    fn a_batch_is_refused_as_one_event_and_a_missing_message_id_is_bad_input() {
        let pipeline = Pipeline::builder().build().unwrap();
        let batch = Message::Batch(segment_crate::message::Batch::default());
        let err = pipeline.encode(batch).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(err.to_string().contains("batch"), "{err}");
        let mut t = track();
        t.extra.remove("messageId");
        let err = pipeline.encode(t).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    }
}
