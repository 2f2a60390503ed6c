//! The HTTP client: sends what the sans-I/O core builds, with retries, and reads Rokt's
//! verdict for each item.
//!
//! - [`Client`] sends one event, one batch, or many (split into bulk requests by the
//!   [`Limits`]), and waits for the answer.
//! - [`Dispatcher`] is the background pipeline a service embeds: a bounded queue, bulk
//!   grouping, concurrency, pacing, and one [`Outcome`] per event.
//! - [`RetryPolicy::decide`] is the retry decision, a pure function.
//!
//! What the client does with each answer (docs/behaviour.md §2). The rules:
//!
//! 1. **The status line decides** whether a request is accepted (2xx), rejected (3xx, 4xx but
//!    408 and 429) or retried (408, 429, 5xx, no answer).
//! 2. **An answer's body can only add per-item errors.** It is read after the decision; a
//!    body that breaks, stalls or runs long changes nothing the status decided.
//! 3. **An answer too large or broken to read whole never turns an item it names into
//!    delivered, and never causes a resend of items Rokt accepted.** The `errors` list is read
//!    incrementally, one error at a time, so every error that arrives whole counts, however
//!    long the answer; after an answer not read whole nothing is resent, and
//!    [`Receipt::answer_complete`] is `false`.
//!
//! | answer | result |
//! |---|---|
//! | 2xx | delivered |
//! | 2xx with `{"errors":[…]}` | the items the messages name are [`Error::Rejected`]; when an error names no item (and the answer was read whole), the other items are sent again one by one, concurrently and within the first request's deadline, so each gets its own verdict |
//! | 2xx whose body breaks, stalls or runs past 16 MiB | as above for the errors that arrived whole; the other items delivered with `answer_complete: false`, none sent again |
//! | 3xx | [`Error::Rejected`]: redirects are not followed |
//! | 400, 401, 403, other 4xx | [`Error::Rejected`] with mParticle's error code (when it looks like one), never retried, even if the body breaks |
//! | 429, 503 | retried after the larger of `Retry-After` (at most [`RetryPolicy::max_retry_after`]) and the back-off; every request of the client waits out that pause |
//! | 408, 5xx, timeout, connection error | retried with exponential back-off and full jitter, then [`Error::Failed`] with the last failure's kind and cause |
//!
//! Every URL the client sends to passes one transport policy: `https`, or plain `http` to
//! loopback or to a host named by [`ClientBuilder::allow_plain_http_to`]; the client's
//! credentials go only to its endpoint's origin.
//!
//! # Tracing
//!
//! The client and the dispatcher report through [`tracing`] (targets `rokt_capi::client` and
//! `rokt_capi::client::dispatcher`).
//! Fields carry routes, counts, statuses, error codes, tickets and Segment message ids, never
//! bodies, personal values, URLs' hosts or credentials.
//!
//! | what | level | name and fields |
//! |---|---|---|
//! | a request, all its attempts | DEBUG span | `rokt_request`: `method`, `path`, `kind`, `items`, then `outcome`, `status`, `attempts` |
//! | one HTTP attempt | DEBUG span | `rokt_attempt`: `attempt`, then `status` or `failure` |
//! | a retry | DEBUG event | `wait_ms`, `failure`, `retry_after` (whether Rokt set the wait) |
//! | a rejection, giving up | WARN event | `path`, `items`, `status`, `code`, or `attempts`, `reason`, `last` |
//! | a 2xx naming items in `errors` | WARN event | `status`, `items`, `named`, `unattributed` |
//! | a group the dispatcher sends | DEBUG span | `rokt_dispatch`: `kind`, `items`, `queue_depth`, `buffered` |
//! | enqueue, flush, shutdown | TRACE / DEBUG events | `ticket`, `queue_depth`, `pending` |
//! | an event not delivered | DEBUG event | `ticket`, `message_id`, `verdict`, `status`, `error_type` |
//!
//! For metrics, [`Dispatcher::stats`] counts events and requests and times outcomes and
//! attempts ([`Stats`], `Serialize`), [`Verdict::label`] names an outcome in one word, and
//! the `metrics` feature reports the same figures through the `metrics` facade.

mod dispatcher;
mod response;
mod retry;
mod settings;
mod stats;

pub use dispatcher::{
    Dispatcher, DispatcherBuilder, DispatcherSettings, EnqueueError, Enqueued, MAX_CONCURRENCY,
    MAX_FLUSH_INTERVAL, MAX_QUEUE_CAPACITY, MAX_RATE, MIN_RATE, Outcome, OutcomeSink, Refusal,
    Routed, Ticket, Verdict,
};
pub use retry::{AttemptOutcome, Decision, RetryPolicy, StopReason, parse_retry_after};
pub use settings::{ClientSettings, ENV_API_KEY, ENV_API_SECRET, ENV_ENDPOINT};
pub use stats::{LATENCY_BUCKETS, Latency, Stats};

use crate::credentials::Credentials;
use crate::error::{AttemptFailure, ConfigError, Error, TransportError, TransportErrorKind};
use crate::mapping::Preset;
use crate::pipeline::{Encoded, Pipeline, PipelineBuilder};
use crate::request::{Endpoint, Limits, Request, RequestKind, USER_AGENT, join_array, plan_bulk};
use crate::rokt::Batch;
use crate::segment::AsEvent;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use stats::Meter;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::Instrument;

/// Batches whose newest event is older than this go to `/bulkevents/historical` (docs/behaviour.md §2).
pub const HISTORICAL_AFTER: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The most bytes of an answer body the client reads for its `errors`. The body is read
/// incrementally (one error held at a time), so this bounds time on a fast endless answer,
/// not memory; 100 errors with messages of 100 KB each fit.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The route for a batch whose newest event happened at `timestamp_ms` (Unix milliseconds):
/// [`RequestKind::Historical`] when that is more than `historical_after` before `now`,
/// otherwise [`RequestKind::Bulk`]. A batch without events is never historical.
///
/// ```
/// use rokt_capi::client::{route, HISTORICAL_AFTER};
/// use rokt_capi::request::RequestKind;
/// use std::time::{Duration, UNIX_EPOCH};
/// let now = UNIX_EPOCH + Duration::from_secs(100 * 86_400);
/// assert_eq!(route(Some(90 * 86_400_000), now, HISTORICAL_AFTER), RequestKind::Bulk);
/// assert_eq!(route(Some(60 * 86_400_000), now, HISTORICAL_AFTER), RequestKind::Historical);
/// assert_eq!(route(None, now, HISTORICAL_AFTER), RequestKind::Bulk);
/// ```
pub fn route(
    timestamp_ms: Option<i64>,
    now: SystemTime,
    historical_after: Duration,
) -> RequestKind {
    let Some(ts) = timestamp_ms else {
        return RequestKind::Bulk;
    };
    let now_ms = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let limit = i64::try_from(historical_after.as_millis()).unwrap_or(i64::MAX);
    if now_ms.saturating_sub(ts) > limit {
        RequestKind::Historical
    } else {
        RequestKind::Bulk
    }
}

pub use crate::clock::Clock;

/// Rokt's acceptance of a request (or of the item it carried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The 2xx status (mParticle answers 202).
    pub status: u16,
    /// How many attempts it took.
    pub attempts: u32,
    /// The route of the request that delivered it.
    pub kind: RequestKind,
    /// Whether the answer's body was read whole. `false` when it broke, stalled past the
    /// request timeout or ran past the reading limit: Rokt accepted the request (the status
    /// says so), but an error naming this item may have been in the part that could not be
    /// read. The item is not sent again either way.
    pub answer_complete: bool,
}

/// What became of each item of [`Client::send_bulk`] and friends, by input index.
#[derive(Debug)]
#[non_exhaustive]
pub struct BulkReport {
    /// One result per input item, in input order.
    pub items: Vec<Result<Receipt, Error>>,
    /// How many HTTP requests were sent (first attempts, without retries).
    pub requests: usize,
}

impl BulkReport {
    /// How many items were delivered.
    pub fn delivered(&self) -> usize {
        self.items.iter().filter(|r| r.is_ok()).count()
    }

    /// The items that were not delivered, with why.
    pub fn errors(&self) -> impl Iterator<Item = (usize, &Error)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }
}

/// Sends Segment events to Rokt's Conversions API. Cheap to clone (one shared connection
/// pool), `Send + Sync`.
///
/// Made by [`Client::builder`]; the API key and secret are required. The example talks to a
/// tiny receiver on loopback standing in for Rokt:
///
/// ```
/// use rokt_capi::{Client, request::Endpoint};
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
/// # async fn main() -> Result<(), rokt_capi::Error> {
/// # let url = receiver();
/// // `url` is a loopback receiver here; by default the client talks to Rokt.
/// let client = Client::builder()
///     .api_key("my-key")
///     .api_secret("my-secret")
///     .endpoint(Endpoint::custom(&url)?)
///     .build()?;
/// let event = serde_json::json!({
///     "type": "track", "event": "Order Completed", "messageId": "m-1",
///     "timestamp": chrono::Utc::now().to_rfc3339(),
///     "context": {"traits": {"email": "jane@example.com"}},
///     "properties": {"order_id": "o-1", "revenue": 20}
/// });
/// let receipt = client.send(&event).await?;
/// assert_eq!(receipt.status, 202);
///
/// // Bad input is refused before anything is sent.
/// let err = client.send(&serde_json::json!({"type": "track"})).await.unwrap_err();
/// assert!(err.is_bad_input());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
    /// Counts requests for a dispatcher's [`Stats`].
    meter: Option<Arc<Meter>>,
}

struct Inner {
    http: reqwest::Client,
    pipeline: Pipeline,
    credentials: Credentials,
    endpoint: Endpoint,
    retry: RetryPolicy,
    request_timeout: Duration,
    user_agent: HeaderValue,
    clock: Clock,
    historical_after: Duration,
    /// The endpoint is `https` but the crate was built without a TLS backend.
    tls_missing: bool,
    /// The pause every request of this client waits out after a 429 or 503.
    pause: Pause,
    /// Hosts plain `http` may go to besides loopback (the explicit opt-in).
    plain_http_hosts: Vec<String>,
}

/// A pause shared by every request of one client (and so of a dispatcher): after a 429 or
/// 503 no request starts until it has passed. Its end only moves later, by at most the
/// wait the retry policy chose (itself bounded by the policy's `max_retry_after` and
/// back-off cap).
#[derive(Debug, Default)]
struct Pause {
    until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pause {
    fn hold_for(&self, wait: Duration) {
        let now = tokio::time::Instant::now();
        let end = now.checked_add(wait).unwrap_or(now);
        let mut until = self
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if until.is_none_or(|u| u < end) {
            *until = Some(end);
        }
    }

    /// Waits until no pause is in force.
    async fn wait(&self) {
        loop {
            let until = *self
                .until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(at) if at > tokio::time::Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.base().as_str())
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]; [`build`](ClientBuilder::build) checks everything.
#[must_use]
pub struct ClientBuilder {
    credentials: Option<Credentials>,
    api_key: Option<String>,
    api_secret: Option<String>,
    endpoint: Option<EndpointSetting>,
    plain_http_hosts: Vec<String>,
    proxy: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    user_agent: Option<String>,
    pipeline: Option<Pipeline>,
    /// The preset, overrides and limits, for the pipeline the client builds.
    pipeline_settings: PipelineBuilder,
    clock: Option<Clock>,
    historical_after: Duration,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("has_credentials", &self.credentials.is_some())
            .field("has_api_key", &self.api_key.is_some())
            .field("has_api_secret", &self.api_secret.is_some())
            .field("has_proxy", &self.proxy.is_some())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            credentials: None,
            api_key: None,
            api_secret: None,
            endpoint: None,
            plain_http_hosts: Vec::new(),
            proxy: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            user_agent: None,
            pipeline: None,
            pipeline_settings: PipelineBuilder::default(),
            clock: None,
            historical_after: HISTORICAL_AFTER,
        }
    }
}

impl ClientBuilder {
    /// The API key and secret together.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The API key (required, with the secret).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The API secret (required, with the key).
    pub fn api_secret(mut self, secret: impl Into<String>) -> Self {
        self.api_secret = Some(secret.into());
        self
    }

    /// Where to send (default [`Endpoint::rokt`]); see also [`Endpoint::pod`].
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(EndpointSetting::Endpoint(endpoint));
        self
    }

    /// A custom base URL, checked by `build` as [`Endpoint::custom`] checks it: `https`, or
    /// `http` to loopback (or to a host named by
    /// [`allow_plain_http_to`](Self::allow_plain_http_to)), no user info. `rokt` and a pod
    /// name (`us1`, `us2`, `eu1`, `au1`) name those endpoints, as in [`ClientSettings`].
    pub fn endpoint_url(mut self, url: &str) -> Self {
        self.endpoint = Some(EndpointSetting::Url(url.to_owned()));
        self
    }

    /// Allows plain `http` to `host` (a name or address, compared without case), for a
    /// receiver inside a trusted network such as a TLS-terminating gateway. Off by default:
    /// without it, plain `http` is refused for every host but loopback, in
    /// [`endpoint_url`](Self::endpoint_url) and in [`Client::send_request`]. The API key
    /// and secret then cross that network unencrypted.
    pub fn allow_plain_http_to(mut self, host: impl Into<String>) -> Self {
        self.plain_http_hosts.push(host.into());
        self
    }

    /// Sends every request through this egress proxy (`http://proxy:3128`, or `https://…`;
    /// user info in the URL is the proxy's own login). To an `https` endpoint the proxy only
    /// relays the encrypted connection (`CONNECT`), so it sees the host name but not the
    /// credentials or events. Without this setting no proxy is used: the `HTTP_PROXY` /
    /// `HTTPS_PROXY` environment variables are ignored.
    pub fn proxy(mut self, url: &str) -> Self {
        self.proxy = Some(url.to_owned());
        self
    }

    /// How long to wait for a connection (default 10 s; more than zero, at most a day).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one attempt may take, from connecting to the end of the answer (default 30 s;
    /// more than zero, at most a day).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How requests are retried (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The `User-Agent` header (default [`USER_AGENT`]).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The pipeline that maps events (its mapping and limits are used; the client's
    /// endpoint and credentials replace its own). Excludes [`preset`](Self::preset) and
    /// [`overrides`](Self::overrides).
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// The mapping preset to build the pipeline from (default [`Preset::Send`]).
    pub fn preset(mut self, preset: Preset) -> Self {
        self.pipeline_settings = self.pipeline_settings.preset(preset);
        self
    }

    /// Mapping overrides in Segment's JSON, applied over the preset (see
    /// [`PipelineBuilder::overrides`](crate::PipelineBuilder::overrides)).
    pub fn overrides(mut self, overrides: impl Into<crate::Json<'static>>) -> Self {
        self.pipeline_settings = self.pipeline_settings.overrides(overrides);
        self
    }

    /// Bulk size limits (default: the pipeline's, else mParticle's).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.pipeline_settings = self.pipeline_settings.limits(limits);
        self
    }

    /// The clock that decides which batches are historical (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The age past which a batch goes to `/bulkevents/historical` (default
    /// [`HISTORICAL_AFTER`], 30 days).
    pub fn historical_after(mut self, age: Duration) -> Self {
        self.historical_after = age;
        self
    }

    /// Checks the settings and builds the client. Errors are [`Error::Config`] (or
    /// [`Error::Mapping`] for overrides that do not compile).
    pub fn build(self) -> Result<Client, Error> {
        let credentials = match (self.credentials, self.api_key, self.api_secret) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ConfigError::new(
                    "credentials",
                    "give either credentials or api_key and api_secret, not both",
                )
                .into());
            }
            (Some(c), None, None) => c,
            (None, key, secret) => {
                Credentials::new(key.unwrap_or_default(), secret.unwrap_or_default())
            }
        };
        if !credentials.is_complete() {
            return Err(ConfigError::new(
                "credentials",
                "both the API key and the API secret are required",
            )
            .into());
        }
        let endpoint = match self.endpoint {
            None => Endpoint::rokt(),
            Some(EndpointSetting::Endpoint(e)) => e,
            Some(EndpointSetting::Url(url)) => {
                Endpoint::from_setting(&url, &self.plain_http_hosts)?
            }
        };
        for (setting, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err(ConfigError::new(
                    setting,
                    "must be more than zero and at most one day",
                )
                .into());
            }
        }
        self.retry.validate()?;
        let user_agent = self.user_agent.unwrap_or_else(|| USER_AGENT.to_owned());
        let user_agent = HeaderValue::from_str(&user_agent)
            .ok()
            .filter(|_| !user_agent.is_empty())
            .ok_or_else(|| {
                ConfigError::new("user_agent", "must be non-empty visible ASCII text")
            })?;

        // The mapping is compiled once (the given pipeline's is reused); the client's pipeline
        // gets the client's endpoint and credentials, and its builder judges the rest.
        let settings = self.pipeline_settings;
        let builder = match self.pipeline {
            Some(_) if settings.has_mapping_settings() => {
                return Err(ConfigError::new(
                    "pipeline",
                    "give either a pipeline or a preset and overrides, not both",
                )
                .into());
            }
            Some(p) => {
                let limits = settings.given_limits().unwrap_or(*p.limits());
                p.to_builder().limits(limits)
            }
            None => settings,
        };
        let pipeline = builder
            .credentials(credentials.clone())
            .endpoint(endpoint.clone())
            .build()?;

        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60));
        #[cfg(feature = "rustls")]
        {
            http = http.use_rustls_tls();
        }
        match &self.proxy {
            // Only an explicit proxy: one from the environment would be a silent detour.
            None => http = http.no_proxy(),
            Some(url) => {
                let refused = || ConfigError::new("proxy", "must be an http or https URL");
                let parsed = url::Url::parse(url).map_err(|_| refused())?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(refused().into());
                }
                http = http.proxy(reqwest::Proxy::all(parsed).map_err(|_| refused())?);
            }
        }
        let http = http
            .build()
            .map_err(|_| ConfigError::new("http", "the HTTP client could not be set up"))?;
        let tls_missing = endpoint.base().scheme() == "https" && !HAS_TLS;
        if tls_missing {
            tracing::warn!(
                "the endpoint is https but rokt-capi was built without the `rustls` or \
                 `native-tls` feature: sending will fail"
            );
        }
        Ok(Client {
            meter: None,
            inner: Arc::new(Inner {
                http,
                pipeline,
                credentials,
                endpoint,
                retry: self.retry,
                request_timeout: self.request_timeout,
                user_agent,
                clock: self.clock.unwrap_or_else(Clock::system),
                historical_after: self.historical_after,
                tls_missing,
                pause: Pause::default(),
                plain_http_hosts: self.plain_http_hosts,
            }),
        })
    }
}

/// The default [`ClientBuilder::connect_timeout`].
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`ClientBuilder::request_timeout`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest `connect_timeout` or `request_timeout` (one day).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether a TLS backend is compiled in (without one only `http` endpoints work).
const HAS_TLS: bool = cfg!(any(feature = "rustls", feature = "native-tls"));

/// How the endpoint was given: judged by `build`, with the plain-http opt-in.
enum EndpointSetting {
    Endpoint(Endpoint),
    Url(String),
}

/// The concurrency slots resends go through: a dispatcher's (with the one its group holds,
/// given back before resending), or the client's own.
pub(crate) struct Slots {
    permits: Arc<tokio::sync::Semaphore>,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slots {
    /// The slots of a dispatcher, one of which the caller holds.
    pub(crate) fn held(
        permits: Arc<tokio::sync::Semaphore>,
        held: tokio::sync::OwnedSemaphorePermit,
    ) -> Slots {
        Slots {
            permits,
            held: Some(held),
        }
    }

    /// Slots of the client's own, for a call of [`Client::send_bulk`] and friends.
    fn own() -> Slots {
        Slots {
            permits: Arc::new(tokio::sync::Semaphore::new(RESEND_CONCURRENCY)),
            held: None,
        }
    }
}

/// How many one-by-one resends a [`Client`] call (not a dispatcher) runs at once.
const RESEND_CONCURRENCY: usize = 4;

/// The answer to a request that ended in a 2xx: the errors its body named.
struct Answer {
    status: u16,
    attempts: u32,
    errors: response::Attributor,
    /// The body was read whole.
    complete: bool,
    /// When its first attempt started: resends share its deadline.
    started: Instant,
}

/// One attempt's status line and headers (the body still to read), or why there is none.
type Attempt = Result<(u16, Option<Duration>, reqwest::Response), TransportError>;

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with the default settings and the credentials and endpoint from the `ROKT_*`
    /// environment variables: `ROKT_API_KEY`, `ROKT_API_SECRET` and, optionally,
    /// `ROKT_ENDPOINT` (`rokt`, a pod name such as `eu1`, or a base URL). See
    /// [`ClientSettings::from_env`]; [`ClientBuilder::from_env`] takes more settings.
    ///
    /// # Errors
    ///
    /// An [`Error::Config`] naming the variable (never its value) when one is missing or
    /// invalid.
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env()?.build()
    }

    /// A handle on the same client that also counts its requests into `meter`.
    pub(crate) fn metered(&self, meter: Arc<Meter>) -> Client {
        Client {
            inner: self.inner.clone(),
            meter: Some(meter),
        }
    }

    /// The pipeline that maps events; its requests carry this client's endpoint and
    /// credentials, so `client.pipeline().request(&event)` previews exactly what is sent.
    pub fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The route for a batch by its newest event: [`RequestKind::Bulk`] or, when older than
    /// the historical age by this client's clock, [`RequestKind::Historical`].
    pub fn route_for(&self, batch: &Batch) -> RequestKind {
        let newest = batch
            .events
            .iter()
            .map(|e| e.data.timestamp_unixtime_ms)
            .max();
        self.route_ms(newest)
    }

    pub(crate) fn route_ms(&self, newest_ms: Option<i64>) -> RequestKind {
        route(
            newest_ms,
            self.inner.clock.now(),
            self.inner.historical_after,
        )
    }

    /// Maps one Segment event and sends it: `POST /events`, or `/bulkevents/historical` when
    /// it is older than 30 days. Bad input is an error before anything is sent.
    pub async fn send(&self, event: impl AsEvent) -> Result<Receipt, Error> {
        let encoded = self.inner.pipeline.encoded(event)?;
        self.send_encoded_one(None, &encoded).await
    }

    /// Sends one batch: `POST /events`, or `/bulkevents/historical` when it is older than
    /// 30 days.
    pub async fn send_batch(&self, batch: &Batch) -> Result<Receipt, Error> {
        let encoded = Encoded::of_batch(batch, self.inner.pipeline.limits())?;
        self.send_encoded_one(None, &encoded).await
    }

    /// Sends one batch by the given route (a bulk route carries it as a bulk of one).
    pub async fn send_batch_as(&self, kind: RequestKind, batch: &Batch) -> Result<Receipt, Error> {
        let encoded = Encoded::of_batch(batch, self.inner.pipeline.limits())?;
        self.send_encoded_one(Some(kind), &encoded).await
    }

    /// Sends many batches in bulk requests: split by the [`Limits`] (at most 100 per request,
    /// 256 KB per body), recent ones to `/bulkevents` and those older than 30 days to
    /// `/bulkevents/historical`. A batch over 128 KB is refused ([`Error::TooLarge`]) and not
    /// sent. Requests go one after another.
    pub async fn send_bulk(&self, batches: &[Batch]) -> BulkReport {
        let limits = *self.inner.pipeline.limits();
        let encoded = batches
            .iter()
            .map(|b| Encoded::of_batch(b, &limits))
            .collect();
        self.send_encoded(None, encoded).await
    }

    /// Like [`send_bulk`](Self::send_bulk), with the route chosen by the caller.
    /// [`RequestKind::Single`] sends each batch in its own `/events` request.
    pub async fn send_bulk_as(&self, kind: RequestKind, batches: &[Batch]) -> BulkReport {
        let limits = *self.inner.pipeline.limits();
        let encoded = batches
            .iter()
            .map(|b| Encoded::of_batch(b, &limits))
            .collect();
        self.send_encoded(Some(kind), encoded).await
    }

    /// Maps many Segment events and sends them as [`send_bulk`](Self::send_bulk) does. Events
    /// that are bad input get their error and are not sent.
    pub async fn send_events<E: AsEvent>(&self, events: impl IntoIterator<Item = E>) -> BulkReport {
        let encoded = events
            .into_iter()
            .map(|e| self.inner.pipeline.encoded(e))
            .collect();
        self.send_encoded(None, encoded).await
    }

    /// Sends a request built elsewhere (e.g. by [`Pipeline::request`]) as it is, with this
    /// client's retries, timeouts and user agent. The status line decides as for every
    /// request; errors in a 2xx answer's `errors` are not examined.
    ///
    /// Its URL must pass the same transport policy as the endpoint (`https`, or plain `http`
    /// to loopback or an allowed host, no user info), or it is not sent
    /// ([`Error::Config`], setting `request`). Without an `Authorization` header the client's
    /// credentials are added, but only when the URL has the same origin (scheme, host, port)
    /// as the client's endpoint; a request to another origin without its own
    /// `Authorization` is refused rather than sent with the client's credentials.
    pub async fn send_request(&self, request: &Request) -> Result<Receipt, Error> {
        let url = url::Url::parse(&request.url)
            .map_err(|_| ConfigError::new("request", "the URL is not valid"))?;
        crate::request::check_transport(&url, &self.inner.plain_http_hosts, "request")?;
        if request.header("authorization").is_none() && !self.is_own_origin(&url) {
            return Err(ConfigError::new(
                "request",
                "the URL is not on the client's endpoint, and the client's credentials go \
                 only there: give the request its own Authorization header",
            )
            .into());
        }
        let answer = self.execute(request, request.items.max(1), None).await?;
        Ok(Receipt {
            status: answer.status,
            attempts: answer.attempts,
            kind: request.kind,
            answer_complete: answer.complete,
        })
    }

    /// Whether `url` has the same origin as the client's endpoint.
    fn is_own_origin(&self, url: &url::Url) -> bool {
        url.origin() == self.inner.endpoint.base().origin()
    }

    async fn send_encoded_one(
        &self,
        kind: Option<RequestKind>,
        item: &Encoded,
    ) -> Result<Receipt, Error> {
        let kind = kind.unwrap_or_else(|| match self.route_ms(item.newest_ms) {
            RequestKind::Bulk => RequestKind::Single,
            other => other,
        });
        self.deliver_alone(kind, &item.body, None).await
    }

    async fn send_encoded(
        &self,
        kind: Option<RequestKind>,
        items: Vec<Result<Encoded, Error>>,
    ) -> BulkReport {
        let mut results: Vec<Option<Result<Receipt, Error>>> = Vec::with_capacity(items.len());
        let mut groups: Vec<(RequestKind, Vec<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Err(e) => results.push(Some(Err(e.clone()))),
                Ok(enc) => {
                    results.push(None);
                    let k = kind.unwrap_or_else(|| self.route_ms(enc.newest_ms));
                    match groups.iter_mut().find(|(gk, _)| *gk == k) {
                        Some((_, members)) => members.push(i),
                        None => groups.push((k, vec![i])),
                    }
                }
            }
        }
        let mut requests = 0;
        for (k, members) in groups {
            let bodies: Vec<Bytes> = members
                .iter()
                .filter_map(|&i| items[i].as_ref().ok().map(|e| e.body.clone()))
                .collect();
            if k == RequestKind::Single {
                for (&i, body) in members.iter().zip(&bodies) {
                    requests += 1;
                    results[i] = Some(self.deliver_alone(k, body, None).await);
                }
                continue;
            }
            let sizes: Vec<usize> = bodies.iter().map(Bytes::len).collect();
            for range in plan_bulk(&sizes, self.inner.pipeline.limits()) {
                requests += 1;
                let verdicts = self.deliver(k, &bodies[range.clone()], Slots::own()).await;
                for (&i, v) in members[range].iter().zip(verdicts) {
                    results[i] = Some(v);
                }
            }
        }
        BulkReport {
            items: results
                .into_iter()
                .map(|r| r.unwrap_or(Err(Error::Closed)))
                .collect(),
            requests,
        }
    }

    /// Sends one planned bulk request (`kind` is `Bulk` or `Historical`, `items` within the
    /// limits) and returns each item's verdict.
    ///
    /// Items that must be resent alone go through `slots` (the group's own slot is given
    /// back first), all at once within the slots, and share the request's deadline.
    pub(crate) async fn deliver(
        &self,
        kind: RequestKind,
        items: &[Bytes],
        mut slots: Slots,
    ) -> Vec<Result<Receipt, Error>> {
        let (body, n) = join_array(items.iter().map(|b| &b[..]));
        let request = Request::new(
            &self.inner.endpoint,
            Some(&self.inner.credentials),
            kind,
            body.into(),
            n,
        );
        let answer = match self.execute(&request, items.len(), None).await {
            Ok(a) => a,
            Err(e) => return vec![Err(e); items.len()],
        };
        let receipt = Receipt {
            status: answer.status,
            attempts: answer.attempts,
            kind,
            answer_complete: answer.complete,
        };
        if answer.errors.errors() == 0 {
            return vec![Ok(receipt); items.len()];
        }
        let attribution = answer.errors.finish();
        tracing::warn!(
            status = answer.status,
            items = items.len(),
            named = attribution.rejected.len(),
            unattributed = attribution.unattributed,
            complete = answer.complete,
            "rokt accepted a bulk request with errors"
        );
        let mut verdicts: Vec<Option<Result<Receipt, Error>>> = vec![None; items.len()];
        for (i, rejection) in attribution.rejected {
            verdicts[i] = Some(Err(Error::Rejected(rejection)));
        }
        // Items that cannot be told apart are sent again alone, so each gets its own verdict;
        // never after an answer that could not be read whole (Rokt accepted the request, and
        // resending what it accepted would duplicate it).
        let resend = attribution.unattributed > 0 && answer.complete;
        if resend {
            let alone = if kind == RequestKind::Bulk {
                RequestKind::Single
            } else {
                kind
            };
            drop(slots.held.take());
            let mut resends = tokio::task::JoinSet::new();
            for (i, _) in verdicts.iter().enumerate().filter(|(_, v)| v.is_none()) {
                let client = self.clone();
                let body = items[i].clone();
                let permits = slots.permits.clone();
                let from = (answer.started, answer.status);
                resends.spawn(
                    async move {
                        // The slots are never closed; were they, the resend goes anyway.
                        let _slot = permits.acquire_owned().await;
                        (i, client.deliver_alone(alone, &body, Some(from)).await)
                    }
                    .in_current_span(),
                );
            }
            while let Some(joined) = resends.join_next().await {
                if let Ok((i, v)) = joined {
                    verdicts[i] = Some(v);
                }
            }
        }
        verdicts
            .into_iter()
            .map(|v| match v {
                Some(v) => v,
                None if resend => Err(Error::Closed),
                None => Ok(receipt),
            })
            .collect()
    }

    /// Sends one item alone: `/events`, or a bulk route with one item. `resent_from`: when
    /// the request it is resent from started (its deadline is shared) and how it was answered.
    pub(crate) async fn deliver_alone(
        &self,
        kind: RequestKind,
        item: &Bytes,
        resent_from: Option<(Instant, u16)>,
    ) -> Result<Receipt, Error> {
        let body = if kind == RequestKind::Single {
            item.clone()
        } else {
            join_array([&item[..]]).0.into()
        };
        let request = Request::new(
            &self.inner.endpoint,
            Some(&self.inner.credentials),
            kind,
            body,
            1,
        );
        let answer = self.execute(&request, 1, resent_from).await?;
        if let Some((_, rejection)) = answer.errors.finish().rejected.into_iter().next() {
            return Err(Error::Rejected(rejection));
        }
        Ok(Receipt {
            status: answer.status,
            attempts: answer.attempts,
            kind,
            answer_complete: answer.complete,
        })
    }

    /// Sends `request` (carrying `items` items) until the retry policy stops, in a
    /// `rokt_request` span.
    async fn execute(
        &self,
        request: &Request,
        items: usize,
        resent_from: Option<(Instant, u16)>,
    ) -> Result<Answer, Error> {
        let span = tracing::debug_span!(
            "rokt_request",
            method = request.method,
            path = %request.path,
            kind = ?request.kind,
            items = request.items,
            outcome = tracing::field::Empty,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        self.execute_in(request, items, resent_from, &span)
            .instrument(span.clone())
            .await
    }

    /// The retry loop. The status line decides: a 2xx is accepted, a 3xx or 4xx (but 408 and
    /// 429) rejected, the rest retried. The body is read only after that decision, and can
    /// only add errors: a body that breaks, stalls or runs long never turns an accepted
    /// request into a retry, nor a rejected one into a retry.
    async fn execute_in(
        &self,
        request: &Request,
        items: usize,
        resent_from: Option<(Instant, u16)>,
        span: &tracing::Span,
    ) -> Result<Answer, Error> {
        if self.inner.tls_missing {
            let err = ConfigError::new(
                "endpoint",
                "https needs a TLS backend: build rokt-capi with the `rustls` or `native-tls` feature",
            );
            tracing::error!(path = %request.path, items = request.items, "{err}");
            span.record("outcome", "rejected");
            return Err(err.into());
        }
        let policy = &self.inner.retry;
        // A resend counts its deadline from the request it resends part of, and does not
        // start once that has passed: resends share one deadline.
        if let Some((from, resent_after)) = resent_from {
            if from.elapsed() >= policy.deadline {
                span.record("outcome", "failed");
                span.record("attempts", 0);
                tracing::warn!(
                    path = %request.path,
                    items = request.items,
                    "rokt resend not started: the request's deadline has passed"
                );
                return Err(Error::Failed {
                    attempts: 0,
                    reason: crate::error::GiveUp::Deadline,
                    last: AttemptFailure::Status(resent_after),
                    cause: None,
                });
            }
        }
        let started = resent_from.map_or_else(Instant::now, |(from, _)| from);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let attempt_span = tracing::debug_span!(
                "rokt_attempt",
                attempt,
                status = tracing::field::Empty,
                failure = tracing::field::Empty,
            );
            if let Some(meter) = &self.meter {
                Meter::add(&meter.requests);
            }
            let sent_at = Instant::now();
            let result = self.attempt(request).instrument(attempt_span.clone()).await;
            if let Some(meter) = &self.meter {
                meter.request_latency.record(sent_at.elapsed());
            }
            let (outcome, response, cause) = match result {
                Ok((status, retry_after, response)) => {
                    attempt_span.record("status", status);
                    let outcome = AttemptOutcome::Status {
                        status,
                        retry_after,
                    };
                    (outcome, Some(response), None)
                }
                Err(e) => {
                    attempt_span.record("failure", tracing::field::display(e.kind()));
                    (AttemptOutcome::Transport(e.kind()), None, Some(e))
                }
            };
            drop(attempt_span);
            let draw = fastrand::f64();
            if let AttemptOutcome::Status {
                status: 429 | 503,
                retry_after,
            } = outcome
            {
                // Rokt asked this client to slow down: every request waits, even when this
                // one stops here.
                self.inner
                    .pause
                    .hold_for(policy.throttle_wait(retry_after, attempt, draw));
            }
            let decision = policy.decide(&outcome, attempt, started.elapsed(), draw);
            if let Decision::Stop(_) = decision {
                // The request's final fields, recorded once.
                span.record("attempts", attempt);
                if let AttemptOutcome::Status { status, .. } = outcome {
                    span.record("status", status);
                }
            }
            match (decision, outcome, response) {
                (Decision::RetryAfter(wait), _, _) => {
                    if let Some(meter) = &self.meter {
                        Meter::add(&meter.retries);
                    }
                    let retry_after = matches!(
                        outcome,
                        AttemptOutcome::Status {
                            status: 429 | 503,
                            retry_after: Some(_)
                        }
                    );
                    tracing::debug!(
                        path = %request.path,
                        items = request.items,
                        attempt,
                        failure = %outcome.failure(),
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        retry_after,
                        "retrying rokt request"
                    );
                    // After a 429 or 503 the client's pause (set above) ends no earlier, and
                    // the next attempt waits it out too.
                    tokio::time::sleep(wait).await;
                }
                (
                    Decision::Stop(StopReason::Success),
                    AttemptOutcome::Status { status, .. },
                    Some(response),
                ) => {
                    let mut errors = response::Attributor::new(status, items);
                    let complete = read_errors(response, usize::MAX, |e| errors.add(e)).await;
                    span.record("outcome", "delivered");
                    if !complete {
                        tracing::warn!(
                            path = %request.path,
                            items = request.items,
                            status,
                            named = errors.errors(),
                            "rokt accepted a request but its answer could not be read whole"
                        );
                    }
                    tracing::debug!(path = %request.path, items = request.items, status, attempt, "rokt accepted");
                    return Ok(Answer {
                        status,
                        attempts: attempt,
                        errors,
                        complete,
                        started,
                    });
                }
                (
                    Decision::Stop(StopReason::Permanent),
                    AttemptOutcome::Status { status, .. },
                    Some(response),
                ) => {
                    let mut first = None;
                    read_errors(response, 1, |e| first = first.take().or(Some(e))).await;
                    let rejection = match first {
                        Some(e) => crate::error::Rejection::new(status, e.code, e.message),
                        None => crate::error::Rejection::new(status, None, None),
                    };
                    span.record("outcome", "rejected");
                    tracing::warn!(
                        path = %request.path,
                        items = request.items,
                        status,
                        code = rejection.code.as_deref().unwrap_or(""),
                        attempts = attempt,
                        "rokt rejected a request"
                    );
                    return Err(Error::Rejected(rejection));
                }
                (Decision::Stop(stop), _, _) => {
                    // Success and Permanent come only with an answer: what is left is giving up.
                    let reason = match stop {
                        StopReason::GaveUp(reason) => reason,
                        _ => crate::error::GiveUp::MaxAttempts,
                    };
                    span.record("outcome", "failed");
                    tracing::warn!(
                        path = %request.path,
                        items = request.items,
                        attempts = attempt,
                        %reason,
                        last = %outcome.failure(),
                        "rokt request failed"
                    );
                    return Err(Error::Failed {
                        attempts: attempt,
                        reason,
                        last: outcome.failure(),
                        cause,
                    });
                }
            }
        }
    }

    /// One attempt: the status, `Retry-After` and the answer, its body not read yet.
    async fn attempt(&self, request: &Request) -> Attempt {
        let inner = &self.inner;
        inner.pause.wait().await;
        let mut headers = HeaderMap::with_capacity(4);
        for (name, value) in &request.headers {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            if name == reqwest::header::USER_AGENT {
                continue;
            }
            if let Ok(mut value) = HeaderValue::from_str(value) {
                if name == reqwest::header::AUTHORIZATION {
                    value.set_sensitive(true);
                }
                headers.insert(name, value);
            }
        }
        // The client's credentials go only to its own endpoint's origin.
        let own = url::Url::parse(&request.url).is_ok_and(|u| self.is_own_origin(&u));
        if own && !headers.contains_key(reqwest::header::AUTHORIZATION) {
            if let Ok(mut v) = HeaderValue::from_str(&inner.credentials.authorization()) {
                v.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, v);
            }
        }
        headers.insert(reqwest::header::USER_AGENT, inner.user_agent.clone());
        let response = inner
            .http
            .post(&request.url)
            .headers(headers)
            .timeout(inner.request_timeout)
            .body(request.body.clone())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, inner.clock.now()));
        Ok((status, retry_after, response))
    }
}

/// Reads an answer's body for its `errors`, calling `found` for each (up to `max` of them),
/// within the request's timeout and [`MAX_ANSWER_BYTES`]. Returns whether the body was read
/// whole; a body that breaks is only logged: the status has decided already.
async fn read_errors(
    mut response: reqwest::Response,
    max: usize,
    mut found: impl FnMut(response::ApiError),
) -> bool {
    let mut scanner = response::ErrorScanner::default();
    let mut read = 0usize;
    let mut seen = 0usize;
    loop {
        if scanner.is_done() || seen >= max {
            return true;
        }
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read = read.saturating_add(chunk.len());
                let room = MAX_ANSWER_BYTES.saturating_sub(read - chunk.len());
                scanner.feed(&chunk[..chunk.len().min(room)], &mut |e| {
                    if seen < max {
                        seen += 1;
                        found(e);
                    }
                });
                if read > MAX_ANSWER_BYTES {
                    tracing::debug!(
                        limit = MAX_ANSWER_BYTES,
                        "rokt answer too long, not read further"
                    );
                    return scanner.is_done();
                }
            }
            // The end of the body: whole unless it stopped inside its JSON.
            Ok(None) => return scanner.is_done() || !scanner.is_started(),
            Err(e) => {
                let e = transport_error(e);
                tracing::debug!(failure = %e.kind(), "rokt answer body could not be read");
                return false;
            }
        }
    }
}

/// A transport error from reqwest's, kept as the source (URL removed), with its kind.
fn transport_error(e: reqwest::Error) -> TransportError {
    let kind = transport_kind(&e);
    TransportError::new(kind, Some(Arc::new(e.without_url())))
}

fn transport_kind(e: &reqwest::Error) -> TransportErrorKind {
    use std::error::Error as _;
    if e.is_timeout() {
        return TransportErrorKind::Timeout;
    }
    if e.is_connect() {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::TimedOut => return TransportErrorKind::Timeout,
                    std::io::ErrorKind::InvalidData => return TransportErrorKind::Tls,
                    _ => {}
                }
            }
            let text = s.to_string().to_ascii_lowercase();
            if text.contains("dns error") || text.contains("lookup address") {
                return TransportErrorKind::Dns;
            }
            if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
                return TransportErrorKind::Tls;
            }
            source = s.source();
        }
        return TransportErrorKind::Connect;
    }
    if e.is_body() || e.is_decode() {
        TransportErrorKind::Body
    } else {
        TransportErrorKind::Connection
    }
}
