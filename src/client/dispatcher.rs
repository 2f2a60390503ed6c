//! The background pipeline a service embeds: enqueue events, get one outcome per event.

use super::stats::{Meter, Stats};
use super::{Client, Receipt, Slots};
use crate::error::Error;
use crate::pipeline::Encoded;
use crate::request::{Limits, RequestKind};
use crate::rokt::Batch;
use crate::rtid::memory::{AsyncRtidMemory, RtidMemory};
use crate::segment::AsEvent;
use crate::subscription::Destination;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// The largest [`queue_capacity`](DispatcherBuilder::queue_capacity).
pub const MAX_QUEUE_CAPACITY: usize = 1_000_000;
/// The largest [`concurrency`](DispatcherBuilder::concurrency).
pub const MAX_CONCURRENCY: usize = 1024;
/// The longest [`flush_interval`](DispatcherBuilder::flush_interval).
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The lowest [`rate_limit`](DispatcherBuilder::rate_limit), in batches per second: a full
/// bulk request then waits at most 100 s for its turn.
pub const MIN_RATE: f64 = 1.0;
/// The highest [`rate_limit`](DispatcherBuilder::rate_limit), in batches per second.
pub const MAX_RATE: f64 = 1e9;
mod settings;
mod spooled;
use crate::spool::{Spool, SpoolError};
pub use settings::DispatcherSettings;
use spooled::Link;

/// The id [`Dispatcher::enqueue`] gives an event; its [`Outcome`] carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// The number: tickets of one dispatcher count up from 0 in enqueue order. With a
    /// [spool](DispatcherBuilder::spool), it is the event's persistent id in the spool instead:
    /// the same in the outcome reported by a later process that resumes the event.
    pub fn id(self) -> u64 {
        self.0
    }
}

/// What became of one queued batch: one event under one route (the client's pipeline, or one
/// subscription of a [destination](DispatcherBuilder::destination)). Each ticket gets exactly
/// one; an event that several subscriptions take gets one per subscription.
///
/// `Debug` and `Serialize` leave out the body (it carries personal data): its length only.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The ticket `enqueue` returned for this route.
    pub ticket: Ticket,
    /// The subscription that mapped the event, with a destination; `None` with the client's
    /// own pipeline, for [`enqueue_batch`](Dispatcher::enqueue_batch), and for an event a
    /// spool kept from before its subscription was recorded.
    pub subscription: Option<Arc<str>>,
    /// The event's Segment `messageId` (the batch's `source_message_id`), when it has one.
    pub message_id: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Unless it was delivered: the encoded batch, byte for byte what was (or would have been)
    /// sent, for a dead-letter store to keep; read back as a typed
    /// [`Batch`](crate::rokt::Batch) (`serde_json::from_slice`, which keeps its order), it
    /// can be queued again with [`enqueue_batch`](Dispatcher::enqueue_batch).
    pub body: Option<Bytes>,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("ticket", &self.ticket)
            .field("subscription", &self.subscription)
            .field("message_id", &self.message_id)
            .field("verdict", &self.verdict)
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .finish()
    }
}

/// An outcome as a metrics or log record: ticket, subscription, message id, verdict label,
/// HTTP status and error type and message (none carries personal data), and the body's
/// length, never the body.
impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let error = self.verdict.error();
        let mut s = serializer.serialize_struct("Outcome", 8)?;
        s.serialize_field("ticket", &self.ticket.0)?;
        s.serialize_field("subscription", &self.subscription.as_deref())?;
        s.serialize_field("message_id", &self.message_id)?;
        s.serialize_field("verdict", self.verdict.label())?;
        s.serialize_field("status", &error.and_then(Error::http_status))?;
        s.serialize_field("error_type", &error.map(Error::error_type))?;
        s.serialize_field("error", &error.map(ToString::to_string))?;
        s.serialize_field("body_bytes", &self.body.as_ref().map(Bytes::len))?;
        s.end()
    }
}

/// The three ends of an event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// Rokt accepted it.
    Delivered(Receipt),
    /// It will never be accepted: [`Error::Rejected`] by Rokt, or a batch over the size limit.
    /// (Bad input is refused by `enqueue` itself: [`EnqueueError::Invalid`].)
    Rejected(Error),
    /// It could not be delivered: [`Error::Failed`] after the retry policy gave up. Sending it
    /// again later may work.
    Failed(Error),
}

impl Verdict {
    fn from_result(result: Result<Receipt, Error>) -> Verdict {
        match result {
            Ok(r) => Verdict::Delivered(r),
            Err(e) if e.is_permanent() => Verdict::Rejected(e),
            Err(e) => Verdict::Failed(e),
        }
    }

    /// Whether the event was delivered.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Verdict::Delivered(_))
    }

    /// The verdict in one word, for metrics labels and logs: `"delivered"`, `"rejected"` or
    /// `"failed"`.
    ///
    /// ```
    /// use rokt_capi::client::Verdict;
    /// use rokt_capi::Error;
    /// assert_eq!(Verdict::Failed(Error::Closed).label(), "failed");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Delivered(_) => "delivered",
            Verdict::Rejected(_) => "rejected",
            Verdict::Failed(_) => "failed",
        }
    }

    /// The error, unless the event was delivered.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Verdict::Delivered(_) => None,
            Verdict::Rejected(e) | Verdict::Failed(e) => Some(e),
        }
    }
}

impl Outcome {
    /// The verdict in one word: see [`Verdict::label`].
    pub fn label(&self) -> &'static str {
        self.verdict.label()
    }
}

/// What [`Dispatcher::enqueue`] did with one event: a ticket for each route that took it
/// (each gets exactly one [`Outcome`]), and each route that refused it as bad input.
///
/// Without a [destination](DispatcherBuilder::destination) there is one route, the client's
/// pipeline, so one ticket. With one, an event matching no enabled subscription gets no
/// ticket and no outcome: [`is_routed`](Self::is_routed) is `false`, and that is its answer.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Enqueued {
    /// The queued routes, in configuration order.
    pub tickets: Vec<Routed>,
    /// The routes that could not map the event (an event refused by every route that
    /// matched is [`EnqueueError::Invalid`] instead).
    pub refused: Vec<Refusal>,
}

impl Enqueued {
    /// The first ticket: the only one without a destination.
    pub fn ticket(&self) -> Option<Ticket> {
        self.tickets.first().map(|r| r.ticket)
    }

    /// Whether any route took the event (so outcomes will follow).
    pub fn is_routed(&self) -> bool {
        !self.tickets.is_empty()
    }
}

/// One route that took an event: the subscription (`None` for the client's own pipeline) and
/// the ticket its outcome will carry.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Routed {
    /// The subscription, with a destination.
    pub subscription: Option<Arc<str>>,
    /// The ticket.
    pub ticket: Ticket,
}

/// One route that could not map an event: the subscription (`None` for the client's own
/// pipeline, or for an event that is not a Segment event at all) and why.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Refusal {
    /// The subscription, with a destination.
    pub subscription: Option<Arc<str>>,
    /// Why: bad input ([`Error::is_bad_input`]), or a batch over the size limit.
    pub error: Error,
}

/// Its `Display` already says the error's message, so it names no `source`.
impl std::error::Error for Refusal {}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.subscription {
            Some(name) => write!(f, "subscription `{name}`: {}", self.error),
            None => self.error.fmt(f),
        }
    }
}

/// Why [`Dispatcher::try_enqueue`] or [`Dispatcher::enqueue`] did not take an event; it
/// carries the event back.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum EnqueueError<E> {
    /// Bad input: every route that matched refused it (one refusal without a destination).
    /// Nothing was queued and no outcome follows.
    Invalid(E, Vec<Refusal>),
    /// The queue is full (only from `try_enqueue`), or the [spool](DispatcherBuilder::spool)
    /// reached its bound: send it again later.
    Full(E),
    /// `try_enqueue` cannot serve this dispatcher without waiting (it has a
    /// [spool](DispatcherBuilder::spool) or an
    /// [async rtid memory](DispatcherBuilder::async_rtid_memory)): use `enqueue`.
    WouldWait(E),
    /// The dispatcher is shut down.
    Closed(E),
    /// The [spool](DispatcherBuilder::spool) could not store the event (nothing of it was
    /// acknowledged). A full spool is [`Full`](Self::Full) instead.
    Spool(E, SpoolError),
}

impl<E> EnqueueError<E> {
    /// The event that was not taken.
    pub fn into_inner(self) -> E {
        match self {
            EnqueueError::Invalid(e, _)
            | EnqueueError::Full(e)
            | EnqueueError::WouldWait(e)
            | EnqueueError::Closed(e)
            | EnqueueError::Spool(e, _) => e,
        }
    }

    /// The refusals, when the event is bad input.
    pub fn refusals(&self) -> &[Refusal] {
        match self {
            EnqueueError::Invalid(_, r) => r,
            _ => &[],
        }
    }

    /// Whether sending the same event again cannot work (bad input).
    pub fn is_invalid(&self) -> bool {
        matches!(self, EnqueueError::Invalid(..))
    }

    /// The answer in one word, for metrics labels and logs: `"invalid"`, `"full"`,
    /// `"would_wait"`, `"closed"` or `"spool"`.
    pub fn label(&self) -> &'static str {
        match self {
            EnqueueError::Invalid(..) => "invalid",
            EnqueueError::Full(_) => "full",
            EnqueueError::WouldWait(_) => "would_wait",
            EnqueueError::Closed(_) => "closed",
            EnqueueError::Spool(..) => "spool",
        }
    }
}

impl<E> std::fmt::Debug for EnqueueError<E> {
    /// Does not print the event (it carries personal data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnqueueError::Invalid(_, r) => write!(f, "Invalid(.., {r:?})"),
            EnqueueError::Full(_) => f.write_str("Full(..)"),
            EnqueueError::WouldWait(_) => f.write_str("WouldWait(..)"),
            EnqueueError::Closed(_) => f.write_str("Closed(..)"),
            EnqueueError::Spool(_, e) => write!(f, "Spool(.., {e:?})"),
        }
    }
}

impl<E> std::fmt::Display for EnqueueError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnqueueError::Invalid(_, refusals) => {
                f.write_str("the event cannot be sent: ")?;
                for (i, r) in refusals.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    r.fmt(f)?;
                }
                Ok(())
            }
            EnqueueError::Full(_) => f.write_str("the dispatcher's queue is full"),
            EnqueueError::WouldWait(_) => f.write_str(
                "try_enqueue cannot wait for this dispatcher's spool or rtid memory: use enqueue",
            ),
            EnqueueError::Closed(_) => f.write_str("the dispatcher is shut down"),
            EnqueueError::Spool(_, e) => write!(f, "the event was not stored: {e}"),
        }
    }
}

impl<E> std::error::Error for EnqueueError<E> {}

/// Where outcomes go.
#[derive(Clone)]
pub enum OutcomeSink {
    /// A function called once per outcome, from the task that settles it (the enqueuing
    /// task for bad input, a background task otherwise). It must be quick and must not wait
    /// on the dispatcher; a panic in it is caught and logged.
    Callback(Arc<dyn Fn(Outcome) + Send + Sync>),
    /// A channel; outcomes are dropped once its receiver is gone.
    Channel(mpsc::UnboundedSender<Outcome>),
    /// Nowhere (failures are still logged, by ticket).
    Discard,
}

impl std::fmt::Debug for OutcomeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutcomeSink::Callback(_) => "Callback",
            OutcomeSink::Channel(_) => "Channel",
            OutcomeSink::Discard => "Discard",
        })
    }
}

impl OutcomeSink {
    fn emit(&self, outcome: Outcome) {
        match self {
            OutcomeSink::Callback(f) => {
                let ticket = outcome.ticket.0;
                let call = std::panic::AssertUnwindSafe(|| f(outcome));
                if std::panic::catch_unwind(call).is_err() {
                    tracing::error!(ticket, "the outcome callback panicked");
                }
            }
            OutcomeSink::Channel(tx) => {
                let _ = tx.send(outcome);
            }
            OutcomeSink::Discard => {}
        }
    }
}

/// Counts each outcome, logs the ones not delivered, and hands it to the sink.
#[derive(Clone, Debug)]
struct Reporter {
    sink: OutcomeSink,
    meter: Arc<Meter>,
    spool: Option<Arc<Link>>,
}

impl Reporter {
    fn emit(&self, outcome: Outcome) {
        if let Some(link) = &self.spool {
            if !link.settle(&outcome) {
                // Back in the spool, for another attempt or another process.
                Meter::add(&self.meter.respooled);
                return;
            }
        }
        let counter = match &outcome.verdict {
            Verdict::Delivered(_) => &self.meter.delivered,
            Verdict::Rejected(_) => &self.meter.rejected,
            Verdict::Failed(_) => &self.meter.failed,
        };
        Meter::add(counter);
        if let Some(e) = outcome.verdict.error() {
            tracing::debug!(
                ticket = outcome.ticket.0,
                message_id = outcome.message_id.as_deref(),
                verdict = outcome.verdict.label(),
                status = e.http_status(),
                error_type = e.error_type(),
                "event not delivered"
            );
        }
        self.sink.emit(outcome);
    }
}

/// Configures a [`Dispatcher`].
#[derive(Debug)]
#[must_use]
pub struct DispatcherBuilder {
    client: Client,
    capacity: usize,
    concurrency: usize,
    flush_interval: Duration,
    rate: Option<f64>,
    kind: Option<RequestKind>,
    max_items: Option<usize>,
    sink: OutcomeSink,
    spool: Option<spooled::Settings>,
    memory: Option<Memory>,
    routes: Routes,
}

impl DispatcherBuilder {
    /// How many events may wait in the queue (default 10 000, at most
    /// [`MAX_QUEUE_CAPACITY`]). When it is full,
    /// [`enqueue`](Dispatcher::enqueue) waits and [`try_enqueue`](Dispatcher::try_enqueue)
    /// gives the event back.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// How many requests may be in flight at once (default 4, at most [`MAX_CONCURRENCY`]).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The longest an event waits for its bulk request to fill up (default 500 ms, more than
    /// zero and at most [`MAX_FLUSH_INTERVAL`]).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Paces requests so that no more than `batches_per_second` batches (events) are sent
    /// per second on average; mParticle's default account limit is about 270. Off by default;
    /// from [`MIN_RATE`] to [`MAX_RATE`].
    pub fn rate_limit(mut self, batches_per_second: f64) -> Self {
        self.rate = Some(batches_per_second);
        self
    }

    /// Sends every event by this route instead of choosing by age ([`RequestKind::Single`]
    /// sends each event in its own `/events` request).
    pub fn kind(mut self, kind: RequestKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// At most this many events per bulk request (default and most: the client's limits, 100).
    pub fn max_batch_items(mut self, n: usize) -> Self {
        self.max_items = Some(n);
        self
    }

    /// Calls `f` with each outcome. See [`OutcomeSink::Callback`].
    pub fn on_outcome(mut self, f: impl Fn(Outcome) + Send + Sync + 'static) -> Self {
        self.sink = OutcomeSink::Callback(Arc::new(f));
        self
    }

    /// Sends each outcome into `tx`.
    pub fn outcomes_to(mut self, tx: mpsc::UnboundedSender<Outcome>) -> Self {
        self.sink = OutcomeSink::Channel(tx);
        self
    }

    /// Keeps every event in `spool` from `enqueue` until its outcome is settled (see
    /// [`spool`](crate::spool)); without one, events live in memory only.
    ///
    /// With a spool, [`enqueue`](Dispatcher::enqueue) returns once the event is durable, and
    /// gives it back as [`EnqueueError::Full`] when the spool is at its bound (it does not wait
    /// for room in memory: the backlog stays on disk). The queue capacity bounds how many
    /// events are held in memory at once. Pending events found in the spool (left by a process
    /// that stopped) are sent too, with their persistent ids as tickets. An event that fails
    /// is sent again, with a back-off of up to [`spool_max_backoff`](Self::spool_max_backoff),
    /// until [`spool_retry_window`](Self::spool_retry_window) has passed since it was first
    /// stored; then it moves to the spool's dead letters and its
    /// [`Verdict::Failed`] outcome is reported. An event still unsent when the dispatcher stops
    /// stays pending in the spool, with no outcome in this process.
    /// [`try_enqueue`](Dispatcher::try_enqueue) cannot wait for the disk and gives every event
    /// back as `Full`.
    pub fn spool(mut self, spool: Arc<dyn Spool>) -> Self {
        let settings = self.spool.take().unwrap_or_default();
        self.spool = Some(spooled::Settings {
            spool: Some(spool),
            ..settings
        });
        self
    }

    /// With a spool: how long after it was first stored a failing event is still sent again
    /// (default 24 hours, at most 30 days).
    pub fn spool_retry_window(mut self, window: Duration) -> Self {
        self.spool.get_or_insert_with(Default::default).retry_window = window;
        self
    }

    /// With a spool: the longest wait between two attempts of a failing event (default 60 s;
    /// the first wait is 1 s, doubling).
    pub fn spool_max_backoff(mut self, backoff: Duration) -> Self {
        self.spool.get_or_insert_with(Default::default).max_backoff = backoff;
        self
    }

    /// Passes each event [`enqueue`](Dispatcher::enqueue)d (not
    /// [`enqueue_batch`](Dispatcher::enqueue_batch)ed) through `memory` before it is mapped:
    /// the memory learns the visitor's rtid, and an event without one of its own is mapped
    /// with the remembered one, as Rokt's browser plugin would have added it. A store failure
    /// is logged and the event goes on as it is. Off by default.
    pub fn rtid_memory(mut self, memory: Arc<RtidMemory>) -> Self {
        self.memory = Some(Memory::Sync(memory));
        self
    }

    /// Like [`rtid_memory`](Self::rtid_memory), with a memory whose store is awaited (such as
    /// PostgreSQL, shared by every instance of a service): [`enqueue`](Dispatcher::enqueue)
    /// awaits it; [`try_enqueue`](Dispatcher::try_enqueue) cannot, and gives every event back
    /// as [`EnqueueError::WouldWait`].
    pub fn async_rtid_memory(mut self, memory: Arc<AsyncRtidMemory>) -> Self {
        self.memory = Some(Memory::Async(memory));
        self
    }

    /// Serves a whole destination: each event [`enqueue`](Dispatcher::enqueue)d goes through
    /// every enabled subscription whose trigger it matches, each mapping it with its own preset
    /// and overrides (the direct path where it applies), and each queued route gets its own
    /// ticket and [`Outcome`], which names the subscription. An event matching none is not
    /// queued ([`Enqueued::is_routed`]). Without a destination every event is mapped once,
    /// with the client's pipeline, and no trigger is checked.
    ///
    /// The destination's pipelines map and encode; the client's settings send (its endpoint,
    /// credentials, limits for requests, retry policy).
    pub fn destination(mut self, destination: Destination) -> Self {
        self.routes = Routes::Destination(Arc::new(destination));
        self
    }

    /// Checks the settings (each bad one is an [`Error::Config`] naming it) and starts the
    /// background task on the current tokio runtime.
    pub fn build(self) -> Result<Dispatcher, Error> {
        use crate::ConfigError;
        if let Routes::Destination(d) = &self.routes {
            if d.len() > self.capacity {
                return Err(ConfigError::new(
                    "queue_capacity",
                    format!(
                        "must be at least the destination's {} subscriptions (one event may take them all)",
                        d.len()
                    ),
                )
                .into());
            }
        }
        if !(1..=MAX_QUEUE_CAPACITY).contains(&self.capacity) {
            return Err(ConfigError::new(
                "queue_capacity",
                format!("must be from 1 to {MAX_QUEUE_CAPACITY}"),
            )
            .into());
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::new(
                "concurrency",
                format!("must be from 1 to {MAX_CONCURRENCY}"),
            )
            .into());
        }
        if self.flush_interval.is_zero() || self.flush_interval > MAX_FLUSH_INTERVAL {
            return Err(ConfigError::new(
                "flush_interval",
                "must be more than zero and at most one hour",
            )
            .into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
                return Err(ConfigError::new(
                    "rate_limit",
                    format!("must be from {MIN_RATE} to {MAX_RATE} batches per second"),
                )
                .into());
            }
        }
        let mut limits = *self.client.pipeline().limits();
        if let Some(n) = self.max_items {
            if !(1..=limits.max_items).contains(&n) {
                return Err(ConfigError::new(
                    "max_batch_items",
                    format!("must be from 1 to the client's limit, {}", limits.max_items),
                )
                .into());
            }
            limits = limits.with_max_items(n);
        }
        let link = match self.spool.map(spooled::Settings::check).transpose()? {
            Some((settings, spool)) => Some(Link::new(settings, spool, self.capacity)),
            None => None,
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "runtime",
                "a Dispatcher must be built inside a tokio runtime",
            )
        })?;
        let (tx, rx) = mpsc::channel(self.capacity);
        let (done_tx, done_rx) = watch::channel(false);
        let (abort_tx, abort_rx) = watch::channel(false);
        let meter = Arc::new(Meter::default());
        let reporter = Reporter {
            sink: self.sink,
            meter: meter.clone(),
            spool: link.clone(),
        };
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let batcher = Batcher {
            client: self.client.metered(meter.clone()),
            queue: tx.downgrade(),
            limits,
            flush_interval: self.flush_interval,
            pacer: self.rate.map(Pacer::new),
            permits: permits.clone(),
            tasks: JoinSet::new(),
            pending: Vec::new(),
            spool: link.clone(),
        };
        if let Some(link) = &link {
            runtime.spawn(link.clone().settler());
            let kind = self.kind;
            let client = self.client.clone();
            let route = move |ms| kind.unwrap_or_else(|| client.route_ms(ms));
            runtime.spawn(link.clone().feed(tx.downgrade(), reporter.clone(), route));
        }
        runtime.spawn(batcher.run(rx, done_tx, abort_rx));
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                tx,
                client: self.client,
                reporter,
                kind: self.kind,
                next_ticket: AtomicU64::new(0),
                done: done_rx,
                abort: abort_tx,
                meter,
                permits,
                concurrency: self.concurrency,
                spool: link,
                memory: self.memory,
                routes: self.routes,
            }),
        })
    }
}

/// Sends events in the background: a bounded queue, bulk requests of up to 100 events (or
/// the byte limit, or whatever arrived within the flush interval), several requests at once,
/// optional pacing, retries, and exactly one [`Outcome`] per enqueued event.
///
/// Events are mapped and encoded when they are enqueued, by the client's
/// [`Pipeline`](crate::Pipeline), so bad input is reported at once, as a
/// [`Verdict::Rejected`] outcome, and never queued.
///
/// Pacing ([`rate_limit`](DispatcherBuilder::rate_limit)) spaces the first attempt of each
/// request; retries and one-by-one resends are not counted. After a 429 or 503 every slot
/// pauses together (see [`RetryPolicy`](super::RetryPolicy)). One-by-one resends after an
/// error that names no item take the dispatcher's slots like any request. Outcome callbacks run on the
/// dispatcher's tasks: they must not wait on the dispatcher (`enqueue`, `flush`,
/// `shutdown`), which could deadlock.
///
/// Cheap to clone; all clones feed the same queue. Call [`shutdown`](Self::shutdown) (or
/// [`shutdown_within`](Self::shutdown_within), which bounds the wait) before the program
/// ends: it sends what is queued and waits for every outcome. **Dropping** every clone
/// without it closes the queue: the background task still sends what was queued and reports
/// the outcomes, but nothing waits for it. If the tokio runtime stops first, every event
/// still queued, grouped or in flight is reported [`Verdict::Failed`] with
/// [`Error::Closed`] as the runtime drops it (one in flight may have reached Rokt), so
/// [`stats`](Self::stats) still ends with nothing pending.
///
/// ```
/// use rokt_capi::client::{Client, Dispatcher, Verdict};
/// # use std::io::{BufRead, BufReader, Read, Write};
/// # fn receiver() -> String {
/// #     let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// #     let url = format!("http://{}", listener.local_addr().unwrap());
/// #     std::thread::spawn(move || {
/// #         for stream in listener.incoming() {
/// #             let mut stream = BufReader::new(stream.unwrap());
/// #             std::thread::spawn(move || {
/// #                 let mut len = 0;
/// #                 loop {
/// #                     let mut line = String::new();
/// #                     if stream.read_line(&mut line).unwrap_or(0) == 0 { break; }
/// #                     if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") { len = v.trim().parse().unwrap(); }
/// #                     if line == "\r\n" {
/// #                         let mut body = vec![0; len];
/// #                         stream.read_exact(&mut body).unwrap();
/// #                         stream.get_mut().write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}").unwrap();
/// #                     }
/// #                 }
/// #             });
/// #         }
/// #     });
/// #     url
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let url = receiver();
/// let client = Client::builder()
///     .api_key("my-key")
///     .api_secret("my-secret")
///     .endpoint_url(&url) // a loopback receiver here; Rokt by default
///     .build()?;
/// let (tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
/// let dispatcher = Dispatcher::builder(client).outcomes_to(tx).build()?;
///
/// let now = chrono::Utc::now().to_rfc3339();
/// for i in 0..250 {
///     let event = serde_json::json!({
///         "type": "track", "event": "Order Completed", "messageId": format!("m-{i}"),
///         "timestamp": now, "context": {"traits": {"email": "jane@example.com"}},
///         "properties": {"order_id": format!("o-{i}")}
///     });
///     dispatcher.enqueue(event).await?;
/// }
/// // Bad input is answered at once, with the event given back and why.
/// let bad = dispatcher.enqueue(serde_json::json!({"type": "track"})).await.unwrap_err();
/// assert!(bad.is_invalid() && bad.refusals()[0].error.is_bad_input());
/// dispatcher.shutdown().await; // sends what is queued, waits for every outcome
///
/// let mut delivered = 0;
/// while let Ok(outcome) = outcomes.try_recv() {
///     match outcome.verdict {
///         Verdict::Delivered(_) => delivered += 1,
///         // Rejected by Rokt, or failed after retries: `outcome.body` holds the bytes.
///         _ => panic!("{outcome:?}"),
///     }
/// }
/// assert_eq!(delivered, 250);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<Msg>,
    /// Tells the background task to give up: settle everything left as failed, at once.
    abort: watch::Sender<bool>,
    client: Client,
    reporter: Reporter,
    kind: Option<RequestKind>,
    next_ticket: AtomicU64,
    done: watch::Receiver<bool>,
    meter: Arc<Meter>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    spool: Option<Arc<Link>>,
    memory: Option<Memory>,
    routes: Routes,
}

#[derive(Debug)]
enum Msg {
    Item(Queued),
    Flush(oneshot::Sender<()>),
    Shutdown,
}

/// An event on its way: queued, grouped or in flight. It reports its outcome exactly once:
/// through [`settle`](Queued::settle), or, if it is dropped unsettled (shutdown's deadline
/// passed, the runtime stopped, a task died), as `Failed(Error::Closed)` from its `Drop`.
#[derive(Debug)]
struct Queued {
    ticket: Ticket,
    subscription: Option<Arc<str>>,
    kind: RequestKind,
    item: Encoded,
    /// Taken when the outcome is reported.
    reporter: Option<Reporter>,
    /// When it was queued, for [`Stats::outcome_latency`].
    queued_at: Instant,
}

impl Queued {
    fn settle(mut self, verdict: Verdict) {
        if let Some(reporter) = self.reporter.take() {
            reporter
                .meter
                .outcome_latency
                .record(self.queued_at.elapsed());
            reporter.emit(self.outcome(verdict));
        }
    }

    fn outcome(&mut self, verdict: Verdict) -> Outcome {
        let body = match verdict.is_delivered() {
            true => None,
            false => Some(std::mem::take(&mut self.item.body)),
        };
        Outcome {
            ticket: self.ticket,
            subscription: self.subscription.take(),
            message_id: self.item.message_id.take(),
            verdict,
            body,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Some(reporter) = self.reporter.take() {
            tracing::debug!(
                ticket = self.ticket.0,
                "an event was dropped before its outcome: reported as failed (closed)"
            );
            reporter
                .meter
                .outcome_latency
                .record(self.queued_at.elapsed());
            reporter.emit(self.outcome(Verdict::Failed(Error::Closed)));
        }
    }
}

impl Dispatcher {
    /// A builder for a dispatcher that sends with `client` (and maps with its pipeline).
    pub fn builder(client: Client) -> DispatcherBuilder {
        DispatcherBuilder {
            client,
            capacity: 10_000,
            concurrency: 4,
            flush_interval: Duration::from_millis(500),
            rate: None,
            kind: None,
            max_items: None,
            sink: OutcomeSink::Discard,
            spool: None,
            memory: None,
            routes: Routes::Pipeline,
        }
    }

    /// The client it sends with.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Maps and queues one event, waiting while the queue is full: one ticket per route
    /// (see [`Enqueued`]). Bad input is not queued: every route's refusal comes back at once,
    /// with the event, as [`EnqueueError::Invalid`], so the outcome stream carries only what
    /// was sent. Gives the event back when the dispatcher is shut down.
    ///
    /// With a [spool](DispatcherBuilder::spool) the routes are stored one by one: if storing
    /// one fails, those stored before it stay stored and are sent, so sending the event again
    /// may send those twice (at least once, as after any crash).
    ///
    /// # Cancel safety
    ///
    /// Cancelling it while it waits for room drops the event without a ticket (nothing was
    /// queued, no outcome follows) and loses its place in line; once it has returned a
    /// ticket, the event gets its outcome whatever happens next.
    pub async fn enqueue<E: AsEvent>(&self, event: E) -> Result<Enqueued, EnqueueError<E>> {
        let routes = match &self.shared.memory {
            Some(Memory::Async(memory)) => self.routes_through(memory, &event).await,
            _ => self.routes(&event),
        };
        let (ok, refused) = match split(routes) {
            Ok(split) => split,
            Err(refusals) => return Err(self.invalid(event, refusals)),
        };
        if let Some(link) = &self.shared.spool {
            return match self.admit_durable(link, ok).await {
                Ok(tickets) => Ok(Enqueued { tickets, refused }),
                Err(e) => Err(e.with(event)),
            };
        }
        match self.shared.tx.reserve_many(ok.len()).await {
            Ok(permits) => Ok(Enqueued {
                tickets: self.admit(permits, ok),
                refused,
            }),
            Err(_) => Err(EnqueueError::Closed(event)),
        }
    }

    /// Like [`enqueue`](Self::enqueue), but gives the event back at once when the queue has
    /// no room for all of its routes, and as [`EnqueueError::WouldWait`] when the dispatcher
    /// has a spool or an async rtid memory (it cannot answer without waiting).
    pub fn try_enqueue<E: AsEvent>(&self, event: E) -> Result<Enqueued, EnqueueError<E>> {
        if self.shared.spool.is_some() || matches!(self.shared.memory, Some(Memory::Async(_))) {
            return Err(EnqueueError::WouldWait(event));
        }
        let (ok, refused) = match split(self.routes(&event)) {
            Ok(split) => split,
            Err(refusals) => return Err(self.invalid(event, refusals)),
        };
        match self.shared.tx.try_reserve_many(ok.len()) {
            Ok(permits) => Ok(Enqueued {
                tickets: self.admit(permits, ok),
                refused,
            }),
            Err(mpsc::error::TrySendError::Full(())) => Err(EnqueueError::Full(event)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(EnqueueError::Closed(event)),
        }
    }

    /// Queues a batch that is already mapped (by [`Pipeline::batch`](crate::Pipeline::batch)
    /// or [`Destination::route`](crate::subscription::Destination::route)), waiting while the
    /// queue is full; no trigger, mapping or rtid memory applies. A batch over the size limit
    /// is refused as [`EnqueueError::Invalid`] ([`Error::TooLarge`]). Gives the batch back
    /// when the dispatcher is shut down.
    pub async fn enqueue_batch(&self, batch: Batch) -> Result<Ticket, EnqueueError<Batch>> {
        let encoded = match self.encode_batch(&batch) {
            Ok(encoded) => encoded,
            Err(refusal) => return Err(self.invalid(batch, vec![refusal])),
        };
        if let Some(link) = &self.shared.spool {
            return match self.admit_durable(link, vec![(None, encoded)]).await {
                Ok(tickets) => Ok(tickets[0].ticket),
                Err(e) => Err(e.with(batch)),
            };
        }
        match self.shared.tx.reserve_many(1).await {
            Ok(permits) => Ok(self.admit(permits, vec![(None, encoded)])[0].ticket),
            Err(_) => Err(EnqueueError::Closed(batch)),
        }
    }

    /// Like [`enqueue_batch`](Self::enqueue_batch), but gives the batch back at once when the
    /// queue is full, and as [`EnqueueError::WouldWait`] with a spool.
    // The batch comes back by value, as from `enqueue_batch`: no allocation on the way in.
    #[allow(clippy::result_large_err)]
    pub fn try_enqueue_batch(&self, batch: Batch) -> Result<Ticket, EnqueueError<Batch>> {
        if self.shared.spool.is_some() {
            return Err(EnqueueError::WouldWait(batch));
        }
        let encoded = match self.encode_batch(&batch) {
            Ok(encoded) => encoded,
            Err(refusal) => return Err(self.invalid(batch, vec![refusal])),
        };
        match self.shared.tx.try_reserve_many(1) {
            Ok(permits) => Ok(self.admit(permits, vec![(None, encoded)])[0].ticket),
            Err(mpsc::error::TrySendError::Full(())) => Err(EnqueueError::Full(batch)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(EnqueueError::Closed(batch)),
        }
    }

    /// Counts and logs an event refused as bad input, and gives it back.
    fn invalid<E>(&self, event: E, refusals: Vec<Refusal>) -> EnqueueError<E> {
        Meter::add(&self.shared.meter.invalid);
        for r in &refusals {
            tracing::debug!(
                subscription = r.subscription.as_deref(),
                error_type = r.error.error_type(),
                "event refused at enqueue"
            );
        }
        EnqueueError::Invalid(event, refusals)
    }

    fn encode_batch(&self, batch: &Batch) -> Result<Encoded, Refusal> {
        Encoded::of_batch(batch, self.shared.client.pipeline().limits()).map_err(|error| Refusal {
            subscription: None,
            error,
        })
    }

    /// The event's routes, mapped and encoded, through the synchronous rtid memory when
    /// there is one.
    fn routes(&self, event: &impl AsEvent) -> Vec<Route> {
        let routes = match &self.shared.memory {
            Some(Memory::Sync(memory)) => memory.with_observed(event, |doc| {
                Ok(self.shared.routes.map(&self.shared.client, doc))
            }),
            _ => Ok(self.shared.routes.map(&self.shared.client, event)),
        };
        routes.unwrap_or_else(|e| vec![(None, Err(e))])
    }

    /// [`routes`](Self::routes) through an async rtid memory: the event is copied once so
    /// that it outlives the store's round trips.
    async fn routes_through(&self, memory: &AsyncRtidMemory, event: &impl AsEvent) -> Vec<Route> {
        let doc = match event.with_json(|doc| Ok(doc.clone().into_owned())) {
            Ok(doc) => doc,
            Err(e) => return vec![(None, Err(e))],
        };
        let enriched = match memory.observe(&doc).await {
            Ok(enriched) => enriched,
            Err(e) => {
                tracing::warn!(
                    store = e.store(),
                    operation = e.operation(),
                    "rtid memory unavailable; the event goes on as it is"
                );
                None
            }
        };
        let doc = enriched.as_ref().unwrap_or(&doc);
        self.shared.routes.map(&self.shared.client, doc)
    }

    fn admit(
        &self,
        permits: mpsc::PermitIterator<'_, Msg>,
        routes: Vec<(Option<Arc<str>>, Encoded)>,
    ) -> Vec<Routed> {
        let mut tickets = Vec::with_capacity(routes.len());
        for (permit, (subscription, item)) in permits.zip(routes) {
            let ticket = Ticket(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
            Meter::add(&self.shared.meter.enqueued);
            let kind = self
                .shared
                .kind
                .unwrap_or_else(|| self.shared.client.route_ms(item.newest_ms));
            tickets.push(Routed {
                subscription: subscription.clone(),
                ticket,
            });
            permit.send(Msg::Item(Queued {
                ticket,
                subscription,
                kind,
                item,
                reporter: Some(self.shared.reporter.clone()),
                queued_at: Instant::now(),
            }));
            tracing::trace!(
                ticket = ticket.0,
                queue_depth = queue_depth(&self.shared.tx),
                "event queued"
            );
        }
        tickets
    }

    /// The counters and gauges now, for metrics: see [`Stats`].
    pub fn stats(&self) -> Stats {
        let mut stats = self.shared.meter.snapshot();
        stats.queue_depth = queue_depth(&self.shared.tx);
        let idle = self.shared.permits.available_permits();
        stats.in_flight = self.shared.concurrency.saturating_sub(idle) as u64;
        stats
    }

    /// Sends everything enqueued before this call, without waiting for bulk requests to fill
    /// up, and returns once each of those events has its outcome. [`Error::Closed`] after
    /// shutdown.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it only stops the waiting: the events are still sent and settled.
    pub async fn flush(&self) -> Result<(), Error> {
        tracing::debug!(
            queue_depth = queue_depth(&self.shared.tx),
            pending = self.shared.meter.snapshot().pending(),
            "rokt dispatcher flush"
        );
        let (tx, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Stops taking events, sends everything queued, and returns once every event enqueued
    /// has its outcome and the background task has ended. Safe to call more than once and
    /// from several clones; later [`enqueue`](Self::enqueue) calls give the event back.
    ///
    /// How long that takes is bounded by the settings (each request by the retry policy's
    /// deadline plus one request timeout and `max_retry_after`, pacing by the rate), not by
    /// this call; [`shutdown_within`](Self::shutdown_within) sets a deadline of its own.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it only stops the waiting: the queue is closed and what it held is still
    /// sent and settled.
    pub async fn shutdown(&self) {
        tracing::debug!(
            queue_depth = queue_depth(&self.shared.tx),
            pending = self.shared.meter.snapshot().pending(),
            "rokt dispatcher shutting down"
        );
        let _ = self.shared.tx.send(Msg::Shutdown).await;
        let mut done = self.shared.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Like [`shutdown`](Self::shutdown), but gives up when `deadline` has passed: every
    /// event still queued, grouped or in flight is then settled at once as
    /// [`Verdict::Failed`] with [`Error::Closed`] (one in flight may still reach Rokt), and
    /// [`stats`](Self::stats) is final when this returns. Returns whether everything was
    /// settled before the deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it after the deadline has passed leaves the giving-up to finish in the
    /// background; before, it is like cancelling `shutdown`: the queue is closed, and what
    /// it held is still sent.
    ///
    /// ```
    /// # use rokt_capi::client::{Client, Dispatcher};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rokt_capi::Error> {
    /// # let client = Client::builder().api_key("k").api_secret("s").endpoint_url("http://127.0.0.1:9").build()?;
    /// let dispatcher = Dispatcher::builder(client).build()?;
    /// // … enqueue events …
    /// if !dispatcher.shutdown_within(Duration::from_secs(5)).await {
    ///     // Some events were reported failed (closed) rather than waited for.
    /// }
    /// assert_eq!(dispatcher.stats().pending(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown_within(&self, deadline: Duration) -> bool {
        let finished = tokio::time::timeout(deadline, self.shutdown())
            .await
            .is_ok();
        if !finished {
            tracing::warn!(
                pending = self.shared.meter.snapshot().pending(),
                "rokt dispatcher shutdown deadline passed: failing what is left"
            );
            self.shared.abort.send_replace(true);
            let mut done = self.shared.done.clone();
            let _ = done.wait_for(|d| *d).await;
        }
        finished
    }

    /// Whether the background task has ended (after [`shutdown`](Self::shutdown)).
    pub fn is_closed(&self) -> bool {
        *self.shared.done.borrow()
    }
}

/// One route of an event: the subscription (`None` for the client's own pipeline) and its
/// encoded batch, or why it has none.
type Route = (Option<Arc<str>>, Result<Encoded, Error>);

/// The routes that can be queued and the refusals; `Err` when every route that matched
/// refused (bad input).
#[allow(clippy::type_complexity)]
fn split(
    routes: Vec<Route>,
) -> Result<(Vec<(Option<Arc<str>>, Encoded)>, Vec<Refusal>), Vec<Refusal>> {
    let mut ok = Vec::with_capacity(routes.len());
    let mut refused = Vec::new();
    for (subscription, encoded) in routes {
        match encoded {
            Ok(item) => ok.push((subscription, item)),
            Err(error) => refused.push(Refusal {
                subscription,
                error,
            }),
        }
    }
    match ok.is_empty() && !refused.is_empty() {
        true => Err(refused),
        false => Ok((ok, refused)),
    }
}

/// Where events go.
#[derive(Clone, Debug)]
enum Routes {
    /// Every event, mapped once with the client's pipeline.
    Pipeline,
    /// Each matching subscription of a destination.
    Destination(Arc<Destination>),
}

impl Routes {
    /// The event's routes, the event read as it is held (a `Value` or a typed event in
    /// place, where the plans are sure of it).
    fn map(&self, client: &Client, event: impl AsEvent) -> Vec<Route> {
        match self {
            Routes::Pipeline => vec![(None, client.pipeline().encoded(event))],
            Routes::Destination(destination) => match destination.encoded(event) {
                Ok(routes) => routes
                    .into_iter()
                    .map(|(name, encoded)| (Some(name), encoded))
                    .collect(),
                Err(e) => vec![(None, Err(e))],
            },
        }
    }
}

/// The rtid memory events pass through before they are mapped.
#[derive(Clone, Debug)]
enum Memory {
    Sync(Arc<RtidMemory>),
    Async(Arc<AsyncRtidMemory>),
}

/// Messages waiting in the queue (events, plus a flush or shutdown request if one is waiting).
fn queue_depth<T>(tx: &mpsc::Sender<T>) -> u64 {
    tx.max_capacity().saturating_sub(tx.capacity()) as u64
}

/// The longest one request waits for its pacing slot.
const MAX_PACING_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Spreads requests so that at most `rate` items per second start on average; the first
/// request starts at once.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: f64,
    next: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(rate: f64) -> Pacer {
        Pacer { rate, next: None }
    }

    /// Books `items` items at `now`: how long to wait before sending them.
    pub(crate) fn reserve(&mut self, items: usize, now: Instant) -> Duration {
        let start = match self.next {
            Some(next) if next > now => next,
            _ => now,
        };
        // Precision loss only matters past 2^52 items. The rate is validated, but a wait is
        // still bounded here rather than trusted.
        #[allow(clippy::cast_precision_loss)]
        let span = Duration::try_from_secs_f64(items as f64 / self.rate)
            .unwrap_or(MAX_PACING_WAIT)
            .min(MAX_PACING_WAIT);
        self.next = Some(start.checked_add(span).unwrap_or(start));
        start.saturating_duration_since(now)
    }
}

/// Events of one route waiting for their request.
struct Pending {
    kind: RequestKind,
    items: Vec<Queued>,
    bytes: usize,
    since: Instant,
}

struct Batcher {
    client: Client,
    /// For the queue depth in logs; weak, so it does not keep the queue open.
    queue: mpsc::WeakSender<Msg>,
    limits: Limits,
    flush_interval: Duration,
    pacer: Option<Pacer>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    pending: Vec<Pending>,
    spool: Option<Arc<Link>>,
}

impl Batcher {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        done: watch::Sender<bool>,
        mut abort: watch::Receiver<bool>,
    ) {
        let aborted = tokio::select! {
            () = self.work(&mut rx) => false,
            () = aborted(&mut abort) => true,
        };
        if aborted {
            // Whatever the work held when it was dropped has reported itself failed; now
            // the requests in flight, the groups and the queue.
            rx.close();
            self.tasks.shutdown().await;
            self.pending.clear();
            while rx.try_recv().is_ok() {}
        }
        if let Some(link) = &self.spool {
            link.sync().await;
        }
        tracing::debug!("rokt dispatcher stopped");
        let _ = done.send(true);
    }

    async fn work(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        loop {
            let due = self.pending.iter().map(|p| p.since).min();
            let due = due.map(|d| d.checked_add(self.flush_interval).unwrap_or(d));
            let msg = tokio::select! {
                biased;
                () = sleep_until_opt(due), if due.is_some() => {
                    self.dispatch_due().await;
                    continue;
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => continue,
                msg = rx.recv() => msg,
            };
            match msg {
                Some(Msg::Item(q)) => self.add(q).await,
                Some(Msg::Flush(reply)) => {
                    self.drain().await;
                    let _ = reply.send(());
                }
                // Take no more; what is buffered still comes through `recv`.
                Some(Msg::Shutdown) => rx.close(),
                None => break,
            }
        }
        self.drain().await;
    }

    async fn add(&mut self, q: Queued) {
        if q.kind == RequestKind::Single {
            self.dispatch(RequestKind::Single, vec![q]).await;
            return;
        }
        let size = q.item.body.len();
        let at = match self.pending.iter().position(|p| p.kind == q.kind) {
            Some(at) => {
                let p = &self.pending[at];
                if p.items.len() >= self.limits.max_items
                    || p.bytes + 1 + size > self.limits.max_request_bytes
                {
                    let p = self.pending.swap_remove(at);
                    self.dispatch(p.kind, p.items).await;
                    None
                } else {
                    Some(at)
                }
            }
            None => None,
        };
        let at = at.unwrap_or_else(|| {
            self.pending.push(Pending {
                kind: q.kind,
                items: Vec::with_capacity(self.limits.max_items),
                bytes: 1,
                since: Instant::now(),
            });
            self.pending.len() - 1
        });
        let p = &mut self.pending[at];
        p.bytes += size + 1;
        p.items.push(q);
        if p.items.len() >= self.limits.max_items {
            let p = self.pending.swap_remove(at);
            self.dispatch(p.kind, p.items).await;
        }
    }

    async fn dispatch_due(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            let since = self.pending[i].since;
            if since.checked_add(self.flush_interval).unwrap_or(since) <= now {
                let p = self.pending.swap_remove(i);
                self.dispatch(p.kind, p.items).await;
            } else {
                i += 1;
            }
        }
    }

    /// Sends every pending group and waits for every request in flight.
    async fn drain(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.dispatch(p.kind, p.items).await;
        }
        while self.tasks.join_next().await.is_some() {}
    }

    async fn dispatch(&mut self, kind: RequestKind, items: Vec<Queued>) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            // The semaphore is never closed; still, every event gets its outcome.
            for q in items {
                q.settle(Verdict::Failed(Error::Closed));
            }
            return;
        };
        if let Some(pacer) = &mut self.pacer {
            let wait = pacer.reserve(items.len(), Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let queue_depth = self.queue.upgrade().map_or(0, |tx| queue_depth(&tx));
        let span = tracing::debug_span!(
            "rokt_dispatch",
            ?kind,
            items = items.len(),
            queue_depth,
            buffered = self.pending.iter().map(|p| p.items.len()).sum::<usize>(),
        );
        tracing::debug!(parent: &span, "rokt dispatcher sending");
        let client = self.client.clone();
        let slots = Slots::held(self.permits.clone(), permit);
        self.tasks
            .spawn(send_group(client, kind, items, slots).instrument(span));
    }
}

/// Resolves once the abort signal is raised (never, if its sender is gone).
async fn aborted(abort: &mut watch::Receiver<bool>) {
    if abort.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn send_group(client: Client, kind: RequestKind, items: Vec<Queued>, slots: Slots) {
    if kind == RequestKind::Single {
        let _slot = slots;
        for q in items {
            let result = client.deliver_alone(kind, &q.item.body, None).await;
            q.settle(Verdict::from_result(result));
        }
        return;
    }
    let bodies: Vec<Bytes> = items.iter().map(|q| q.item.body.clone()).collect();
    let verdicts = client.deliver(kind, &bodies, slots).await;
    for (q, result) in items.into_iter().zip(verdicts) {
        q.settle(Verdict::from_result(result));
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spreads_items() {
        let t0 = Instant::now();
        let mut p = Pacer::new(200.0);
        assert_eq!(p.reserve(100, t0), Duration::ZERO);
        assert_eq!(p.reserve(100, t0), Duration::from_millis(500));
        assert_eq!(p.reserve(50, t0), Duration::from_millis(1000));
        // After a quiet spell, no wait and no credit.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(100, later), Duration::ZERO);
        assert_eq!(
            p.reserve(1, later + Duration::from_millis(100)),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn pacer_never_overflows() {
        let t0 = Instant::now();
        for rate in [f64::MIN_POSITIVE, 1e-300, 1e-9] {
            let mut p = Pacer::new(rate);
            assert_eq!(p.reserve(100, t0), Duration::ZERO);
            assert_eq!(p.reserve(usize::MAX, t0), MAX_PACING_WAIT);
            assert!(p.reserve(1, t0) <= MAX_PACING_WAIT * 2);
        }
    }
}
