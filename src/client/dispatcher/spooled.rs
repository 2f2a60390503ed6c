//! A dispatcher with a spool: the durable step of `enqueue`, the feeder that takes pending
//! events from the spool into memory, and the settlement of each outcome in the spool.

use super::{
    Dispatcher, EnqueueError, Msg, Outcome, Queued, Refusal, Reporter, Routed, Ticket, Verdict,
};
use crate::client::stats::Meter;
use crate::error::{ConfigError, Error};
use crate::pipeline::Encoded;
use crate::request::RequestKind;
use crate::spool::{DeadLetter, Record, Settle, Spool, SpoolCounts, SpoolError, now_ms};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// The longest [`spool_retry_window`](super::DispatcherBuilder::spool_retry_window).
const MAX_RETRY_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How often the feeder looks for due retries and for rows it was not told about.
const POLL: Duration = Duration::from_millis(500);
/// The most rows one claim takes.
const CLAIM: usize = 1024;

/// The builder's spool settings.
#[derive(Clone)]
pub(super) struct Settings {
    pub(super) spool: Option<Arc<dyn Spool>>,
    pub(super) retry_window: Duration,
    pub(super) max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            spool: None,
            retry_window: Duration::from_secs(24 * 60 * 60),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("spool", &self.spool.is_some())
            .field("retry_window", &self.retry_window)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl Settings {
    pub(super) fn check(self) -> Result<(Settings, Arc<dyn Spool>), Error> {
        let Some(spool) = self.spool.clone() else {
            return Err(ConfigError::new(
                "spool",
                "spool_retry_window and spool_max_backoff need a spool",
            )
            .into());
        };
        if self.retry_window > MAX_RETRY_WINDOW {
            return Err(ConfigError::new("spool_retry_window", "must be at most 30 days").into());
        }
        if self.max_backoff.is_zero() || self.max_backoff > Duration::from_secs(24 * 60 * 60) {
            return Err(ConfigError::new(
                "spool_max_backoff",
                "must be more than zero and at most one day",
            )
            .into());
        }
        Ok((self, spool))
    }
}

/// What the dispatcher knows of an event it holds in memory.
#[derive(Debug, Clone, Copy)]
struct Held {
    attempts: u32,
    created_ms: i64,
}

enum SettleMsg {
    Op(Settle),
    Sync(oneshot::Sender<()>),
}

/// A dispatcher's tie to its spool.
pub(super) struct Link {
    spool: Arc<dyn Spool>,
    /// Events claimed from the spool and not settled yet.
    held: Mutex<HashMap<u64, Held>>,
    /// How many events may be held at once.
    window: usize,
    wake: Notify,
    settle_tx: mpsc::UnboundedSender<SettleMsg>,
    settle_rx: Mutex<Option<mpsc::UnboundedReceiver<SettleMsg>>>,
    retry_window: Duration,
    max_backoff: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(super) fn new(settings: Settings, spool: Arc<dyn Spool>, window: usize) -> Arc<Link> {
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        Arc::new(Link {
            spool,
            held: Mutex::new(HashMap::new()),
            window,
            wake: Notify::new(),
            settle_tx,
            settle_rx: Mutex::new(Some(settle_rx)),
            retry_window: settings.retry_window,
            max_backoff: settings.max_backoff,
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Held>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the outcome in the spool; whether it is to be reported now (`false`: the event
    /// stays pending, for another attempt here or for another process).
    pub(super) fn settle(&self, outcome: &Outcome) -> bool {
        let id = outcome.ticket.0;
        let Some(held) = self.held().remove(&id) else {
            return true; // not stored (bad input found at enqueue)
        };
        self.wake.notify_one();
        let (op, report) = match &outcome.verdict {
            Verdict::Delivered(_) | Verdict::Rejected(_) => (Settle::Done(id), true),
            Verdict::Failed(Error::Closed) => (Settle::Release(id), false),
            Verdict::Failed(e) => {
                let attempts = held.attempts.saturating_add(1);
                let now = now_ms();
                let age = Duration::from_millis(u64::try_from(now - held.created_ms).unwrap_or(0));
                if age < self.retry_window {
                    let wait = backoff(attempts, self.max_backoff);
                    let not_before_ms = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    (
                        Settle::Retry {
                            id,
                            not_before_ms,
                            attempts,
                        },
                        false,
                    )
                } else {
                    let reason = format!(
                        "{} after {attempts} attempts: status {} ({})",
                        outcome.verdict.label(),
                        e.status(),
                        e.error_type()
                    );
                    (
                        Settle::Dead {
                            id,
                            attempts,
                            reason,
                        },
                        true,
                    )
                }
            }
        };
        let _ = self.settle_tx.send(SettleMsg::Op(op));
        report
    }

    /// Returns once every settlement sent before it is written (or failed and was logged).
    pub(super) async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.settle_tx.send(SettleMsg::Sync(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes settlements in groups, in order.
    pub(super) async fn settler(self: Arc<Link>) {
        let Some(mut rx) = self.settle_rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut buf = Vec::with_capacity(4096);
        // The link holds a sender too, so this ends with the runtime.
        while rx.recv_many(&mut buf, 4096).await > 0 {
            let mut ops = Vec::new();
            let mut syncs = Vec::new();
            for m in buf.drain(..) {
                match m {
                    SettleMsg::Op(op) => ops.push(op),
                    SettleMsg::Sync(tx) => syncs.push(tx),
                }
            }
            if !ops.is_empty() {
                let n = ops.len();
                if let Err(e) = self.spool.settle(ops).await {
                    // The events stay pending: sent again after a restart, never lost.
                    tracing::warn!(events = n, error = %e, "rokt spool: settlements not written");
                }
            }
            for tx in syncs {
                let _ = tx.send(());
            }
        }
    }

    /// Takes pending events from the spool into the dispatcher's queue, as many as the window
    /// allows, until the queue closes.
    pub(super) async fn feed(
        self: Arc<Link>,
        queue: mpsc::WeakSender<Msg>,
        reporter: Reporter,
        route: impl Fn(Option<i64>) -> RequestKind + Send + 'static,
    ) {
        loop {
            let open = queue.upgrade().is_some_and(|tx| !tx.is_closed());
            if !open {
                return;
            }
            let room = self.window.saturating_sub(self.held().len());
            let rows = if room == 0 {
                Vec::new()
            } else {
                match self.spool.claim(room.min(CLAIM)).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "rokt spool: cannot take pending events");
                        Vec::new()
                    }
                }
            };
            if rows.is_empty() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            let full = rows.len() == room.min(CLAIM);
            let mut rows = rows.into_iter();
            while let Some(st) = rows.next() {
                self.held().insert(
                    st.id,
                    Held {
                        attempts: st.attempts,
                        created_ms: st.created_ms,
                    },
                );
                let q = Queued {
                    ticket: Ticket(st.id),
                    subscription: st.record.subscription.as_deref().map(Arc::from),
                    kind: route(st.record.newest_ms),
                    item: Encoded {
                        body: st.record.body,
                        newest_ms: st.record.newest_ms,
                        message_id: st.record.message_id,
                    },
                    reporter: Some(reporter.clone()),
                    queued_at: tokio::time::Instant::now(),
                };
                let sent = match queue.upgrade() {
                    Some(tx) => tx.send(Msg::Item(q)).await.is_ok(),
                    None => false,
                };
                if sent {
                    // Taken into this process: it gets an outcome here, or goes back.
                    Meter::add(&reporter.meter.enqueued);
                }
                if !sent {
                    // The dispatcher stopped: these stay pending for the next process.
                    let mut ops = vec![Settle::Release(st.id)];
                    self.held().remove(&st.id);
                    for rest in rows.by_ref() {
                        ops.push(Settle::Release(rest.id));
                    }
                    let _ = self.spool.settle(ops).await;
                    return;
                }
            }
            if !full {
                // Caught up: wait for news rather than asking again at once.
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

/// 1 s, 2 s, 4 s, … up to `max`.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    Duration::from_secs(1u64 << exp).min(max)
}

/// Why the durable step refused an event.
pub(super) enum Refused {
    Full,
    Closed,
    Spool(SpoolError),
}

impl Refused {
    pub(super) fn with<E>(self, event: E) -> EnqueueError<E> {
        match self {
            Refused::Full => EnqueueError::Full(event),
            Refused::Closed => EnqueueError::Closed(event),
            Refused::Spool(e) => EnqueueError::Spool(event, e),
        }
    }
}

impl Dispatcher {
    /// The durable step of `enqueue`: stores each route's batch, in order, and wakes the
    /// feeder. The first failure stops it (what was stored before stays stored).
    pub(super) async fn admit_durable(
        &self,
        link: &Link,
        routes: Vec<(Option<Arc<str>>, Encoded)>,
    ) -> Result<Vec<Routed>, Refused> {
        if self.shared.tx.is_closed() {
            return Err(Refused::Closed);
        }
        let mut tickets = Vec::with_capacity(routes.len());
        for (subscription, item) in routes {
            let record = Record::new(item.body, item.message_id, item.newest_ms)
                .with_subscription(subscription.as_deref().map(str::to_owned));
            match link.spool.append(record).await {
                Ok(id) => {
                    Meter::add(&self.shared.meter.stored);
                    link.wake.notify_one();
                    tracing::trace!(ticket = id, "event stored");
                    tickets.push(Routed {
                        subscription,
                        ticket: Ticket(id),
                    });
                }
                Err(SpoolError::Full { .. }) => return Err(Refused::Full),
                Err(e) => return Err(Refused::Spool(e)),
            }
        }
        Ok(tickets)
    }

    /// The spool's dead letters, up to `limit`, oldest first. `None` without a spool.
    pub async fn dead_letters(&self, limit: usize) -> Option<Result<Vec<DeadLetter>, SpoolError>> {
        let link = self.shared.spool.as_ref()?;
        Some(link.spool.dead_letters(limit).await)
    }

    /// Moves these dead letters back to pending, to be sent at once; how many were moved.
    /// `None` without a spool.
    pub async fn requeue(&self, ids: Vec<u64>) -> Option<Result<usize, SpoolError>> {
        let link = self.shared.spool.as_ref()?;
        let moved = link.spool.requeue(ids).await;
        link.wake.notify_one();
        Some(moved)
    }

    /// How many events the spool holds. `None` without a spool.
    pub async fn spool_counts(&self) -> Option<Result<SpoolCounts, SpoolError>> {
        let link = self.shared.spool.as_ref()?;
        Some(link.spool.counts().await)
    }
}

impl Dispatcher {
    /// Maps and encodes `event` as a spool stores it, without storing it: for writing it
    /// inside a transaction of the service's own (see the `postgres` feature's
    /// `PostgresSpool::append_in`). One record per route (see [`Enqueued`](super::Enqueued)), each with the
    /// refusal of a route that cannot map it. A synchronous rtid memory applies; an async one
    /// cannot, here: observe the event with it first.
    pub fn records(&self, event: impl crate::segment::AsEvent) -> Vec<Result<Record, Refusal>> {
        self.routes(&event)
            .into_iter()
            .map(|(subscription, encoded)| match encoded {
                Ok(item) => Ok(Record::new(item.body, item.message_id, item.newest_ms)
                    .with_subscription(subscription.as_deref().map(str::to_owned))),
                Err(error) => Err(Refusal {
                    subscription,
                    error,
                }),
            })
            .collect()
    }
}
