//! A fast path for [`Json::parse`](super::Json::parse).
//!
//! Going through serde's `Deserializer`/`Visitor` machinery costs more than the JSON itself for
//! small events, so the common shapes are parsed here directly. The result must be exactly what
//! `serde_json::from_str::<Json>` gives (same values, same number representation, same borrowed
//! strings), so this parser only answers when it is sure: on anything invalid or unusual it
//! returns `None` and the caller asks serde_json, which then produces the value or the error.

use super::Json;
use serde_json::Number;
use std::borrow::Cow;

/// serde_json starts with a budget of 128 and fails when a container brings it to 0, so 127
/// nested containers parse and the 128th is an error. Deeper input goes to serde_json for it.
const MAX_DEPTH: u32 = 127;

/// The exact powers of ten serde_json's `f64_from_parts` uses for exponents up to 22. Every one
/// is exactly representable, so one multiplication or division rounds once, as there.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The placeholder an object member is parsed into.
// A constant, so `push` copies it from read-only data: built on the stack instead, it was
// copied with wider loads than it was stored with, which stalls.
const EMPTY_PAIR: (Cow<'static, str>, Json<'static>) = (Cow::Borrowed(""), Json::Null);

/// Below this a significand converts to f64 exactly, which the decimal fast path relies on.
const EXACT_SIGNIFICAND: u64 = 1 << 53;

/// Parses `text` as serde_json would, or returns `None` when it is invalid or outside the cases
/// this parser replicates exactly.
pub(super) fn parse(text: &str) -> Option<Json<'_>> {
    let mut p = Parser { text, depth: 0 };
    let bytes = text.as_bytes();
    let mut doc = Json::Null;
    let pos = p.value(skip_ws(bytes, 0), &mut doc)?;
    (skip_ws(bytes, pos) == bytes.len()).then_some(doc)
}

/// The parser's state between containers. The position is not in here: it is passed and
/// returned by value, so it stays in a register; as a field it was stored and reloaded around
/// every write into the document, which the compiler could not prove leaves it unchanged.
struct Parser<'a> {
    text: &'a str,
    depth: u32,
}

impl<'a> Parser<'a> {
    /// Parses the value at `pos` into `slot` (a placeholder); returns the position after it.
    // Inlined into the container loops, so scalars (most of an event) are stored straight into
    // their slot; containers stay out of line, they are the recursion.
    #[inline(always)]
    fn value(&mut self, pos: usize, slot: &mut Json<'a>) -> Option<usize> {
        let bytes = self.text.as_bytes();
        match *bytes.get(pos)? {
            b'"' => self.string(pos + 1, slot, Json::Str),
            b'{' => self.object(pos + 1, slot),
            b'[' => self.array(pos + 1, slot),
            b't' => {
                let pos = literal(bytes, pos, b"true")?;
                fill(slot, Json::Bool(true));
                Some(pos)
            }
            b'f' => {
                let pos = literal(bytes, pos, b"false")?;
                fill(slot, Json::Bool(false));
                Some(pos)
            }
            b'n' => literal(bytes, pos, b"null"),
            b'-' | b'0'..=b'9' => self.number(pos, slot),
            _ => None,
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object whose `{` is before `pos`.
    #[inline(never)]
    fn object(&mut self, pos: usize, slot: &mut Json<'a>) -> Option<usize> {
        self.enter()?;
        let bytes = self.text.as_bytes();
        let mut pos = skip_ws(bytes, pos);
        if *bytes.get(pos)? == b'}' {
            self.depth -= 1;
            fill(slot, Json::Object(Vec::new()));
            return Some(pos + 1);
        }
        // Segment objects rarely have more than eight members; sizing for that up front saves
        // the reallocations of growing from empty. The vector is built in its final place
        // rather than moved there at the end.
        fill(slot, Json::Object(Vec::with_capacity(8)));
        let Json::Object(pairs) = slot else {
            return None;
        };
        loop {
            if *bytes.get(pos)? != b'"' {
                return None;
            }
            pairs.push(EMPTY_PAIR);
            let (key, value) = pairs.last_mut()?;
            pos = skip_ws(bytes, self.string(pos + 1, key, |s| s)?);
            if *bytes.get(pos)? != b':' {
                return None;
            }
            pos = skip_ws(bytes, self.value(skip_ws(bytes, pos + 1), value)?);
            match *bytes.get(pos)? {
                b',' => pos = skip_ws(bytes, pos + 1),
                b'}' => break,
                _ => return None,
            }
        }
        self.depth -= 1;
        Some(pos + 1)
    }

    /// An array whose `[` is before `pos`.
    #[inline(never)]
    fn array(&mut self, pos: usize, slot: &mut Json<'a>) -> Option<usize> {
        self.enter()?;
        let bytes = self.text.as_bytes();
        let mut pos = skip_ws(bytes, pos);
        fill(slot, Json::Array(Vec::new()));
        let Json::Array(items) = slot else {
            return None;
        };
        if *bytes.get(pos)? != b']' {
            loop {
                items.push(Json::Null);
                pos = skip_ws(bytes, self.value(pos, items.last_mut()?)?);
                match *bytes.get(pos)? {
                    b',' => pos = skip_ws(bytes, pos + 1),
                    b']' => break,
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(pos + 1)
    }

    /// The string whose text starts at `start` (after its opening quote), stored into `slot` (a
    /// placeholder) as `wrap` makes it; returns the position after the closing quote. Borrowed
    /// when it has no escapes, as serde_json's `visit_borrowed_str`; owned otherwise, as its
    /// `visit_str`.
    // `wrap` rather than returning a `Cow`: an `Option<Cow>` is built on the stack and copied.
    #[inline(always)]
    fn string<T>(
        &self,
        start: usize,
        slot: &mut T,
        wrap: impl FnOnce(Cow<'a, str>) -> T,
    ) -> Option<usize> {
        let stop = scan(self.text.as_bytes(), start)?;
        if self.text.as_bytes()[stop] == b'"' {
            fill(slot, wrap(Cow::Borrowed(slice(self.text, start, stop)?)));
            Some(stop + 1)
        } else {
            let (text, end) = self.escaped(start, stop)?;
            fill(slot, wrap(Cow::Owned(text)));
            Some(end)
        }
    }

    /// The rest of a string from its first backslash at `at`; `start` is where its text began.
    /// Returns the text and the position after the closing quote.
    // Escapes are rare in events; kept out of line so the common path stays small.
    #[cold]
    #[inline(never)]
    fn escaped(&self, start: usize, mut at: usize) -> Option<(String, usize)> {
        let bytes = self.text.as_bytes();
        let mut out = String::with_capacity(at - start + 16);
        let mut run = start;
        loop {
            // Runs end before a quote or a backslash and restart after an ASCII escape, so the
            // slice is on char boundaries.
            out.push_str(slice(self.text, run, at)?);
            if bytes[at] == b'"' {
                return Some((out, at + 1));
            }
            let escape = *bytes.get(at + 1)?;
            at += 2;
            match escape {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let code = hex4(bytes.get(at..at + 4)?)?;
                    // `from_u32` refuses surrogates: those (paired or lone) are left to
                    // serde_json, which pairs them up or reports the error.
                    out.push(char::from_u32(code)?);
                    at += 4;
                }
                _ => return None,
            }
            run = at;
            at = scan(bytes, at)?;
        }
    }

    /// A number, replicating serde_json's `parse_integer`/`parse_number` for integers and its
    /// `f64_from_parts` for decimals whose significand is below 2^53 and whose decimal exponent
    /// is within ±22, where that computation is one exactly-rounded operation. Anything else
    /// (long significands, large exponents) is left to serde_json.
    // Out of line: numbers are a minority of an event's values, and this is long.
    #[inline(never)]
    fn number(&self, pos: usize, slot: &mut Json<'a>) -> Option<usize> {
        let b = self.text.as_bytes();
        let mut i = pos;
        let negative = b[i] == b'-';
        if negative {
            i += 1;
        }
        let mut significand: u64 = 0;
        match *b.get(i)? {
            b'0' => {
                i += 1;
                // There can be only one leading zero.
                if let Some(b'0'..=b'9') = b.get(i) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                while let Some(&c @ b'0'..=b'9') = b.get(i) {
                    // Past u64, serde_json goes to its long-integer f64 path.
                    significand = significand
                        .checked_mul(10)?
                        .checked_add(u64::from(c - b'0'))?;
                    i += 1;
                }
            }
            _ => return None,
        }
        if !matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            let n = if negative {
                // As serde_json: `-0` and values below i64::MIN become floats.
                let neg = (significand as i64).wrapping_neg();
                if neg >= 0 {
                    Number::from_f64(-(significand as f64))?
                } else {
                    Number::from(neg)
                }
            } else {
                Number::from(significand)
            };
            fill(slot, Json::Number(n));
            return Some(i);
        }

        if significand >= EXACT_SIGNIFICAND {
            return None;
        }
        let mut exponent: i32 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let fraction = i;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                significand = significand * 10 + u64::from(c - b'0');
                if significand >= EXACT_SIGNIFICAND {
                    return None;
                }
                i += 1;
            }
            if i == fraction {
                return None;
            }
            exponent = -i32::try_from(i - fraction).ok()?;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            let positive = match b.get(i) {
                Some(b'+') => {
                    i += 1;
                    true
                }
                Some(b'-') => {
                    i += 1;
                    false
                }
                _ => true,
            };
            let digits = i;
            let mut exp: i32 = 0;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                // Far outside the fast range already; stop before overflowing.
                if exp > 10_000 {
                    return None;
                }
                exp = exp * 10 + i32::from(c - b'0');
                i += 1;
            }
            if i == digits {
                return None;
            }
            exponent = if positive {
                exponent.checked_add(exp)?
            } else {
                exponent.checked_sub(exp)?
            };
        }
        let pow = *POW10.get(exponent.unsigned_abs() as usize)?;
        let mut f = significand as f64;
        if exponent >= 0 {
            f *= pow;
        } else {
            f /= pow;
        }
        fill(
            slot,
            Json::Number(Number::from_f64(if negative { -f } else { f })?),
        );
        Some(i)
    }
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// The position after `word`, which must be at `pos`.
fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    let end = pos + word.len();
    (bytes.get(pos..end)? == word).then_some(end)
}

/// `text[start..stop]`, where both ends are known to be next to ASCII.
// `str::get` was left out of line by the compiler, a call per string; `split_at_checked`
// inlines to the same two boundary checks.
#[inline(always)]
fn slice(text: &str, start: usize, stop: usize) -> Option<&str> {
    let (head, _) = text.split_at_checked(stop)?;
    Some(head.split_at_checked(start)?.1)
}

/// The index of the first `"` or `\` at or after `from`; `None` at a control character
/// (serde_json rejects those raw) or at the end of input.
///
/// Eight bytes at a time, as serde_json scans: strings in events are mostly longer than a
/// word, and most words hold nothing to stop at.
#[inline(always)]
fn scan(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // A byte's high bit in each term is set when that byte is zero (resp. below 0x20);
        // borrows can only set bits above the first true hit, so at the lowest hit every term
        // is exact.
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | control)
            & HIGH;
        if hits != 0 {
            let first = hits & hits.wrapping_neg();
            return (control & first == 0).then_some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' | b'\\' => return Some(i),
            ..0x20 => return None,
            _ => i += 1,
        }
    }
    None
}

/// Stores `value` in a placeholder the parser has just pushed (`Null`, or an empty borrowed
/// key), which has nothing to free: a plain assignment would call the drop glue for it, and
/// those calls showed in profiles.
#[inline(always)]
fn fill<T>(slot: &mut T, value: T) {
    std::mem::forget(std::mem::replace(slot, value));
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0, |acc, &d| Some((acc << 4) | char::from(d).to_digit(16)?))
}
