//! Where the crate reads the time: the system clock, or one a test controls. One type for the
//! client (routing by age) and the rtid memory (time to live), re-exported by both.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, as the client and the rtid memory read it (injectable for tests).
///
/// ```
/// use rokt_capi::client::Clock;
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let elapsed = Arc::new(AtomicU64::new(0));
/// let read = elapsed.clone();
/// let clock = Clock::from_fn(move || UNIX_EPOCH + Duration::from_secs(read.load(Ordering::Relaxed)));
/// elapsed.store(60, Ordering::Relaxed); // a minute passes, without sleeping
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(60));
/// ```
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock that reads `f`.
    pub fn from_fn(f: impl Fn() -> SystemTime + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// A clock stopped at `at`.
    pub fn fixed(at: SystemTime) -> Clock {
        Clock(Arc::new(move || at))
    }

    /// The time now.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }

    /// Milliseconds since the Unix epoch (negative before it).
    pub(crate) fn now_ms(&self) -> i64 {
        match self.now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}
