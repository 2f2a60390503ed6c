//! liquidjs's `date` filters: its date parsing (JavaScript's `Date`, in a UTC process as
//! Segment runs) and its `strftime`.

use super::runtime::charge;
use super::view::{Js, js_of, js_string, stringify};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use liquid_core::Runtime;
use liquid_core::error::{Error, Result};
use liquid_core::model::{Value, ValueView};

/// liquidjs's default `dateFormat`.
const DEFAULT_FORMAT: &str = "%A, %B %-e, %Y at %-l:%M %P %z";
/// JavaScript's largest time value, in milliseconds.
const MAX_TIME: f64 = 8.64e15;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A date to print: the instant, and the offset it is shown in (minutes east of UTC).
struct LiquidDate {
    millis: i64,
    offset_minutes: i64,
    /// The time-zone name `%Z` prints, when the zone has one.
    zone_name: Option<&'static str>,
    shown: NaiveDateTime,
}

impl LiquidDate {
    fn new(millis: i64, offset_minutes: i64, zone_name: Option<&'static str>) -> Option<Self> {
        let shown = DateTime::<Utc>::from_timestamp_millis(
            millis.checked_add(offset_minutes.checked_mul(60_000)?)?,
        )?
        .naive_utc();
        Some(LiquidDate {
            millis,
            offset_minutes,
            zone_name,
            shown,
        })
    }
}

/// `date: format, timezoneOffset`.
pub(super) fn date_filter(
    runtime: &dyn Runtime,
    input: &dyn ValueView,
    format: &dyn ValueView,
    format_given: bool,
    zone: &dyn ValueView,
    zone_given: bool,
) -> Result<Value> {
    let size = match js_of(input) {
        Js::Str(s) => s.len(),
        Js::Array(a) => a.size().max(0) as usize,
        _ => 0,
    };
    charge(runtime, size)?;
    let Some(date) = parse(input, zone, zone_given)? else {
        return Ok(input.to_value());
    };
    let format = if format_given && !js_of(format).is_nil() {
        stringify(format).into_owned()
    } else {
        DEFAULT_FORMAT.to_owned()
    };
    charge(runtime, format.len())?;
    Ok(Value::scalar(strftime(&date, &format)))
}

/// `date_to_string` / `date_to_long_string`.
pub(super) fn date_to_string(
    runtime: &dyn Runtime,
    input: &dyn ValueView,
    long: bool,
    kind: &dyn ValueView,
    style: &dyn ValueView,
) -> Result<Value> {
    let Some(date) = parse(input, &super::view::UNDEFINED, false)? else {
        return Ok(input.to_value());
    };
    let month = if long { "%B" } else { "%b" };
    let ordinal = matches!(js_of(kind), Js::Str(ref s) if s == "ordinal");
    let format = if ordinal {
        let d = date.shown.day();
        if matches!(js_of(style), Js::Str(ref s) if s == "US") {
            format!("{month} {d}%q, %Y")
        } else {
            format!("{d}%q {month} %Y")
        }
    } else {
        format!("%d {month} %Y")
    };
    charge(runtime, format.len())?;
    Ok(Value::scalar(strftime(&date, &format)))
}

/// liquidjs's `parseDate`, in a process whose local zone is UTC.
fn parse(v: &dyn ValueView, zone: &dyn ValueView, zone_given: bool) -> Result<Option<LiquidDate>> {
    let millis = match js_of(v) {
        Js::Undefined | Js::Null | Js::Nil => return Ok(None),
        Js::Str(s) if s == "now" || s == "today" => Some(Utc::now().timestamp_millis() as f64),
        Js::Num(n) => Some(n * 1000.0),
        Js::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<f64>().ok().map(|n| n * 1000.0)
        }
        Js::Str(s) => parse_js_date(&s),
        Js::Bool(b) => Some(f64::from(u8::from(b))),
        Js::Array(_) => parse_js_date(&js_string(v)),
        _ => None,
    };
    // TimeClip: beyond ±8.64e15 ms a date is invalid; otherwise whole milliseconds.
    let Some(millis) = millis.filter(|m| m.is_finite() && m.abs() <= MAX_TIME) else {
        return Ok(None);
    };
    let millis = millis.trunc() as i64;
    let (offset, name) = if zone_given {
        match js_of(zone) {
            // JavaScript's offsets count minutes west of UTC.
            Js::Num(n) if n.is_finite() => (-(n.trunc() as i64), None),
            Js::Str(s) => match s.as_ref() {
                "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => (0, Some("UTC")),
                other => {
                    return Err(Error::with_msg(format!(
                        "Invalid time zone specified: {other}"
                    )));
                }
            },
            _ => (0, Some("UTC")),
        }
    } else {
        (0, Some("UTC"))
    };
    Ok(LiquidDate::new(millis, offset, name))
}

/// `new Date(string)` as V8 reads it: ISO 8601 (a date alone is UTC, a date and time without
/// an offset is local time, here UTC), RFC 2822, and the common informal forms.
fn parse_js_date(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis() as f64);
    }
    if let Some(ms) = parse_iso(s) {
        return Some(ms as f64);
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.timestamp_millis() as f64);
    }
    // JavaScript ignores a weekday that does not match the date.
    if let Some((day, rest)) = s.split_once(", ") {
        if day.len() >= 3 && day.chars().all(|c| c.is_ascii_alphabetic()) {
            if let Ok(t) = DateTime::parse_from_rfc2822(rest) {
                return Some(t.timestamp_millis() as f64);
            }
        }
    }
    let s = s
        .strip_suffix(" GMT")
        .or_else(|| s.strip_suffix(" UTC"))
        .unwrap_or(s);
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%B %d, %Y %H:%M:%S",
        "%b %d, %Y %H:%M:%S",
        "%a, %d %b %Y %H:%M:%S",
        "%d %B %Y %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_millis() as f64);
        }
    }
    for format in [
        "%Y/%m/%d",
        "%m/%d/%Y",
        "%B %d, %Y",
        "%b %d, %Y",
        "%d %B %Y",
        "%d %b %Y",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(s, format) {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis() as f64);
        }
    }
    None
}

/// The ISO forms RFC 3339 does not cover: `YYYY`, `YYYY-MM`, `YYYY-MM-DD` (UTC), and date-times
/// without seconds or without an offset (local time, here UTC).
fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = num(0..4)? as i32;
    let (month, day, rest) = match b.len() {
        4 => (1, 1, ""),
        7 if b[4] == b'-' => (num(5..7)?, 1, ""),
        n if n >= 10 && b[4] == b'-' && b[7] == b'-' => (num(5..7)?, num(8..10)?, &s[10..]),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    if rest.is_empty() {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    let time = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let (clock, offset_minutes) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else if time.len() > 6 && matches!(time.as_bytes()[time.len() - 6], b'+' | b'-') {
        let (c, o) = time.split_at(time.len() - 6);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let h: i64 = o.get(1..3)?.parse().ok()?;
        let m: i64 = o.get(4..6)?.parse().ok()?;
        (c, sign * (h * 60 + m))
    } else {
        (time, 0)
    };
    let t = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveTime::parse_from_str(clock, f).ok())?;
    Some(date.and_time(t).and_utc().timestamp_millis() - offset_minutes * 60_000)
}

/// liquidjs's `strftime`: `%` then flags (`-_0^#:`), a width, an `E`/`O` modifier, and a
/// conversion; unknown conversions print as written.
fn strftime(d: &LiquidDate, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut flags = String::new();
        while j < chars.len() && "-_0^#:".contains(chars[j]) {
            flags.push(chars[j]);
            j += 1;
        }
        let mut width = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            width.push(chars[j]);
            j += 1;
        }
        if j < chars.len() && (chars[j] == 'E' || chars[j] == 'O') && j + 1 < chars.len() {
            j += 1;
        }
        // The conversion is any character but a line break (the regex's `.`).
        match chars.get(j) {
            Some(&c) if c != '\n' && c != '\r' && c != '\u{2028}' && c != '\u{2029}' => {
                let whole: String = chars[i..=j].iter().collect();
                out.push_str(&convert(d, c, &flags, &width).unwrap_or(whole));
                i = j + 1;
            }
            _ => {
                out.push('%');
                i += 1;
            }
        }
    }
    out
}

fn convert(d: &LiquidDate, c: char, flags: &str, width: &str) -> Option<String> {
    let t = &d.shown;
    let hour12 = || {
        let h = t.hour() % 12;
        if h == 0 { 12 } else { h }
    };
    let ret = match c {
        'a' | 'A' => {
            let name = DAYS[t.weekday().num_days_from_sunday() as usize];
            if c == 'a' {
                name[..3].to_owned()
            } else {
                name.to_owned()
            }
        }
        'b' | 'h' | 'B' => {
            let name = MONTHS[t.month0() as usize];
            if c == 'B' {
                name.to_owned()
            } else {
                name[..3].to_owned()
            }
        }
        'c' => format!("{}, {}", locale_date(t), locale_time(t)),
        'x' => locale_date(t),
        'X' => locale_time(t),
        'C' => t.year().div_euclid(100).to_string(),
        'd' | 'e' => t.day().to_string(),
        'H' | 'k' => t.hour().to_string(),
        'I' | 'l' => hour12().to_string(),
        'j' => t.ordinal().to_string(),
        'L' => (t.nanosecond() / 1_000_000).to_string(),
        'm' => t.month().to_string(),
        'M' => t.minute().to_string(),
        'N' => {
            let w: usize = width.parse().ok().filter(|&w| w > 0).unwrap_or(9);
            let ms = format!("{:03}", t.nanosecond() / 1_000_000);
            let mut s: String = ms.chars().take(w).collect();
            while s.len() < w {
                s.push('0');
            }
            s
        }
        'p' => (if t.hour() < 12 { "AM" } else { "PM" }).to_owned(),
        'P' => (if t.hour() < 12 { "am" } else { "pm" }).to_owned(),
        'q' => {
            let day = t.day();
            match (day, day % 10) {
                (11..=13, _) => "th",
                (_, 1) => "st",
                (_, 2) => "nd",
                (_, 3) => "rd",
                _ => "th",
            }
            .to_owned()
        }
        's' => d.millis.div_euclid(1000).to_string(),
        'S' => t.second().to_string(),
        'u' => {
            let w = t.weekday().num_days_from_sunday();
            (if w == 0 { 7 } else { w }).to_string()
        }
        'U' | 'W' => {
            let start = if c == 'U' { 0 } else { 1 };
            let since = (t.weekday().num_days_from_sunday() + 7 - start) % 7;
            ((t.ordinal() as i64 - 1 - i64::from(since) + 7).div_euclid(7)).to_string()
        }
        'w' => t.weekday().num_days_from_sunday().to_string(),
        'y' => t.year().rem_euclid(100).to_string(),
        'Y' => t.year().to_string(),
        'z' => offset(d, flags.contains(':')),
        'Z' => d
            .zone_name
            .map_or_else(|| offset(d, flags.contains(':')), str::to_owned),
        't' => "\t".to_owned(),
        'n' => "\n".to_owned(),
        '%' => "%".to_owned(),
        _ => return None,
    };
    let mut ret = ret;
    let mut pad_char = if "aAbBceklpP".contains(c) { ' ' } else { '0' };
    let default_width = match c {
        'C' | 'd' | 'e' | 'H' | 'I' | 'k' | 'l' | 'm' | 'M' | 'S' | 'U' | 'W' | 'y' => 2,
        'j' | 'L' => 3,
        'Y' => 4,
        _ => 0,
    };
    let mut width: usize = width
        .parse()
        .ok()
        .filter(|&w| w > 0)
        .unwrap_or(default_width);
    if flags.contains('^') {
        ret = ret.to_uppercase();
    } else if flags.contains('#') {
        ret = if ret.chars().any(|ch| ch.is_ascii_lowercase()) {
            ret.to_uppercase()
        } else {
            ret.to_lowercase()
        };
    }
    if flags.contains('_') {
        pad_char = ' ';
    } else if flags.contains('0') {
        pad_char = '0';
    }
    if flags.contains('-') {
        width = 0;
    }
    if pad_char == '0' {
        if let Some(rest) = ret.strip_prefix('-') {
            return Some(format!(
                "-{}",
                pad_start(rest, width.saturating_sub(1), '0')
            ));
        }
    }
    Some(pad_start(&ret, width, pad_char))
}

fn pad_start(s: &str, width: usize, pad: char) -> String {
    let len = crate::js::utf16_len(s);
    let mut out = String::with_capacity(width.max(len));
    for _ in len..width {
        out.push(pad);
    }
    out.push_str(s);
    out
}

/// `±hhmm` (or `±hh:mm`), as JavaScript offsets print.
fn offset(d: &LiquidDate, colon: bool) -> String {
    let sign = if d.offset_minutes < 0 { '-' } else { '+' };
    let m = d.offset_minutes.abs();
    format!(
        "{sign}{:02}{}{:02}",
        m / 60,
        if colon { ":" } else { "" },
        m % 60
    )
}

/// `toLocaleDateString()` in en-US: `3/4/2026`.
fn locale_date(t: &NaiveDateTime) -> String {
    format!("{}/{}/{}", t.month(), t.day(), t.year())
}

/// `toLocaleTimeString()` in en-US: `5:06:07 AM`.
fn locale_time(t: &NaiveDateTime) -> String {
    let h = t.hour() % 12;
    format!(
        "{}:{:02}:{:02} {}",
        if h == 0 { 12 } else { h },
        t.minute(),
        t.second(),
        if t.hour() < 12 { "AM" } else { "PM" }
    )
}
