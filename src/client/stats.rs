//! Counters a service can export as metrics: what a [`Dispatcher`](super::Dispatcher) took in,
//! what became of it, and how many HTTP requests that took.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`Dispatcher`](super::Dispatcher)'s counters, from
/// [`Dispatcher::stats`](super::Dispatcher::stats).
///
/// The counters only grow (export them as monotonic counters); `queue_depth` and `in_flight`
/// are gauges. Every ticket (one per route an event takes) ends in exactly one of
/// `delivered`, `rejected` or `failed`, so `enqueued - delivered - rejected - failed` ([`pending`](Stats::pending)) is
/// what is still queued, grouped or in flight. The fields are read one by one while the
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
    /// Tickets given: one per route an enqueued event took (one per event without a
    /// destination).
    pub enqueued: u64,
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
    /// Events enqueued that have no outcome yet.
    pub fn pending(&self) -> u64 {
        self.enqueued
            .saturating_sub(self.delivered)
            .saturating_sub(self.rejected)
            .saturating_sub(self.failed)
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
