//! rokt-capi: send Segment-shaped analytics events to Rokt's Conversions API, exactly as
//! Segment's own Rokt CAPI destination builds them.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! segment ─▶ trigger ─▶ mapping ─▶ payload (coercion + validation) ─▶ rokt (batch) ─▶ request ─▶ client
//! ```
//!
//! Everything up to [`request`] is pure and synchronous; only the client does I/O.
//!
//! ```
//! use rokt_capi::{Pipeline, mapping::Preset};
//!
//! let pipeline = Pipeline::new(Preset::Send);
//! let event = serde_json::json!({
//!     "type": "track", "event": "Order Completed", "messageId": "m-1",
//!     "timestamp": "2026-03-04T05:06:07.891Z",
//!     "context": {"traits": {"email": " Jane@Example.com "}},
//!     "properties": {"order_id": "o-1", "revenue": 20}
//! });
//! let batch = pipeline.batch(&event).unwrap();
//! assert_eq!(batch.user_identities.email.as_deref(), Some("jane@example.com"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod credentials;
pub mod error;
pub mod hashing;
mod json;
pub mod mapping;
pub mod ndjson;
pub mod payload;
pub mod pipeline;
pub mod request;
pub mod rokt;
pub mod rtid;
pub mod segment;
pub mod trigger;

pub use client::{
    Client, ClientBuilder, Dispatcher, DispatcherBuilder, Outcome, RetryPolicy, Verdict,
};
pub use credentials::Credentials;
pub use error::{ConfigError, Error, EventError};
pub use json::Json;
pub use pipeline::{BulkPlan, ParseEvent, Pipeline, PipelineBuilder};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
