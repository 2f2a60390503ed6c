//! Counters a service can export as metrics: what a [`Dispatcher`](super::Dispatcher) took in,
//! what became of it, and how many HTTP requests that took.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`Dispatcher`](super::Dispatcher)'s counters, from
/// [`Dispatcher::stats`](super::Dispatcher::stats).
///
/// The counters only grow (export them as monotonic counters); `queue_depth` and `in_flight`
/// are gauges. Every event taken in ends in exactly one of `delivered`, `rejected`, `failed`
/// or (with a spool) `respooled`, so `enqueued - delivered - rejected - failed - respooled`
/// ([`pending`](Stats::pending)) is what is still queued, grouped or in flight. The fields are read one by one while the
/// dispatcher runs, so a snapshot taken mid-flight may be off by the events settling at that
/// moment; after [`flush`](super::Dispatcher::flush) or
/// [`shutdown`](super::Dispatcher::shutdown) it is exact.
///
/// ```
/// use rokt_capi::client::Stats;
/// let stats = Stats::default();
/// assert_eq!(stats.pending(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Events taken in to be sent: without a spool, the tickets `enqueue` gave (one per route
    /// an event took); with a [spool](super::DispatcherBuilder::spool), the events taken from
    /// it into memory (this process's, and those another process left), counted again each
    /// time one is taken again.
    pub enqueued: u64,
    /// With a spool: events stored durably by `enqueue` (each acknowledged once). What waits
    /// in the spool is [`Dispatcher::spool_counts`](super::Dispatcher::spool_counts).
    pub stored: u64,
    /// With a spool: events that went back to it without an outcome here (to be sent again
    /// after a back-off, or released at shutdown for the next process).
    pub respooled: u64,
    /// Events refused at enqueue as bad input ([`EnqueueError::Invalid`](super::EnqueueError::Invalid)):
    /// no ticket, no outcome.
    pub invalid: u64,
    /// Events Rokt accepted.
    pub delivered: u64,
    /// Events that will never be accepted: Rokt rejected them, or their batch was over the
    /// size limit.
    pub rejected: u64,
    /// Events not delivered after the retry policy gave up (may be sent again later).
    pub failed: u64,
    /// HTTP requests sent, every attempt counted (so retries are included).
    pub requests: u64,
    /// Attempts after the first: `requests - retries` is the number of distinct requests.
    pub retries: u64,
    /// Events waiting in the queue right now (a gauge).
    pub queue_depth: u64,
    /// Requests in flight right now (a gauge; one waiting for its pacing slot counts), at most
    /// the dispatcher's concurrency.
    pub in_flight: u64,
}

impl Stats {
    /// Events taken in that have no outcome yet: held in memory by this process right now.
    pub fn pending(&self) -> u64 {
        self.enqueued
            .saturating_sub(self.delivered)
            .saturating_sub(self.rejected)
            .saturating_sub(self.failed)
            .saturating_sub(self.respooled)
    }

    /// Events that have their outcome.
    pub fn settled(&self) -> u64 {
        self.delivered + self.rejected + self.failed
    }
}

/// The live counters behind [`Stats`], shared by a dispatcher's handles, its background task
/// and the client it sends with.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub(crate) enqueued: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) respooled: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
}

impl Meter {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now; the gauges are left at 0 for the caller to fill in.
    pub(crate) fn snapshot(&self) -> Stats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            enqueued: load(&self.enqueued),
            invalid: load(&self.invalid),
            stored: load(&self.stored),
            respooled: load(&self.respooled),
            delivered: load(&self.delivered),
            rejected: load(&self.rejected),
            failed: load(&self.failed),
            requests: load(&self.requests),
            retries: load(&self.retries),
            queue_depth: 0,
            in_flight: 0,
        }
    }
}
