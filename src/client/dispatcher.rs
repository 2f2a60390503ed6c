//! The background pipeline a service embeds: enqueue events, get one outcome per event.

use super::stats::{Meter, Stats};
use super::{Client, Encoded, Receipt};
use crate::error::Error;
use crate::request::{Limits, RequestKind};
use crate::rokt::Batch;
use crate::segment::AsEvent;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

mod spooled;
use crate::spool::{Spool, SpoolError};
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

/// What became of one enqueued event. Each ticket gets exactly one.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The ticket `enqueue` returned.
    pub ticket: Ticket,
    /// The event's Segment `messageId` (the batch's `source_message_id`), when it has one.
    pub message_id: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The three ends of an event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// Rokt accepted it.
    Delivered(Receipt),
    /// It will never be accepted: bad input (found at enqueue time, nothing was sent), or
    /// [`Error::Rejected`] by Rokt.
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

/// Why [`Dispatcher::try_enqueue`] or [`Dispatcher::enqueue`] did not take an event; it
/// carries the event back.
#[derive(Clone, PartialEq)]
pub enum EnqueueError<E> {
    /// The queue is full (only from `try_enqueue`), or the [spool](DispatcherBuilder::spool)
    /// reached its bound.
    Full(E),
    /// The dispatcher is shut down.
    Closed(E),
    /// The [spool](DispatcherBuilder::spool) could not store the event (nothing was
    /// acknowledged). A full spool is [`Full`](Self::Full) instead.
    Spool(E, SpoolError),
}

impl<E> EnqueueError<E> {
    /// The event that was not taken.
    pub fn into_inner(self) -> E {
        match self {
            EnqueueError::Full(e) | EnqueueError::Closed(e) | EnqueueError::Spool(e, _) => e,
        }
    }
}

impl<E> std::fmt::Debug for EnqueueError<E> {
    /// Does not print the event (it carries personal data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnqueueError::Full(_) => f.write_str("Full(..)"),
            EnqueueError::Closed(_) => f.write_str("Closed(..)"),
            EnqueueError::Spool(_, e) => write!(f, "Spool(.., {e:?})"),
        }
    }
}

impl<E> std::fmt::Display for EnqueueError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnqueueError::Full(_) => f.write_str("the dispatcher's queue is full"),
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
                return; // back in the spool, for another attempt or another process
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
                status = e.status(),
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
}

impl DispatcherBuilder {
    /// How many events may wait in the queue (default 10 000). When it is full,
    /// [`enqueue`](Dispatcher::enqueue) waits and [`try_enqueue`](Dispatcher::try_enqueue)
    /// gives the event back.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// How many requests may be in flight at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The longest an event waits for its bulk request to fill up (default 500 ms).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Paces requests so that no more than `batches_per_second` batches (events) are sent
    /// per second on average; mParticle's default account limit is about 270. Off by default.
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

    /// At most this many events per bulk request (default: the client's limits, 100).
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

    /// Checks the settings and starts the background task on the current tokio runtime.
    pub fn build(self) -> Result<Dispatcher, Error> {
        use crate::ConfigError;
        if self.capacity == 0 {
            return Err(ConfigError::new("queue_capacity", "must be at least 1").into());
        }
        if self.concurrency == 0 {
            return Err(ConfigError::new("concurrency", "must be at least 1").into());
        }
        if self.flush_interval.is_zero() {
            return Err(ConfigError::new("flush_interval", "must be more than zero").into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(ConfigError::new("rate_limit", "must be a positive number").into());
            }
        }
        let mut limits = *self.client.pipeline().limits();
        if let Some(n) = self.max_items {
            if n == 0 {
                return Err(ConfigError::new("max_batch_items", "must be at least 1").into());
            }
            limits = limits.with_max_items(n.min(limits.max_items));
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
        let meter = Arc::new(Meter::default());
        let reporter = Reporter {
            sink: self.sink,
            meter: meter.clone(),
            spool: link.clone(),
        };
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let batcher = Batcher {
            client: self.client.metered(meter.clone()),
            reporter: reporter.clone(),
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
            runtime.spawn(link.clone().feed(tx.downgrade(), route));
        }
        runtime.spawn(batcher.run(rx, done_tx));
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                tx,
                client: self.client,
                reporter,
                kind: self.kind,
                next_ticket: AtomicU64::new(0),
                done: done_rx,
                meter,
                permits,
                concurrency: self.concurrency,
                spool: link,
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
/// request; retries and one-by-one resends are not counted. Outcome callbacks run on the
/// dispatcher's tasks: they must not wait on the dispatcher (`enqueue`, `flush`,
/// `shutdown`), which could deadlock.
///
/// Cheap to clone; all clones feed the same queue. Call [`shutdown`](Self::shutdown) before
/// the program ends: it sends what is queued and waits for every outcome. **Dropping** every
/// clone without it closes the queue: the background task still sends what was queued and
/// reports the outcomes, but nothing waits for it, so if the tokio runtime stops first the
/// events still queued or in flight are lost without an outcome.
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
/// let bad = dispatcher.enqueue(serde_json::json!({"type": "track"})).await?;
/// dispatcher.shutdown().await; // sends what is queued, waits for every outcome
///
/// let mut delivered = 0;
/// while let Ok(outcome) = outcomes.try_recv() {
///     match outcome.verdict {
///         Verdict::Delivered(_) => delivered += 1,
///         Verdict::Rejected(e) => assert!(outcome.ticket == bad && e.is_bad_input()),
///         Verdict::Failed(e) => panic!("{e}"),
///         _ => unreachable!(),
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
    client: Client,
    reporter: Reporter,
    kind: Option<RequestKind>,
    next_ticket: AtomicU64,
    done: watch::Receiver<bool>,
    meter: Arc<Meter>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    spool: Option<Arc<Link>>,
}

#[derive(Debug)]
enum Msg {
    Item(Queued),
    Flush(oneshot::Sender<()>),
    Shutdown,
}

#[derive(Debug)]
struct Queued {
    ticket: Ticket,
    kind: RequestKind,
    item: Encoded,
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
        }
    }

    /// The client it sends with.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Maps and queues one event, waiting while the queue is full. Bad input is not queued: its
    /// [`Verdict::Rejected`] outcome is reported before this returns. Gives the event back
    /// when the dispatcher is shut down.
    pub async fn enqueue<E: AsEvent>(&self, event: E) -> Result<Ticket, EnqueueError<E>> {
        if let Some(link) = &self.shared.spool {
            let encoded = self.shared.client.encode(&event);
            let message_id = || message_id_of(&event);
            return match self.admit_durable(link, encoded, message_id).await {
                Ok(ticket) => Ok(ticket),
                Err(e) => Err(e.with(event)),
            };
        }
        match self.shared.tx.reserve().await {
            Ok(permit) => Ok(self.admit_event(permit, &event)),
            Err(_) => Err(EnqueueError::Closed(event)),
        }
    }

    /// Like [`enqueue`](Self::enqueue), but gives the event back at once when the queue is
    /// full.
    pub fn try_enqueue<E: AsEvent>(&self, event: E) -> Result<Ticket, EnqueueError<E>> {
        if self.shared.spool.is_some() {
            return Err(EnqueueError::Full(event));
        }
        match self.shared.tx.try_reserve() {
            Ok(permit) => Ok(self.admit_event(permit, &event)),
            Err(mpsc::error::TrySendError::Full(())) => Err(EnqueueError::Full(event)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(EnqueueError::Closed(event)),
        }
    }

    /// Queues a batch that is already mapped (by [`Pipeline::batch`](crate::Pipeline::batch)
    /// or [`Destination::route`](crate::subscription::Destination::route)), waiting while the
    /// queue is full. A batch over the size limit is not queued: its [`Verdict::Rejected`]
    /// outcome ([`Error::TooLarge`]) is reported before this returns. Gives the batch back
    /// when the dispatcher is shut down.
    pub async fn enqueue_batch(&self, batch: Batch) -> Result<Ticket, EnqueueError<Batch>> {
        if let Some(link) = &self.shared.spool {
            let encoded = Encoded::from_batch(&batch, self.shared.client.pipeline().limits());
            let message_id = || batch.source_message_id().map(str::to_owned);
            return match self.admit_durable(link, encoded, message_id).await {
                Ok(ticket) => Ok(ticket),
                Err(e) => Err(e.with(batch)),
            };
        }
        match self.shared.tx.reserve().await {
            Ok(permit) => {
                let encoded = Encoded::from_batch(&batch, self.shared.client.pipeline().limits());
                let message_id = || batch.source_message_id().map(str::to_owned);
                Ok(self.admit(permit, encoded, message_id))
            }
            Err(_) => Err(EnqueueError::Closed(batch)),
        }
    }

    fn admit_event(&self, permit: mpsc::Permit<'_, Msg>, event: &impl AsEvent) -> Ticket {
        let encoded = self.shared.client.encode(event);
        let message_id = || message_id_of(event);
        self.admit(permit, encoded, message_id)
    }

    fn admit(
        &self,
        permit: mpsc::Permit<'_, Msg>,
        encoded: Result<Encoded, Error>,
        message_id: impl FnOnce() -> Option<String>,
    ) -> Ticket {
        let ticket = Ticket(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        Meter::add(&self.shared.meter.enqueued);
        match encoded {
            Ok(item) => {
                let kind = self
                    .shared
                    .kind
                    .unwrap_or_else(|| self.shared.client.route_ms(item.newest_ms));
                permit.send(Msg::Item(Queued { ticket, kind, item }));
                tracing::trace!(
                    ticket = ticket.0,
                    queue_depth = queue_depth(&self.shared.tx),
                    "event queued"
                );
            }
            Err(e) => {
                drop(permit);
                self.shared.reporter.emit(Outcome {
                    ticket,
                    message_id: message_id(),
                    verdict: Verdict::Rejected(e),
                });
            }
        }
        ticket
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

    /// Whether the background task has ended (after [`shutdown`](Self::shutdown)).
    pub fn is_closed(&self) -> bool {
        *self.shared.done.borrow()
    }
}

fn message_id_of(event: &impl AsEvent) -> Option<String> {
    event.with_json(|doc| {
        doc.get("messageId")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    })
}

/// Messages waiting in the queue (events, plus a flush or shutdown request if one is waiting).
fn queue_depth<T>(tx: &mpsc::Sender<T>) -> u64 {
    tx.max_capacity().saturating_sub(tx.capacity()) as u64
}

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
        // Precision loss only matters past 2^52 items.
        #[allow(clippy::cast_precision_loss)]
        let span = Duration::from_secs_f64(items as f64 / self.rate);
        self.next = Some(start + span);
        start - now
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
    reporter: Reporter,
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
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, done: watch::Sender<bool>) {
        loop {
            let due = self.pending.iter().map(|p| p.since).min();
            let msg = tokio::select! {
                biased;
                () = sleep_until_opt(due.map(|d| d + self.flush_interval)), if due.is_some() => {
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
        if let Some(link) = &self.spool {
            link.sync().await;
        }
        tracing::debug!("rokt dispatcher stopped");
        let _ = done.send(true);
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
            if self.pending[i].since + self.flush_interval <= now {
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
                self.reporter.emit(Outcome {
                    ticket: q.ticket,
                    message_id: q.item.message_id,
                    verdict: Verdict::Failed(Error::Closed),
                });
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
        let reporter = self.reporter.clone();
        self.tasks
            .spawn(send_group(client, reporter, kind, items, permit).instrument(span));
    }
}

async fn send_group(
    client: Client,
    reporter: Reporter,
    kind: RequestKind,
    items: Vec<Queued>,
    _permit: OwnedSemaphorePermit,
) {
    let verdicts = if kind == RequestKind::Single {
        let mut v = Vec::with_capacity(items.len());
        for q in &items {
            v.push(client.deliver_alone(kind, &q.item.body).await);
        }
        v
    } else {
        let bodies: Vec<Bytes> = items.iter().map(|q| q.item.body.clone()).collect();
        client.deliver(kind, &bodies).await
    };
    for (q, result) in items.into_iter().zip(verdicts) {
        reporter.emit(Outcome {
            ticket: q.ticket,
            message_id: q.item.message_id,
            verdict: Verdict::from_result(result),
        });
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
}
