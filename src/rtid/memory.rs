//! An rtid memory: the job Rokt's browser plugin does in the browser, done on the server.
//!
//! Rokt puts its click id (the rtid) in the URL of the landing page (`?rtid=…`). The conversion
//! usually happens pages later, on a checkout page whose URL has none. In Segment's setup, the
//! *Rokt Browser Plugin* (a device-mode plugin of analytics.js) bridges that gap: on a page
//! load with an `rtid` query parameter it stores the value in the browser (Segment's storage,
//! else `localStorage` under `analytics_rokt_capi_rtid`), and it adds
//! `integrations["Rokt Conversions API"].rtid` = the stored value to every later `track`,
//! `identify`, `page`, `group` and `alias` call from that browser, unless the call has
//! `integrations.All` = `false` and does not name the Rokt destination itself (a falsy
//! `integrations["Rokt Conversions API"]` does not count).
//!
//! [`RtidMemory`] does the same for events that reach a server without that plugin:
//!
//! - it **learns** a visitor's rtid from any event that has one of its own, read exactly as
//!   the mapping reads it ([`from_event`]: the plugin field, else the
//!   query of `context.page.search`, else of `context.page.url`). A newer rtid replaces an
//!   older one (newer = observed later);
//! - it **keys** what it learns by the identities Segment gives: `anonymousId`, and `userId`
//!   once known. An event carrying both links them (an `identify` call does), and an `alias`
//!   call's `previousId` passes what it knew on to the `userId`;
//! - it **enriches** a later `track`, `identify`, `page`, `group` or `alias` call of that
//!   visitor which has no rtid of its own, by the plugin's rule, in the plugin's field. An
//!   event that has an rtid of its own is never changed.
//!
//! Where the plugin would replace a non-empty `integrations["Rokt Conversions API"]` object
//! with `{"rtid": …}`, this sets its `rtid` member and keeps the others.
//!
//! # Bounds
//!
//! The plugin keeps one value per browser, in `localStorage`, with no expiry: one browser's
//! storage is small and dies with the browser. A server remembers every visitor it has seen,
//! for as long as it runs, so the memory is bounded: entries older than a time to live
//! ([`RtidMemoryBuilder::ttl`], default 30 days) are ignored and purged, and the in-memory
//! store keeps at most [`RtidMemoryBuilder::max_entries`] identities (default 1 000 000),
//! dropping the oldest learned first. Each identity of a visitor (`anonymousId`, `userId`) is
//! one entry.
//!
//! # Storage and the pure core
//!
//! The decision is pure and synchronous: [`Observation::of`] reads an event, the store is
//! asked for the entries of [`Observation::keys`], [`Observation::decide`] says what to write
//! and which rtid to add, and [`enrich`] adds it. [`RtidMemory`] runs those steps over an
//! [`RtidStore`]: the bundled [`InMemoryStore`] by default, or `SqliteStore` (feature
//! `sqlite`) to keep what was learned in a file across restarts. [`AsyncRtidMemory`] runs the
//! same steps over an [`AsyncRtidStore`], awaiting it between them: `PostgresStore` (feature
//! `postgres`) is one, shared by every instance of a service behind a load balancer.
//!
//! Concurrent events of one visitor race as they would in two browser tabs: each reads, then
//! writes, and the last write wins.
//!
//! ```
//! use rokt_capi::Json;
//! use rokt_capi::rtid::memory::RtidMemory;
//!
//! let memory = RtidMemory::builder().build()?;
//! // The landing page: its URL carries the click id.
//! let landing = Json::parse(r#"{"type":"page","anonymousId":"a-1",
//!     "context":{"page":{"url":"https://shop.example/?rtid=rt-42"}}}"#)?;
//! assert!(memory.observe(&landing)?.is_none()); // learned; the event is left as it is
//! // The conversion, pages later: no rtid of its own, so the remembered one is added.
//! let order = Json::parse(r#"{"type":"track","event":"Order Completed","anonymousId":"a-1"}"#)?;
//! let enriched = memory.observe(&order)?.expect("enriched");
//! assert_eq!(rokt_capi::rtid::from_event(&enriched).as_deref(), Some("rt-42"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{INTEGRATION_NAME, from_event};
use crate::Json;
use crate::error::{ConfigError, Error};
use crate::segment::AsEvent;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{DEFAULT_TABLE, PostgresStore};

/// The default time to live of a learned rtid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The default bound of the in-memory store, in identities.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// How often, at most, [`RtidMemory`] asks its store to drop expired entries.
const PURGE_EVERY_MS: i64 = 60_000;

/// The calls Rokt's browser plugin enriches (its default subscription).
const ENRICHED_TYPES: [&str; 5] = ["track", "identify", "page", "group", "alias"];

pub use crate::clock::Clock;

/// One identity of a visitor, as stores key it: `a:` + an `anonymousId`, or `u:` + a
/// `userId`. Its `Debug` hides the id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisitorKey(String);

impl VisitorKey {
    /// The key of an `anonymousId`.
    pub fn anonymous(id: &str) -> VisitorKey {
        VisitorKey(format!("a:{id}"))
    }

    /// The key of a `userId`.
    pub fn user(id: &str) -> VisitorKey {
        VisitorKey(format!("u:{id}"))
    }

    /// The key as stores write it (`a:…` or `u:…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VisitorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.0.starts_with("u:") {
            "user"
        } else {
            "anonymous"
        };
        write!(f, "VisitorKey({kind}, <redacted>)")
    }
}

/// What a store holds for one identity: the rtid and when it was learned. Its `Debug` hides
/// the rtid.
#[derive(Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The rtid.
    pub rtid: String,
    /// When an event carrying it was observed, in milliseconds since the Unix epoch. Copies
    /// made by linking identities keep the original time, so linking never extends a life.
    pub learned_ms: i64,
}

impl fmt::Debug for Remembered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remembered")
            .field("rtid", &"<redacted>")
            .field("learned_ms", &self.learned_ms)
            .finish()
    }
}

/// A store failed. Names the store and the operation; the cause (the store client's own
/// error) is its [`source`](std::error::Error::source). Never carries keys or rtids.
#[derive(Debug)]
pub struct StoreError {
    store: &'static str,
    operation: &'static str,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure of `operation` (`"get"`, `"put"`, …) in `store` (`"sqlite"`, …).
    pub fn new(
        store: &'static str,
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            store,
            operation,
            source: Some(source.into()),
        }
    }

    /// The store that failed.
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// The operation that failed.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} rtid store failed to {}",
            self.store, self.operation
        )
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Where an [`RtidMemory`] keeps what it learned.
///
/// Calls come from any thread, one event at a time per call; a store needs no transactions
/// (the memory never relies on a read and a later write being atomic).
pub trait RtidStore: Send + Sync {
    /// What is held for `key`, expired or not (the memory judges expiry).
    fn get(&self, key: &VisitorKey) -> Result<Option<Remembered>, StoreError>;

    /// Holds `entry` for `key`, replacing what was there.
    fn put(&self, key: &VisitorKey, entry: &Remembered) -> Result<(), StoreError>;

    /// Drops every entry learned before `cutoff_ms`; returns how many went.
    fn forget_before(&self, cutoff_ms: i64) -> Result<u64, StoreError>;

    /// How many identities it holds.
    fn len(&self) -> Result<u64, StoreError>;

    /// Whether it holds none.
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }
}

/// The default store: a map in this process, bounded in entries. When full, it drops the
/// entry learned longest ago.
pub struct InMemoryStore {
    inner: Mutex<Slots>,
    max_entries: usize,
}

struct Slots {
    by_key: HashMap<Arc<str>, Slot>,
    /// `(learned_ms, seq)` → key: the eviction order, oldest first.
    by_age: BTreeMap<(i64, u64), Arc<str>>,
    next_seq: u64,
}

struct Slot {
    rtid: Arc<str>,
    learned_ms: i64,
    seq: u64,
}

impl InMemoryStore {
    /// A store of at most `max_entries` identities (at least 1).
    pub fn new(max_entries: usize) -> InMemoryStore {
        InMemoryStore {
            inner: Mutex::new(Slots {
                by_key: HashMap::new(),
                by_age: BTreeMap::new(),
                next_seq: 0,
            }),
            max_entries: max_entries.max(1),
        }
    }

    /// The bound it was made with.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves the maps consistent (every step below is a
        // single insert or remove), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("entries", &self.slots().by_key.len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl RtidStore for InMemoryStore {
    fn get(&self, key: &VisitorKey) -> Result<Option<Remembered>, StoreError> {
        Ok(self.slots().by_key.get(key.as_str()).map(|s| Remembered {
            rtid: s.rtid.to_string(),
            learned_ms: s.learned_ms,
        }))
    }

    fn put(&self, key: &VisitorKey, entry: &Remembered) -> Result<(), StoreError> {
        let mut slots = self.slots();
        let Slots {
            by_key,
            by_age,
            next_seq,
        } = &mut *slots;
        let seq = *next_seq;
        *next_seq += 1;
        let (key, rtid): (Arc<str>, Arc<str>) = match by_key.get_key_value(key.as_str()) {
            Some((k, old)) => {
                by_age.remove(&(old.learned_ms, old.seq));
                // A refreshed entry keeps its text.
                let rtid = match *old.rtid == *entry.rtid {
                    true => old.rtid.clone(),
                    false => Arc::from(entry.rtid.as_str()),
                };
                (k.clone(), rtid)
            }
            None => (Arc::from(key.as_str()), Arc::from(entry.rtid.as_str())),
        };
        by_age.insert((entry.learned_ms, seq), key.clone());
        by_key.insert(
            key,
            Slot {
                rtid,
                learned_ms: entry.learned_ms,
                seq,
            },
        );
        while by_key.len() > self.max_entries {
            let Some((_, oldest)) = by_age.pop_first() else {
                break;
            };
            by_key.remove(&oldest);
        }
        Ok(())
    }

    fn forget_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut slots = self.slots();
        let mut gone = 0;
        while let Some(entry) = slots.by_age.first_entry() {
            if entry.key().0 >= cutoff_ms {
                break;
            }
            let key = entry.remove();
            slots.by_key.remove(&key);
            gone += 1;
        }
        Ok(gone)
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.slots().by_key.len() as u64)
    }
}

/// What one event tells the memory, read purely from the event: its own rtid, its identities,
/// and whether the plugin would enrich it.
#[derive(Clone, PartialEq, Eq)]
pub struct Observation {
    own: Option<String>,
    /// The event's own identities: `anonymousId` then `userId`.
    current: Vec<VisitorKey>,
    /// The keys an `alias` call's `previousId` may be known under.
    previous: Vec<VisitorKey>,
    enrichable: bool,
}

impl fmt::Debug for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observation")
            .field("has_own_rtid", &self.own.is_some())
            .field("identities", &self.current.len())
            .field("previous", &self.previous.len())
            .field("enrichable", &self.enrichable)
            .finish()
    }
}

impl Observation {
    /// Reads an event.
    pub fn of(event: &Json<'_>) -> Observation {
        let id = |name: &str| event.get(name).and_then(id_text);
        let mut current = Vec::with_capacity(2);
        if let Some(a) = id("anonymousId") {
            current.push(VisitorKey::anonymous(&a));
        }
        if let Some(u) = id("userId") {
            current.push(VisitorKey::user(&u));
        }
        let kind = event.get("type").and_then(Json::as_str);
        let previous = match (kind, id("previousId")) {
            // A previousId is an earlier anonymousId or userId.
            (Some("alias"), Some(p)) => vec![VisitorKey::anonymous(&p), VisitorKey::user(&p)],
            _ => Vec::new(),
        };
        Observation {
            own: from_event(event),
            current,
            previous,
            enrichable: kind.is_some_and(|k| ENRICHED_TYPES.contains(&k))
                && plugin_would_enrich(event),
        }
    }

    /// The keys whose entries [`decide`](Self::decide) needs, in the order it takes them.
    pub fn keys(&self) -> impl Iterator<Item = &VisitorKey> {
        self.current.iter().chain(&self.previous)
    }

    /// Whether the event has an rtid of its own (it is then never changed).
    pub fn has_own_rtid(&self) -> bool {
        self.own.is_some()
    }

    /// Decides, from the stored entries of [`keys`](Self::keys) (`found[i]` for the i-th key;
    /// missing items count as none), what to write back and which rtid to add. Entries
    /// learned before `now_ms - ttl_ms` are ignored.
    pub fn decide(&self, found: &[Option<Remembered>], now_ms: i64, ttl_ms: i64) -> Decision {
        let cutoff = now_ms.saturating_sub(ttl_ms);
        let live = |i: usize| {
            found
                .get(i)
                .and_then(Option::as_ref)
                .filter(|e| e.learned_ms >= cutoff)
        };
        let best = match &self.own {
            Some(rtid) => Some(Remembered {
                rtid: rtid.clone(),
                learned_ms: now_ms,
            }),
            // The newest; on a tie, the first key (anonymousId, then userId, then previousId).
            None => (0..self.current.len() + self.previous.len())
                .filter_map(live)
                .fold(None::<&Remembered>, |best, e| match best {
                    Some(b) if b.learned_ms >= e.learned_ms => Some(b),
                    _ => Some(e),
                })
                .cloned(),
        };
        let Some(best) = best else {
            return Decision::default();
        };
        let writes = self
            .current
            .iter()
            .enumerate()
            .filter(|&(i, _)| found.get(i).and_then(Option::as_ref) != Some(&best))
            .map(|(_, k)| (k.clone(), best.clone()))
            .collect();
        let rtid = (self.own.is_none() && self.enrichable).then_some(best.rtid);
        Decision { writes, rtid }
    }
}

/// What [`Observation::decide`] found: entries to write and the rtid to add, if any.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Decision {
    writes: Vec<(VisitorKey, Remembered)>,
    rtid: Option<String>,
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("writes", &self.writes.len())
            .field("enrich", &self.rtid.is_some())
            .finish()
    }
}

impl Decision {
    /// The entries to store.
    pub fn writes(&self) -> &[(VisitorKey, Remembered)] {
        &self.writes
    }

    /// The rtid to add to the event ([`enrich`]), if any.
    pub fn rtid(&self) -> Option<&str> {
        self.rtid.as_deref()
    }
}

/// Segment ids are strings, sometimes numbers; numbers key as JavaScript prints them.
fn id_text(value: &Json<'_>) -> Option<String> {
    match value {
        Json::Str(s) if !s.trim().is_empty() => Some(s.to_string()),
        Json::Number(n) => Some(crate::js::number_to_string(n)),
        _ => None,
    }
}

/// The plugin's condition: `integrations?.All !== false || integrations["Rokt Conversions
/// API"]` (truthy). An `integrations` that is neither an object nor null cannot take the field.
fn plugin_would_enrich(event: &Json<'_>) -> bool {
    match event.get("integrations") {
        None | Some(Json::Null) => true,
        Some(i @ Json::Object(_)) => {
            !matches!(i.get("All"), Some(Json::Bool(false)))
                || i.get(INTEGRATION_NAME).is_some_and(crate::js::truthy)
        }
        Some(_) => false,
    }
}

/// A copy of `event` with `integrations["Rokt Conversions API"].rtid` = `rtid`, where the
/// plugin puts it: an `integrations` object is created when absent or null; a Rokt member
/// that is not an object is replaced by `{"rtid": …}`; an object keeps its other members.
/// Other members keep their order; an event that is not an object is returned unchanged.
///
/// ```
/// use rokt_capi::Json;
/// let event = Json::parse(r#"{"type":"track","integrations":{"All":true}}"#).unwrap();
/// let enriched = rokt_capi::rtid::memory::enrich(&event, "rt-1");
/// assert_eq!(
///     serde_json::to_string(&enriched).unwrap(),
///     r#"{"type":"track","integrations":{"All":true,"Rokt Conversions API":{"rtid":"rt-1"}}}"#
/// );
/// ```
pub fn enrich<'a>(event: &Json<'a>, rtid: &str) -> Json<'a> {
    let mut out = event.clone();
    if let Json::Object(pairs) = &mut out {
        let integrations = member(pairs, "integrations");
        if !matches!(integrations, Json::Object(_)) {
            *integrations = Json::Object(Vec::new());
        }
        if let Json::Object(integrations) = integrations {
            let rokt = member(integrations, INTEGRATION_NAME);
            if !matches!(rokt, Json::Object(_)) {
                *rokt = Json::Object(Vec::new());
            }
            if let Json::Object(rokt) = rokt {
                *member(rokt, "rtid") = Json::Str(Cow::Owned(rtid.to_owned()));
            }
        }
    }
    out
}

/// The member `key` (the last, where it repeats, as lookups read it), added as null when
/// absent.
fn member<'v, 'a>(pairs: &'v mut Vec<(Cow<'a, str>, Json<'a>)>, key: &str) -> &'v mut Json<'a> {
    let at = match pairs.iter().rposition(|(k, _)| k == key) {
        Some(at) => at,
        None => {
            pairs.push((Cow::Owned(key.to_owned()), Json::Null));
            pairs.len() - 1
        }
    };
    &mut pairs[at].1
}

/// Remembers each visitor's rtid and adds it to their later events, as Rokt's browser plugin
/// does in the browser: see the [module docs](self).
///
/// ```
/// use rokt_capi::rtid::memory::RtidMemory;
/// use std::time::Duration;
///
/// let memory = RtidMemory::builder()
///     .ttl(Duration::from_secs(7 * 24 * 3600)) // use a click for a week
///     .max_entries(100_000) // identities kept in this process
///     .build()?;
/// let mut landing = serde_json::json!({"type": "page", "anonymousId": "a-1",
///     "context": {"page": {"search": "?rtid=rt-42"}}});
/// let mut signup = serde_json::json!({"type": "identify", "anonymousId": "a-1", "userId": "u-1"});
/// let mut order = serde_json::json!({"type": "track", "event": "Order Completed", "userId": "u-1"});
/// assert!(!memory.observe_value(&mut landing)?); // has its own rtid: learned, unchanged
/// assert!(memory.observe_value(&mut signup)?); // enriched, and links u-1 to a-1
/// assert!(memory.observe_value(&mut order)?); // the user's later conversion
/// assert_eq!(order["integrations"]["Rokt Conversions API"]["rtid"], "rt-42");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RtidMemory {
    store: Box<dyn RtidStore>,
    core: Core,
}

impl fmt::Debug for RtidMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtidMemory")
            .field("ttl_ms", &self.core.ttl_ms)
            .finish_non_exhaustive()
    }
}

/// What both memories share: the time to live, the clock and the purge schedule.
struct Core {
    ttl_ms: i64,
    clock: Clock,
    /// When expired entries were last purged (ms since the epoch).
    last_purge: AtomicI64,
}

impl Core {
    /// The time now and, when a purge is due (at most once a minute, by one caller), the
    /// cutoff to purge before.
    fn tick(&self) -> (i64, Option<i64>) {
        let now = self.clock.now_ms();
        let last = self.last_purge.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= PURGE_EVERY_MS
            && self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        (now, due.then(|| self.cutoff(now)))
    }

    fn cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(self.ttl_ms)
    }

    /// The cutoff for a purge asked for now.
    fn purge_now(&self) -> i64 {
        let now = self.clock.now_ms();
        self.last_purge.store(now, Ordering::Relaxed);
        self.cutoff(now)
    }
}

/// Replaces `event` by its enriched form, if any; whether it was.
fn replace_value(event: &mut serde_json::Value, enriched: Option<Json<'_>>) -> bool {
    match enriched.map(|e| e.to_value()) {
        Some(value) => {
            *event = value;
            true
        }
        None => false,
    }
}

impl RtidMemory {
    /// A builder: a bounded in-memory store, a 30-day time to live and the system clock
    /// unless set.
    pub fn builder() -> RtidMemoryBuilder {
        RtidMemoryBuilder {
            ttl: DEFAULT_TTL,
            max_entries: None,
            clock: Clock::system(),
            store: None,
        }
    }

    /// Observes one event (of any type): learns its rtid, links its identities, and returns
    /// the event enriched with the visitor's remembered rtid when the plugin would have
    /// enriched it, or `None` when it stays as it is.
    pub fn observe<'a>(&self, event: &Json<'a>) -> Result<Option<Json<'a>>, StoreError> {
        let observation = Observation::of(event);
        if observation.current.is_empty() {
            // No identity: nothing to learn or look up.
            return Ok(None);
        }
        let (now, purge) = self.core.tick();
        if let Some(cutoff) = purge {
            let gone = self.store.forget_before(cutoff)?;
            tracing::trace!(gone, "rtid memory purged expired entries");
        }
        let found = observation
            .keys()
            .map(|k| self.store.get(k))
            .collect::<Result<Vec<_>, _>>()?;
        let decision = observation.decide(&found, now, self.core.ttl_ms);
        for (key, entry) in &decision.writes {
            self.store.put(key, entry)?;
        }
        Ok(decision.rtid().map(|rtid| enrich(event, rtid)))
    }

    /// [`observe`](Self::observe) on a `serde_json::Value`, changing it in place; returns
    /// whether it was enriched.
    pub fn observe_value(&self, event: &mut serde_json::Value) -> Result<bool, StoreError> {
        let enriched = self.observe(&Json::from(&*event))?.map(Json::into_owned);
        Ok(replace_value(event, enriched))
    }

    /// Calls `f` with the event as the memory leaves it: enriched, or as it is. A store
    /// failure does not stop the event: it is logged (store and operation only) and `f` gets
    /// the event unchanged. This is what the dispatcher does on enqueue.
    pub fn with_observed<R>(
        &self,
        event: &impl AsEvent,
        f: impl FnOnce(&Json<'_>) -> Result<R, crate::Error>,
    ) -> Result<R, crate::Error> {
        event.with_json(|doc| match self.observe(doc) {
            Ok(Some(enriched)) => f(&enriched),
            Ok(None) => f(doc),
            Err(e) => {
                tracing::warn!(
                    store = e.store(),
                    operation = e.operation(),
                    "rtid memory unavailable; the event goes on as it is"
                );
                f(doc)
            }
        })
    }

    /// How many identities the store holds.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.store.len()
    }

    /// Whether the store holds none.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.store.is_empty()
    }

    /// Drops expired entries now (the memory also does so by itself, at most once a minute).
    pub fn purge(&self) -> Result<u64, StoreError> {
        self.store.forget_before(self.core.purge_now())
    }
}

/// Configures an [`RtidMemory`].
#[must_use]
pub struct RtidMemoryBuilder {
    ttl: Duration,
    max_entries: Option<usize>,
    clock: Clock,
    store: Option<Box<dyn RtidStore>>,
}

impl fmt::Debug for RtidMemoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtidMemoryBuilder")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("own_store", &self.store.is_some())
            .finish()
    }
}

impl RtidMemoryBuilder {
    /// How long a learned rtid is used (default 30 days): from the last event that carried
    /// it, not from its last use. Linking identities does not extend it.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The in-memory store's bound, in identities (default 1 000 000). When full, the entry
    /// learned longest ago goes. Not for a store given with [`store`](Self::store).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// Where the time comes from (default: the system clock); tests pass one they control.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps entries in `store` instead of the in-memory default.
    pub fn store(mut self, store: impl RtidStore + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<RtidMemory, Error> {
        let core = Core::new(self.ttl, self.clock)?;
        let store = match (self.store, self.max_entries) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "max_entries",
                    "bounds the in-memory store only; bound your own store itself",
                )
                .into());
            }
            (_, Some(0)) => {
                return Err(ConfigError::new("max_entries", "must be at least 1").into());
            }
            (Some(store), None) => store,
            (None, n) => Box::new(InMemoryStore::new(n.unwrap_or(DEFAULT_MAX_ENTRIES))),
        };
        Ok(RtidMemory { store, core })
    }

    /// Checks the settings and makes an [`AsyncRtidMemory`] over `store`, a store with an
    /// asynchronous client. [`store`](Self::store) and [`max_entries`](Self::max_entries)
    /// do not apply to it.
    pub fn build_async(
        self,
        store: impl AsyncRtidStore + 'static,
    ) -> Result<AsyncRtidMemory, Error> {
        let setting = match (&self.store, self.max_entries) {
            (Some(_), _) => Some("store"),
            (None, Some(_)) => Some("max_entries"),
            (None, None) => None,
        };
        if let Some(setting) = setting {
            return Err(
                ConfigError::new(setting, "does not apply to an asynchronous store").into(),
            );
        }
        Ok(AsyncRtidMemory {
            store: Box::new(store),
            core: Core::new(self.ttl, self.clock)?,
        })
    }
}

impl Core {
    fn new(ttl: Duration, clock: Clock) -> Result<Core, Error> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        if ttl_ms == 0 {
            return Err(ConfigError::new("ttl", "must be at least a millisecond").into());
        }
        let now = clock.now_ms();
        Ok(Core {
            ttl_ms,
            clock,
            last_purge: AtomicI64::new(now),
        })
    }
}

/// A boxed future a store returns: boxed, so [`AsyncRtidStore`] can be used as a trait
/// object.
pub type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store with an asynchronous client (a database across the network, such as
/// `PostgresStore` with feature `postgres`), for an [`AsyncRtidMemory`]. Each call is one
/// round trip: the keys of one event are read together and written together.
pub trait AsyncRtidStore: Send + Sync {
    /// What is held for each of `keys`, in order, expired or not.
    fn get_many<'a>(&'a self, keys: &'a [VisitorKey]) -> StoreFuture<'a, Vec<Option<Remembered>>>;

    /// Holds each entry for its key, replacing what was there.
    fn put_many<'a>(&'a self, writes: &'a [(VisitorKey, Remembered)]) -> StoreFuture<'a, ()>;

    /// Drops every entry learned before `cutoff_ms`; returns how many went. (Named apart
    /// from [`RtidStore::forget_before`] so a type can be both without ambiguity.)
    fn forget_learned_before(&self, cutoff_ms: i64) -> StoreFuture<'_, u64>;

    /// How many identities it holds.
    fn count(&self) -> StoreFuture<'_, u64>;
}

/// The in-memory store answers at once; as an asynchronous store it is what tests of an
/// [`AsyncRtidMemory`] run on.
impl AsyncRtidStore for InMemoryStore {
    fn get_many<'a>(&'a self, keys: &'a [VisitorKey]) -> StoreFuture<'a, Vec<Option<Remembered>>> {
        let found = keys.iter().map(|k| RtidStore::get(self, k)).collect();
        Box::pin(std::future::ready(found))
    }

    fn put_many<'a>(&'a self, writes: &'a [(VisitorKey, Remembered)]) -> StoreFuture<'a, ()> {
        let done = writes
            .iter()
            .try_for_each(|(k, e)| RtidStore::put(self, k, e));
        Box::pin(std::future::ready(done))
    }

    fn forget_learned_before(&self, cutoff_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(std::future::ready(RtidStore::forget_before(
            self, cutoff_ms,
        )))
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        Box::pin(std::future::ready(RtidStore::len(self)))
    }
}

/// [`RtidMemory`] over an [`AsyncRtidStore`]: the same pure decision, with the store's two
/// round trips (read the event's keys, write what changed) awaited between its steps. Made
/// by [`RtidMemoryBuilder::build_async`].
///
/// The dispatcher's hook ([`DispatcherBuilder::rtid_memory`](crate::DispatcherBuilder::rtid_memory))
/// takes the synchronous memory, because [`try_enqueue`](crate::Dispatcher::try_enqueue)
/// cannot wait; with this one, observe each event before handing it on:
/// `memory.observe_value(&mut event).await` then `dispatcher.enqueue(event).await`.
///
/// # Cancel safety
///
/// Cancelling [`observe`](Self::observe) between its read and its write loses what the event
/// would have taught; nothing is half written (each write is one statement per key).
pub struct AsyncRtidMemory {
    store: Box<dyn AsyncRtidStore>,
    core: Core,
}

impl fmt::Debug for AsyncRtidMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRtidMemory")
            .field("ttl_ms", &self.core.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl AsyncRtidMemory {
    /// [`RtidMemory::observe`], awaiting the store.
    pub async fn observe<'a>(&self, event: &Json<'a>) -> Result<Option<Json<'a>>, StoreError> {
        let observation = Observation::of(event);
        if observation.current.is_empty() {
            return Ok(None);
        }
        let (now, purge) = self.core.tick();
        if let Some(cutoff) = purge {
            let gone = self.store.forget_learned_before(cutoff).await?;
            tracing::trace!(gone, "rtid memory purged expired entries");
        }
        let keys: Vec<VisitorKey> = observation.keys().cloned().collect();
        let found = self.store.get_many(&keys).await?;
        let decision = observation.decide(&found, now, self.core.ttl_ms);
        if !decision.writes.is_empty() {
            self.store.put_many(&decision.writes).await?;
        }
        Ok(decision.rtid().map(|rtid| enrich(event, rtid)))
    }

    /// [`RtidMemory::observe_value`], awaiting the store.
    pub async fn observe_value(&self, event: &mut serde_json::Value) -> Result<bool, StoreError> {
        let enriched = {
            let doc = Json::from(&*event);
            self.observe(&doc).await?.map(Json::into_owned)
        };
        Ok(replace_value(event, enriched))
    }

    /// How many identities the store holds.
    pub async fn len(&self) -> Result<u64, StoreError> {
        self.store.count().await
    }

    /// Whether the store holds none.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.store.count().await? == 0)
    }

    /// Drops expired entries now (it also does so by itself, at most once a minute).
    pub async fn purge(&self) -> Result<u64, StoreError> {
        self.store
            .forget_learned_before(self.core.purge_now())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> VisitorKey {
        VisitorKey::anonymous(s)
    }

    fn entry(rtid: &str, learned_ms: i64) -> Remembered {
        Remembered {
            rtid: rtid.into(),
            learned_ms,
        }
    }

    #[test]
    fn the_in_memory_store_drops_the_oldest_learned_when_full() {
        let store = InMemoryStore::new(2);
        store.put(&key("1"), &entry("r1", 10)).unwrap();
        store.put(&key("2"), &entry("r2", 5)).unwrap();
        store.put(&key("3"), &entry("r3", 20)).unwrap();
        assert_eq!(store.len().unwrap(), 2);
        assert_eq!(store.get(&key("2")).unwrap(), None);
        // Replacing an entry moves it in the age order.
        store.put(&key("1"), &entry("r1b", 30)).unwrap();
        store.put(&key("4"), &entry("r4", 25)).unwrap();
        assert_eq!(store.get(&key("3")).unwrap(), None);
        assert_eq!(store.get(&key("1")).unwrap(), Some(entry("r1b", 30)));
        assert_eq!(store.forget_before(26).unwrap(), 1);
        assert_eq!(store.len().unwrap(), 1);
    }

    #[test]
    fn debug_output_hides_ids_and_rtids() {
        let printed = format!(
            "{:?} {:?} {:?}",
            VisitorKey::user("jane-77"),
            entry("rt-secret", 1),
            Observation::of(
                &Json::parse(r#"{"type":"page","userId":"jane-77","context":{"page":{"search":"?rtid=rt-secret"}}}"#)
                    .unwrap()
            )
        );
        assert!(
            !printed.contains("jane") && !printed.contains("secret"),
            "{printed}"
        );
    }

    #[test]
    fn enrich_replaces_a_rokt_member_that_is_not_an_object() {
        let e = Json::parse(r#"{"integrations":{"Rokt Conversions API":true,"x":1}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&enrich(&e, "r")).unwrap(),
            r#"{"integrations":{"Rokt Conversions API":{"rtid":"r"},"x":1}}"#
        );
        let e = Json::parse(r#"{"integrations":null}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&enrich(&e, "r")).unwrap(),
            r#"{"integrations":{"Rokt Conversions API":{"rtid":"r"}}}"#
        );
    }
}
