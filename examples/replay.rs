//! Backfill: replays a Segment archive (NDJSON, one event per line, plain or gzip) to Rokt,
//! paced to a rate limit, and writes what could not be delivered to a dead-letter file that can
//! itself be replayed.
//!
//! ```text
//! cargo run --release --example replay -- FILE [--dead-letter FILE] [--rate N]
//!     [--preset send|sync_engage_audience] [--mapping FILE] [--trigger CONDITION]
//!     [--concurrency N] [--max-attempts N] [--quiet]
//! ```
//!
//! - FILE is NDJSON, or gzip (by a `.gz` name or the gzip magic bytes); `-` reads stdin.
//! - Each event is mapped with the preset (default `send`) and `--mapping` overrides, as the
//!   preview example does; with `--trigger`, events that do not match are skipped.
//! - `--rate N` paces sending to N batches (events) per second on average (default 270,
//!   mParticle's default account limit; `--rate 0` for no limit).
//! - Events older than 30 days go to `/bulkevents/historical`, the others to `/bulkevents`:
//!   the client routes by age.
//! - `--dead-letter FILE` receives one line per event that was rejected or failed. Bad input
//!   (refused before anything is sent) keeps its original line:
//!   `{"dead_letter":{"record":N,"verdict":"rejected","status":…,"error_type":…,"reason":…},"event":"<the original line>"}`;
//!   an event Rokt rejected or that failed after the retries keeps the batch that was sent, as
//!   its outcome carries it: `{"dead_letter":{"message_id":…,"verdict":…,…},"batch":{…}}`.
//!   The reason names fields and rules, never values. The file can be replayed as input: this
//!   example sends an `event` line's event again, and a `batch` line's batch as it is
//!   (`jq -r .event` gives the raw events back). The file is created with owner-only
//!   permissions on Unix.
//! - A progress bar on stderr shows events/s and outcomes (only when stderr is a terminal).
//! - The last line on stdout is the report:
//!   `report: records=R delivered=D rejected=J failed=F skipped=S bulk=B historical=H dead_letter=L …`
//!
//! Exit status: 0 when every record was delivered or skipped, 2 when some were not (see the
//! dead-letter file), 1 on an error (arguments, I/O).
//!
//! With `ROKT_API_KEY` and `ROKT_API_SECRET` set it sends to Rokt (`ROKT_ENDPOINT` may name
//! another base URL). Without them it sends to a receiver on 127.0.0.1 standing in for Rokt,
//! so it runs offline.

#[path = "common/receiver.rs"]
mod receiver;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rokt_capi::client::{Client, Dispatcher, EnqueueError, Outcome, RetryPolicy, Verdict};
use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::Lines;
use rokt_capi::request::RequestKind;
use rokt_capi::rokt::Batch;
use rokt_capi::trigger::Trigger;
use rokt_capi::{Credentials, Error, EventError, Json};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const USAGE: &str = "usage: replay FILE|- [--dead-letter FILE] [--rate N] [--preset send|sync_engage_audience] \
                     [--mapping FILE] [--trigger CONDITION] [--concurrency N] [--max-attempts N] [--quiet]";

struct Args {
    input: String,
    dead_letter: Option<String>,
    rate: f64,
    preset: Preset,
    mapping: Option<String>,
    trigger: Option<String>,
    concurrency: usize,
    max_attempts: Option<u32>,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        input: String::new(),
        dead_letter: None,
        rate: 270.0,
        preset: Preset::Send,
        mapping: None,
        trigger: None,
        concurrency: 4,
        max_attempts: None,
        quiet: false,
    };
    let mut input = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--dead-letter" => args.dead_letter = Some(value("--dead-letter")?),
            "--rate" => {
                let v = value("--rate")?;
                args.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or("--rate takes a number of batches per second (0: no limit)")?;
            }
            "--preset" => {
                let p = value("--preset")?;
                args.preset = Preset::from_key(&p).ok_or(format!("unknown preset `{p}`"))?;
            }
            "--mapping" => args.mapping = Some(value("--mapping")?),
            "--trigger" => args.trigger = Some(value("--trigger")?),
            "--concurrency" => {
                let v = value("--concurrency")?;
                args.concurrency = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or("--concurrency takes 1 to 64")?;
            }
            "--max-attempts" => {
                let v = value("--max-attempts")?;
                let n = v.parse().ok().filter(|n| (1..=20).contains(n));
                args.max_attempts = Some(n.ok_or("--max-attempts takes 1 to 20")?);
            }
            "--quiet" => args.quiet = true,
            "-h" | "--help" => return Err(USAGE.into()),
            f if (f == "-" || !f.starts_with("--")) && input.is_none() => input = Some(f.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    args.input = input.ok_or(USAGE)?;
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    match run().await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One input record, read on the reader thread.
struct Record {
    /// 1-based, among the non-blank lines.
    number: u64,
    /// The line, or why it cannot be an event.
    text: Result<String, Error>,
}

/// What the reader thread sends: records, then the end (with an I/O error, if any).
enum Input {
    Record(Record),
    End(Option<String>),
}

/// Counts for the progress bar and the report.
#[derive(Default)]
struct Tally {
    records: u64,
    delivered: u64,
    rejected: u64,
    failed: u64,
    skipped: u64,
    bulk: u64,
    historical: u64,
    dead_letter: u64,
}

impl Tally {
    fn progress(&self) -> String {
        format!(
            "delivered {} · rejected {} · failed {} · skipped {}",
            self.delivered, self.rejected, self.failed, self.skipped
        )
    }
}

/// The replay in progress: owns the tally and the dead-letter file. Nothing is kept per event
/// in flight: an outcome that is not delivered carries the bytes that were sent.
struct Replay {
    tally: Tally,
    dead_letter: Option<BufWriter<std::fs::File>>,
    bar: ProgressBar,
    last_draw: Instant,
}

async fn run() -> Result<ExitCode, String> {
    let args = parse_args()?;
    let started = Instant::now();

    // The mapping and the optional trigger.
    let overrides = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            // The crate's parser keeps the mapping's order (the order attributes are sent in).
            let json = Json::parse(&text).map_err(|e| format!("{path}: {e}"))?;
            Some(json.into_owned())
        }
        None => None,
    };
    let trigger = match &args.trigger {
        Some(t) => Some(Trigger::parse(t).map_err(|e| format!("--trigger: {e}"))?),
        None => None,
    };

    // Rokt, or a local stand-in.
    let key = std::env::var("ROKT_API_KEY").unwrap_or_default();
    let secret = std::env::var("ROKT_API_SECRET").unwrap_or_default();
    let mut local = None;
    let mut builder = Client::builder().preset(args.preset);
    if !key.is_empty() && !secret.is_empty() {
        builder = builder.credentials(Credentials::new(key, secret));
        if let Ok(url) = std::env::var("ROKT_ENDPOINT") {
            builder = builder.endpoint_url(&url);
        }
    } else {
        let receiver = receiver::Receiver::start().await?;
        eprintln!(
            "ROKT_API_KEY / ROKT_API_SECRET are not set: sending to a local receiver at {}",
            receiver.url()
        );
        builder = builder
            .credentials(receiver.credentials())
            .endpoint_url(receiver.url());
        local = Some(receiver);
    }
    if let Some(o) = overrides {
        builder = builder.overrides(o);
    }
    if let Some(n) = args.max_attempts {
        builder = builder.retry(RetryPolicy::default().with_max_attempts(n));
    }
    let client = builder.build().map_err(|e| e.to_string())?;

    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel();
    let mut dispatcher = Dispatcher::builder(client)
        .concurrency(args.concurrency)
        .queue_capacity(2_000)
        .outcomes_to(outcomes_tx);
    if args.rate > 0.0 {
        dispatcher = dispatcher.rate_limit(args.rate);
    }
    let dispatcher = dispatcher.build().map_err(|e| e.to_string())?;

    let input = open_input(&args.input)?;
    let dead_letter = match &args.dead_letter {
        Some(path) => Some(create_dead_letter(path, &args.input)?),
        None => None,
    };
    let bar = progress_bar(args.quiet);
    let mut replay = Replay {
        tally: Tally::default(),
        dead_letter,
        bar,
        last_draw: Instant::now(),
    };

    // Lines are read on their own thread; this task enqueues them and takes the outcomes.
    let (lines_tx, mut lines) = mpsc::channel(1024);
    std::thread::spawn(move || read_records(input, &lines_tx));
    let mut read_error = None;
    loop {
        tokio::select! {
            biased;
            Some(outcome) = outcomes.recv() => replay.outcome(outcome)?,
            read = lines.recv() => match read {
                Some(Input::Record(record)) => replay.record(record, &dispatcher, trigger.as_ref()).await?,
                Some(Input::End(error)) => { read_error = error; break; }
                None => break,
            },
        }
    }
    // Send what is queued, taking outcomes as they come, then the last ones.
    let shutdown = dispatcher.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            Some(outcome) = outcomes.recv() => replay.outcome(outcome)?,
            () = &mut shutdown => break,
        }
    }
    while let Ok(outcome) = outcomes.try_recv() {
        replay.outcome(outcome)?;
    }
    if let Some(file) = &mut replay.dead_letter {
        file.flush().map_err(|e| format!("dead-letter file: {e}"))?;
    }
    replay.bar.finish_and_clear();

    let t = &replay.tally;
    let stats = dispatcher.stats();
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = t.records as f64 / seconds.max(1e-9);
    if let Some(r) = &local {
        println!("{}", r.report());
    }
    let lost = t.rejected + t.failed - t.dead_letter;
    if lost > 0 {
        println!("{lost} records were not delivered and are not kept: use --dead-letter FILE");
    }
    if let Some(path) = &args.dead_letter {
        println!("dead letters: {} in {path}", t.dead_letter);
    }
    println!(
        "report: records={} delivered={} rejected={} failed={} skipped={} bulk={} historical={} \
         dead_letter={} requests={} retries={} seconds={seconds:.2} events_per_second={rate:.0}",
        t.records,
        t.delivered,
        t.rejected,
        t.failed,
        t.skipped,
        t.bulk,
        t.historical,
        t.dead_letter,
        stats.requests,
        stats.retries,
    );
    if let Some(e) = read_error {
        return Err(format!("{}: {e}", args.input));
    }
    Ok(if t.rejected + t.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

impl Replay {
    async fn record(
        &mut self,
        record: Record,
        dispatcher: &Dispatcher,
        trigger: Option<&Trigger>,
    ) -> Result<(), String> {
        self.tally.records += 1;
        let text = match record.text {
            Ok(text) => text,
            Err(e) => return self.settle(record.number, None, reason("rejected", &e)),
        };
        // A dead-letter line replays the event or the batch it kept.
        let text = match unwrap_dead_letter(&text) {
            Some(Kept::Event(original)) => original,
            Some(Kept::Batch(batch)) => {
                return self.resend(record.number, *batch, dispatcher).await;
            }
            // Nothing was kept (the line was unreadable): the same verdict again.
            Some(Kept::Nothing(why)) => return self.settle(record.number, None, why),
            None => text,
        };
        let doc = match Json::parse(&text) {
            Ok(doc) => doc,
            Err(e) => {
                let e = Error::from(EventError::from_json(&e));
                return self.settle(record.number, Some(&text), reason("rejected", &e));
            }
        };
        if trigger
            .is_some_and(|t| rokt_capi::segment::check_event(&doc).is_ok() && !t.matches(&doc))
        {
            self.tally.skipped += 1;
            self.bar.inc(1);
            return Ok(());
        }
        // Bad input comes back at once, with why; anything taken gets one outcome later.
        let refused = refusal(dispatcher.enqueue(&doc).await)?;
        drop(doc);
        match refused {
            Some(error) => self.settle(record.number, Some(&text), reason("rejected", &error)),
            None => Ok(()),
        }
    }

    /// Sends a dead letter's batch again, as it was.
    async fn resend(
        &mut self,
        number: u64,
        batch: Batch,
        dispatcher: &Dispatcher,
    ) -> Result<(), String> {
        match refusal(dispatcher.enqueue_batch(batch).await)? {
            Some(error) => self.settle(number, None, reason("rejected", &error)),
            None => Ok(()),
        }
    }

    fn outcome(&mut self, outcome: Outcome) -> Result<(), String> {
        match &outcome.verdict {
            Verdict::Delivered(receipt) => {
                self.tally.delivered += 1;
                if receipt.kind == RequestKind::Historical {
                    self.tally.historical += 1;
                } else {
                    self.tally.bulk += 1;
                }
                self.draw();
                Ok(())
            }
            verdict => {
                let error = verdict.error().cloned().unwrap_or(Error::Closed);
                let mut why = reason(outcome.label(), &error);
                if let Some(id) = &outcome.message_id {
                    why.insert("message_id".into(), id.as_str().into());
                }
                self.count(&why);
                // The batch's bytes as they were sent, spliced in whole: no re-encoding.
                let batch = outcome
                    .body
                    .as_deref()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .unwrap_or("null");
                let why = Value::Object(why);
                self.write_dead_letter(&format!(r#"{{"dead_letter":{why},"batch":{batch}}}"#))
            }
        }
    }

    /// Counts a record that was not delivered and writes it to the dead-letter file with why
    /// (see [`reason`]).
    fn settle(
        &mut self,
        number: u64,
        text: Option<&str>,
        mut why: Map<String, Value>,
    ) -> Result<(), String> {
        self.count(&why);
        why.insert("record".into(), number.into());
        self.write_dead_letter(&json!({"dead_letter": why, "event": text}).to_string())
    }

    fn count(&mut self, why: &Map<String, Value>) {
        if why.get("verdict").and_then(Value::as_str) == Some("failed") {
            self.tally.failed += 1;
        } else {
            self.tally.rejected += 1;
        }
    }

    fn write_dead_letter(&mut self, line: &str) -> Result<(), String> {
        if let Some(file) = &mut self.dead_letter {
            writeln!(file, "{line}").map_err(|e| format!("dead-letter file: {e}"))?;
            self.tally.dead_letter += 1;
        }
        self.draw();
        Ok(())
    }

    /// Counts one more record done (delivered, rejected, failed) on the bar.
    fn draw(&mut self) {
        self.bar.inc(1);
        if self.last_draw.elapsed() >= Duration::from_millis(100) {
            self.last_draw = Instant::now();
            let seconds = self.bar.elapsed().as_secs_f64().max(1e-3);
            #[allow(clippy::cast_precision_loss)]
            let rate = self.bar.position() as f64 / seconds;
            self.bar
                .set_message(format!("{rate:.0} events/s · {}", self.tally.progress()));
        }
    }
}

/// What `enqueue` answered: taken (`None`), bad input (the first route's error), or an error
/// when the dispatcher stopped.
fn refusal<T, E>(answer: Result<T, EnqueueError<E>>) -> Result<Option<Error>, String> {
    match answer {
        Ok(_) => Ok(None),
        Err(EnqueueError::Invalid(_, refusals)) => Ok(Some(
            refusals
                .into_iter()
                .next()
                .map_or(Error::Closed, |r| r.error),
        )),
        Err(_) => Err("the dispatcher stopped".to_owned()),
    }
}

/// Why a record was not delivered, for its dead-letter line: the verdict, Segment's status
/// and error type, and the error's message, which names fields and rules, never values.
fn reason(verdict: &str, error: &Error) -> Map<String, Value> {
    let mut why = Map::new();
    why.insert("verdict".into(), verdict.into());
    why.insert("status".into(), error.status().into());
    why.insert("error_type".into(), error.error_type().into());
    why.insert("reason".into(), error.to_string().into());
    why
}

/// What a dead-letter line kept.
enum Kept {
    /// The original line.
    Event(String),
    /// The batch that was sent.
    Batch(Box<Batch>),
    /// No line (it was too long or not UTF-8), only why it was not delivered.
    Nothing(Map<String, Value>),
}

/// What a dead-letter line (`{"dead_letter":{…},"event":"…"}`) kept; `None` when the line is
/// not one.
fn unwrap_dead_letter(text: &str) -> Option<Kept> {
    if !text.starts_with("{\"dead_letter\"") {
        return None;
    }
    let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if record.len() != 2 {
        return None;
    }
    if !record.contains_key("dead_letter") {
        return None;
    }
    if record.contains_key("batch") {
        // Read straight from the text, so the batch keeps its order (a `Value` may sort it).
        #[derive(serde::Deserialize)]
        struct BatchLine {
            batch: Batch,
        }
        return serde_json::from_str::<BatchLine>(text)
            .ok()
            .map(|l| Kept::Batch(Box::new(l.batch)));
    }
    match (record.remove("dead_letter"), record.remove("event")) {
        (Some(_), Some(Value::String(original))) => Some(Kept::Event(original)),
        (Some(Value::Object(mut why)), Some(Value::Null)) => {
            why.remove("record");
            Some(Kept::Nothing(why))
        }
        _ => None,
    }
}

/// Opens FILE (or stdin for `-`), decompressing gzip when the name ends in `.gz` or the data
/// starts with gzip's magic bytes.
fn open_input(path: &str) -> Result<Box<dyn BufRead + Send>, String> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?)
    };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let head = reader.fill_buf().map_err(|e| format!("{path}: {e}"))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]) || path.ends_with(".gz");
    Ok(if gzip {
        let decoder = flate2::bufread::MultiGzDecoder::new(reader);
        Box::new(BufReader::with_capacity(1 << 16, decoder))
    } else {
        Box::new(reader)
    })
}

/// Creates (or empties) the dead-letter file, refusing to overwrite the input.
fn create_dead_letter(path: &str, input: &str) -> Result<BufWriter<std::fs::File>, String> {
    let same = |a: &str, b: &str| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if input != "-" && same(path, input) {
        return Err(format!("--dead-letter {path} is the input file"));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(BufWriter::new(file))
}

/// Reads the input's non-blank lines (each at most 1 MiB) and sends them in order.
fn read_records(input: Box<dyn BufRead + Send>, tx: &mpsc::Sender<Input>) {
    let mut lines = Lines::new(input);
    let end = loop {
        match lines.next_line() {
            Ok(Some(line)) => {
                let record = Record {
                    number: line.index + 1,
                    text: line.text.map(str::to_owned),
                };
                if tx.blocking_send(Input::Record(record)).is_err() {
                    return;
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    let _ = tx.blocking_send(Input::End(end));
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{spinner} {elapsed_precise} {human_pos} events done · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
