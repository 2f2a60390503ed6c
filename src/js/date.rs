//! JavaScript's `Date.parse`, as V8 (Node 20) reads a string in a process running with `TZ=UTC`.
//!
//! The reference (Segment's destination) turns an event's timestamp into milliseconds with
//! `new Date(s)`, so a string it can read must read the same here, and one it cannot (NaN: it
//! would send `null`) must be refused.
//! V8 does not stop at the ECMAScript date-time format: after an ISO-shaped prefix it falls back to
//! a permissive "legacy" reader (`March 4, 2026`, `3/4/99 10:00 PM EST`, `Date#toString` output),
//! and its quirks are part of what the reference accepts. This module follows V8's own parser
//! (`src/date/dateparser*.{h,cc}`) structure for structure — a tokenizer, an ISO phase, a legacy
//! phase that fills day, time and zone composers, and a composition step — rather than describing
//! the accepted language some other way, because only the same structure gives the same answers
//! on the odd inputs.
//!
//! Every step is integer arithmetic on values V8 also holds as integers, so the result is exact;
//! nothing here allocates.

#[cfg(test)]
mod tests;

/// The largest time value a JavaScript `Date` holds, in milliseconds either side of the epoch
/// (100,000,000 days).
const MAX_TIME_MS: i64 = 8_640_000_000_000_000;

/// A Unix-milliseconds timestamp given as a JavaScript number, as `new Date(n)` takes it: whole
/// milliseconds, truncated toward zero, when finite and within the range a `Date` holds; `None`
/// where the `Date` would be invalid.
pub(crate) fn from_number(n: f64) -> Option<i64> {
    // 8.64e15 < 2^53 is exact as an f64, so the comparison is exact; the cast cannot saturate
    // because the value is in range.
    (n.is_finite() && n.abs() <= MAX_TIME_MS as f64).then(|| n.trunc() as i64)
}

/// `Date.parse(s)` in milliseconds since the Unix epoch, as V8's `Date.parse` reads it with the
/// local time zone being UTC; `None` where it gives NaN (an unreadable string, or an instant beyond
/// ±8.64e15 ms).
pub(crate) fn parse(s: &str) -> Option<i64> {
    common_utc(s).or_else(|| parse_full(s))
}

/// [`parse`] without the shortcut for the common shape: V8's reader, whole.
fn parse_full(s: &str) -> Option<i64> {
    let mut scanner = Scanner::new(s);
    let mut day = DayComposer::default();
    let mut time = TimeComposer::default();
    let mut tz = TimeZoneComposer::default();

    // First the ISO form, as far as it goes; whatever it cannot take is handed to the legacy
    // reader, starting at the token where it stopped.
    let first = iso(&mut scanner, &mut day, &mut time, &mut tz)?;
    let mut has_read_number = !day.is_empty();
    let mut token = first;
    while token != Token::End {
        match token {
            Token::Number { value: n, .. } => {
                has_read_number = true;
                if scanner.skip_symbol(b':') {
                    if scanner.skip_symbol(b':') {
                        // `n::` is an hour with zero minutes, and only as the first time field.
                        if !time.is_empty() {
                            return None;
                        }
                        time.add(n);
                        time.add(0);
                    } else {
                        if !time.add(n) {
                            return None;
                        }
                        if scanner.peek().is_symbol(b'.') {
                            scanner.next();
                        }
                    }
                } else if scanner.skip_symbol(b'.') && time.is_expecting(n) {
                    // `10:20.30`-style: the number before the dot is a time field and the
                    // one after it the milliseconds. V8 ignores whether the final add fits.
                    time.add(n);
                    let Token::Number { value, len } = scanner.peek() else {
                        return None;
                    };
                    scanner.next();
                    time.add_final(milliseconds(value, len));
                } else if tz.is_expecting(n) {
                    tz.minute = Some(n);
                } else if time.is_expecting(n) {
                    time.add_final(n);
                    // A time finished this way must be followed by the end, a space, `z` or a
                    // sign (the start of an offset).
                    let next = scanner.peek();
                    if !matches!(next, Token::End | Token::Space)
                        && !next.is_keyword_z()
                        && !next.is_sign()
                    {
                        return None;
                    }
                } else {
                    if !day.add(n) {
                        return None;
                    }
                    scanner.skip_symbol(b'-');
                }
            }
            Token::Word { word, .. } => match word {
                Word::AmPm(offset) if !time.is_empty() => time.hour_offset = Some(offset),
                Word::Month(month) => {
                    day.named_month = Some(month);
                    scanner.skip_symbol(b'-');
                }
                Word::Zone(hours) if has_read_number => tz.set(hours),
                _ => {
                    // Words that mean nothing are skipped only before the first number, and
                    // only when something separates them from it.
                    if has_read_number || matches!(scanner.peek(), Token::Number { .. }) {
                        return None;
                    }
                }
            },
            Token::Symbol(sign @ (b'+' | b'-')) if tz.is_utc() || !time.is_empty() => {
                // An offset after a time or a zone word: `+hh`, `+hhmm` or `+hh:` (minutes later).
                tz.sign = Some(if sign == b'+' { 1 } else { -1 });
                let (n, len) = match scanner.peek() {
                    Token::Number { value, len } => {
                        scanner.next();
                        (value, len)
                    }
                    _ => (0, 0),
                };
                has_read_number = true;
                if scanner.peek().is_symbol(b':') {
                    tz.hour = Some(n);
                    tz.minute = None;
                } else if len == 1 || len == 2 {
                    tz.hour = Some(n);
                    tz.minute = Some(0);
                } else if len == 3 || len == 4 {
                    tz.hour = Some(n / 100);
                    tz.minute = Some(n % 100);
                } else {
                    return None;
                }
            }
            Token::Symbol(b'+' | b'-' | b')') if has_read_number => return None,
            _ => {}
        }
        token = scanner.next();
    }

    let (year, month, mday) = day.write()?;
    let (hour, minute, second, ms) = time.write()?;
    let offset_s = tz.write()?;
    compose(year, month, mday, hour, minute, second, ms, offset_s)
}

/// The ISO phase: `[+-YY]YYYY[-MM[-DD]]`, then either the end or
/// `THH:mm[:ss[.f…]][Z|±hh:mm|±hhmm]` and the end. Returns the first token it did not take (the
/// end when it took everything), or `None` when a time part started with `T` is malformed, which
/// nothing can rescue.
fn iso(
    scanner: &mut Scanner<'_>,
    day: &mut DayComposer,
    time: &mut TimeComposer,
    tz: &mut TimeZoneComposer,
) -> Option<Token> {
    let fixed = |token: Token, digits: usize| match token {
        Token::Number { value, len } if len == digits => Some(value),
        _ => None,
    };

    if scanner.peek().is_sign() {
        // The sign stays the first unhandled token when no extended year follows.
        let sign = scanner.next();
        let Some(year) = fixed(scanner.peek(), 6) else {
            return Some(sign);
        };
        scanner.next();
        // `-000000` is refused as a year; its digits are consumed all the same, so the legacy
        // reader carries on after them.
        if sign == Token::Symbol(b'-') && year == 0 {
            return Some(sign);
        }
        day.add(if sign == Token::Symbol(b'-') {
            -year
        } else {
            year
        });
    } else if let Some(year) = fixed(scanner.peek(), 4) {
        scanner.next();
        day.add(year);
    } else {
        return Some(scanner.next());
    }
    if scanner.skip_symbol(b'-') {
        match fixed(scanner.peek(), 2) {
            Some(month) if (1..=12).contains(&month) => {
                scanner.next();
                day.add(month);
            }
            _ => return Some(scanner.next()),
        }
        if scanner.skip_symbol(b'-') {
            match fixed(scanner.peek(), 2) {
                Some(mday) if (1..=31).contains(&mday) => {
                    scanner.next();
                    day.add(mday);
                }
                _ => return Some(scanner.next()),
            }
        }
    }

    if !matches!(scanner.peek(), Token::Word { word: Word::T, .. }) {
        if scanner.peek() != Token::End {
            return Some(scanner.next());
        }
    } else {
        scanner.next();
        let hour = fixed(scanner.peek(), 2).filter(|h| (0..=24).contains(h))?;
        scanner.next();
        time.add(hour);
        // 24:00, 24:00:00 and 24:00:00.000 (any zero digits) are the next midnight; no other
        // time may start with 24.
        let after_24 = |v: i32| hour == 24 && v > 0;
        if !scanner.skip_symbol(b':') {
            return None;
        }
        let minute = fixed(scanner.peek(), 2).filter(|&m| is_minute(m) && !after_24(m))?;
        scanner.next();
        time.add(minute);
        if scanner.skip_symbol(b':') {
            let second = fixed(scanner.peek(), 2).filter(|&s| is_minute(s) && !after_24(s))?;
            scanner.next();
            time.add(second);
            if scanner.skip_symbol(b'.') {
                let Token::Number { value, len } = scanner.peek() else {
                    return None;
                };
                if after_24(value) {
                    return None;
                }
                scanner.next();
                // Any number of fraction digits, of which the first three count.
                time.add(milliseconds(value, len));
            }
        }
        if scanner.peek().is_keyword_z() {
            scanner.next();
            tz.set(0);
        } else if scanner.peek().is_sign() {
            let sign = scanner.next();
            tz.sign = Some(if sign == Token::Symbol(b'+') { 1 } else { -1 });
            if let Some(hhmm) = fixed(scanner.peek(), 4) {
                // V8 also takes `±hhmm`, which ECMAScript's format does not have.
                scanner.next();
                let (h, m) = (hhmm / 100, hhmm % 100);
                if !is_hour(h) || !is_minute(m) {
                    return None;
                }
                tz.hour = Some(h);
                tz.minute = Some(m);
            } else {
                let h = fixed(scanner.peek(), 2).filter(|&h| is_hour(h))?;
                scanner.next();
                tz.hour = Some(h);
                if !scanner.skip_symbol(b':') {
                    return None;
                }
                let m = fixed(scanner.peek(), 2).filter(|&m| is_minute(m))?;
                scanner.next();
                tz.minute = Some(m);
            }
        }
        if scanner.peek() != Token::End {
            return None;
        }
    }
    // A date-only form is UTC; a date-time without an offset is local time, which is UTC here
    // too, so both leave the zone as it is.
    day.iso = true;
    Some(Token::End)
}

/// Milliseconds from the digits after a dot: the first three significant places, told from the
/// number's value (its first 9 digits after leading zeros) and its length, as V8 works them out.
fn milliseconds(value: i32, len: usize) -> i32 {
    match len {
        1 => value * 100,
        2 => value * 10,
        3 => value,
        _ => value / 10_i32.pow(len.min(9) as u32 - 3),
    }
}

fn is_hour(h: i32) -> bool {
    (0..=23).contains(&h)
}

fn is_minute(m: i32) -> bool {
    (0..=59).contains(&m)
}

/// The instant the parsed fields name: a proleptic Gregorian date (days past the month's end roll
/// into the next), the time of day, minus the offset; `None` beyond the range a `Date` holds.
#[allow(clippy::too_many_arguments)] // The fields of one date, named as V8 names them.
fn compose(
    year: i32,
    month: i32,
    mday: i32,
    hour: i32,
    minute: i32,
    second: i32,
    ms: i32,
    offset_s: i32,
) -> Option<i64> {
    // V8's day arithmetic refuses years beyond a million either way; such dates are far outside
    // the representable range anyway, and refusing them first keeps the sums below in i64.
    if !(-1_000_000..=1_000_000).contains(&year) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month as u32) + i64::from(mday) - 1;
    let time = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1000
        + i64::from(ms);
    let at = days * 86_400_000 + time - i64::from(offset_s) * 1000;
    (-MAX_TIME_MS..=MAX_TIME_MS).contains(&at).then_some(at)
}

/// The shape nearly every Segment timestamp has, `YYYY-MM-DDTHH:MM:SS[.mmm]Z`, read with digit
/// arithmetic when every field is in its ordinary range; anything else (other lengths, a day past
/// the month's end, `24:00`, offsets) is left to the full reader. The node differential in the
/// tests holds both to `Date.parse`.
#[inline]
pub(super) fn common_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let with_ms = match b.len() {
        20 => false,
        24 => true,
        _ => return None,
    };
    let at = |i: usize, c: u8| b[i] == c;
    let shaped = at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':');
    if !shaped || !at(b.len() - 1, b'Z') || (with_ms && !at(19, b'.')) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let milli = if with_ms { num(20..23)? } else { 0 };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if hour > 23 || minute > 59 || second > 59 || day == 0 || day > month_days {
        return None;
    }
    let days = days_from_civil(i64::from(year), month) + i64::from(day) - 1;
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1000 + i64::from(milli))
}

/// Days from 1970-01-01 to the first of `month` (1–12) in `year`, proleptic Gregorian (year 0 is
/// a leap year), after Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Up to three date numbers and a month name, as the legacy reader collects them before knowing
/// which is the year.
#[derive(Default)]
struct DayComposer {
    comp: [i32; 3],
    len: usize,
    named_month: Option<i32>,
    /// Set when the ISO phase read the whole string: its numbers are year, month, day, and a year
    /// below 100 is taken as it is.
    iso: bool,
}

impl DayComposer {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn add(&mut self, n: i32) -> bool {
        if self.len == self.comp.len() {
            return false;
        }
        self.comp[self.len] = n;
        self.len += 1;
        true
    }

    /// Year, month (1–12) and day of month (1–31), deciding which number is which.
    fn write(mut self) -> Option<(i32, i32, i32)> {
        if self.len == 0 {
            return None;
        }
        // Missing month and day are 1.
        self.comp[self.len..].fill(1);
        let [a, b, c] = self.comp;
        let is_day = |n: i32| (1..=31).contains(&n);
        let (mut year, month, mday) = match self.named_month {
            // A first number that cannot be a day is the year: year-month-day; otherwise
            // month-day-year, the American order.
            None if self.iso || !is_day(a) => (a, b, c),
            None => (c, a, b),
            Some(month) if !is_day(a) => (a, month, b),
            Some(month) => (b, month, a),
        };
        if !self.iso {
            // Two-digit years, as browsers have always read them.
            if (0..=49).contains(&year) {
                year += 2000;
            } else if (50..=99).contains(&year) {
                year += 1900;
            }
        }
        ((1..=12).contains(&month) && is_day(mday)).then_some((year, month, mday))
    }
}

/// Hour, minute, second and millisecond as they are read, with the 12-hour clock's am/pm.
#[derive(Default)]
struct TimeComposer {
    comp: [i32; 4],
    len: usize,
    /// 0 for am, 12 for pm.
    hour_offset: Option<i32>,
}

impl TimeComposer {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `n` fits the next field, after the hour.
    fn is_expecting(&self, n: i32) -> bool {
        match self.len {
            1 | 2 => is_minute(n),
            3 => (0..=999).contains(&n),
            _ => false,
        }
    }

    fn add(&mut self, n: i32) -> bool {
        if self.len == self.comp.len() {
            return false;
        }
        self.comp[self.len] = n;
        self.len += 1;
        true
    }

    /// Adds `n` and closes the time: the fields after it are 0.
    fn add_final(&mut self, n: i32) -> bool {
        if !self.add(n) {
            return false;
        }
        self.comp[self.len..].fill(0);
        self.len = self.comp.len();
        true
    }

    fn write(mut self) -> Option<(i32, i32, i32, i32)> {
        self.comp[self.len..].fill(0);
        let [mut hour, minute, second, ms] = self.comp;
        if let Some(offset) = self.hour_offset {
            if !(0..=12).contains(&hour) {
                return None;
            }
            hour = hour % 12 + offset;
        }
        let in_range =
            is_hour(hour) && is_minute(minute) && is_minute(second) && (0..=999).contains(&ms);
        // 24:00:00.000 is the end of the day, the next day's midnight.
        (in_range || (hour == 24 && minute == 0 && second == 0 && ms == 0))
            .then_some((hour, minute, second, ms))
    }
}

/// The offset from UTC, built from a zone word or a sign and digits.
#[derive(Default)]
struct TimeZoneComposer {
    sign: Option<i32>,
    hour: Option<i32>,
    minute: Option<i32>,
}

impl TimeZoneComposer {
    /// A whole-hour offset, from a zone word or `Z`.
    fn set(&mut self, hours: i32) {
        self.sign = Some(if hours < 0 { -1 } else { 1 });
        self.hour = Some(hours.abs());
        self.minute = Some(0);
    }

    /// Whether `n` is the minutes of an offset read as `±hh:`.
    fn is_expecting(&self, n: i32) -> bool {
        self.hour.is_some() && self.minute.is_none() && is_minute(n)
    }

    fn is_utc(&self) -> bool {
        self.hour == Some(0) && self.minute == Some(0)
    }

    /// The offset in seconds east of UTC (0 when none was given: local time is UTC).
    fn write(self) -> Option<i32> {
        let Some(sign) = self.sign else {
            return Some(0);
        };
        // V8 sums in 32-bit unsigned arithmetic and refuses a total beyond its small-integer
        // range; the wrap-around is part of what it accepts (`+1193047:` is a small offset).
        let hour = self.hour.unwrap_or(0) as u32;
        let minute = self.minute.unwrap_or(0) as u32;
        let total = hour
            .wrapping_mul(3600)
            .wrapping_add(minute.wrapping_mul(60));
        let total = i32::try_from(total).ok()?;
        Some(sign * total)
    }
}

/// A token of the date grammar.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    /// A run of ASCII digits: the value of its first 9 digits after leading zeros, and the
    /// length of the whole run.
    Number { value: i32, len: usize },
    /// `:` `-` `+` `.` `)`.
    Symbol(u8),
    /// A run of characters from `A` (U+0041) up that are not whitespace; `len` in characters.
    Word { word: Word, len: usize },
    /// One whitespace character.
    Space,
    /// Anything else, including a parenthesized comment.
    Unknown,
    /// The end of the string, or a NUL character.
    End,
}

impl Token {
    fn is_symbol(self, c: u8) -> bool {
        self == Token::Symbol(c)
    }

    fn is_sign(self) -> bool {
        matches!(self, Token::Symbol(b'+' | b'-'))
    }

    /// The word `z` alone (not `ut`, `utc` or `gmt`, which are also UTC).
    fn is_keyword_z(self) -> bool {
        self == (Token::Word {
            word: Word::Zone(0),
            len: 1,
        })
    }
}

/// What a word means, judged by its first three letters, ASCII case-insensitive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Word {
    /// A month name or any longer word starting with one (`Mar`, `March`, `Marzipan`): 1–12.
    Month(i32),
    /// `am` (0) or `pm` (12).
    AmPm(i32),
    /// A zone, its offset in hours: `ut`, `utc`, `gmt`, `z` and the North American ones.
    Zone(i32),
    /// `t`, the ISO date-time separator.
    T,
    /// Anything else.
    Other,
}

impl Word {
    /// The meaning of a word whose first three characters, lowercased, are `prefix` (NUL-padded)
    /// and which is `len` characters long. Only month names may be longer than what they match.
    fn lookup(prefix: [u8; 3], len: usize) -> Word {
        const MONTHS: [&[u8; 3]; 12] = [
            b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
            b"dec",
        ];
        if let Some(i) = MONTHS.iter().position(|m| **m == prefix) {
            return Word::Month(i as i32 + 1);
        }
        if len > 3 {
            return Word::Other;
        }
        match &prefix {
            b"am\0" => Word::AmPm(0),
            b"pm\0" => Word::AmPm(12),
            b"ut\0" | b"utc" | b"z\0\0" | b"gmt" => Word::Zone(0),
            b"edt" => Word::Zone(-4),
            b"est" | b"cdt" => Word::Zone(-5),
            b"cst" | b"mdt" => Word::Zone(-6),
            b"mst" | b"pdt" => Word::Zone(-7),
            b"pst" => Word::Zone(-8),
            b"t\0\0" => Word::T,
            _ => Word::Other,
        }
    }
}

/// JavaScript's WhiteSpace set (without the line terminators).
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{B}' | '\u{C}' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}'
    )
}

/// JavaScript's WhiteSpace and LineTerminator sets: what separates tokens.
fn is_space_or_line_break(c: char) -> bool {
    is_space(c) || matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// Whether `c` continues a word: from `A` up, and not whitespace. Line separators (U+2028/9)
/// are not whitespace in this sense, so they are word characters, as in V8.
fn is_word_char(c: char) -> bool {
    c >= 'A' && !is_space(c)
}

/// Tokens with one of lookahead, over the characters of the string; NUL ends it.
struct Scanner<'a> {
    chars: std::str::Chars<'a>,
    /// The current character, `'\0'` at the end.
    ch: char,
    next: Token,
}

impl<'a> Scanner<'a> {
    fn new(s: &'a str) -> Self {
        let mut chars = s.chars();
        let ch = chars.next().unwrap_or('\0');
        let mut scanner = Scanner {
            chars,
            ch,
            next: Token::End,
        };
        scanner.next = scanner.scan();
        scanner
    }

    fn peek(&self) -> Token {
        self.next
    }

    fn next(&mut self) -> Token {
        let after = self.scan();
        std::mem::replace(&mut self.next, after)
    }

    /// Consumes the next token if it is the symbol `c`.
    fn skip_symbol(&mut self, c: u8) -> bool {
        if self.next.is_symbol(c) {
            self.next = self.scan();
            true
        } else {
            false
        }
    }

    fn bump(&mut self) {
        self.ch = self.chars.next().unwrap_or('\0');
    }

    fn scan(&mut self) -> Token {
        let c = self.ch;
        match c {
            '\0' => Token::End,
            '0'..='9' => {
                let mut value = 0i32;
                let mut len = 0usize;
                let mut significant = 0;
                while let Some(d) = self.ch.to_digit(10) {
                    // Leading zeros count towards the length but not the 9 kept digits.
                    if (d != 0 || significant > 0) && significant < 9 {
                        value = value * 10 + d as i32;
                        significant += 1;
                    }
                    len += 1;
                    self.bump();
                }
                Token::Number { value, len }
            }
            ':' | '-' | '+' | '.' | ')' => {
                self.bump();
                Token::Symbol(c as u8)
            }
            _ if is_word_char(c) => {
                let mut prefix = [0u8; 3];
                let mut len = 0usize;
                while is_word_char(self.ch) {
                    if len < 3 {
                        // A non-ASCII character matches no keyword; any non-letter byte will do.
                        prefix[len] = if self.ch.is_ascii() {
                            self.ch as u8 | 0x20
                        } else {
                            0xff
                        };
                    }
                    len += 1;
                    self.bump();
                }
                Token::Word {
                    word: Word::lookup(prefix, len),
                    len,
                }
            }
            _ if is_space_or_line_break(c) => {
                self.bump();
                Token::Space
            }
            '(' => {
                // A comment, nested, to its matching `)` or the end.
                let mut depth = 0u32;
                loop {
                    match self.ch {
                        ')' => depth -= 1,
                        '(' => depth += 1,
                        _ => {}
                    }
                    self.bump();
                    if depth == 0 || self.ch == '\0' {
                        break;
                    }
                }
                Token::Unknown
            }
            _ => {
                self.bump();
                Token::Unknown
            }
        }
    }
}
