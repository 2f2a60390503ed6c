//! The offline Event Tester: prints the exact requests Rokt would receive for Segment events.
//!
//! ```text
//! cargo run --release --example preview -- [--preset send|sync_engage_audience]
//!     [--mapping FILE] [--trigger CONDITION] [--batch N] [--quiet] [FILE]
//! ```
//!
//! Reads NDJSON (one Segment event per line) from FILE or stdin and writes NDJSON to stdout:
//! one line per request (`{"method":"POST","path":…,"body":…}`) and one line per event that is
//! not sent (`{"index":I,"status":400,"error":…}`). Every input line ends in exactly one
//! outcome. No credentials, no network.

use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::Lines;
use rokt_capi::request::{Limits, Request, RequestKind};
use rokt_capi::trigger::Trigger;
use rokt_capi::{Error, EventError, Json, Pipeline};
use std::io::{BufReader, Read, Write};
use std::time::Instant;

struct Args {
    preset: Preset,
    mapping: Option<String>,
    trigger: Option<String>,
    batch: usize,
    quiet: bool,
    threads: usize,
    file: Option<String>,
}

const USAGE: &str = "usage: preview [--preset send|sync_engage_audience] [--mapping FILE] [--trigger CONDITION] [--batch N] [--threads N] [--quiet] [FILE]";

/// Lines handed to the worker threads at a time when `--threads` is above 1.
const CHUNK: usize = 8192;

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        preset: Preset::Send,
        mapping: None,
        trigger: None,
        batch: 1,
        quiet: false,
        threads: 1,
        file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--preset" => {
                let p = value("--preset")?;
                args.preset = Preset::from_key(&p).ok_or(format!("unknown preset `{p}`"))?;
            }
            "--mapping" => args.mapping = Some(value("--mapping")?),
            "--trigger" => args.trigger = Some(value("--trigger")?),
            "--batch" => {
                let n = value("--batch")?;
                args.batch = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or("--batch takes 1 to 100")?;
            }
            "--quiet" => args.quiet = true,
            "--threads" => {
                let n = value("--threads")?;
                args.threads = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or("--threads takes 1 to 256")?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            f if !f.starts_with("--") && args.file.is_none() => args.file = Some(f.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Counts for the closing summary.
#[derive(Default)]
struct Tally {
    events: u64,
    sent: u64,
    rejected: u64,
    skipped: u64,
    requests: u64,
}

struct Preview<W: Write> {
    pipeline: Pipeline,
    trigger: Option<Trigger>,
    batch: usize,
    quiet: bool,
    out: W,
    tally: Tally,
    pending: Vec<bytes::Bytes>,
}

impl<W: Write> Preview<W> {
    fn line(&mut self, index: u64, line: Result<&str, Error>) -> std::io::Result<()> {
        let outcome = line.and_then(|l| self.encode(l));
        self.outcome(index, outcome)
    }

    /// Encodes a chunk of lines on every thread, then reports them in input order.
    fn chunk(
        &mut self,
        arena: &str,
        spans: &mut Vec<(u64, Result<std::ops::Range<usize>, Error>)>,
        threads: usize,
    ) -> std::io::Result<()> {
        let texts: Vec<&str> = spans
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok().map(|r| &arena[r.clone()]))
            .collect();
        let skip: Vec<bool> = texts.iter().map(|t| self.skipped_by_trigger(t)).collect();
        let mut encoded = self
            .pipeline
            .encode_all(&texts, threads)
            .into_iter()
            .zip(skip);
        for (index, span) in spans.drain(..) {
            let outcome = match span {
                Err(e) => Err(e),
                Ok(_) => match encoded.next() {
                    Some((_, true)) => Ok(None),
                    Some((r, false)) => r.map(Some),
                    None => Ok(None),
                },
            };
            self.outcome(index, outcome)?;
        }
        Ok(())
    }

    /// Whether a well-formed event fails the trigger (bad input is left for the encoder to report).
    fn skipped_by_trigger(&self, text: &str) -> bool {
        match &self.trigger {
            None => false,
            Some(_) => matches!(self.encode(text), Ok(None)),
        }
    }

    fn outcome(
        &mut self,
        index: u64,
        outcome: Result<Option<bytes::Bytes>, Error>,
    ) -> std::io::Result<()> {
        self.tally.events += 1;
        match outcome {
            Ok(Some(item)) => {
                self.pending.push(item);
                if self.pending.len() >= self.batch {
                    self.flush_batch()?;
                }
            }
            Ok(None) => {
                self.tally.skipped += 1;
                if !self.quiet {
                    writeln!(
                        self.out,
                        r#"{{"index":{index},"status":"skipped","reason":"the event does not match the trigger"}}"#
                    )?;
                }
            }
            Err(e) => {
                self.tally.rejected += 1;
                if !self.quiet {
                    let error = serde_json::to_string(&e.to_string()).unwrap_or_default();
                    writeln!(
                        self.out,
                        r#"{{"index":{index},"status":{},"errortype":"{}","error":{error}}}"#,
                        e.status(),
                        e.error_type()
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The encoded batch for one line, `None` when the trigger skips it.
    fn encode(&self, text: &str) -> Result<Option<bytes::Bytes>, Error> {
        let doc = Json::parse(text).map_err(|e| Error::from(EventError::from_json(&e)))?;
        if let Some(t) = &self.trigger {
            rokt_capi::segment::check_event(&doc)?;
            if !t.matches(&doc) {
                return Ok(None);
            }
        }
        self.pipeline.encode(&doc).map(Some)
    }

    fn flush_batch(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items: Vec<Result<bytes::Bytes, Error>> = self.pending.drain(..).map(Ok).collect();
        let requests: Vec<Request> = if self.batch == 1 {
            items
                .into_iter()
                .flatten()
                .map(|b| self.pipeline.request_for(RequestKind::Single, b, 1))
                .collect()
        } else {
            self.pipeline
                .bulk_encoded(RequestKind::Bulk, items)
                .requests
        };
        for r in requests {
            self.tally.requests += 1;
            self.tally.sent += r.items as u64;
            if !self.quiet {
                write!(
                    self.out,
                    r#"{{"method":"{}","path":"{}","body":"#,
                    r.method, r.path
                )?;
                self.out.write_all(&r.body)?;
                self.out.write_all(b"}\n")?;
            }
        }
        Ok(())
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut builder = Pipeline::builder()
        .preset(args.preset)
        .limits(Limits::default().with_max_items(args.batch));
    if let Some(path) = &args.mapping {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        builder = builder.overrides(json);
    }
    let pipeline = builder.build().map_err(|e| e.to_string())?;
    let trigger = match &args.trigger {
        Some(t) => Some(Trigger::parse(t).map_err(|e| format!("--trigger: {e}"))?),
        None => None,
    };
    let input: Box<dyn Read> = match &args.file {
        Some(f) => Box::new(std::fs::File::open(f).map_err(|e| format!("cannot open {f}: {e}"))?),
        None => Box::new(std::io::stdin()),
    };
    let mut lines = Lines::new(BufReader::with_capacity(1 << 20, input));
    let stdout = std::io::stdout();
    let mut preview = Preview {
        pipeline,
        trigger,
        batch: args.batch,
        quiet: args.quiet,
        out: std::io::BufWriter::with_capacity(1 << 20, stdout.lock()),
        tally: Tally::default(),
        pending: Vec::with_capacity(args.batch),
    };
    let started = Instant::now();
    if args.threads == 1 {
        while let Some(line) = lines.next_line().map_err(|e| format!("read error: {e}"))? {
            preview
                .line(line.index, line.text)
                .map_err(|e| e.to_string())?;
        }
    } else {
        // Lines are copied into one arena per chunk so the workers can borrow them all.
        let mut arena = String::with_capacity(CHUNK * 1024);
        let mut spans = Vec::with_capacity(CHUNK);
        loop {
            let line = lines.next_line().map_err(|e| format!("read error: {e}"))?;
            let done = line.is_none();
            if let Some(line) = line {
                let span = line.text.map(|t| {
                    arena.push_str(t);
                    arena.len() - t.len()..arena.len()
                });
                spans.push((line.index, span));
            }
            if spans.len() >= CHUNK || (done && !spans.is_empty()) {
                preview
                    .chunk(&arena, &mut spans, args.threads)
                    .map_err(|e| e.to_string())?;
                arena.clear();
            }
            if done {
                break;
            }
        }
    }
    preview.flush_batch().map_err(|e| e.to_string())?;
    preview.out.flush().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let t = &preview.tally;
    if args.quiet {
        eprintln!(
            "events: {}, sent: {}, rejected: {}, skipped: {}, requests: {}, {:.3} s, {:.0} events/s",
            t.events,
            t.sent,
            t.rejected,
            t.skipped,
            t.requests,
            secs,
            t.events as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("{e}");
        std::process::exit(2);
    }
}
