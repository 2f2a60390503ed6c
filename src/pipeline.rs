//! The whole sans-I/O path: Segment event → mapping → validation → Rokt batch → request.

use crate::Json;
use crate::credentials::Credentials;
use crate::error::{ConfigError, Error};
use crate::json::DocValue;
use crate::mapping::{Preset, SendMapping};
use crate::payload::SendPayload;
use crate::request::{Endpoint, Limits, Request, RequestKind, plan_bulk};
use crate::rokt::Batch;
use crate::segment::sealed::Reader;
use crate::segment::{AsEvent, check_mappable};
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod direct;

use direct::DirectPlan;
use direct::Routing;

/// Turns Segment events into the exact requests Rokt receives. Pure and synchronous; cheap to
/// clone and share between threads, so building can be spread over every core.
///
/// ```
/// use rokt_capi::{Pipeline, mapping::Preset};
/// let pipeline = Pipeline::builder()
///     .preset(Preset::Send)
///     .credentials(rokt_capi::Credentials::new("key", "secret"))
///     .build()
///     .unwrap();
/// let event = serde_json::json!({
///     "type": "track", "event": "Order Completed", "userId": "u-1",
///     "messageId": "m-1", "timestamp": "2026-03-04T05:06:07.891Z",
///     "properties": {"order_id": "o-1", "revenue": 12.5, "currency": "USD"}
/// });
/// let request = pipeline.request(&event).unwrap();
/// assert_eq!(request.path, "/s2s/v2/events");
/// let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
/// assert_eq!(body["events"][0]["data"]["custom_attributes"]["amount"], 12.5);
/// ```
#[derive(Clone, Debug)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mapping: SendMapping,
    /// The mapping compiled for direct encoding, when it is plain.
    direct: Option<DirectPlan>,
    credentials: Option<Credentials>,
    endpoint: Endpoint,
    limits: Limits,
}

/// Configures a [`Pipeline`]; [`build`](PipelineBuilder::build) checks the configuration.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct PipelineBuilder {
    preset: Option<Preset>,
    overrides: Option<Json<'static>>,
    mapping: Option<SendMapping>,
    credentials: Option<Credentials>,
    endpoint: Option<Endpoint>,
    limits: Option<Limits>,
    /// `Some(false)` turns direct encoding off.
    direct: Option<bool>,
}

impl PipelineBuilder {
    /// The preset to start from (default: [`Preset::Send`]).
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = Some(preset);
        self
    }

    /// Overrides in Segment's mapping JSON, applied over the preset: each top-level key replaces
    /// that whole field. Compiled (and checked) by `build`. A [`Json`] document keeps its
    /// members' order (the order attributes are sent in); a `serde_json::Value` has its map's
    /// (see [`SendMapping::new`]).
    pub fn overrides(mut self, overrides: impl Into<Json<'static>>) -> Self {
        self.overrides = Some(overrides.into());
        self
    }

    /// An already compiled mapping (replaces `preset` and `overrides`).
    pub fn mapping(mut self, mapping: SendMapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// The API key and secret. Optional for building requests offline; without them requests
    /// carry no `Authorization` header.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Where requests go (default: Rokt's inbound host).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Size limits for bulk requests (default: mParticle's).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Whether events are encoded directly where the mapping allows it (default: yes).
    ///
    /// A mapping made only of paths, trait fallbacks, constants and the built-in defaults
    /// (both presets are) is also compiled into a plan that writes an event's batch straight
    /// from the event, several times faster than evaluating, validating and serializing it
    /// step by step. The plan answers only for the events it encodes exactly as the general
    /// path does (its tests and the conformance corpus hold it to the same bytes) and leaves
    /// the rest to the general path. Turning it off gives the general path every event; the
    /// bytes are the same either way.
    ///
    /// ```
    /// use rokt_capi::Pipeline;
    /// let event = serde_json::json!({"type": "track", "event": "Order Completed",
    ///     "userId": "u1", "messageId": "m1", "timestamp": "2026-01-01T00:00:00Z"});
    /// let direct = Pipeline::builder().build().unwrap();
    /// let general = Pipeline::builder().direct_encoding(false).build().unwrap();
    /// assert_eq!(direct.encode(&event).unwrap(), general.encode(&event).unwrap());
    /// ```
    pub fn direct_encoding(mut self, on: bool) -> Self {
        self.direct = Some(on);
        self
    }

    /// Whether a preset or overrides were given (a caller that also holds a whole pipeline
    /// must not give both).
    pub(crate) fn has_mapping_settings(&self) -> bool {
        self.preset.is_some() || self.overrides.is_some() || self.mapping.is_some()
    }

    /// The limits given, if any.
    pub(crate) fn given_limits(&self) -> Option<Limits> {
        self.limits
    }

    /// Compiles the mapping and checks the settings.
    pub fn build(self) -> Result<Pipeline, Error> {
        let mapping = match self.mapping {
            Some(m) => m,
            None => {
                let preset = self.preset.unwrap_or(Preset::Send);
                match &self.overrides {
                    Some(o) => SendMapping::new(preset, o)?,
                    None => SendMapping::preset_defaults(preset),
                }
            }
        };
        if let Some(c) = &self.credentials {
            if !c.is_complete() {
                return Err(ConfigError::new(
                    "credentials",
                    "both the API key and the API secret are required",
                )
                .into());
            }
        }
        let limits = self.limits.unwrap_or_default();
        check_limits(&limits)?;
        Ok(Pipeline {
            inner: Arc::new(Inner {
                direct: match self.direct {
                    Some(false) => None,
                    _ => DirectPlan::compile(&mapping),
                },
                mapping,
                credentials: self.credentials,
                endpoint: self.endpoint.unwrap_or_default(),
                limits,
            }),
        })
    }
}

/// The largest byte limit a pipeline takes (1 GiB): far above mParticle's, and small enough
/// that no arithmetic on it overflows.
const MAX_LIMIT_BYTES: usize = 1 << 30;

/// The bulk limits' rule: 1 to 100 items a request (mParticle's maximum), byte limits positive
/// and at most 1 GiB, and a request able to hold at least one item.
fn check_limits(limits: &Limits) -> Result<(), Error> {
    let ok = (1..=100).contains(&limits.max_items)
        && (1..=MAX_LIMIT_BYTES).contains(&limits.max_item_bytes)
        && limits.max_request_bytes <= MAX_LIMIT_BYTES
        && limits.max_request_bytes >= limits.max_item_bytes + 2;
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "limits",
            "max_items must be from 1 to 100, the byte limits from 1 byte to 1 GiB, and a \
             request must hold at least one item",
        )
        .into())
    }
}

/// One batch, encoded and ready to join a request.
#[derive(Clone, Debug)]
pub(crate) struct Encoded {
    pub(crate) body: Bytes,
    /// The newest `timestamp_unixtime_ms` of its events.
    pub(crate) newest_ms: Option<i64>,
    /// The Segment `messageId` it carries.
    pub(crate) message_id: Option<String>,
}

impl Encoded {
    /// A typed batch's bytes and routing, checked against the per-batch size limit.
    pub(crate) fn of_batch<S: crate::text::Text>(
        batch: &Batch<S>,
        limits: &Limits,
    ) -> Result<Encoded, Error> {
        Encoded::checked(batch.to_bytes(), Routing::of(batch), limits)
    }

    /// An encoded batch and its routing, checked against the per-batch size limit.
    fn checked(body: Bytes, routing: Routing, limits: &Limits) -> Result<Encoded, Error> {
        limits.check_item(body.len())?;
        Ok(Encoded {
            body,
            newest_ms: routing.newest_ms,
            message_id: routing.message_id,
        })
    }
}

/// Bulk request bodies written in place: each event's batch is written straight into the body
/// that carries it, rather than encoded on its own and copied in when the bodies are joined.
/// Bodies are split by the pipeline's [`Limits`] exactly as [`Pipeline::bulk_encoded`] splits
/// the same events' encodings. Made by [`Pipeline::bulk_writer`].
pub struct BulkWriter<'p> {
    pipeline: &'p Pipeline,
    kind: RequestKind,
    /// The open body: `[` and the batches so far, comma-separated.
    body: Vec<u8>,
    items: usize,
    /// A sent request's body, for the next one (see [`recycle`](Self::recycle)).
    spare: Option<Vec<u8>>,
}

impl std::fmt::Debug for BulkWriter<'_> {
    /// Shows the open body's size, never its bytes: they carry personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkWriter")
            .field("kind", &self.kind)
            .field("items", &self.items)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl BulkWriter<'_> {
    /// Writes the event's batch into the open body. `Ok(Some(request))` when the event did
    /// not fit there: that body is finished and returned, and the event opens the next one
    /// (so the returned request never holds this event). A rejected event leaves the body as
    /// it was.
    pub fn push(&mut self, event: impl AsEvent) -> Result<Option<Request>, Error> {
        self.append(|pipeline, body| pipeline.encode_into(event, body))
    }

    /// [`push`](Self::push) for a batch already encoded (by [`Pipeline::encode`] or
    /// [`Pipeline::encode_into`], perhaps on another thread): its bytes are copied in. Bytes
    /// over the per-batch limit are refused as `encode` refuses them.
    pub fn push_encoded(&mut self, batch: &[u8]) -> Result<Option<Request>, Error> {
        self.pipeline.limits().check_item(batch.len())?;
        self.append(|_, body| {
            body.extend_from_slice(batch);
            Ok(())
        })
    }

    /// Appends one batch with `write`, then closes the body before it if it does not fit.
    fn append(
        &mut self,
        write: impl FnOnce(&Pipeline, &mut Vec<u8>) -> Result<(), Error>,
    ) -> Result<Option<Request>, Error> {
        let mark = self.body.len();
        if self.items > 0 {
            self.body.push(b',');
        }
        let start = self.body.len();
        if let Err(e) = write(self.pipeline, &mut self.body) {
            self.body.truncate(mark);
            return Err(e);
        }
        // With its closing bracket, as `plan_bulk` counts.
        let bytes = self.body.len() + 1;
        if self.pipeline.limits().starts_new_request(self.items, bytes) {
            let mut next = self.open_body(mark);
            next.extend_from_slice(&self.body[start..]);
            self.body.truncate(mark);
            let full = std::mem::replace(&mut self.body, next);
            let items = std::mem::replace(&mut self.items, 1);
            return Ok(Some(self.close(full, items)));
        }
        self.items += 1;
        Ok(None)
    }

    /// The open body, finished, when it holds as many batches as a request may: no event can
    /// join it any more, so it can go now rather than when the next event opens another.
    pub fn take_full(&mut self) -> Option<Request> {
        if self.items < self.pipeline.limits().max_items {
            return None;
        }
        let next = self.open_body(self.body.len());
        let full = std::mem::replace(&mut self.body, next);
        let items = std::mem::take(&mut self.items);
        Some(self.close(full, items))
    }

    /// The batches written since the last request was returned.
    pub fn pending(&self) -> usize {
        self.items
    }

    /// Takes back a request once it has been sent: its body's buffer is reused for a later
    /// body when nothing else holds it, so a long stream of requests does not allocate (and
    /// have the system clear) a fresh buffer of a hundred kilobytes or so for each.
    pub fn recycle(&mut self, sent: Request) {
        if let Ok(body) = sent.body.try_into_mut() {
            self.spare = Some(body.into());
        }
    }

    /// A new body, `[` alone, with room for about as much as the last one held.
    fn open_body(&mut self, last: usize) -> Vec<u8> {
        let mut body = self.spare.take().unwrap_or_default();
        body.clear();
        body.reserve(last + last / 8);
        body.push(b'[');
        body
    }

    /// The last request, if any event is waiting in the open body.
    pub fn finish(mut self) -> Option<Request> {
        let body = std::mem::take(&mut self.body);
        (self.items > 0).then(|| self.close(body, self.items))
    }

    fn close(&self, mut body: Vec<u8>, items: usize) -> Request {
        body.push(b']');
        self.pipeline.request_for(self.kind, body.into(), items)
    }
}

/// The requests for a list of events, and what became of each event.
#[derive(Debug)]
#[non_exhaustive]
pub struct BulkPlan {
    /// The requests to send, in order.
    pub requests: Vec<Request>,
    /// One entry per input event, by index: the request that carries it, or why it was rejected.
    pub items: Vec<Result<usize, Error>>,
}

impl Pipeline {
    /// Starts configuring a pipeline: the Send preset, no overrides, no credentials, the default
    /// endpoint and limits until set; [`PipelineBuilder::build`] checks the result.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// A pipeline for a preset with no overrides and no credentials (offline use).
    pub fn new(preset: Preset) -> Pipeline {
        let mapping = SendMapping::preset_defaults(preset);
        Pipeline {
            inner: Arc::new(Inner {
                direct: DirectPlan::compile(&mapping),
                mapping,
                credentials: None,
                endpoint: Endpoint::default(),
                limits: Limits::default(),
            }),
        }
    }

    /// The compiled mapping.
    pub fn mapping(&self) -> &SendMapping {
        &self.inner.mapping
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// A builder holding this pipeline's mapping, limits and encoding choice, to be given other
    /// credentials or another endpoint (the mapping is not compiled again).
    pub(crate) fn to_builder(&self) -> PipelineBuilder {
        PipelineBuilder {
            mapping: Some(self.inner.mapping.clone()),
            limits: Some(self.inner.limits),
            direct: Some(self.inner.direct.is_some()),
            ..PipelineBuilder::default()
        }
    }

    /// The credentials, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.inner.credentials.as_ref()
    }

    /// The bulk limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Maps, coerces and validates one event.
    pub fn payload(&self, event: impl AsEvent) -> Result<SendPayload, Error> {
        event.with_json(|doc| self.validated(doc).map(SendPayload::into_owned))
    }

    /// The payload of one parsed event, borrowing its strings.
    fn validated<'r>(&'r self, doc: &'r Json<'_>) -> Result<SendPayload<Cow<'r, str>>, Error> {
        let result: Result<_, Error> = match check_mappable(doc) {
            Ok(_) => SendPayload::from_event_borrowed(&self.inner.mapping, doc).map_err(Into::into),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = &result {
            // Error messages name fields and rules only, never values, so they are safe to log.
            tracing::debug!(error_type = e.error_type(), reason = %e, "event rejected");
        }
        result
    }

    /// The Rokt batch for one event.
    pub fn batch(&self, event: impl AsEvent) -> Result<Batch, Error> {
        self.payload(event).map(crate::payload::build)
    }

    /// The batch for one event, encoded as JSON and checked against the per-batch size limit.
    pub fn encode(&self, event: impl AsEvent) -> Result<Bytes, Error> {
        crate::rokt::arena_bytes(|out| self.encode_into(event, out))
    }

    /// The event's batch encoded for sending, with what the client routes it by (which costs
    /// an allocation per event that bytes alone do not need): the bytes
    /// [`encode_into`](Self::encode_into) writes, by the same two paths.
    pub(crate) fn encoded(&self, event: impl AsEvent) -> Result<Encoded, Error> {
        /// The direct plan's bytes and routing, else the general path's.
        struct Routed<'p>(&'p Pipeline);
        impl Reader for Routed<'_> {
            type Output = Result<Encoded, Error>;
            fn direct<'d>(&mut self, event: impl DocValue<'d>) -> Option<Self::Output> {
                self.0.encoded_direct(event)
            }
            fn general(self, doc: &Json<'_>) -> Result<Self::Output, Error> {
                Ok(self
                    .0
                    .with_batch(doc, |batch| Encoded::of_batch(batch, self.0.limits())))
            }
        }
        event.read(Routed(self))?
    }

    /// [`encoded`](Self::encoded) by the direct plan alone, for an event in any form; `None`
    /// when the plan leaves the event to the general path.
    pub(crate) fn encoded_direct<'d>(
        &self,
        event: impl DocValue<'d>,
    ) -> Option<Result<Encoded, Error>> {
        let (body, routing) = self.inner.direct.as_ref()?.encode_routed(event)?;
        Some(Encoded::checked(body, routing, self.limits()))
    }

    /// Appends the event's batch to `out` (no allocation of its own), checked against the
    /// per-batch size limit. The one place an event becomes what is sent: its batch's bytes,
    /// written by the direct plan when it is sure of the event, else by the general path (the
    /// same bytes either way). On error `out` is as it was.
    ///
    /// ```
    /// use rokt_capi::{Pipeline, mapping::Preset};
    /// let pipeline = Pipeline::new(Preset::Send);
    /// let event = r#"{"type":"track","event":"A","userId":"u","messageId":"m","timestamp":"2026-01-01T00:00:00Z"}"#;
    /// let mut out = b"batches: ".to_vec();
    /// pipeline.encode_into(event, &mut out).unwrap();
    /// assert_eq!(&out[9..], &pipeline.encode(event).unwrap()[..]);
    /// assert!(pipeline.encode_into("not json", &mut out).is_err());
    /// assert_eq!(&out[9..], &pipeline.encode(event).unwrap()[..]);
    /// ```
    pub fn encode_into(&self, event: impl AsEvent, out: &mut Vec<u8>) -> Result<(), Error> {
        /// Appends the direct plan's bytes, else the general path's.
        struct Append<'p, 'o> {
            pipeline: &'p Pipeline,
            out: &'o mut Vec<u8>,
            start: usize,
        }
        impl Reader for Append<'_, '_> {
            type Output = ();
            fn direct<'d>(&mut self, event: impl DocValue<'d>) -> Option<()> {
                let written = self.pipeline.inner.direct.as_ref()?.write(event, self.out);
                if written.is_none() {
                    self.out.truncate(self.start);
                }
                written
            }
            fn general(self, doc: &Json<'_>) -> Result<(), Error> {
                self.pipeline.with_batch(doc, |batch| {
                    batch.write_json(self.out);
                    Ok(())
                })
            }
        }
        let start = out.len();
        let written = event.read(Append {
            pipeline: self,
            out: &mut *out,
            start,
        });
        let written = written.and_then(|()| self.limits().check_item(out.len() - start));
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// A [`BulkWriter`] for requests of `kind` (bulk or historical).
    ///
    /// ```
    /// use rokt_capi::{Pipeline, mapping::Preset, request::RequestKind};
    /// let pipeline = Pipeline::new(Preset::Send);
    /// let mut writer = pipeline.bulk_writer(RequestKind::Bulk);
    /// let mut requests = Vec::new();
    /// for line in [
    ///     r#"{"type":"track","event":"A","userId":"u","messageId":"m1","timestamp":"2026-01-01T00:00:00Z"}"#,
    ///     "not json",
    ///     r#"{"type":"track","event":"B","userId":"u","messageId":"m2","timestamp":"2026-01-01T00:00:01Z"}"#,
    /// ] {
    ///     match writer.push(line) {
    ///         Ok(full) => requests.extend(full),
    ///         Err(e) => assert!(e.to_string().contains("malformed JSON")),
    ///     }
    ///     requests.extend(writer.take_full());
    /// }
    /// requests.extend(writer.finish());
    /// assert_eq!((requests.len(), requests[0].items), (1, 2));
    /// assert_eq!(requests[0].path, "/s2s/v2/bulkevents");
    /// ```
    pub fn bulk_writer(&self, kind: RequestKind) -> BulkWriter<'_> {
        BulkWriter {
            pipeline: self,
            kind,
            body: vec![b'['],
            items: 0,
            spare: None,
        }
    }

    /// Runs `f` on the batch of one event. The batch borrows its strings from the event (and
    /// its digests from this call's stack), so it only lives for `f`: what outlives it, such
    /// as its bytes, is made there.
    pub(crate) fn with_batch<T>(
        &self,
        event: impl AsEvent,
        f: impl FnOnce(&Batch<Cow<'_, str>>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        event.with_json(|doc| {
            let payload = self.validated(doc)?;
            // One slot per hashed field.
            let mut digests = [[0u8; 64]; 5];
            f(&crate::payload::build_borrowed(payload, &mut digests))
        })
    }

    /// Encodes many events on `threads` threads (scoped), the results in input order.
    /// Building is pure CPU work, so this scales with cores; `threads == 1` runs on the
    /// calling thread, which is otherwise one of the `threads`.
    ///
    /// ```
    /// use rokt_capi::{Pipeline, mapping::Preset};
    /// let pipeline = Pipeline::new(Preset::Send);
    /// let lines = [r#"{"type":"track","event":"A","userId":"u","messageId":"m","timestamp":"2026-01-01T00:00:00Z"}"#, "not json"];
    /// let encoded = pipeline.encode_all(&lines, 2);
    /// assert!(encoded[0].is_ok() && encoded[1].is_err());
    /// ```
    pub fn encode_all<E: AsEvent + Sync>(
        &self,
        events: &[E],
        threads: usize,
    ) -> Vec<Result<Bytes, Error>> {
        let threads = threads.clamp(1, events.len().max(1));
        if threads == 1 {
            return events.iter().map(|e| self.encode(e)).collect();
        }
        // Small chunks, each taken by the next thread free: a core that runs slower (a busy
        // or throttled virtual CPU, a thread started late) takes fewer, where one fixed part
        // per thread left the others waiting for it.
        let size = (events.len() / (threads * 16)).clamp(1, 1024);
        let chunks: Vec<&[E]> = events.chunks(size).collect();
        let next = AtomicUsize::new(0);
        // Each thread's chunks, by index.
        let work = || {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(index) else {
                    return done;
                };
                done.push((
                    index,
                    chunk.iter().map(|e| self.encode(e)).collect::<Vec<_>>(),
                ));
            }
        };
        let mut parts: Vec<Vec<Result<Bytes, Error>>> = Vec::new();
        parts.resize_with(chunks.len(), Vec::new);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut place = |done: Vec<(usize, Vec<Result<Bytes, Error>>)>| {
                for (index, encoded) in done {
                    parts[index] = encoded;
                }
            };
            place(work());
            for h in handles {
                place(
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
        });
        parts.into_iter().flatten().collect()
    }

    /// `POST /events` for one event, as the reference sends an event alone.
    pub fn request(&self, event: impl AsEvent) -> Result<Request, Error> {
        let body = self.encode(event)?;
        Ok(self.request_for(RequestKind::Single, body, 1))
    }

    /// A request of `kind` for an already-encoded body.
    pub fn request_for(&self, kind: RequestKind, body: Bytes, items: usize) -> Request {
        Request::new(
            &self.inner.endpoint,
            self.inner.credentials.as_ref(),
            kind,
            body,
            items,
        )
    }

    /// Bulk requests for many events, as the reference's batch mode: rejected events get their
    /// error and are not sent, the rest go in order to `/bulkevents` (even a single one),
    /// split by the limits. When every event is rejected there is no request. The same
    /// requests as [`bulk_encoded`](Self::bulk_encoded) makes of the events' encodings,
    /// written in place by a [`BulkWriter`].
    pub fn bulk<E: AsEvent>(&self, events: impl IntoIterator<Item = E>) -> BulkPlan {
        let mut writer = self.bulk_writer(RequestKind::Bulk);
        let mut requests = Vec::new();
        let mut items = Vec::new();
        for event in events {
            items.push(writer.push(event).map(|full| {
                requests.extend(full);
                requests.len()
            }));
            requests.extend(writer.take_full());
        }
        requests.extend(writer.finish());
        BulkPlan { requests, items }
    }

    /// Bulk requests from already-encoded items (see [`encode`](Self::encode)).
    pub fn bulk_encoded(&self, kind: RequestKind, encoded: Vec<Result<Bytes, Error>>) -> BulkPlan {
        let good: Vec<usize> = (0..encoded.len()).filter(|&i| encoded[i].is_ok()).collect();
        let sizes: Vec<usize> = good
            .iter()
            .map(|&i| encoded[i].as_ref().map_or(0, Bytes::len))
            .collect();
        let mut items: Vec<Result<usize, Error>> = Vec::with_capacity(encoded.len());
        let mut requests = Vec::new();
        let mut owner = vec![0usize; encoded.len()];
        for range in plan_bulk(&sizes, &self.inner.limits) {
            let members = &good[range];
            let bodies = members.iter().filter_map(|&i| encoded[i].as_deref().ok());
            let (body, n) = crate::request::join_array(bodies);
            for &i in members {
                owner[i] = requests.len();
            }
            requests.push(self.request_for(kind, body.into(), n));
        }
        for (i, e) in encoded.into_iter().enumerate() {
            items.push(e.map(|_| owner[i]));
        }
        tracing::trace!(
            events = items.len(),
            rejected = items.len() - good.len(),
            requests = requests.len(),
            ?kind,
            "bulk plan"
        );
        BulkPlan { requests, items }
    }
}

#[cfg(test)]
mod tests;
