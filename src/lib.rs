//! rokt-capi: send Segment-shaped analytics events to Rokt's Conversions API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod trigger;

/// The borrowed JSON document the pipeline reads events from: strings point into the input
/// buffer, objects are small vectors of pairs, so parsing an event allocates little.
pub type Json<'a> = serde_json_borrow::Value<'a>;
