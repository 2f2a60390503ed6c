//! A `tracing` subscriber that records everything a test binary logs, so tests can check what
//! reached the logs (and what must never reach them).
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything the binary's subscriber wrote, from every thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn buffer(&self) -> MutexGuard<'_, Vec<u8>> {
        // A test that panicked while logging must not hide the log from the others.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many bytes were written so far: a mark for [`since`](Self::since).
    pub fn len(&self) -> usize {
        self.buffer().len()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        self.since(0)
    }

    /// What was written after `mark`.
    pub fn since(&self, mark: usize) -> String {
        let all = self.buffer();
        String::from_utf8_lossy(&all[mark.min(all.len())..]).into_owned()
    }

    /// What was written after `mark`, after checking that capture works: a canary line logged
    /// now must be in it.
    pub fn checked_since(&self, mark: usize) -> String {
        let canary = format!("capture-canary-{mark}-{:?}", std::thread::current().id());
        tracing::trace!(target: "rokt_capi", "{canary}");
        let text = self.since(mark);
        assert!(text.contains(&canary), "the log capture works");
        text
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a global subscriber with `filter` (an env-filter directive
/// such as `trace` or `rokt_capi=trace`) that records spans as `spans` says, and `log` records
/// too. Global, because thread-local subscribers miss callsites that parallel tests register
/// first. Later calls return the same capture whatever they pass.
pub fn install(filter: &str, spans: FmtSpan) -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(spans)
            .with_ansi(false)
            // No timestamps: their digits can spell a personal value (a zip code such as
            // "12345" in "…10.123451Z") and fail a leak check on nothing.
            .without_time()
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("the only subscriber of this test binary");
        captured
    })
}
