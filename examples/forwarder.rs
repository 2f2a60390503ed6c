//! A forwarding service: Segment posts events to it (as Segment's webhook destination does),
//! it routes each one through a subscription configuration and forwards the matching ones to
//! Rokt in the background, one [`Dispatcher`] per subscription.
//!
//! ```text
//! cargo run --example forwarder -- [--config FILE] [--listen ADDR] [--rate N]
//!     [--shutdown-after SECONDS] [--shutdown-endpoint] [--write-key KEY]...
//!     [--queue-capacity N] [--spool DIR | --database-url URL]
//! ```
//!
//! With `--spool DIR` (feature `sqlite`: one spool file per subscription in DIR) or
//! `--database-url URL` (feature `postgres`: one outbox table), every event is durable before
//! it is answered (each enqueue returns once it is stored), and events still pending when the
//! forwarder stops are sent by the next start.
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
//! - `GET /stats` gives each subscription's counters ([`Dispatcher::stats`]) as JSON, and
//!   `GET /health` answers `200`.
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
use rokt_capi::Credentials;
use rokt_capi::client::{Client, Dispatcher, EnqueueError, Outcome};
use rokt_capi::rokt::Batch;
use rokt_capi::segment::intake::{Call, Intake, Message, MessageError, WriteKey};
use rokt_capi::subscription::{Destination, Routed};
use serde::Serialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tracking_api::{Auth, Keys};

const USAGE: &str = "usage: forwarder [--config FILE] [--listen ADDR] [--rate BATCHES_PER_SECOND] \
                     [--shutdown-after SECONDS] [--shutdown-endpoint] [--write-key KEY]... \
                     [--queue-capacity N] [--spool DIR | --database-url URL]";

/// The largest request body taken (Segment's batches are at most 500 KB).
const MAX_BODY: usize = 4 << 20;

/// Each dispatcher's queue, in batches (one per event and subscription).
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

/// One subscription's sender.
struct Route {
    name: String,
    dispatcher: Dispatcher,
}

/// What the HTTP handlers share.
struct App {
    destination: Destination,
    /// What the Rokt browser plugin would remember: a visitor's click id (rtid), added to their
    /// later events that carry none.
    rtid_memory: rokt_capi::rtid::memory::RtidMemory,
    routes: Vec<Route>,
    /// Who may send to the tracking API routes.
    keys: Keys,
    queue_capacity: usize,
    shutdown_endpoint: bool,
    stop: watch::Sender<bool>,
    events: AtomicU64,
    accepted: AtomicU64,
    ignored: AtomicU64,
    /// Rejected while routing (bad input), before any dispatcher saw them.
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

    // One client and dispatcher per subscription, each mapping with its own pipeline.
    let count = destination.pipelines().count().max(1);
    let shared_spool = open_shared_spool(&args).await?;
    let mut routes: Vec<Route> = Vec::new();
    for (name, _trigger, pipeline) in destination.pipelines() {
        if routes.iter().any(|r| r.name == name) {
            return Err(format!(
                "{}: two subscriptions are named `{name}`",
                args.config
            ));
        }
        let mut client = Client::builder()
            .credentials(credentials.clone())
            .pipeline(pipeline.clone());
        if let Some(url) = &endpoint {
            client = client.endpoint_url(url);
        }
        let client = client
            .build()
            .map_err(|e| format!("subscription `{name}`: {e}"))?;
        let subscription = name.to_owned();
        let mut dispatcher = Dispatcher::builder(client)
            .concurrency(2)
            .queue_capacity(args.queue_capacity)
            .on_outcome(move |outcome| log_outcome(&subscription, &outcome));
        if let Some(rate) = args.rate {
            // Rokt's limit is per account: share it between the subscriptions.
            #[allow(clippy::cast_precision_loss)]
            let share = rate / count as f64;
            dispatcher = dispatcher.rate_limit(share);
        }
        if let Some(spool) = subscription_spool(&args, name, shared_spool.as_ref())? {
            dispatcher = dispatcher.spool(spool);
        }
        let dispatcher = dispatcher.build().map_err(|e| e.to_string())?;
        routes.push(Route {
            name: name.to_owned(),
            dispatcher,
        });
    }

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
    for r in &routes {
        println!("subscription \"{}\"", r.name);
    }

    let (stop, stopped) = watch::channel(false);
    let token = std::env::var("FORWARDER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let keys = Keys {
        write_keys: write_keys(&args.write_keys),
        token: token.clone().map(WriteKey::new),
    };
    let rtid_memory = rokt_capi::rtid::memory::RtidMemory::builder()
        .build()
        .map_err(|e| format!("rtid memory: {e}"))?;
    let app = Arc::new(App {
        destination,
        rtid_memory,
        routes,
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
    let (mut delivered, mut rejected, mut failed) = (0, app.refused.load(Ordering::Relaxed), 0);
    for r in &app.routes {
        r.dispatcher.shutdown().await;
        let s = r.dispatcher.stats();
        println!(
            "subscription \"{}\": accepted={} delivered={} rejected={} failed={} requests={} retries={}",
            r.name, s.enqueued, s.delivered, s.rejected, s.failed, s.requests, s.retries
        );
        delivered += s.delivered;
        rejected += s.rejected;
        failed += s.failed;
    }
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

fn log_outcome(subscription: &str, outcome: &Outcome) {
    if let Some(e) = outcome.verdict.error() {
        // Error messages name fields and rules, never values.
        tracing::warn!(
            subscription,
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
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "the body is not JSON"}),
        );
    };
    let events = match value {
        Value::Array(events) => events,
        Value::Object(mut object) if object.get("batch").is_some_and(Value::is_array) => {
            match object.remove("batch") {
                Some(Value::Array(events)) => events,
                _ => Vec::new(),
            }
        }
        event @ Value::Object(_) => vec![event],
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
        let routed = app
            .rtid_memory
            .with_observed(event, |doc| Ok(app.destination.route(doc)))
            .unwrap_or_else(|e| vec![Routed::rejected(e)]);
        if routed.is_empty() {
            summary.ignored = true;
            ignored += 1;
            app.ignored.fetch_add(1, Ordering::Relaxed);
        }
        for r in routed {
            let sent = match r.batch {
                Ok(batch) => match app.route(r.subscription) {
                    Some(dispatcher) => dispatcher.enqueue_batch(batch).await.map(|_| ()),
                    None => Err(EnqueueError::Closed(batch)),
                },
                Err(e) => {
                    summary.rejected += 1;
                    summary.errors.push(ErrorSummary {
                        subscription: Some(r.subscription)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                        error_type: e.error_type(),
                        error: e.to_string(),
                    });
                    app.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            match sent {
                Ok(()) => {
                    summary.accepted += 1;
                    app.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // Shutting down, or the spool is at its bound: ask Segment to send it
                    // again later, and say which.
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": unavailable(&e)}),
                    );
                }
            }
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
        .routes
        .iter()
        .map(|r| {
            let s = r.dispatcher.stats();
            json!({
                "subscription": r.name,
                "enqueued": s.enqueued, "delivered": s.delivered, "rejected": s.rejected,
                "failed": s.failed, "pending": s.pending(), "requests": s.requests,
                "retries": s.retries, "queue_depth": s.queue_depth, "in_flight": s.in_flight,
            })
        })
        .collect();
    answer(
        StatusCode::OK,
        json!({
            "events": app.events.load(Ordering::Relaxed),
            "ignored": app.ignored.load(Ordering::Relaxed),
            "refused": app.refused.load(Ordering::Relaxed),
            "subscriptions": subscriptions,
        }),
    )
}

impl App {
    fn route(&self, subscription: &str) -> Option<&Dispatcher> {
        self.routes
            .iter()
            .find(|r| r.name == subscription)
            .map(|r| &r.dispatcher)
    }

    /// Whether the request carries the bearer token (when one is set).
    /// Whether the request carries the bearer token or a write key (when either is set).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        matches!(self.keys.check_header(headers), Auth::Open | Auth::Granted)
    }
}

/// The event's Segment `messageId`, when it is a reasonable id.
fn message_id(event: &Value) -> Option<String> {
    event
        .get("messageId")
        .and_then(Value::as_str)
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
    let routed = app.route_messages(&events);
    if let Some(full) = app.first_full_queue(&routed) {
        tracing::warn!(
            subscription = full,
            "queue full: asking the sender to retry"
        );
        return tracking_api::busy(RETRY_AFTER_SECONDS, "a queue is full; send again later");
    }
    let counts = match app.enqueue_routed(routed).await {
        Ok(counts) => counts,
        Err(why) => return tracking_api::busy(RETRY_AFTER_SECONDS, why),
    };
    let total = (events.len() + invalid.len()) as u64;
    app.events.fetch_add(total, Ordering::Relaxed);
    app.refused
        .fetch_add(invalid.len() as u64 + counts.rejected, Ordering::Relaxed);
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

/// Where one event of a tracking API request goes: each matching subscription's batch.
struct RoutedMessage {
    message_id: String,
    batches: Vec<(String, Result<Batch, rokt_capi::Error>)>,
}

/// What became of the events of one request.
#[derive(Default)]
struct Counts {
    accepted: u64,
    ignored: u64,
    rejected: u64,
}

impl App {
    /// Maps every event for every subscription it matches (pure: nothing is queued yet).
    fn route_messages(&self, events: &[Message]) -> Vec<RoutedMessage> {
        events
            .iter()
            .map(|m| RoutedMessage {
                message_id: m.message_id().to_owned(),
                batches: self
                    .rtid_memory
                    .with_observed(m, |doc| Ok(self.destination.route(doc)))
                    .unwrap_or_else(|e| vec![Routed::rejected(e)])
                    .into_iter()
                    .map(|r| (r.subscription.to_owned(), r.batch))
                    .collect(),
            })
            .collect()
    }

    /// The first subscription whose queue has no room for its share of `routed`. A share
    /// larger than the whole queue waits for an empty queue, then is let through (it is queued
    /// as the dispatcher makes room), so a large request is never refused for good.
    fn first_full_queue(&self, routed: &[RoutedMessage]) -> Option<&str> {
        let capacity = self.queue_capacity as u64;
        self.routes.iter().map(|r| r.name.as_str()).find(|name| {
            let needed = routed
                .iter()
                .flat_map(|m| &m.batches)
                .filter(|(s, b)| s == name && b.is_ok())
                .count() as u64;
            let depth = self.route(name).map_or(0, |d| d.stats().queue_depth);
            needed > 0 && depth > 0 && depth + needed.min(capacity) > capacity
        })
    }

    /// Queues every batch, waiting at most [`ENQUEUE_WAIT`] for room each time. On a timeout
    /// or shutdown the caller answers `503`; what was queued already is sent, and Rokt
    /// de-duplicates the events the sender sends again by their message id.
    async fn enqueue_routed(&self, routed: Vec<RoutedMessage>) -> Result<Counts, &'static str> {
        let mut counts = Counts::default();
        for m in routed {
            if m.batches.is_empty() {
                counts.ignored += 1;
                self.ignored.fetch_add(1, Ordering::Relaxed);
            }
            for (subscription, batch) in m.batches {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(e) => {
                        counts.rejected += 1;
                        tracing::warn!(
                            subscription,
                            message_id = m.message_id,
                            error_type = e.error_type(),
                            error = %e,
                            "event rejected by the mapping"
                        );
                        continue;
                    }
                };
                let Some(dispatcher) = self.route(&subscription) else {
                    return Err("shutting down");
                };
                match tokio::time::timeout(ENQUEUE_WAIT, dispatcher.enqueue_batch(batch)).await {
                    Ok(Ok(_)) => {
                        counts.accepted += 1;
                        self.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => return Err(unavailable(&e)),
                    Err(_) => return Err("a queue is full; send again later"),
                }
            }
        }
        Ok(counts)
    }
}

/// Why a dispatcher did not take a batch, as a 503 answer says it.
fn unavailable<E>(e: &EnqueueError<E>) -> &'static str {
    match e {
        EnqueueError::Full(_) => "the spool is full; send again later",
        EnqueueError::Spool(..) => "the spool cannot store events; send again later",
        _ => "shutting down",
    }
}

/// The Postgres outbox all subscriptions share (`--database-url`).
async fn open_shared_spool(
    args: &Args,
) -> Result<Option<Arc<dyn rokt_capi::spool::Spool>>, String> {
    if args.spool.is_some() && args.database_url.is_some() {
        return Err("--spool and --database-url exclude each other".into());
    }
    let Some(url) = &args.database_url else {
        return Ok(None);
    };
    #[cfg(feature = "postgres")]
    {
        let spool = rokt_capi::spool::PostgresSpool::open(url)
            .await
            .map_err(|e| format!("--database-url: {e}"))?;
        Ok(Some(Arc::new(spool)))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        Err("--database-url needs the `postgres` feature".into())
    }
}

/// The spool of one subscription: its own file in the `--spool` directory, or the shared one.
fn subscription_spool(
    args: &Args,
    name: &str,
    shared: Option<&Arc<dyn rokt_capi::spool::Spool>>,
) -> Result<Option<Arc<dyn rokt_capi::spool::Spool>>, String> {
    if let Some(shared) = shared {
        return Ok(Some(shared.clone()));
    }
    let Some(dir) = &args.spool else {
        return Ok(None);
    };
    #[cfg(feature = "sqlite")]
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("--spool: {e}"))?;
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let spool = rokt_capi::spool::SqliteSpool::open(dir.join(format!("{file}.db")))
            .map_err(|e| format!("--spool: subscription `{name}`: {e}"))?;
        Ok(Some(Arc::new(spool)))
    }
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = (dir, name);
        Err("--spool needs the `sqlite` feature".into())
    }
}
