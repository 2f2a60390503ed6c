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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
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

/// Lines in a job with the rtid memory when `--threads` is above 1: small enough that the
/// threads finish together and the chunks in flight stay in cache, large enough that
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
    /// The line's document, `None` when the trigger skips it.
    fn document<'t>(&self, text: &'t str) -> Result<Option<Json<'t>>, Error> {
        let doc = Json::parse(text).map_err(|e| Error::from(EventError::from_json(&e)))?;
        if let Some(trigger) = &self.trigger {
            rokt_capi::segment::check_mappable(&doc)?;
            if !trigger.matches(&doc) {
                return Ok(None);
            }
        }
        Ok(Some(doc))
    }

    /// Appends the line's batch to `out`.
    fn encode_into(&self, text: &str, out: &mut Vec<u8>) -> Encoded {
        let start = out.len();
        let Some(doc) = self.document(text)? else {
            return Ok(None);
        };
        self.pipeline.encode_into(&doc, out)?;
        Ok(Some(start..out.len()))
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
                // Split as one thread splits the input: `Lines` over the block.
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

/// Work for one of the threads (`--threads` above 1).
enum Job {
    /// Lines read (and passed through the rtid memory) while the input was held.
    Lines(Chunk),
    /// Whole lines as read, split and checked by the thread that encodes them.
    Block(Vec<u8>),
    /// A line over the size limit, passed over while reading: its length (with its
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

/// Lines read ahead for encoding, their text in one arena so the encoding thread can borrow
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

/// Cuts the input into blocks of whole lines without looking into the lines (a block ends at
/// its last newline; the rest begins the next one), so that splitting, the UTF-8 check and
/// everything after happen outside the input's lock, in parallel. A line over the size limit
/// is passed over here, never held whole.
struct Blocks<R> {
    input: R,
    /// The start of the next block's first line.
    carry: Vec<u8>,
    eof: bool,
    /// How much input a block is read with.
    size: usize,
}

/// How much input a block is read with (plus the line carried over from the last one).
const BLOCK: usize = 256 << 10;

/// The block size: [`BLOCK`], or `PREVIEW_BLOCK_BYTES` (a test sets a few bytes, so that
/// lines straddle many block ends).
fn block_size() -> usize {
    std::env::var("PREVIEW_BLOCK_BYTES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(BLOCK)
}

impl<R: Read> Blocks<R> {
    fn new(input: R, size: usize) -> Self {
        Blocks {
            input,
            carry: Vec::new(),
            eof: false,
            size,
        }
    }

    /// The next job, read into `buf` (a spare block); `None` at the end of input.
    fn next(&mut self, mut buf: Vec<u8>) -> std::io::Result<Option<Job>> {
        buf.clear();
        buf.append(&mut self.carry);
        // Where to look for a newline (what a line too long for one read left unsearched).
        let mut searched = 0;
        loop {
            if !self.eof {
                let read = (&mut self.input)
                    .take(self.size as u64)
                    .read_to_end(&mut buf)?;
                self.eof = read < self.size;
            }
            match memchr::memrchr(b'\n', &buf[searched..]) {
                Some(last) => {
                    let end = searched + last + 1;
                    self.carry.extend_from_slice(&buf[end..]);
                    buf.truncate(end);
                    return Ok(Some(Job::Block(buf)));
                }
                None if self.eof => return Ok((!buf.is_empty()).then_some(Job::Block(buf))),
                None if buf.len() > DEFAULT_MAX_LINE => {
                    let rest = self.skip_line()?;
                    return Ok(Some(Job::Overlong(buf.len() + rest)));
                }
                // A line longer than a block: read on into the same block.
                None => searched = buf.len(),
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
        let outcome = text.and_then(|text| {
            let Some(doc) = encoder.document(text)? else {
                return Ok(None);
            };
            match self {
                Requests::Single(pipeline) => pipeline.request(&doc).map(|r| Some(Some(r))),
                Requests::Bulk(writer) => writer.push(&doc).map(Some),
            }
        });
        self.report(outcome, sink)
    }

    /// Writes and reports the outcomes of an encoded job.
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

/// Where the threads read their jobs from, one at a time and in input order.
enum Source<R> {
    /// Blocks of raw lines, split and checked by the thread that encodes them.
    Blocks(Blocks<R>),
    /// Lines read (and passed through the rtid memory) by the thread that reads them: what a
    /// line teaches the memory must be known before the next line is read.
    Lines(Lines<BufReader<R>>),
}

impl<R: Read> Source<R> {
    /// The next job, read into the thread's spare buffers; `None` at the end of input.
    fn next(
        &mut self,
        memory: Option<&RtidMemory>,
        spare: &mut Spare,
    ) -> std::io::Result<Option<Job>> {
        match self {
            Source::Blocks(blocks) => blocks.next(std::mem::take(&mut spare.block)),
            Source::Lines(lines) => {
                let mut chunk = std::mem::take(&mut spare.chunk);
                chunk.clear();
                while chunk.spans.len() < CHUNK {
                    let Some(line) = lines.next_line()? else {
                        break;
                    };
                    let text = line.text.map(|t| remembered(memory, t));
                    chunk.push(text.as_deref().map_err(Clone::clone));
                }
                Ok((!chunk.spans.is_empty()).then_some(Job::Lines(chunk)))
            }
        }
    }
}

/// A thread's buffers for its next job, kept from one job to the next.
#[derive(Default)]
struct Spare {
    block: Vec<u8>,
    chunk: Chunk,
    outcomes: Outcomes,
}

impl Spare {
    /// Takes back a reported job's buffers.
    fn keep(&mut self, job: Job, outcomes: Outcomes) {
        match job {
            Job::Block(block) => self.block = block,
            Job::Lines(chunk) => self.chunk = chunk,
            Job::Overlong(_) => {}
        }
        self.outcomes = outcomes;
    }
}

/// The input, read by one thread at a time.
struct Input<R> {
    source: Source<R>,
    /// The number of the next job read.
    next: u64,
    done: bool,
}

/// The reporting side: jobs are reported in input order by whichever thread finishes the
/// next one (and then the ones that were waiting for it).
struct Report<'p, W: Write> {
    requests: Requests<'p>,
    sink: Sink<W>,
    /// The number of the next job to report.
    next: u64,
    /// Jobs encoded before an earlier one, and their outcomes.
    waiting: std::collections::BTreeMap<u64, (Job, Outcomes)>,
    /// Buffers of the waiting jobs once reported, for threads that handed theirs over.
    spares: Vec<(Job, Outcomes)>,
}

/// What the threads share.
struct Shared<'p, R, W: Write> {
    input: Mutex<Input<R>>,
    report: Mutex<Report<'p, W>>,
    /// Signalled when a job is reported (or the run stops).
    reported: Condvar,
    /// Set when a thread fails: the others stop.
    stop: AtomicBool,
    error: Mutex<Option<String>>,
    /// Jobs out at once (read and not yet reported) at most, which bounds memory.
    in_flight_limit: u64,
}

impl<R, W: Write> Shared<'_, R, W> {
    /// Stops every thread, keeping the first error.
    fn fail(&self, e: String) {
        if let Ok(mut error) = self.error.lock() {
            error.get_or_insert(e);
        }
        self.stop.store(true, Ordering::SeqCst);
        // Taken so that no thread misses the signal between its check and its wait.
        drop(self.report.lock());
        self.reported.notify_all();
    }
}

/// Stops the other threads if this one panics.
struct StopOnPanic<'s, 'p, R, W: Write>(&'s Shared<'p, R, W>);

impl<R, W: Write> Drop for StopOnPanic<'_, '_, R, W> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("a thread panicked".to_owned());
        }
    }
}

/// One of the threads: reads the next job (the input is read in order, one thread at a time),
/// encodes it, and reports it if it is the next in input order; otherwise leaves it for the
/// thread whose job comes before it. Each thread reads, splits and encodes in its own
/// buffers, so a line and its batch stay on one core (and in its cache) until reported.
fn work<R: Read, W: Write>(
    shared: &Shared<'_, R, W>,
    encoder: &Encoder,
    memory: Option<&RtidMemory>,
) -> Result<(), String> {
    let _guard = StopOnPanic(shared);
    let mut spare = Spare::default();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (seq, job) = {
            let mut input = shared.input.lock().map_err(|_| "poisoned")?;
            if input.done {
                return Ok(());
            }
            let seq = input.next;
            // Wait for room: while one thread is held up, the others cannot run ahead
            // without bound. (The job that frees room is being encoded by a thread that
            // needs only the report lock to report it.)
            {
                let mut report = shared.report.lock().map_err(|_| "poisoned")?;
                while seq >= report.next + shared.in_flight_limit {
                    if shared.stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    report = shared.reported.wait(report).map_err(|_| "poisoned")?;
                }
            }
            match input.source.next(memory, &mut spare) {
                Ok(Some(job)) => {
                    input.next += 1;
                    (seq, job)
                }
                Ok(None) => {
                    input.done = true;
                    return Ok(());
                }
                Err(e) => {
                    input.done = true;
                    return Err(format!("read error: {e}"));
                }
            }
        };
        let mut outcomes = std::mem::take(&mut spare.outcomes);
        encoder.encode_job(&job, &mut outcomes);
        let mut report = shared.report.lock().map_err(|_| "poisoned")?;
        if report.next != seq {
            report.waiting.insert(seq, (job, outcomes));
            if let Some((job, outcomes)) = report.spares.pop() {
                spare.keep(job, outcomes);
            }
            continue;
        }
        let report = &mut *report;
        let written = report.requests.encoded(&outcomes, &mut report.sink);
        spare.keep(job, outcomes);
        written.map_err(|e| e.to_string())?;
        report.next += 1;
        while let Some((job, outcomes)) = report.waiting.remove(&report.next) {
            let written = report.requests.encoded(&outcomes, &mut report.sink);
            report.spares.push((job, outcomes));
            written.map_err(|e| e.to_string())?;
            report.next += 1;
        }
        shared.reported.notify_all();
    }
}

/// `--threads N` above 1: N threads (this one among them) each read a job, encode it and
/// report it in input order, until the input ends. Returns the tally.
fn threaded<R: Read + Send, W: Write + Send>(
    encoder: &Encoder,
    memory: Option<&RtidMemory>,
    source: Source<R>,
    requests: Requests<'_>,
    sink: Sink<W>,
    threads: usize,
) -> Result<Tally, String> {
    let shared = Shared {
        input: Mutex::new(Input {
            source,
            next: 0,
            done: false,
        }),
        report: Mutex::new(Report {
            requests,
            sink,
            next: 0,
            waiting: Default::default(),
            spares: Vec::new(),
        }),
        reported: Condvar::new(),
        stop: AtomicBool::new(false),
        error: Mutex::new(None),
        in_flight_limit: 4 * threads as u64,
    };
    std::thread::scope(|scope| {
        let shared = &shared;
        for _ in 1..threads {
            scope.spawn(move || {
                if let Err(e) = work(shared, encoder, memory) {
                    shared.fail(e);
                }
            });
        }
        if let Err(e) = work(shared, encoder, memory) {
            shared.fail(e);
        }
    });
    if let Some(e) = shared.error.into_inner().map_err(|_| "poisoned")? {
        return Err(e);
    }
    let input = shared.input.into_inner().map_err(|_| "poisoned")?;
    let report = shared.report.into_inner().map_err(|_| "poisoned")?;
    if report.next != input.next || !report.waiting.is_empty() {
        return Err("a job was not reported".to_owned());
    }
    let Report {
        requests, mut sink, ..
    } = report;
    requests.finish(&mut sink).map_err(|e| e.to_string())?;
    sink.out.flush().map_err(|e| e.to_string())?;
    Ok(sink.tally)
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
    let input: Box<dyn Read + Send> = match &args.file {
        Some(f) => Box::new(std::fs::File::open(f).map_err(|e| format!("cannot open {f}: {e}"))?),
        None => Box::new(std::io::stdin()),
    };
    let encoder = Encoder { pipeline, trigger };
    let started = Instant::now();
    let tally = if args.threads == 1 {
        let mut sink = Sink {
            quiet: args.quiet,
            out: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock()),
            tally: Tally::default(),
        };
        let mut requests = Requests::new(&encoder.pipeline, args.batch);
        // Each batch is written straight into the body that carries it.
        let mut lines = Lines::new(BufReader::with_capacity(1 << 20, input));
        while let Some(line) = lines.next_line().map_err(|e| format!("read error: {e}"))? {
            let text = line.text.map(|t| remembered(memory, t));
            requests
                .line(&encoder, text.as_deref().map_err(Clone::clone), &mut sink)
                .map_err(|e| e.to_string())?;
        }
        requests.finish(&mut sink).map_err(|e| e.to_string())?;
        sink.out.flush().map_err(|e| e.to_string())?;
        sink.tally
    } else {
        let source = match memory {
            Some(_) => Source::Lines(Lines::new(BufReader::with_capacity(1 << 20, input))),
            None => Source::Blocks(Blocks::new(input, block_size())),
        };
        let sink = Sink {
            quiet: args.quiet,
            // Not locked for the run: whichever thread reports writes.
            out: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()),
            tally: Tally::default(),
        };
        let requests = Requests::new(&encoder.pipeline, args.batch);
        threaded(&encoder, memory, source, requests, sink, args.threads)?
    };
    let secs = started.elapsed().as_secs_f64();
    let t = &tally;
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
