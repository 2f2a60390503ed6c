//! A forwarding service: Segment posts events to it (as Segment's webhook destination does),
//! it routes each one through a subscription configuration and forwards the matching ones to
//! Rokt in the background, through one [`Dispatcher`] serving the whole destination
//! ([`DispatcherBuilder::destination`](rokt_capi::client::DispatcherBuilder::destination)).
//!
//! ```text
//! cargo run --example forwarder -- [--config FILE] [--listen ADDR] [--rate N]
//!     [--shutdown-after SECONDS] [--shutdown-endpoint] [--write-key KEY]...
//!     [--queue-capacity N] [--spool DIR | --database-url URL [--lease SECONDS]]
//! ```
//!
//! With `--spool DIR` (feature `sqlite`: the spool file `DIR/spool.db`) or `--database-url URL`
//! (feature `postgres`: one outbox table, shared by every instance), every event is durable
//! before it is answered (each enqueue returns once it is stored), and events still pending
//! when the forwarder stops are sent by the next start; a full spool is answered `503` (send
//! again later). With `--database-url`, `--lease SECONDS` (default 60) is how long an instance
//! holds the events it took: when it dies, another instance (or the next start) sends them once
//! that has passed.
//!
//! - `POST /segment` takes one event object, a batch `{"batch": [...]}` or a JSON array, and
//!   answers at once: `202` with counts per event (`accepted`, `rejected`, the error type of a
//!   rejection); `400` when nothing in the body could be accepted and something was rejected
//!   (so Segment does not retry bad input); never any personal data.
//! - Segment's tracking API, so Segment's own SDKs (and hand-made calls) can send here with only
//!   their host changed: `POST /v1/batch`, `/v1/import`, `/v1/{track,identify,page,screen,group,
//!   alias}` and the browser's `/v1/b`, `/v1/{t,i,p,s,g,a}` (any body type, e.g. `text/plain`),
//!   also under a path prefix (`/any/prefix/v1/batch`). Bodies may be gzip
//!   (`Content-Encoding: gzip`, capped when decompressed; other encodings get `415`). Each
//!   message is completed as Segment's servers do ([`rokt_capi::segment::intake`]). Answers:
//!   `200` with counts even when some events are invalid (they are counted and logged, by
//!   position and rule only); `400` `{"code","message"}` for a body that is not JSON or is too
//!   large; `401` for a write key that is not configured; `503` with `Retry-After` when a
//!   dispatcher queue is full or the service is stopping, so the SDKs send again.
//! - Every event passes through an rtid memory ([`rokt_capi::rtid::memory`], in memory and
//!   bounded) before it is routed: a visitor's click id seen on a landing page is added to their
//!   later events that carry none, as Rokt's browser plugin does in the browser.
//! - `GET /stats` gives the dispatcher's counters ([`Dispatcher::stats`]) and each
//!   subscription's outcomes as JSON, and `GET /health` answers `200`.
//! - Ctrl-C or SIGTERM (or `--shutdown-after`, or `POST /shutdown` when started with
//!   `--shutdown-endpoint`) stops taking requests, lets the ones in progress finish, sends
//!   everything queued, and prints a final report on stdout.
//!
//! The first line on stdout is `listening on http://ADDR` (with `--listen 127.0.0.1:0` the
//! port is chosen by the system). The last is the report:
//! `report: events=E accepted=A ignored=I delivered=D rejected=R failed=F`.
//!
//! With `ROKT_API_KEY` and `ROKT_API_SECRET` set it forwards to Rokt (`ROKT_ENDPOINT` may
//! name another base URL, e.g. an mParticle pod). Without them it starts a receiver on
//! 127.0.0.1 standing in for Rokt, so it runs offline. When `FORWARDER_TOKEN` is set, every
//! request must carry `Authorization: Bearer <token>` (Segment's webhook destination can send
//! headers) or a write key. Write keys (`SEGMENT_WRITE_KEYS`, comma-separated, or
//! `--write-key KEY`) are taken as Segment's SDKs send them: `Authorization: Basic` with the
//! key as user and an empty password, or `writeKey` in the body; the token is also taken as a
//! write key. With neither set, every request is taken. Logs go to stderr (`RUST_LOG`,
//! default `info`).

#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/tracking_api.rs"]
mod tracking_api;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rokt_capi::client::{Client, Dispatcher, EnqueueError, Enqueued, Outcome, Refusal, Verdict};
use rokt_capi::segment::intake::{Call, Intake, Message, MessageError, WriteKey};
use rokt_capi::subscription::Destination;
use rokt_capi::{Credentials, Json};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracking_api::{Auth, Keys};

const USAGE: &str = "usage: forwarder [--config FILE] [--listen ADDR] [--rate BATCHES_PER_SECOND] \
                     [--shutdown-after SECONDS] [--shutdown-endpoint] [--write-key KEY]... \
                     [--queue-capacity N] [--spool DIR | --database-url URL [--lease SECONDS]]";

/// The largest request body taken (Segment's batches are at most 500 KB).
const MAX_BODY: usize = 4 << 20;

/// The dispatcher's queue, in batches (one per event and subscription).
const QUEUE_CAPACITY: usize = 10_000;

/// How long a tracking API request waits for room in a queue before it answers `503`.
const ENQUEUE_WAIT: Duration = Duration::from_secs(2);

/// What a `503` asks the SDKs to wait, in seconds.
const RETRY_AFTER_SECONDS: u64 = 2;

/// How long shutdown waits for open connections before it stops anyway.
const GRACE: Duration = Duration::from_secs(10);

struct Args {
    config: String,
    listen: SocketAddr,
    rate: Option<f64>,
    shutdown_after: Option<Duration>,
    shutdown_endpoint: bool,
    write_keys: Vec<String>,
    queue_capacity: usize,
    spool: Option<std::path::PathBuf>,
    database_url: Option<String>,
    lease: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: "examples/data/subscriptions.json".into(),
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        rate: None,
        shutdown_after: None,
        shutdown_endpoint: false,
        write_keys: Vec::new(),
        queue_capacity: QUEUE_CAPACITY,
        spool: None,
        database_url: None,
        lease: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--config" => args.config = value("--config")?,
            "--listen" => {
                let v = value("--listen")?;
                args.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: `{v}` is not ADDR:PORT"))?;
            }
            "--rate" => {
                let v = value("--rate")?;
                let rate = v.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0);
                args.rate = Some(rate.ok_or("--rate takes a positive number")?);
            }
            "--shutdown-after" => {
                let v = value("--shutdown-after")?;
                let secs = v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
                args.shutdown_after = Some(Duration::from_secs_f64(
                    secs.ok_or("--shutdown-after takes seconds")?,
                ));
            }
            "--shutdown-endpoint" => args.shutdown_endpoint = true,
            "--write-key" => args.write_keys.push(value("--write-key")?),
            "--spool" => args.spool = Some(value("--spool")?.into()),
            "--database-url" => args.database_url = Some(value("--database-url")?),
            "--lease" => {
                let v = value("--lease")?;
                let secs = v.parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0);
                args.lease = Some(Duration::from_secs_f64(
                    secs.ok_or("--lease takes a positive number of seconds")?,
                ));
            }
            "--queue-capacity" => {
                let v = value("--queue-capacity")?;
                let n = v.parse::<usize>().ok().filter(|n| *n > 0);
                args.queue_capacity = n.ok_or("--queue-capacity takes a positive number")?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
}

/// What became of one subscription's events, from the outcomes.
#[derive(Default, Clone, Copy, Serialize)]
struct Tally {
    accepted: u64,
    delivered: u64,
    rejected: u64,
    failed: u64,
}

/// Each subscription's tally, by name.
type Tallies = Arc<Mutex<BTreeMap<String, Tally>>>;

/// What the HTTP handlers share.
struct App {
    /// Its triggers say how many routes a request needs before it is queued.
    destination: Destination,
    /// Maps (through the rtid memory), queues and sends every subscription's batches.
    dispatcher: Dispatcher,
    tallies: Tallies,
    /// Who may send to the tracking API routes.
    keys: Keys,
    queue_capacity: usize,
    /// The backlog is on disk: only the spool's bound refuses events.
    spooled: bool,
    shutdown_endpoint: bool,
    stop: watch::Sender<bool>,
    events: AtomicU64,
    accepted: AtomicU64,
    ignored: AtomicU64,
    /// Refused as bad input (by every subscription that matched, or before routing).
    refused: AtomicU64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let text =
        std::fs::read_to_string(&args.config).map_err(|e| format!("{}: {e}", args.config))?;
    let destination = Destination::from_json(&text).map_err(|e| format!("{}: {e}", args.config))?;

    // Rokt, or a local stand-in.
    let key = std::env::var("ROKT_API_KEY").unwrap_or_default();
    let secret = std::env::var("ROKT_API_SECRET").unwrap_or_default();
    let (credentials, endpoint, local) = if !key.is_empty() && !secret.is_empty() {
        let endpoint = std::env::var("ROKT_ENDPOINT").ok();
        (Credentials::new(key, secret), endpoint, None)
    } else {
        let receiver = receiver::Receiver::start().await?;
        let url = receiver.url().to_owned();
        (receiver.credentials(), Some(url), Some(receiver))
    };

    // One client and one dispatcher for the whole destination: each subscription maps with its
    // own pipeline, the client sends.
    let mut names = std::collections::HashSet::new();
    let tallies: Tallies = Arc::default();
    for (name, _trigger, _pipeline) in destination.pipelines() {
        if !names.insert(name) {
            return Err(format!(
                "{}: two subscriptions are named `{name}`",
                args.config
            ));
        }
        tallies
            .lock()
            .unwrap()
            .insert(name.to_owned(), Tally::default());
    }
    let mut client = Client::builder().credentials(credentials.clone());
    if let Some(url) = &endpoint {
        client = client.endpoint_url(url);
    }
    let client = client.build().map_err(|e| e.to_string())?;
    // What the Rokt browser plugin would remember: a visitor's click id (rtid), added to their
    // later events that carry none.
    let rtid_memory = rokt_capi::rtid::memory::RtidMemory::builder()
        .build()
        .map_err(|e| format!("rtid memory: {e}"))?;
    let mut dispatcher = Dispatcher::builder(client)
        .destination(destination.clone())
        .rtid_memory(Arc::new(rtid_memory))
        .concurrency(4)
        .queue_capacity(args.queue_capacity.max(destination.len()))
        .on_outcome({
            let tallies = tallies.clone();
            move |outcome| record_outcome(&tallies, &outcome)
        });
    if let Some(rate) = args.rate {
        // Rokt's limit is per account: one dispatcher keeps it for every subscription.
        dispatcher = dispatcher.rate_limit(rate);
    }
    let spooled = args.spool.is_some() || args.database_url.is_some();
    if let Some(spool) = open_spool(&args).await? {
        dispatcher = dispatcher.spool(spool);
    }
    let dispatcher = dispatcher.build().map_err(|e| e.to_string())?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    match &local {
        Some(r) => println!(
            "ROKT_API_KEY / ROKT_API_SECRET are not set: forwarding to a local receiver at {}",
            r.url()
        ),
        None => println!("forwarding to Rokt"),
    }
    for name in tallies.lock().unwrap().keys() {
        println!("subscription \"{name}\"");
    }

    let (stop, stopped) = watch::channel(false);
    let token = std::env::var("FORWARDER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let keys = Keys {
        write_keys: write_keys(&args.write_keys),
        token: token.clone().map(WriteKey::new),
    };
    let app = Arc::new(App {
        destination,
        dispatcher,
        tallies,
        spooled,
        keys,
        queue_capacity: args.queue_capacity,
        shutdown_endpoint: args.shutdown_endpoint,
        stop,
        events: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        ignored: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/segment", post(segment))
        .route("/shutdown", post(shutdown))
        .route("/stats", get(stats))
        .route("/health", get(|| async { "ok" }))
        .fallback(tracking)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app.clone());

    tokio::spawn(stop_on_signal(app.stop.clone(), args.shutdown_after));
    let mut signalled = stopped.clone();
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = signalled.wait_for(|s| *s).await;
    });
    let mut grace = stopped;
    tokio::select! {
        result = serve => result.map_err(|e| e.to_string())?,
        () = async {
            let _ = grace.wait_for(|s| *s).await;
            tokio::time::sleep(GRACE).await;
        } => tracing::warn!("connections still open after {GRACE:?}; stopping anyway"),
    }

    // No request is being handled any more: send what is queued, then report.
    tracing::info!("shutting down: sending what is queued");
    app.dispatcher.shutdown().await;
    for (name, t) in app.tallies.lock().unwrap().iter() {
        println!(
            "subscription \"{name}\": accepted={} delivered={} rejected={} failed={}",
            t.accepted, t.delivered, t.rejected, t.failed
        );
    }
    let s = app.dispatcher.stats();
    println!("requests={} retries={}", s.requests, s.retries);
    let (delivered, failed) = (s.delivered, s.failed);
    let rejected = app.refused.load(Ordering::Relaxed) + s.rejected;
    if let Some(r) = &local {
        println!("{}", r.report());
    }
    println!(
        "report: events={} accepted={} ignored={} delivered={delivered} rejected={rejected} failed={failed}",
        app.events.load(Ordering::Relaxed),
        app.accepted.load(Ordering::Relaxed),
        app.ignored.load(Ordering::Relaxed),
    );
    Ok(())
}

/// Sets `stop` on Ctrl-C, SIGTERM or after `after`.
async fn stop_on_signal(stop: watch::Sender<bool>, after: Option<Duration>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let timer = async {
        match after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted"),
        () = terminate => tracing::info!("terminated"),
        () = timer => tracing::info!("--shutdown-after elapsed"),
        () = stop.closed() => return,
    }
    let _ = stop.send(true);
}

/// Counts the outcome for its subscription and logs it when it was not delivered.
fn record_outcome(tallies: &Tallies, outcome: &Outcome) {
    let name = outcome.subscription.as_deref().unwrap_or_default();
    if let Some(t) = tallies.lock().unwrap().get_mut(name) {
        match outcome.verdict {
            Verdict::Delivered(_) => t.delivered += 1,
            Verdict::Rejected(_) => t.rejected += 1,
            _ => t.failed += 1,
        }
    }
    if let Some(e) = outcome.verdict.error() {
        // Error messages name fields and rules, never values.
        tracing::warn!(
            subscription = name,
            message_id = outcome.message_id.as_deref(),
            verdict = outcome.label(),
            error_type = e.error_type(),
            error = %e,
            "event not delivered"
        );
    }
}

/// What became of one event of a request.
#[derive(Serialize)]
struct EventSummary {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    /// Subscriptions that queued it.
    accepted: usize,
    /// Subscriptions that refused it (bad input for their mapping).
    rejected: usize,
    /// It matches no subscription.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignored: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ErrorSummary>,
}

#[derive(Serialize)]
struct ErrorSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<String>,
    error_type: &'static str,
    /// Names the field and the rule, never the value.
    error: String,
}

async fn segment(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if !app.authorized(&headers) {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
    }
    // The crate's parser keeps each event as sent: key order, repeated keys, every digit.
    let Some(value) = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| Json::parse(text).ok())
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "the body is not JSON"}),
        );
    };
    // `{"batch": [...]}`: the events are taken out of it, not copied (the last `batch` key
    // counts, as on lookup).
    let batch = matches!(value.get("batch"), Some(Json::Array(_)));
    let events = match value {
        Json::Array(events) => events,
        Json::Object(members) if batch => members
            .into_iter()
            .rev()
            .find_map(|(k, v)| match v {
                Json::Array(events) if k == "batch" => Some(events),
                _ => None,
            })
            .unwrap_or_default(),
        event @ Json::Object(_) => vec![event],
        _ => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "expected an event, {\"batch\": [...]} or an array of events"}),
            );
        }
    };

    let mut summaries = Vec::with_capacity(events.len());
    let (mut accepted, mut rejected, mut ignored) = (0, 0, 0);
    for (index, event) in events.iter().enumerate() {
        app.events.fetch_add(1, Ordering::Relaxed);
        let mut summary = EventSummary {
            index,
            message_id: message_id(event),
            accepted: 0,
            rejected: 0,
            ignored: false,
            errors: Vec::new(),
        };
        match app.dispatcher.enqueue(event).await {
            Ok(enqueued) => {
                app.count_enqueued(&enqueued);
                summary.accepted = enqueued.tickets.len();
                summary.rejected = enqueued.refused.len();
                summary.ignored = !enqueued.is_routed() && enqueued.refused.is_empty();
                summary.errors = error_summaries(&enqueued.refused);
            }
            Err(EnqueueError::Invalid(_, refusals)) => {
                app.refused.fetch_add(1, Ordering::Relaxed);
                summary.rejected = refusals.len();
                summary.errors = error_summaries(&refusals);
            }
            // Shutting down, or the spool is at its bound: ask Segment to send it again
            // later, and say which.
            Err(e) => {
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": unavailable(&e)}),
                );
            }
        }
        if summary.ignored {
            ignored += 1;
        }
        accepted += summary.accepted;
        rejected += summary.rejected;
        summaries.push(summary);
    }
    let status = if accepted == 0 && rejected > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    answer(
        status,
        json!({
            "events": summaries.len(),
            "accepted": accepted,
            "rejected": rejected,
            "ignored": ignored,
            "results": summaries,
        }),
    )
}

async fn shutdown(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !app.shutdown_endpoint {
        return answer(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    }
    if !app.authorized(&headers) {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
    }
    let _ = app.stop.send(true);
    answer(StatusCode::ACCEPTED, json!({"shutting_down": true}))
}

async fn stats(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !app.authorized(&headers) {
        return answer(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
    }
    let subscriptions: Vec<Value> = app
        .tallies
        .lock()
        .unwrap()
        .iter()
        .map(|(name, t)| json!({"subscription": name, "outcomes": t}))
        .collect();
    let s = app.dispatcher.stats();
    let dispatcher = json!({
        "enqueued": s.enqueued, "invalid": s.invalid, "delivered": s.delivered,
        "rejected": s.rejected, "failed": s.failed, "pending": s.pending(),
        "requests": s.requests, "retries": s.retries, "queue_depth": s.queue_depth,
        "in_flight": s.in_flight,
    });
    answer(
        StatusCode::OK,
        json!({
            "events": app.events.load(Ordering::Relaxed),
            "ignored": app.ignored.load(Ordering::Relaxed),
            "refused": app.refused.load(Ordering::Relaxed),
            "dispatcher": dispatcher,
            "subscriptions": subscriptions,
        }),
    )
}

impl App {
    /// Counts the routes an event took, per subscription.
    fn count_enqueued(&self, enqueued: &Enqueued) {
        self.accepted
            .fetch_add(enqueued.tickets.len() as u64, Ordering::Relaxed);
        if !enqueued.is_routed() && enqueued.refused.is_empty() {
            self.ignored.fetch_add(1, Ordering::Relaxed);
        }
        let mut tallies = self.tallies.lock().unwrap();
        for routed in &enqueued.tickets {
            let name = routed.subscription.as_deref().unwrap_or_default();
            if let Some(t) = tallies.get_mut(name) {
                t.accepted += 1;
            }
        }
    }

    /// Whether the request carries the bearer token or a write key (when either is set).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        matches!(self.keys.check_header(headers), Auth::Open | Auth::Granted)
    }
}

/// The event's Segment `messageId`, when it is a reasonable id.
fn message_id(event: &Json<'_>) -> Option<String> {
    event
        .get("messageId")
        .and_then(Json::as_str)
        .filter(|id| id.len() <= 200)
        .map(str::to_owned)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The write keys from `SEGMENT_WRITE_KEYS` (comma-separated) and `--write-key`.
fn write_keys(from_args: &[String]) -> Vec<WriteKey> {
    let from_env = std::env::var("SEGMENT_WRITE_KEYS").unwrap_or_default();
    from_env
        .split(',')
        .map(str::trim)
        .chain(from_args.iter().map(|k| k.trim()))
        .filter(|k| !k.is_empty())
        .map(WriteKey::new)
        .collect()
}

/// Segment's tracking API (`/v1/batch`, `/v1/track`, … at the root or under a prefix): every
/// path the other routes do not take ends here.
async fn tracking(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(call) = Call::from_path(uri.path()) else {
        return tracking_api::refuse(StatusCode::NOT_FOUND, "not_found", "no such route");
    };
    // Browsers call from any page (analytics.js sends `text/plain`, so usually without a
    // preflight); the answer must allow them to read it.
    if method == Method::OPTIONS {
        return tracking_api::with_cors(StatusCode::NO_CONTENT.into_response());
    }
    let response = match body {
        Ok(body) => tracking_call(&app, call, &method, &headers, &body).await,
        Err(rejection) => tracking_api::unreadable_body(rejection.status()),
    };
    tracking_api::with_cors(response)
}

/// One tracking API call: authenticate, read, unpack, route, queue, answer.
async fn tracking_call(
    app: &App,
    call: Call,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if method != Method::POST {
        return tracking_api::refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the tracking API takes POST",
        );
    }
    let auth = app.keys.check_header(headers);
    if auth == Auth::Denied {
        return tracking_api::unauthorized();
    }
    let body = match tracking_api::decode_body(headers, body) {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let unpacked = match Intake::new().unpack(call, &body, chrono::Utc::now()) {
        Ok(unpacked) => unpacked,
        Err(e) => {
            tracing::info!(code = e.code(), error = %e, "tracking API request refused");
            return tracking_api::bad_request(&e);
        }
    };
    if auth == Auth::Absent && !app.keys.check_body(unpacked.write_key.as_ref()) {
        return tracking_api::unauthorized();
    }
    let (events, invalid) = unpacked.split();
    log_invalid(&invalid);
    if app.queue_too_full_for(&events) {
        tracing::warn!("queue full: asking the sender to retry");
        return tracking_api::busy(RETRY_AFTER_SECONDS, "a queue is full; send again later");
    }
    let counts = match app.enqueue_messages(&events).await {
        Ok(counts) => counts,
        Err(why) => return tracking_api::busy(RETRY_AFTER_SECONDS, why),
    };
    let total = (events.len() + invalid.len()) as u64;
    app.events.fetch_add(total, Ordering::Relaxed);
    app.refused
        .fetch_add(invalid.len() as u64 + counts.invalid, Ordering::Relaxed);
    tracking_api::json_response(
        StatusCode::OK,
        &json!({
            "success": true,
            "events": total,
            "accepted": counts.accepted,
            "ignored": counts.ignored,
            "rejected": counts.rejected,
            "invalid": invalid.len(),
        }),
    )
}

/// Logs each refused message by position, code and rule (never its content).
fn log_invalid(invalid: &[MessageError]) {
    for e in invalid {
        tracing::warn!(index = e.index(), code = e.code(), error = %e, "invalid event");
    }
}

/// What became of the events of one request.
#[derive(Default)]
struct Counts {
    /// Routes queued.
    accepted: u64,
    /// Events no subscription takes.
    ignored: u64,
    /// Routes that refused their event.
    rejected: u64,
    /// Events every matching route refused.
    invalid: u64,
}

impl App {
    /// Whether the queue has no room for the routes these events will take (the triggers
    /// tell, before anything is mapped), so that a request is taken whole or not at all. A
    /// request larger than the whole queue waits for an empty queue, then is let through (it
    /// is queued as the dispatcher makes room), so it is never refused for good. A spool keeps
    /// its backlog on disk: only its bound refuses.
    fn queue_too_full_for(&self, events: &[Message]) -> bool {
        if self.spooled {
            return false;
        }
        let capacity = self.queue_capacity as u64;
        let needed: u64 = events
            .iter()
            .map(|m| self.destination.matching(m).len() as u64)
            .sum();
        let depth = self.dispatcher.stats().queue_depth;
        needed > 0 && depth > 0 && depth + needed.min(capacity) > capacity
    }

    /// Queues every event, waiting at most [`ENQUEUE_WAIT`] for room each time. On a timeout,
    /// a full spool or shutdown the caller answers `503`; what was queued already is sent,
    /// and Rokt de-duplicates the events the sender sends again by their message id.
    async fn enqueue_messages(&self, events: &[Message]) -> Result<Counts, &'static str> {
        let mut counts = Counts::default();
        for m in events {
            match tokio::time::timeout(ENQUEUE_WAIT, self.dispatcher.enqueue(m)).await {
                Ok(Ok(enqueued)) => {
                    self.count_enqueued(&enqueued);
                    counts.accepted += enqueued.tickets.len() as u64;
                    counts.rejected += enqueued.refused.len() as u64;
                    if !enqueued.is_routed() && enqueued.refused.is_empty() {
                        counts.ignored += 1;
                    }
                    log_refusals(m.message_id(), &enqueued.refused);
                }
                Ok(Err(EnqueueError::Invalid(_, refusals))) => {
                    counts.invalid += 1;
                    counts.rejected += refusals.len() as u64;
                    log_refusals(m.message_id(), &refusals);
                }
                Ok(Err(e)) => return Err(unavailable(&e)),
                Err(_) => return Err("a queue is full; send again later"),
            }
        }
        Ok(counts)
    }
}

/// Logs the routes that refused an event, by subscription, code and rule (never its content).
fn log_refusals(message_id: &str, refusals: &[Refusal]) {
    for r in refusals {
        tracing::warn!(
            subscription = r.subscription.as_deref(),
            message_id,
            error_type = r.error.error_type(),
            error = %r.error,
            "event rejected by the mapping"
        );
    }
}

/// The refusals as the `/segment` answer lists them.
fn error_summaries(refusals: &[Refusal]) -> Vec<ErrorSummary> {
    refusals
        .iter()
        .map(|r| ErrorSummary {
            subscription: r.subscription.as_deref().map(str::to_owned),
            error_type: r.error.error_type(),
            error: r.error.to_string(),
        })
        .collect()
}

/// Why the dispatcher did not take an event, as a 503 answer says it.
fn unavailable<E>(e: &EnqueueError<E>) -> &'static str {
    match e {
        EnqueueError::Full(_) => "the spool is full; send again later",
        EnqueueError::Spool(..) => "the spool cannot store events; send again later",
        _ => "shutting down",
    }
}

/// The spool: the file `DIR/spool.db` (`--spool DIR`), or the Postgres outbox every instance
/// shares (`--database-url URL`).
async fn open_spool(args: &Args) -> Result<Option<Arc<dyn rokt_capi::spool::Spool>>, String> {
    if args.spool.is_some() && args.database_url.is_some() {
        return Err("--spool and --database-url exclude each other".into());
    }
    if args.lease.is_some() && args.database_url.is_none() {
        return Err("--lease goes with --database-url".into());
    }
    if let Some(url) = &args.database_url {
        #[cfg(feature = "postgres")]
        {
            let mut builder = rokt_capi::spool::PostgresSpool::builder(url);
            if let Some(lease) = args.lease {
                builder = builder.lease(lease);
            }
            let spool = builder
                .open()
                .await
                .map_err(|e| format!("--database-url: {e}"))?;
            return Ok(Some(Arc::new(spool)));
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            return Err("--database-url needs the `postgres` feature".into());
        }
    }
    let Some(dir) = &args.spool else {
        return Ok(None);
    };
    #[cfg(feature = "sqlite")]
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("--spool: {e}"))?;
        let spool = rokt_capi::spool::SqliteSpool::open(dir.join("spool.db"))
            .map_err(|e| format!("--spool: {e}"))?;
        Ok(Some(Arc::new(spool)))
    }
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = dir;
        Err("--spool needs the `sqlite` feature".into())
    }
}
