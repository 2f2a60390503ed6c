//! Send Segment-shaped analytics events to Rokt's Conversions API (CAPI), exactly as Segment's
//! own *Rokt Conversions API* destination builds them.
//!
//! # The pipeline
//!
//! One module per stage; every stage up to [`request`] is a pure, synchronous function:
//!
//! ```text
//! segment ─▶ trigger ─▶ mapping ─▶ payload ─▶ rokt ─▶ request ─▶ client
//! (event)    (fires?)   (values)   (checked)  (batch) (HTTP value) (I/O)
//! ```
//!
//! Walking one event through each stage by hand:
//!
//! ```
//! use rokt_capi::{Json, mapping::{Preset, SendMapping}, payload::SendPayload, request, rokt, trigger::Trigger};
//!
//! // 1. segment: parse the event (strings borrow from the text).
//! let text = r#"{"type":"track","event":"Order Completed","userId":"u-1","messageId":"m-1",
//!     "timestamp":"2026-03-04T05:06:07.891Z","context":{"traits":{"email":"Jane@Example.com"},
//!     "page":{"search":"?rtid=rt-1"}},"properties":{"order_id":"o-1","revenue":"19.90"}}"#;
//! let event = Json::parse(text)?;
//! rokt_capi::segment::check_event(&event)?;
//!
//! // 2. trigger: does the Send preset fire for it?
//! let trigger = Trigger::parse(Preset::Send.trigger())?;
//! assert!(trigger.matches(&event));
//!
//! // 3. mapping + 4. payload: map with the preset (compiled once), coerce and validate.
//! let mapping = SendMapping::preset_defaults(Preset::Send);
//! let payload = SendPayload::from_event(&mapping, &event)?;
//! assert_eq!(payload.event_details.amount.as_ref().map(|a| a.as_f64()), Some(19.9)); // "19.90"
//!
//! // 5. rokt: the batch object, with the click id and cleaned email.
//! let batch = rokt_capi::payload::build(payload);
//! assert_eq!(batch.user_identities.email.as_deref(), Some("jane@example.com"));
//! assert_eq!(batch.user_identities.other2.as_deref(), Some("rt-1"));
//!
//! // 6. request: the exact HTTP request, as a value.
//! let creds = rokt_capi::Credentials::new("key", "secret");
//! let req = request::Request::single(&request::Endpoint::rokt(), Some(&creds), &batch);
//! assert_eq!(req.url, "https://inbound.mparticle.com/s2s/v2/events");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Pipeline`] does steps 1–6 in one call, and a
//! [`subscription::Destination`] routes an event through every matching subscription. For a
//! mapping made of paths, trait fallbacks, constants and the built-in defaults (both presets),
//! it fuses steps 3–5: the batch's bytes are written straight from the event, and whatever that
//! direct plan is not sure of takes the stages above, with the same bytes either way
//! ([`PipelineBuilder::direct_encoding`]).
//!
//! # Errors
//!
//! [`Error`] separates bad input (the event is at fault: [`Error::is_bad_input`]) from bad
//! configuration and from what happens in transport. Messages name fields and rules, never
//! personal values or secrets, so they are safe to log.
//!
//! # Optional features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rustls` | yes | TLS for the [`client`] by rustls (used when both TLS features are on) |
//! | `native-tls` | no | TLS for the [`client`] by the platform (OpenSSL on Linux) |
//! | `liquid` | no | the `@liquid` mapping directive for any template (about 27 more crates to build) |
//! | `sqlite` | no | `rtid::memory::SqliteStore`: the rtid memory in an SQLite file |
//! | `postgres` | no | `rtid::memory::PostgresStore`: the rtid memory in PostgreSQL, shared by instances |
//! | `metrics` | no | the dispatcher's counters and latencies reported through the `metrics` facade (the names are listed on [`client::Stats`]) |
//! | `segment-crate` | no | the `segment` crate's message types (`Track`, `Identify`, …, `BatchMessage`, `Message`) as events wherever one is taken ([`segment::AsEvent`]) |
//!
//! Without a TLS feature the client speaks plain http to loopback only; sending to an https
//! endpoint fails with [`Error::Config`]. Without `liquid`, compiling a mapping that uses `@liquid`
//! fails with [`Error::Mapping`] naming the feature; the reference's own Liquid defaults (the
//! device ids and the rtid of both presets) are built in and work either way.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
mod clock;
pub mod credentials;
pub mod error;
pub mod hashing;
mod js;
mod json;
pub mod mapping;
pub mod ndjson;
pub mod payload;
pub mod pipeline;
pub mod request;
pub mod rokt;
pub mod rtid;
pub mod segment;
pub mod spool;
pub mod subscription;
mod text;
pub mod trigger;
mod words;

/// Segment-shaped events for the unit tests (the integration tests share the file).
#[cfg(test)]
#[path = "../tests/support/synthetic.rs"]
mod synthetic;

// The types a service names most, at the root; each keeps one home in its module.
pub use client::{
    Client, ClientBuilder, Dispatcher, DispatcherBuilder, EnqueueError, Enqueued, Outcome,
    RetryPolicy, Stats, Ticket, Verdict,
};
pub use credentials::Credentials;
pub use error::{ConfigError, Error, EventError};
pub use json::Json;
pub use mapping::{Preset, SendMapping};
pub use pipeline::{BulkPlan, BulkWriter, Pipeline, PipelineBuilder};
pub use request::{Endpoint, Limits, Pod};
pub use subscription::Destination;

/// Types from other crates that appear in this crate's signatures (`Outcome::body`,
/// `Request::body`, `Endpoint::base`), so a dependent need not add those crates to name them.
pub use bytes::Bytes;
pub use url::Url;

/// `use rokt_capi::prelude::*;` brings what a service embedding the crate names: the client and
/// its dispatcher, a destination's subscriptions, what `enqueue` answers, and the pipeline for
/// offline use.
///
/// ```
/// use rokt_capi::prelude::*;
/// let pipeline = Pipeline::builder().preset(Preset::Send).build()?;
/// let event = Json::parse(r#"{"type":"track","event":"Order Completed","userId":"u-1",
///     "messageId":"m-1","timestamp":"2026-03-04T05:06:07Z","properties":{"order_id":"o-1"}}"#)?;
/// assert!(pipeline.batch(&event).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod prelude {
    pub use crate::client::{
        Client, Dispatcher, EnqueueError, Enqueued, Outcome, Stats, Ticket, Verdict,
    };
    pub use crate::{Credentials, Destination, Error, Json, Pipeline, Preset, SendMapping};
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
