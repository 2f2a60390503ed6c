//! When to try a request again, and how long to wait: pure functions, no clock and no I/O.

use crate::error::{AttemptFailure, GiveUp, TransportErrorKind};
use std::time::{Duration, SystemTime};

/// What one attempt came back with, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// An HTTP answer.
    Status {
        /// Its status code.
        status: u16,
        /// Its `Retry-After`, already turned into a wait (see [`parse_retry_after`]).
        retry_after: Option<Duration>,
    },
    /// No usable answer.
    Transport(TransportErrorKind),
}

impl AttemptOutcome {
    /// An answer with this status and no `Retry-After`.
    pub fn status(status: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            status,
            retry_after: None,
        }
    }

    /// What the attempt ran into, when it was not a success.
    pub fn failure(&self) -> AttemptFailure {
        match *self {
            AttemptOutcome::Status { status, .. } => AttemptFailure::Status(status),
            AttemptOutcome::Transport(kind) => AttemptFailure::Transport(kind),
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Do not send again.
    Stop(StopReason),
    /// Wait this long, then send again.
    RetryAfter(Duration),
}

/// Why a request is not sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A 2xx answer.
    Success,
    /// An answer that retrying cannot change (3xx, or 4xx other than 408 and 429).
    Permanent,
    /// A retryable failure, but the policy gives up.
    GaveUp(GiveUp),
}

/// How a request is retried: exponential back-off with full jitter, `Retry-After` honoured
/// up to [`max_retry_after`](Self::max_retry_after), bounded by a number of attempts and a
/// total deadline.
///
/// A 429 or 503 always backs off, even with `Retry-After: 0` or none: the wait is the larger
/// of the (capped) `Retry-After` and half the back-off cap plus a jittered half. A
/// [`Dispatcher`](super::Dispatcher) (and every clone of one [`Client`](super::Client)) pauses
/// all its requests for that wait, not only the one that was told to wait.
///
/// ```
/// use rokt_capi::client::{AttemptOutcome, Decision, RetryPolicy, StopReason};
/// use std::time::Duration;
/// let policy = RetryPolicy::default()
///     .with_base_delay(Duration::from_millis(100))
///     .with_max_attempts(3);
/// // A 500 on the first attempt: wait up to 100 ms, scaled by the random draw.
/// let d = policy.decide(&AttemptOutcome::status(500), 1, Duration::ZERO, 0.5);
/// assert_eq!(d, Decision::RetryAfter(Duration::from_millis(50)));
/// // A 503 (or 429) without Retry-After backs off at least half the cap.
/// let d = policy.decide(&AttemptOutcome::status(503), 1, Duration::ZERO, 0.5);
/// assert_eq!(d, Decision::RetryAfter(Duration::from_millis(75)));
/// // A 400 is never retried.
/// let d = policy.decide(&AttemptOutcome::status(400), 1, Duration::ZERO, 0.5);
/// assert_eq!(d, Decision::Stop(StopReason::Permanent));
/// ```
///
/// As data (serde), durations are written `"250ms"`, `"10s"`, `"1m"`; a missing field takes
/// its default and an unknown one is refused. [`validate`](Self::validate) (called by
/// [`ClientBuilder::build`](super::ClientBuilder::build)) judges the values:
///
/// ```
/// use rokt_capi::client::RetryPolicy;
/// use std::time::Duration;
/// let policy: RetryPolicy =
///     serde_json::from_str(r#"{"max_attempts": 3, "base_delay": "100ms"}"#).unwrap();
/// assert_eq!(policy, RetryPolicy::default().with_max_attempts(3).with_base_delay(Duration::from_millis(100)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1). Default 5.
    pub max_attempts: u32,
    /// The back-off before the second attempt; it doubles with each attempt. Default 250 ms.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// The longest back-off between two attempts. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// The longest time from the first attempt until the last one may start; no wait is
    /// started that would end past it. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// The longest `Retry-After` honoured: a longer one is cut to this. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

/// The longest any wait setting of a [`RetryPolicy`] may be (one day): it keeps every sum of
/// instants and waits far from overflowing.
pub(crate) const MAX_POLICY_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> RetryPolicy {
        RetryPolicy::default().with_max_attempts(1)
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    #[must_use]
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets [`base_delay`](Self::base_delay).
    #[must_use]
    pub fn with_base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    /// Sets [`max_delay`](Self::max_delay).
    #[must_use]
    pub fn with_max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Sets [`deadline`](Self::deadline).
    #[must_use]
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Sets [`max_retry_after`](Self::max_retry_after).
    #[must_use]
    pub fn with_max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Checks the policy: at least one attempt, `base_delay <= max_delay`, and no wait
    /// (`base_delay`, `max_delay`, `deadline`, `max_retry_after`) over one day.
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        for (name, d) in [
            ("base_delay", self.base_delay),
            ("max_delay", self.max_delay),
            ("deadline", self.deadline),
            ("max_retry_after", self.max_retry_after),
        ] {
            if d > MAX_POLICY_WAIT {
                return Err(crate::ConfigError::new(
                    "retry",
                    format!("{name} must be at most one day"),
                ));
            }
        }
        if self.max_attempts == 0 {
            return Err(crate::ConfigError::new(
                "retry",
                "max_attempts must be at least 1",
            ));
        }
        if self.base_delay > self.max_delay {
            return Err(crate::ConfigError::new(
                "retry",
                "base_delay must not exceed max_delay",
            ));
        }
        Ok(())
    }

    /// Whether an answer with this status may succeed if sent again: 408, 429 and 5xx.
    pub fn is_retryable_status(status: u16) -> bool {
        matches!(status, 408 | 429 | 500..=599)
    }

    /// The back-off cap before attempt `attempt + 1`: `base_delay * 2^(attempt-1)`, at most
    /// `max_delay`.
    pub fn backoff_cap(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }

    /// Decides what follows attempt number `attempt` (1 for the first), which ended in
    /// `outcome`, `elapsed` after the first attempt started. `rng_value` is a random draw in
    /// `[0, 1)` for the jitter: the back-off is `rng_value * backoff_cap(attempt)` ("full
    /// jitter"). A 429 or 503 waits the larger of its `Retry-After` (cut to
    /// [`max_retry_after`](Self::max_retry_after)) and `(1 + rng_value) / 2 *
    /// backoff_cap(attempt)`, so a zero or missing `Retry-After` still backs off.
    pub fn decide(
        &self,
        outcome: &AttemptOutcome,
        attempt: u32,
        elapsed: Duration,
        rng_value: f64,
    ) -> Decision {
        let throttled = match *outcome {
            AttemptOutcome::Status { status, .. } if (200..300).contains(&status) => {
                return Decision::Stop(StopReason::Success);
            }
            AttemptOutcome::Status { status, .. } if !Self::is_retryable_status(status) => {
                return Decision::Stop(StopReason::Permanent);
            }
            AttemptOutcome::Status {
                status: 429 | 503,
                retry_after,
            } => Some(retry_after),
            _ => None,
        };
        if attempt >= self.max_attempts {
            return Decision::Stop(StopReason::GaveUp(GiveUp::MaxAttempts));
        }
        let wait = match throttled {
            None => self.backoff_cap(attempt).mul_f64(jitter(rng_value)),
            Some(retry_after) => self.throttle_wait(retry_after, attempt, rng_value),
        };
        match elapsed.checked_add(wait) {
            Some(end) if end <= self.deadline => Decision::RetryAfter(wait),
            _ => Decision::Stop(StopReason::GaveUp(GiveUp::Deadline)),
        }
    }
}

/// A random draw made safe: clamped to `[0, 1]`, NaN as 0.
fn jitter(rng_value: f64) -> f64 {
    if rng_value.is_finite() {
        rng_value.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

impl RetryPolicy {
    /// The wait after a 429 or 503 on attempt `attempt`: the larger of `retry_after` (cut to
    /// [`max_retry_after`](Self::max_retry_after)) and `(1 + rng_value) / 2 *
    /// backoff_cap(attempt)`. Every factor is at most 1 and every setting at most a day, so
    /// nothing overflows.
    pub(crate) fn throttle_wait(
        &self,
        retry_after: Option<Duration>,
        attempt: u32,
        rng_value: f64,
    ) -> Duration {
        let told = retry_after
            .unwrap_or(Duration::ZERO)
            .min(self.max_retry_after);
        let cap = self.backoff_cap(attempt);
        told.max(cap.mul_f64(0.5 + jitter(rng_value) / 2.0))
    }
}

/// Turns a `Retry-After` value into a wait: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms), measured
/// from `now`. A date in the past means no wait. `None` for a value that is neither.
///
/// ```
/// use rokt_capi::client::parse_retry_after;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
/// assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate rather than fail: the deadline still bounds the wait.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    use chrono::{DateTime, NaiveDateTime};
    let naive = if let Ok(dt) = DateTime::parse_from_rfc2822(value) {
        dt.naive_utc()
    } else {
        let gmt = value.strip_suffix(" GMT");
        let rfc850 =
            gmt.and_then(|v| NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S").ok());
        match rfc850 {
            Some(n) => n,
            None => NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y").ok()?,
        }
    };
    let secs = naive.and_utc().timestamp();
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .with_max_attempts(4)
            .with_base_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(350))
            .with_deadline(Duration::from_secs(2))
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn success_and_permanent_stop() {
        let p = policy();
        for s in [200, 201, 202, 204] {
            assert_eq!(
                p.decide(&AttemptOutcome::status(s), 1, Duration::ZERO, 0.3),
                Decision::Stop(StopReason::Success)
            );
        }
        for s in [301, 302, 307, 308, 400, 401, 403, 404, 413, 422] {
            assert_eq!(
                p.decide(&AttemptOutcome::status(s), 1, Duration::ZERO, 0.3),
                Decision::Stop(StopReason::Permanent),
                "{s}"
            );
        }
    }

    #[test]
    fn exponential_full_jitter() {
        let p = policy();
        let o = AttemptOutcome::status(500);
        assert_eq!(
            p.decide(&o, 1, Duration::ZERO, 1.0),
            Decision::RetryAfter(MS(100))
        );
        assert_eq!(
            p.decide(&o, 2, Duration::ZERO, 1.0),
            Decision::RetryAfter(MS(200))
        );
        // Capped by max_delay.
        assert_eq!(
            p.decide(&o, 3, Duration::ZERO, 1.0),
            Decision::RetryAfter(MS(350))
        );
        // Full jitter: anywhere from zero to the cap.
        assert_eq!(
            p.decide(&o, 2, Duration::ZERO, 0.0),
            Decision::RetryAfter(MS(0))
        );
        assert_eq!(
            p.decide(&o, 2, Duration::ZERO, 0.25),
            Decision::RetryAfter(MS(50))
        );
        // Out-of-range draws are clamped, NaN is zero.
        assert_eq!(
            p.decide(&o, 1, Duration::ZERO, 7.0),
            Decision::RetryAfter(MS(100))
        );
        assert_eq!(
            p.decide(&o, 1, Duration::ZERO, f64::NAN),
            Decision::RetryAfter(MS(0))
        );
        // Huge attempt numbers do not overflow.
        assert_eq!(p.backoff_cap(u32::MAX), MS(350));
    }

    #[test]
    fn transport_errors_and_408_are_retried() {
        let p = policy();
        for o in [
            AttemptOutcome::Transport(TransportErrorKind::Connect),
            AttemptOutcome::Transport(TransportErrorKind::Timeout),
            AttemptOutcome::Transport(TransportErrorKind::Connection),
            AttemptOutcome::status(408),
            AttemptOutcome::status(502),
        ] {
            assert_eq!(
                p.decide(&o, 1, Duration::ZERO, 0.5),
                Decision::RetryAfter(MS(50))
            );
        }
        // Throttling backs off at least half the cap.
        for o in [AttemptOutcome::status(429), AttemptOutcome::status(503)] {
            assert_eq!(
                p.decide(&o, 1, Duration::ZERO, 0.5),
                Decision::RetryAfter(MS(75))
            );
        }
    }

    #[test]
    fn bounded_by_attempts_and_deadline() {
        let p = policy();
        let o = AttemptOutcome::status(500);
        assert_eq!(
            p.decide(&o, 4, Duration::ZERO, 0.5),
            Decision::Stop(StopReason::GaveUp(GiveUp::MaxAttempts))
        );
        assert_eq!(
            p.decide(&o, 2, MS(1990), 0.5),
            Decision::Stop(StopReason::GaveUp(GiveUp::Deadline))
        );
        assert_eq!(
            p.decide(&o, 2, MS(1900), 0.5),
            Decision::RetryAfter(MS(100))
        );
        assert_eq!(
            RetryPolicy::never().decide(&o, 1, Duration::ZERO, 0.5),
            Decision::Stop(StopReason::GaveUp(GiveUp::MaxAttempts))
        );
    }

    #[test]
    fn retry_after_replaces_backoff() {
        let p = policy();
        let o = AttemptOutcome::Status {
            status: 429,
            retry_after: Some(MS(1500)),
        };
        assert_eq!(
            p.decide(&o, 1, Duration::ZERO, 0.0),
            Decision::RetryAfter(MS(1500))
        );
        // A wait past the deadline is not started.
        assert_eq!(
            p.decide(&o, 1, MS(600), 0.0),
            Decision::Stop(StopReason::GaveUp(GiveUp::Deadline))
        );
        // 429 without Retry-After backs off as usual.
        assert_eq!(
            p.decide(&AttemptOutcome::status(429), 1, Duration::ZERO, 1.0),
            Decision::RetryAfter(MS(100))
        );
        // A zero Retry-After still backs off; a huge one is capped.
        let zero = AttemptOutcome::Status {
            status: 429,
            retry_after: Some(Duration::ZERO),
        };
        assert_eq!(
            p.decide(&zero, 1, Duration::ZERO, 0.0),
            Decision::RetryAfter(MS(50))
        );
        let huge = AttemptOutcome::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(u64::MAX)),
        };
        let p = p
            .with_deadline(Duration::from_secs(3600))
            .with_max_retry_after(Duration::from_secs(7));
        assert_eq!(
            p.decide(&huge, 1, Duration::ZERO, 0.0),
            Decision::RetryAfter(Duration::from_secs(7))
        );
        let p = policy();
        // A Retry-After on a 500 is ignored.
        let o = AttemptOutcome::Status {
            status: 500,
            retry_after: Some(MS(1500)),
        };
        assert_eq!(
            p.decide(&o, 1, Duration::ZERO, 1.0),
            Decision::RetryAfter(MS(100))
        );
    }

    #[test]
    fn validation() {
        assert!(RetryPolicy::default().validate().is_ok());
        assert!(
            RetryPolicy::default()
                .with_max_attempts(0)
                .validate()
                .is_err()
        );
        assert!(
            RetryPolicy::default()
                .with_base_delay(Duration::from_secs(20))
                .validate()
                .is_err()
        );
        let max = Duration::MAX;
        for p in [
            RetryPolicy::default().with_deadline(max),
            RetryPolicy::default().with_max_delay(max),
            RetryPolicy::default().with_max_retry_after(max),
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = Some(Duration::from_secs(60));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            later
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            later
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), later);
        // In the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 99 Nov 1994 08:50:37 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
        assert!(parse_retry_after("99999999999999999999999", now).is_some());
    }
}
