//! Counters a service can export as metrics: what a [`Dispatcher`](super::Dispatcher) took in,
//! what became of it, how many HTTP requests that took, and how long both took.
//!
//! With the `metrics` feature they are also reported through the `metrics` facade: the
//! names are listed on [`Stats`].

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
/// `Serialize` writes counts and durations only (nothing about any event or person), for a
/// status page or a log line.
///
/// ```
/// use rokt_capi::client::Stats;
/// let stats = Stats::default();
/// assert_eq!(stats.pending(), 0);
/// let json = serde_json::to_value(stats).unwrap();
/// assert_eq!(json["enqueued"], 0);
/// assert_eq!(json["outcome_latency"]["count"], 0);
/// ```
///
/// # The `metrics` feature
///
/// With the `metrics` feature the same figures are also reported through the
/// [`metrics`](https://docs.rs/metrics) facade as they happen, to whatever recorder the
/// service installed:
///
/// | name | kind | what (the [`Stats`] field it mirrors) |
/// |---|---|---|
/// | `rokt_capi_events_enqueued_total` | counter | [`Stats::enqueued`] |
/// | `rokt_capi_events_stored_total` | counter | [`Stats::stored`] |
/// | `rokt_capi_events_respooled_total` | counter | [`Stats::respooled`] |
/// | `rokt_capi_events_invalid_total` | counter | [`Stats::invalid`] |
/// | `rokt_capi_events_delivered_total` | counter | [`Stats::delivered`] |
/// | `rokt_capi_events_rejected_total` | counter | [`Stats::rejected`] |
/// | `rokt_capi_events_failed_total` | counter | [`Stats::failed`] |
/// | `rokt_capi_requests_total` | counter | [`Stats::requests`] |
/// | `rokt_capi_retries_total` | counter | [`Stats::retries`] |
/// | `rokt_capi_outcome_latency_seconds` | histogram | [`Stats::outcome_latency`] |
/// | `rokt_capi_request_latency_seconds` | histogram | [`Stats::request_latency`] |
///
/// Every dispatcher of the process reports under the same names; the gauges
/// ([`Stats::queue_depth`], [`Stats::in_flight`]) are read from [`Dispatcher::stats`](super::Dispatcher::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
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
    /// From the moment an event was queued in memory to its outcome (or, with a spool, to its
    /// return to the spool), for every event queued; bad input refused at enqueue is not.
    pub outcome_latency: Latency,
    /// One HTTP attempt, from sending the request to reading its status line (or failing to).
    pub request_latency: Latency,
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

/// How many [`Latency`] buckets there are: one per bound in [`Latency::BOUNDS_MS`], and one
/// for everything longer.
pub const LATENCY_BUCKETS: usize = 16;

/// Durations seen, as a count, a sum, a maximum and a histogram of fixed buckets: cheap to
/// record (a few relaxed atomic additions, no lock) and enough for a mean and rough
/// quantiles.
///
/// Bucket `i` counts the durations of at most [`BOUNDS_MS`](Self::BOUNDS_MS)`[i]`
/// milliseconds (and more than the bound before it); the last bucket counts everything
/// longer than 60 s. Serialized as `count`, `sum_micros`, `max_micros` and `buckets`.
///
/// ```
/// use rokt_capi::client::Latency;
/// use std::time::Duration;
/// let l = Latency::default();
/// assert_eq!(l.mean(), None);
/// assert_eq!(l.quantile(0.5), None);
/// assert_eq!(Latency::BOUNDS_MS[0], 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct Latency {
    /// How many durations were recorded.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_micros: u64,
    /// The longest, in microseconds.
    pub max_micros: u64,
    /// How many fell in each bucket (see [`BOUNDS_MS`](Self::BOUNDS_MS)).
    pub buckets: [u64; LATENCY_BUCKETS],
}

impl Latency {
    /// The buckets' upper bounds, in milliseconds; a last bucket holds what is longer.
    pub const BOUNDS_MS: [u64; LATENCY_BUCKETS - 1] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
    ];

    /// The mean duration, `None` before anything was recorded.
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_micros(self.sum_micros / self.count))
    }

    /// The longest duration recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    /// An upper estimate of the `q` quantile (`0.5` for the median, `0.99` for p99): the upper
    /// bound of the bucket it falls in, or [`max`](Self::max) when that is lower (always for
    /// the last bucket). `None` before anything was recorded; `q` is clamped to `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted duration, from 1; precision loss only matters past 2^52.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = Self::BOUNDS_MS
                    .get(i)
                    .map_or(self.max(), |ms| Duration::from_millis(*ms));
                return Some(bound.min(self.max()));
            }
        }
        Some(self.max())
    }

    /// The median estimate: [`quantile(0.5)`](Self::quantile).
    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.5)
    }

    /// The 99th percentile estimate: [`quantile(0.99)`](Self::quantile).
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }
}

/// The live figures behind a [`Latency`], with the name of the histogram it is reported to
/// through the `metrics` facade (when that feature is on).
#[derive(Debug)]
pub(crate) struct LatencyMeter {
    count: AtomicU64,
    sum_micros: AtomicU64,
    max_micros: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: &'static str,
}

impl LatencyMeter {
    fn named(name: &'static str) -> LatencyMeter {
        LatencyMeter {
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            name,
        }
    }

    pub(crate) fn record(&self, d: Duration) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(self.name).record(d.as_secs_f64());
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let at = Latency::BOUNDS_MS
            .iter()
            .position(|ms| micros <= ms.saturating_mul(1000))
            .unwrap_or(LATENCY_BUCKETS - 1);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Latency {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Latency {
            count: load(&self.count),
            sum_micros: load(&self.sum_micros),
            max_micros: load(&self.max_micros),
            buckets: std::array::from_fn(|i| load(&self.buckets[i])),
        }
    }
}

/// One counter of a [`Meter`], with the name it is reported under through the `metrics`
/// facade (when that feature is on).
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: &'static str,
}

impl Counter {
    const fn named(name: &'static str) -> Counter {
        Counter {
            value: AtomicU64::new(0),
            name,
        }
    }

    fn load(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// The live counters behind [`Stats`], shared by a dispatcher's handles, its background task
/// and the client it sends with.
#[derive(Debug)]
pub(crate) struct Meter {
    pub(crate) enqueued: Counter,
    pub(crate) invalid: Counter,
    pub(crate) stored: Counter,
    pub(crate) respooled: Counter,
    pub(crate) delivered: Counter,
    pub(crate) rejected: Counter,
    pub(crate) failed: Counter,
    pub(crate) requests: Counter,
    pub(crate) retries: Counter,
    pub(crate) outcome_latency: LatencyMeter,
    pub(crate) request_latency: LatencyMeter,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            enqueued: Counter::named("rokt_capi_events_enqueued_total"),
            invalid: Counter::named("rokt_capi_events_invalid_total"),
            stored: Counter::named("rokt_capi_events_stored_total"),
            respooled: Counter::named("rokt_capi_events_respooled_total"),
            delivered: Counter::named("rokt_capi_events_delivered_total"),
            rejected: Counter::named("rokt_capi_events_rejected_total"),
            failed: Counter::named("rokt_capi_events_failed_total"),
            requests: Counter::named("rokt_capi_requests_total"),
            retries: Counter::named("rokt_capi_retries_total"),
            outcome_latency: LatencyMeter::named("rokt_capi_outcome_latency_seconds"),
            request_latency: LatencyMeter::named("rokt_capi_request_latency_seconds"),
        }
    }
}

impl Meter {
    pub(crate) fn add(counter: &Counter) {
        counter.value.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(counter.name).increment(1);
    }

    /// The counters now; the gauges are left at 0 for the caller to fill in.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            enqueued: self.enqueued.load(),
            invalid: self.invalid.load(),
            stored: self.stored.load(),
            respooled: self.respooled.load(),
            delivered: self.delivered.load(),
            rejected: self.rejected.load(),
            failed: self.failed.load(),
            requests: self.requests.load(),
            retries: self.retries.load(),
            queue_depth: 0,
            in_flight: 0,
            outcome_latency: self.outcome_latency.snapshot(),
            request_latency: self.request_latency.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency_of(ms: &[u64]) -> Latency {
        let m = LatencyMeter::named("test");
        for &d in ms {
            m.record(Duration::from_millis(d));
        }
        m.snapshot()
    }

    #[test]
    fn latency_buckets_count_each_duration_once_at_its_bound() {
        let l = latency_of(&[0, 1, 2, 3, 70_000]);
        assert_eq!(l.count, 5);
        assert_eq!(l.buckets[0], 2, "0 ms and 1 ms are at most 1 ms");
        assert_eq!((l.buckets[1], l.buckets[2]), (1, 1));
        assert_eq!(l.buckets[LATENCY_BUCKETS - 1], 1);
        assert_eq!(l.buckets.iter().sum::<u64>(), 5);
        assert_eq!(l.sum_micros, 70_006_000);
        assert_eq!(l.max(), Duration::from_secs(70));
    }

    #[test]
    fn quantiles_are_bucket_bounds_capped_by_the_maximum() {
        let mut ms = vec![3; 98];
        ms.extend([150, 40_000]);
        let l = latency_of(&ms);
        assert_eq!(l.p50(), Some(Duration::from_millis(5)));
        assert_eq!(l.quantile(0.98), Some(Duration::from_millis(5)));
        assert_eq!(l.p99(), Some(Duration::from_millis(200)));
        assert_eq!(
            l.quantile(1.0),
            Some(Duration::from_secs(40)),
            "capped by max"
        );
        assert_eq!(l.quantile(f64::NAN), Some(Duration::from_millis(5)));
        assert_eq!(l.mean(), Some(Duration::from_micros(404_440)));
        let over = latency_of(&[90_000, 120_000]);
        assert_eq!(
            over.p50(),
            Some(Duration::from_secs(120)),
            "the last bucket has no bound"
        );
    }

    #[test]
    fn stats_serialize_counts_and_durations_only() {
        let meter = Meter::default();
        Meter::add(&meter.enqueued);
        Meter::add(&meter.delivered);
        meter.outcome_latency.record(Duration::from_millis(4));
        Meter::add(&meter.requests);
        meter.request_latency.record(Duration::from_millis(3));
        let json = serde_json::to_value(meter.snapshot()).unwrap();
        assert_eq!(json["enqueued"], 1);
        assert_eq!(json["delivered"], 1);
        assert_eq!(json["requests"], 1);
        assert_eq!(json["outcome_latency"]["sum_micros"], 4000);
        assert_eq!(json["request_latency"]["buckets"][2], 1);
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 13, "{keys:?}");
    }
}
