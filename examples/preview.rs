//! The offline Event Tester: prints the exact requests Rokt would receive for Segment events.
//!
//! ```text
//! cargo run --release --example preview -- [--preset send|sync_engage_audience]
//!     [--mapping FILE] [--trigger CONDITION] [--batch N] [--threads N] [--rtid-memory]
//!     [--quiet] [FILE]
//! ```
//!
//! Reads NDJSON (one Segment event per line) from FILE or stdin and writes NDJSON to stdout:
//! one line per request (`{"method":"POST","path":…,"body":…}`) and one line per event that is
//! not sent (`{"index":I,"status":400,"error":…}`, or `"status":"skipped"` for an event
//! `--trigger` does not match), `I` counting input lines from 0. Every input line ends in
//! exactly one outcome, in input order, whatever `--threads` says. No credentials, no network.
//!
//! `--rtid-memory` replays the file as Rokt's browser plugin would have seen it: every line,
//! in order and whether or not the trigger matches it, passes through an in-memory
//! `RtidMemory`, so a conversion without an rtid is mapped with the one its visitor's
//! landing page carried (`examples/data/sessions.ndjson` has such sessions).

// A parsed event is a handful of small allocations, freed a moment later (on another thread
// with `--threads`); glibc's malloc and free took 5-7% of the one-core time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::Lines;
use rokt_capi::request::{Limits, Request, RequestKind};
use rokt_capi::rtid::memory::RtidMemory;
use rokt_capi::trigger::Trigger;
use rokt_capi::{BulkWriter, Error, EventError, Json, Pipeline};
use std::io::{BufReader, Read, Write};
use std::time::Instant;

struct Args {
    preset: Preset,
    mapping: Option<String>,
    trigger: Option<String>,
    batch: usize,
    quiet: bool,
    threads: usize,
    rtid_memory: bool,
    file: Option<String>,
}

const USAGE: &str = "usage: preview [--preset send|sync_engage_audience] [--mapping FILE] [--trigger CONDITION] [--batch N] [--threads N] [--rtid-memory] [--quiet] [FILE]";

/// Lines handed to a worker thread at a time when `--threads` is above 1: small enough that
/// the workers finish together and the chunks in flight stay in cache, large enough that
/// handing one over costs nothing beside encoding it.
const CHUNK: usize = 512;

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        preset: Preset::Send,
        mapping: None,
        trigger: None,
        batch: 1,
        quiet: false,
        threads: 1,
        rtid_memory: false,
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
            "--rtid-memory" => args.rtid_memory = true,
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

/// Turns one line into its encoded batch: pure, and shared by every thread.
struct Encoder {
    pipeline: Pipeline,
    trigger: Option<Trigger>,
}

/// What became of one line: its encoded batch, `None` when the trigger skips it, or why it
/// was rejected.
type Encoded = Result<Option<bytes::Bytes>, Error>;

/// What became of one line written into a bulk body: written (with the request it finished,
/// if it opened the next body), `None` when the trigger skips it, or why it was rejected.
type Written = Result<Option<Option<Request>>, Error>;

impl Encoder {
    fn encode(&self, text: &str) -> Encoded {
        let doc = Json::parse(text).map_err(|e| Error::from(EventError::from_json(&e)))?;
        if let Some(t) = &self.trigger {
            rokt_capi::segment::check_mappable(&doc)?;
            if !t.matches(&doc) {
                return Ok(None);
            }
        }
        self.pipeline.encode(&doc).map(Some)
    }

    /// Writes the line's batch into `writer`'s open body.
    fn write(&self, writer: &mut BulkWriter<'_>, text: &str) -> Written {
        let Some(trigger) = &self.trigger else {
            return writer.push(text).map(Some);
        };
        let doc = Json::parse(text).map_err(|e| Error::from(EventError::from_json(&e)))?;
        rokt_capi::segment::check_mappable(&doc)?;
        if !trigger.matches(&doc) {
            return Ok(None);
        }
        writer.push(&doc).map(Some)
    }

    /// Encodes a chunk's lines in order.
    fn encode_chunk(&self, chunk: &Chunk) -> Vec<Encoded> {
        chunk
            .lines()
            .map(|line| match line {
                Ok(text) => self.encode(text),
                Err(e) => Err(e.clone()),
            })
            .collect()
    }
}

/// The line as the rtid memory leaves it: enriched with the visitor's remembered rtid, or
/// as it is (also when it is not JSON: encoding reports that).
fn remembered<'t>(memory: Option<&RtidMemory>, text: &'t str) -> std::borrow::Cow<'t, str> {
    let enriched = memory.and_then(|m| {
        let doc = Json::parse(text).ok()?;
        match m.observe(&doc) {
            Ok(enriched) => enriched.and_then(|e| serde_json::to_string(&e).ok()),
            Err(e) => {
                eprintln!("rtid memory: {e}");
                None
            }
        }
    });
    enriched.map_or(std::borrow::Cow::Borrowed(text), std::borrow::Cow::Owned)
}

/// Lines read ahead for the worker threads, their text in one arena so the workers can borrow
/// them all at once.
#[derive(Default)]
struct Chunk {
    arena: String,
    /// Each line's index and its span in the arena, or why it could not be read.
    spans: Vec<(u64, Result<std::ops::Range<usize>, Error>)>,
}

impl Chunk {
    fn push(&mut self, index: u64, text: Result<&str, Error>) {
        let span = text.map(|t| {
            self.arena.push_str(t);
            self.arena.len() - t.len()..self.arena.len()
        });
        self.spans.push((index, span));
    }

    fn lines(&self) -> impl Iterator<Item = Result<&str, &Error>> {
        self.spans.iter().map(|(_, span)| match span {
            Ok(r) => Ok(&self.arena[r.clone()]),
            Err(e) => Err(e),
        })
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
    }
}

/// Groups encoded batches into requests and writes every outcome.
struct Sink<W: Write> {
    batch: usize,
    quiet: bool,
    out: W,
    tally: Tally,
    pending: Vec<bytes::Bytes>,
}

impl<W: Write> Sink<W> {
    /// Reports an encoded chunk, in input order.
    fn report(
        &mut self,
        pipeline: &Pipeline,
        chunk: &Chunk,
        encoded: Vec<Encoded>,
    ) -> std::io::Result<()> {
        for ((index, _), outcome) in chunk.spans.iter().zip(encoded) {
            self.outcome(pipeline, *index, outcome)?;
        }
        Ok(())
    }

    fn outcome(
        &mut self,
        pipeline: &Pipeline,
        index: u64,
        outcome: Encoded,
    ) -> std::io::Result<()> {
        self.tally.events += 1;
        match outcome {
            Ok(Some(item)) => {
                // A request closes when the next batch would not fit in it, as a
                // `BulkWriter`'s does.
                let bytes = 2 + self.pending.iter().map(|b| b.len() + 1).sum::<usize>();
                if !self.pending.is_empty()
                    && bytes + item.len() > pipeline.limits().max_request_bytes
                {
                    self.flush_batch(pipeline)?;
                }
                self.pending.push(item);
                if self.pending.len() >= self.batch {
                    self.flush_batch(pipeline)?;
                }
            }
            Ok(None) => self.skipped(index)?,
            Err(e) => self.rejected(index, &e)?,
        }
        Ok(())
    }

    /// The outcome of a line written by a [`BulkWriter`]: in the open body (and, when it did
    /// not fit there, the request it finished), skipped, or rejected.
    fn written(&mut self, index: u64, outcome: Written) -> std::io::Result<()> {
        self.tally.events += 1;
        match outcome {
            Ok(Some(full)) => full.map_or(Ok(()), |r| self.request(r)),
            Ok(None) => self.skipped(index),
            Err(e) => self.rejected(index, &e),
        }
    }

    fn skipped(&mut self, index: u64) -> std::io::Result<()> {
        self.tally.skipped += 1;
        if !self.quiet {
            writeln!(
                self.out,
                r#"{{"index":{index},"status":"skipped","reason":"the event does not match the trigger"}}"#
            )?;
        }
        Ok(())
    }

    fn rejected(&mut self, index: u64, e: &Error) -> std::io::Result<()> {
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
        Ok(())
    }

    fn flush_batch(&mut self, pipeline: &Pipeline) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items: Vec<Result<bytes::Bytes, Error>> = self.pending.drain(..).map(Ok).collect();
        let requests: Vec<Request> = if self.batch == 1 {
            items
                .into_iter()
                .flatten()
                .map(|b| pipeline.request_for(RequestKind::Single, b, 1))
                .collect()
        } else {
            pipeline.bulk_encoded(RequestKind::Bulk, items).requests
        };
        for r in requests {
            self.request(r)?;
        }
        Ok(())
    }

    fn request(&mut self, r: Request) -> std::io::Result<()> {
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
        // Read with the crate's parser: the mapping's order is the order attributes are sent in.
        let json = rokt_capi::Json::parse(&text).map_err(|e| format!("{path}: {e}"))?;
        builder = builder.overrides(json.into_owned());
    }
    let pipeline = builder.build().map_err(|e| e.to_string())?;
    let memory = match args.rtid_memory {
        true => Some(RtidMemory::builder().build().map_err(|e| e.to_string())?),
        false => None,
    };
    let memory = memory.as_ref();
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
    let encoder = Encoder { pipeline, trigger };
    let mut sink = Sink {
        batch: args.batch,
        quiet: args.quiet,
        out: std::io::BufWriter::with_capacity(1 << 20, stdout.lock()),
        tally: Tally::default(),
        pending: Vec::with_capacity(args.batch),
    };
    let started = Instant::now();
    if args.threads == 1 && args.batch > 1 {
        // Each batch is written straight into the bulk body that carries it.
        let mut writer = encoder.pipeline.bulk_writer(RequestKind::Bulk);
        while let Some(line) = lines.next_line().map_err(|e| format!("read error: {e}"))? {
            let outcome = line
                .text
                .and_then(|text| encoder.write(&mut writer, &remembered(memory, text)));
            sink.written(line.index, outcome)
                .map_err(|e| e.to_string())?;
            if let Some(full) = writer.take_full() {
                sink.request(full).map_err(|e| e.to_string())?;
            }
        }
        if let Some(last) = writer.finish() {
            sink.request(last).map_err(|e| e.to_string())?;
        }
    } else if args.threads == 1 {
        while let Some(line) = lines.next_line().map_err(|e| format!("read error: {e}"))? {
            let outcome = line
                .text
                .and_then(|text| encoder.encode(&remembered(memory, text)));
            sink.outcome(&encoder.pipeline, line.index, outcome)
                .map_err(|e| e.to_string())?;
        }
    } else {
        // Pipelined: this thread reads lines into chunks and hands each to whichever worker is
        // free, and reports the encoded chunks in input order as they come back, so reading
        // and writing overlap the encoding and no worker waits for another to finish a chunk.
        // At most `in_flight_limit` chunks are out at once (read and not yet reported), which
        // bounds memory.
        let in_flight_limit = 4 * args.threads;
        let (jobs, queue) = std::sync::mpsc::sync_channel::<(u64, Chunk)>(in_flight_limit);
        let queue = std::sync::Mutex::new(queue);
        let (done, finished) = std::sync::mpsc::channel::<(u64, Chunk, Vec<Encoded>)>();
        std::thread::scope(|scope| -> Result<(), String> {
            for _ in 0..args.threads {
                let (queue, done, encoder) = (&queue, done.clone(), &encoder);
                scope.spawn(move || {
                    loop {
                        // The lock is held only to take the next chunk.
                        let job = queue.lock().map(|q| q.recv());
                        let Ok(Ok((seq, chunk))) = job else { return };
                        let encoded = encoder.encode_chunk(&chunk);
                        if done.send((seq, chunk, encoded)).is_err() {
                            return;
                        }
                    }
                });
            }
            // Dropped on every way out of this closure, which ends the workers.
            let (jobs, done) = (jobs, done);
            drop(done);
            let mut spare: Vec<Chunk> = Vec::new();
            let mut waiting = std::collections::BTreeMap::new();
            let (mut sent, mut reported) = (0u64, 0u64);
            let mut eof = false;
            while !eof || reported < sent {
                if !eof {
                    let mut chunk = spare.pop().unwrap_or_default();
                    while chunk.spans.len() < CHUNK {
                        match lines.next_line().map_err(|e| format!("read error: {e}"))? {
                            Some(line) => {
                                // In input order, on this thread: what a line teaches the
                                // memory must be known before the next line is read.
                                let text = line.text.map(|t| remembered(memory, t));
                                chunk.push(line.index, text.as_deref().map_err(Clone::clone));
                            }
                            None => {
                                eof = true;
                                break;
                            }
                        }
                    }
                    if !chunk.spans.is_empty() {
                        jobs.send((sent, chunk))
                            .map_err(|_| "a worker thread stopped".to_owned())?;
                        sent += 1;
                    }
                }
                // Report what is back, in order; wait for a chunk only when enough are out (or
                // all are read). Chunks encoded but waiting for an earlier one count as out:
                // while one worker is held up, the other cannot run ahead without bound.
                loop {
                    let out = sent - reported;
                    let must_wait = out > 0 && (eof || out >= in_flight_limit as u64);
                    let next = match must_wait {
                        true => finished.recv().ok(),
                        false => finished.try_recv().ok(),
                    };
                    let Some((seq, chunk, encoded)) = next else {
                        if must_wait {
                            return Err("a worker thread stopped".to_owned());
                        }
                        break;
                    };
                    waiting.insert(seq, (chunk, encoded));
                    while let Some((mut chunk, encoded)) = waiting.remove(&reported) {
                        sink.report(&encoder.pipeline, &chunk, encoded)
                            .map_err(|e| e.to_string())?;
                        chunk.clear();
                        spare.push(chunk);
                        reported += 1;
                    }
                }
            }
            Ok(())
        })?;
    }
    sink.flush_batch(&encoder.pipeline)
        .map_err(|e| e.to_string())?;
    sink.out.flush().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let t = &sink.tally;
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
