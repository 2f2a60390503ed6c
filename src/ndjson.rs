//! Reading NDJSON event streams (one Segment event per line) with bounded memory: a line over
//! the size limit is skipped to its end and reported, never buffered whole, and a bad line never
//! stops the lines after it.

use crate::error::{Error, EventError};
use std::io::BufRead;

/// The longest line accepted by default: 1 MiB (a Rokt batch may not exceed 128 KB anyway).
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The line as text, or where it stops being UTF-8. Checked with SIMD (`simdutf8`): every
/// byte of the input passes through here, and it is several times faster than the standard
/// check on ASCII; the standard one finds the position of an error.
fn utf8(line: &[u8]) -> Result<&str, Error> {
    simdutf8::basic::from_utf8(line).or_else(|_| {
        std::str::from_utf8(line).map_err(|e| Error::from(EventError::new_utf8(e.valid_up_to())))
    })
}

/// One non-blank input line: its index among the non-blank lines and its bytes, or why it
/// cannot be an event (too long, not UTF-8).
pub struct Line<'b> {
    /// Position among the non-blank lines, from 0.
    pub index: u64,
    /// The trimmed line, or the reason it was refused.
    pub text: Result<&'b str, Error>,
}

impl std::fmt::Debug for Line<'_> {
    /// Shows the line's length, never its text: events carry personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Len(usize);
        impl std::fmt::Debug for Len {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        f.debug_struct("Line")
            .field("index", &self.index)
            .field("text", &self.text.as_ref().map(|t| Len(t.len())))
            .finish()
    }
}

/// Reads NDJSON lines from any buffered reader. A line the reader's buffer holds whole is lent
/// from there; one that straddles its end is copied into a buffer reused for each such line.
///
/// ```
/// use rokt_capi::ndjson::Lines;
/// let input = "{\"a\":1}\n\n\u{FF}\n{\"b\":2}\n".as_bytes();
/// let mut lines = Lines::new(input);
/// let mut seen = Vec::new();
/// while let Some(line) = lines.next_line().unwrap() {
///     seen.push((line.index, line.text.is_ok()));
/// }
/// assert_eq!(seen, [(0, true), (1, true), (2, true)]);
/// ```
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    max_line: usize,
    index: u64,
    /// Bytes of the reader's buffer the last line was lent from, consumed on the next call.
    lent: usize,
}

impl<R: BufRead> Lines<R> {
    /// Lines of at most [`DEFAULT_MAX_LINE`] bytes.
    pub fn new(reader: R) -> Self {
        Self::with_max_line(reader, DEFAULT_MAX_LINE)
    }

    /// Lines of at most `max_line` bytes, not counting the `\n` that ends them (a `\r` before
    /// it counts); longer lines are reported as too large. `usize::MAX` means no limit.
    pub fn with_max_line(reader: R, max_line: usize) -> Self {
        Lines {
            reader,
            buf: Vec::with_capacity(4096),
            max_line,
            index: 0,
            lent: 0,
        }
    }

    /// The next non-blank line, `None` at the end of input. I/O errors end the stream.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        self.reader.consume(std::mem::take(&mut self.lent));
        // A line wholly inside the reader's buffer is lent from there, not copied.
        while let Some((newline, range)) = self.lendable() {
            let Some(range) = range else {
                // A blank line.
                self.reader.consume(newline + 1);
                continue;
            };
            // The buffer again (no read: the line is in it), to lend it out.
            let available = self.reader.fill_buf()?;
            self.lent = newline + 1;
            let index = self.index;
            self.index += 1;
            let text = utf8(&available[range]);
            return Ok(Some(Line { index, text }));
        }
        let range = loop {
            self.buf.clear();
            let (read, overflow) = self.read_bounded()?;
            if read == 0 {
                return Ok(None);
            }
            if overflow {
                let index = self.index;
                self.index += 1;
                let limit = self.max_line;
                return Ok(Some(Line {
                    index,
                    text: Err(Error::TooLarge { bytes: read, limit }),
                }));
            }
            if let Some(range) = trimmed(&self.buf) {
                break range;
            }
        };
        let index = self.index;
        self.index += 1;
        let text = utf8(&self.buf[range]);
        Ok(Some(Line { index, text }))
    }

    /// Where the next line ends in the reader's buffer and its trimmed text (`None` when it
    /// is blank), when the buffer holds all of it within the size limit.
    fn lendable(&mut self) -> Option<(usize, Option<std::ops::Range<usize>>)> {
        let available = self.reader.fill_buf().ok()?;
        let newline = memchr::memchr(b'\n', available).filter(|&i| i <= self.max_line)?;
        Some((newline, trimmed(&available[..newline])))
    }

    /// Reads up to the next newline, keeping at most `max_line` bytes. Returns the bytes read
    /// and whether the line was longer than the limit.
    fn read_bounded(&mut self) -> std::io::Result<(usize, bool)> {
        let mut total = 0;
        let mut overflow = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok((total, overflow));
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            let n = chunk.len();
            if !overflow {
                // The limit counts the line's bytes without its newline, however the line ends
                // (and `usize::MAX` means no limit, without overflowing).
                let kept = self.buf.len().saturating_add(n - usize::from(done));
                if kept > self.max_line {
                    overflow = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            total += n;
            self.reader.consume(n);
            if done {
                return Ok((total, overflow));
            }
        }
    }
}

/// Where `line` is once trimmed of ASCII whitespace; `None` when it is blank.
fn trimmed(line: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace())?;
    Some(start..end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<(u64, Result<String, String>)> {
        drain(Lines::with_max_line(input, max))
    }

    /// Every line, with its text or its error's message.
    fn drain<R: BufRead>(mut lines: Lines<R>) -> Vec<(u64, Result<String, String>)> {
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push((
                l.index,
                l.text.map(str::to_owned).map_err(|e| e.to_string()),
            ));
        }
        out
    }

    #[test]
    fn long_lines_are_reported_and_skipped() {
        let mut input = b"{\"a\":1}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend(b"\n{\"b\":2}");
        let got = collect(&input, 50);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].1.as_deref(), Ok("{\"a\":1}"));
        assert!(
            got[1]
                .1
                .as_ref()
                .is_err_and(|e| e.contains("over the limit"))
        );
        assert_eq!(got[2].1.as_deref(), Ok("{\"b\":2}"));
    }

    #[test]
    fn non_utf8_is_reported() {
        let got = collect(b"\xff\xfe\n{}\n", 100);
        assert!(got[0].1.as_ref().is_err_and(|e| e.contains("UTF-8")));
        assert_eq!(got[1].1.as_deref(), Ok("{}"));
    }

    #[test]
    fn debug_hides_the_text() {
        let mut lines = Lines::new(&b"{\"email\":\"jane@example.com\"}\n"[..]);
        let line = lines.next_line().unwrap().unwrap();
        let printed = format!("{line:?}");
        assert!(!printed.contains("jane"), "{printed}");
        assert!(printed.contains("28 bytes"), "{printed}");
    }

    #[test]
    fn crlf_and_blank_lines() {
        let got = collect(b"{}\r\n\r\n  \n{}", 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, 1);
    }
    /// The same lines, whatever the reader's buffer size: lines inside the buffer are lent
    /// from it, lines across its end are copied, and both give the same text and errors.
    #[test]
    fn lines_are_the_same_at_every_buffer_size() {
        let input: &[u8] =
            b"{\"a\":1}\n\n  \r\n {\"b\":\"\xc3\xa9\"} \r\n\xff\xfe\n0123456789abcdef\n\t\n{}\n x";
        for max in [4, 8, 16, usize::MAX] {
            let expected = collect(input, max);
            for capacity in 1..=input.len() + 1 {
                let reader = std::io::BufReader::with_capacity(capacity, input);
                let got = drain(Lines::with_max_line(reader, max));
                assert_eq!(got, expected, "capacity {capacity}, max {max}");
            }
        }
        assert_eq!(collect(input, usize::MAX).len(), 6);
    }
}
