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

use rokt_capi::mapping::Preset;
use rokt_capi::ndjson::{DEFAULT_MAX_LINE, Lines};
use rokt_capi::request::{Limits, Request, RequestKind};
use rokt_capi::rtid::memory::RtidMemory;
use rokt_capi::trigger::Trigger;
use rokt_capi::{BulkWriter, Error, EventError, Json, Pipeline};
use std::io::{BufReader, Read, Write};
use std::ops::Range;
use std::sync::mpsc::TrySendError;
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

/// What became of one line: its batch (written into a buffer, at this span), `None` when the
/// trigger skips it, or why it was rejected.
type Encoded = Result<Option<Range<usize>>, Error>;

/// What became of one line once reported: sent (with the request it completed, if any),
/// `None` when the trigger skips it, or why it was rejected.
type Written = Result<Option<Option<Request>>, Error>;

impl Encoder {
    /// The document of a line the trigger matches; `None` when it does not.
    fn matched<'t>(&self, trigger: &Trigger, text: &'t str) -> Result<Option<Json<'t>>, Error> {
        let doc = Json::parse(text).map_err(|e| Error::from(EventError::from_json(&e)))?;
        rokt_capi::segment::check_mappable(&doc)?;
        Ok(trigger.matches(&doc).then_some(doc))
    }

    /// Appends the line's batch to `out`.
    fn encode_into(&self, text: &str, out: &mut Vec<u8>) -> Encoded {
        let start = out.len();
        match &self.trigger {
            None => self.pipeline.encode_into(text, out)?,
            Some(trigger) => match self.matched(trigger, text)? {
                Some(doc) => self.pipeline.encode_into(&doc, out)?,
                None => return Ok(None),
            },
        }
        Ok(Some(start..out.len()))
    }

    /// Writes the line's batch into `writer`'s open body.
    fn write(&self, writer: &mut BulkWriter<'_>, text: &str) -> Written {
        match &self.trigger {
            None => writer.push(text).map(Some),
            Some(trigger) => match self.matched(trigger, text)? {
                Some(doc) => writer.push(&doc).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Encodes a job's lines in order into `out`.
    fn encode_job(&self, job: &Job, out: &mut Outcomes) {
        out.batches.clear();
        out.lines.clear();
        match job {
            Job::Lines(chunk) => {
                for line in chunk.lines() {
                    let outcome = line
                        .map_err(Clone::clone)
                        .and_then(|text| self.encode_into(text, &mut out.batches));
                    out.lines.push(outcome);
                }
            }
            Job::Block(block) => {
                // Split as the reading thread would have split them: `Lines` over the block.
                let mut lines = Lines::new(&block[..]);
                // Reading from memory cannot fail.
                while let Ok(Some(line)) = lines.next_line() {
                    let outcome = line
                        .text
                        .and_then(|text| self.encode_into(text, &mut out.batches));
                    out.lines.push(outcome);
                }
            }
            Job::Overlong(bytes) => out.lines.push(Err(Error::TooLarge {
                bytes: *bytes,
                limit: DEFAULT_MAX_LINE,
            })),
        }
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

/// Work for a worker thread.
enum Job {
    /// Lines read (and passed through the rtid memory) by the reading thread.
    Lines(Chunk),
    /// Whole lines as read, split and checked by the worker.
    Block(Vec<u8>),
    /// A line over the size limit, passed over by the reading thread: its length (with its
    /// newline, as `Lines` counts it).
    Overlong(usize),
}

/// What became of a job's lines: their batches, one after another in one buffer, and each
/// line's outcome. Handed back and forth between the threads with its job, so its buffers
/// are reused rather than freed on the thread that did not allocate them.
#[derive(Default)]
struct Outcomes {
    batches: Vec<u8>,
    lines: Vec<Encoded>,
}

/// Lines read ahead for the worker threads, their text in one arena so the workers can borrow
/// them all at once.
#[derive(Default)]
struct Chunk {
    arena: String,
    /// Each line's span in the arena, or why it could not be read.
    spans: Vec<Result<Range<usize>, Error>>,
}

impl Chunk {
    fn push(&mut self, text: Result<&str, Error>) {
        let span = text.map(|t| {
            self.arena.push_str(t);
            self.arena.len() - t.len()..self.arena.len()
        });
        self.spans.push(span);
    }

    fn lines(&self) -> impl Iterator<Item = Result<&str, &Error>> {
        self.spans.iter().map(|span| match span {
            Ok(r) => Ok(&self.arena[r.clone()]),
            Err(e) => Err(e),
        })
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
    }
}

/// Cuts the input into blocks of whole lines for the workers without looking into the lines
/// (a block ends at its last newline; the rest begins the next one), so that splitting, the
/// UTF-8 check and everything after happen on the workers. A line over the size limit is
/// passed over here, never held whole.
struct Blocks<R> {
    input: R,
    /// The start of the next block's first line.
    carry: Vec<u8>,
    eof: bool,
}

/// How much input a block is read with (plus the line carried over from the last one).
const BLOCK: usize = 256 << 10;

impl<R: Read> Blocks<R> {
    /// The next job, read into `buf` (a spare block); `None` at the end of input.
    fn next(&mut self, mut buf: Vec<u8>) -> std::io::Result<Option<Job>> {
        loop {
            buf.clear();
            buf.append(&mut self.carry);
            if !self.eof {
                let read = (&mut self.input).take(BLOCK as u64).read_to_end(&mut buf)?;
                self.eof = read < BLOCK;
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(last) => {
                    self.carry.extend_from_slice(&buf[last + 1..]);
                    buf.truncate(last + 1);
                    return Ok(Some(Job::Block(buf)));
                }
                None if self.eof => return Ok((!buf.is_empty()).then_some(Job::Block(buf))),
                None if buf.len() > DEFAULT_MAX_LINE => {
                    let rest = self.skip_line()?;
                    return Ok(Some(Job::Overlong(buf.len() + rest)));
                }
                // A line longer than a block: read on.
                None => std::mem::swap(&mut self.carry, &mut buf),
            }
        }
    }

    /// Reads past the end of the current line; returns how many bytes that was (with the
    /// newline) and keeps what follows it.
    fn skip_line(&mut self) -> std::io::Result<usize> {
        let mut scratch = vec![0u8; 64 << 10];
        let mut skipped = 0;
        loop {
            let n = match self.input.read(&mut scratch) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(skipped);
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(newline) = memchr::memchr(b'\n', &scratch[..n]) {
                self.carry.extend_from_slice(&scratch[newline + 1..n]);
                return Ok(skipped + newline + 1);
            }
            skipped += n;
        }
    }
}

/// Writes every outcome, in input order, and the requests.
struct Sink<W: Write> {
    quiet: bool,
    out: W,
    tally: Tally,
}

impl<W: Write> Sink<W> {
    /// Reports the outcome of the next line: sent (`true`; its request is reported when it
    /// is complete), skipped (`false`) or rejected.
    fn line(&mut self, outcome: Result<bool, Error>) -> std::io::Result<()> {
        let index = self.tally.events;
        self.tally.events += 1;
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.tally.skipped += 1;
                if !self.quiet {
                    writeln!(
                        self.out,
                        r#"{{"index":{index},"status":"skipped","reason":"the event does not match the trigger"}}"#
                    )?;
                }
                Ok(())
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
                Ok(())
            }
        }
    }

    fn request(&mut self, r: &Request) -> std::io::Result<()> {
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

/// Where the batches go: one request each (`--batch 1`, as the reference sends an event
/// alone), or bulk bodies.
enum Requests<'p> {
    Single(&'p Pipeline),
    Bulk(BulkWriter<'p>),
}

impl<'p> Requests<'p> {
    fn new(pipeline: &'p Pipeline, batch: usize) -> Self {
        match batch {
            1 => Requests::Single(pipeline),
            _ => Requests::Bulk(pipeline.bulk_writer(RequestKind::Bulk)),
        }
    }

    /// Writes one line's batch (encoded here from its text) and reports it.
    fn line<W: Write>(
        &mut self,
        encoder: &Encoder,
        text: Result<&str, Error>,
        sink: &mut Sink<W>,
    ) -> std::io::Result<()> {
        let outcome = text.and_then(|text| match self {
            Requests::Single(pipeline) => Ok(match &encoder.trigger {
                None => Some(pipeline.request(text)?),
                Some(trigger) => match encoder.matched(trigger, text)? {
                    Some(doc) => Some(pipeline.request(&doc)?),
                    None => None,
                },
            }
            .map(Some)),
            Requests::Bulk(writer) => encoder.write(writer, text),
        });
        self.report(outcome, sink)
    }

    /// Writes and reports the outcomes of a job a worker encoded.
    fn encoded<W: Write>(
        &mut self,
        outcomes: &Outcomes,
        sink: &mut Sink<W>,
    ) -> std::io::Result<()> {
        for outcome in &outcomes.lines {
            let written = match outcome {
                Ok(Some(span)) => {
                    let batch = &outcomes.batches[span.clone()];
                    match self {
                        Requests::Single(pipeline) => {
                            let body = bytes::Bytes::copy_from_slice(batch);
                            Ok(Some(pipeline.request_for(RequestKind::Single, body, 1)))
                        }
                        Requests::Bulk(writer) => writer.push_encoded(batch),
                    }
                    .map(Some)
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e.clone()),
            };
            self.report(written, sink)?;
        }
        Ok(())
    }

    /// Reports one line, then the request it completed and any body that is full.
    fn report<W: Write>(&mut self, outcome: Written, sink: &mut Sink<W>) -> std::io::Result<()> {
        let (line, completed) = match outcome {
            Ok(Some(completed)) => (Ok(true), completed),
            Ok(None) => (Ok(false), None),
            Err(e) => (Err(e), None),
        };
        sink.line(line)?;
        let full = match self {
            Requests::Bulk(writer) => writer.take_full(),
            Requests::Single(_) => None,
        };
        for request in completed.into_iter().chain(full) {
            sink.request(&request)?;
            if let Requests::Bulk(writer) = self {
                writer.recycle(request);
            }
        }
        Ok(())
    }

    /// The last request, if any.
    fn finish<W: Write>(self, sink: &mut Sink<W>) -> std::io::Result<()> {
        match self {
            Requests::Bulk(writer) => writer.finish().map_or(Ok(()), |r| sink.request(&r)),
            Requests::Single(_) => Ok(()),
        }
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
    let stdout = std::io::stdout();
    let encoder = Encoder { pipeline, trigger };
    let mut sink = Sink {
        quiet: args.quiet,
        out: std::io::BufWriter::with_capacity(1 << 20, stdout.lock()),
        tally: Tally::default(),
    };
    let mut requests = Requests::new(&encoder.pipeline, args.batch);
    let started = Instant::now();
    if args.threads == 1 {
        // Each batch is written straight into the body that carries it.
        let mut lines = Lines::new(BufReader::with_capacity(1 << 20, input));
        while let Some(line) = lines.next_line().map_err(|e| format!("read error: {e}"))? {
            let text = line.text.map(|t| remembered(memory, t));
            requests
                .line(&encoder, text.as_deref().map_err(Clone::clone), &mut sink)
                .map_err(|e| e.to_string())?;
        }
    } else {
        // Pipelined: this thread reads the input into jobs and hands each to whichever worker
        // is free, and reports the encoded jobs in input order as they come back, so reading
        // and writing overlap the encoding and no worker waits for another to finish a job.
        // A job is a block of raw lines, which the worker splits and checks; with the rtid
        // memory, lines this thread has read and enriched (in input order: what a line
        // teaches the memory must be known before the next line is read). At most
        // `in_flight_limit` jobs are out at once (read and not yet reported), which bounds
        // memory.
        let in_flight_limit = 4 * args.threads;
        // This thread is one of the N: N - 1 workers take jobs from a short queue, and when
        // it is full this thread encodes the job it has just read itself. So N threads run on
        // N cores, none waiting for a core while another holds it.
        let workers = args.threads - 1;
        let (jobs, queue) = std::sync::mpsc::sync_channel::<(u64, Job, Outcomes)>(2 * workers);
        let queue = std::sync::Mutex::new(queue);
        let (done, finished) = std::sync::mpsc::channel::<(u64, Job, Outcomes)>();
        let (mut lines, mut blocks) = match memory {
            Some(_) => (
                Some(Lines::new(BufReader::with_capacity(1 << 20, input))),
                None,
            ),
            None => {
                let carry = Vec::new();
                (
                    None,
                    Some(Blocks {
                        input,
                        carry,
                        eof: false,
                    }),
                )
            }
        };
        std::thread::scope(|scope| -> Result<(), String> {
            for _ in 0..workers {
                let (queue, done, encoder) = (&queue, done.clone(), &encoder);
                scope.spawn(move || {
                    loop {
                        // The lock is held only to take the next job.
                        let job = queue.lock().map(|q| q.recv());
                        let Ok(Ok((seq, job, mut outcomes))) = job else {
                            return;
                        };
                        encoder.encode_job(&job, &mut outcomes);
                        if done.send((seq, job, outcomes)).is_err() {
                            return;
                        }
                    }
                });
            }
            // Dropped on every way out of this closure, which ends the workers.
            let (jobs, done) = (jobs, done);
            drop(done);
            let mut spare_chunks: Vec<Chunk> = Vec::new();
            let mut spare_blocks: Vec<Vec<u8>> = Vec::new();
            let mut spare_outcomes: Vec<Outcomes> = Vec::new();
            let mut waiting = std::collections::BTreeMap::new();
            let (mut sent, mut reported) = (0u64, 0u64);
            let mut eof = false;
            while !eof || reported < sent {
                if !eof {
                    let job = match (&mut blocks, &mut lines) {
                        (Some(blocks), _) => blocks
                            .next(spare_blocks.pop().unwrap_or_default())
                            .map_err(|e| format!("read error: {e}"))?,
                        (None, Some(lines)) => {
                            let mut chunk = spare_chunks.pop().unwrap_or_default();
                            while chunk.spans.len() < CHUNK {
                                let Some(line) =
                                    lines.next_line().map_err(|e| format!("read error: {e}"))?
                                else {
                                    break;
                                };
                                let text = line.text.map(|t| remembered(memory, t));
                                chunk.push(text.as_deref().map_err(Clone::clone));
                            }
                            (!chunk.spans.is_empty()).then_some(Job::Lines(chunk))
                        }
                        (None, None) => None,
                    };
                    match job {
                        Some(job) => {
                            let outcomes = spare_outcomes.pop().unwrap_or_default();
                            match jobs.try_send((sent, job, outcomes)) {
                                Ok(()) => {}
                                Err(TrySendError::Full((seq, job, mut outcomes))) => {
                                    encoder.encode_job(&job, &mut outcomes);
                                    waiting.insert(seq, (job, outcomes));
                                }
                                Err(TrySendError::Disconnected(_)) => {
                                    return Err("a worker thread stopped".to_owned());
                                }
                            }
                            sent += 1;
                        }
                        None => eof = true,
                    }
                }
                // Report what is done, in order; wait for a job only when enough are out (or
                // all are read). Jobs encoded but waiting for an earlier one count as out:
                // while one thread is held up, the others cannot run ahead without bound.
                loop {
                    while let Some((job, outcomes)) = waiting.remove(&reported) {
                        requests
                            .encoded(&outcomes, &mut sink)
                            .map_err(|e| e.to_string())?;
                        match job {
                            Job::Lines(mut chunk) => {
                                chunk.clear();
                                spare_chunks.push(chunk);
                            }
                            Job::Block(block) => spare_blocks.push(block),
                            Job::Overlong(_) => {}
                        }
                        spare_outcomes.push(outcomes);
                        reported += 1;
                    }
                    let out = sent - reported;
                    let must_wait = out > 0 && (eof || out >= in_flight_limit as u64);
                    let next = match must_wait {
                        true => finished.recv().ok(),
                        false => finished.try_recv().ok(),
                    };
                    let Some((seq, job, outcomes)) = next else {
                        if must_wait {
                            return Err("a worker thread stopped".to_owned());
                        }
                        break;
                    };
                    waiting.insert(seq, (job, outcomes));
                }
            }
            Ok(())
        })?;
    }
    requests.finish(&mut sink).map_err(|e| e.to_string())?;
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
