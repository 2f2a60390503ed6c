//! Reading mParticle's answers: the `errors` list and which item each error names. Pure.

use crate::error::Rejection;

/// One entry of an answer's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

#[cfg(test)]
/// The `errors` of a whole answer body (`{"errors":[{"code":…,"message":…}]}`); empty when
/// the body has none or is not JSON. Reads what it can of a cut body: every error object that
/// is complete.
pub(crate) fn parse_errors(body: &[u8]) -> Vec<ApiError> {
    let mut scanner = ErrorScanner::default();
    let mut errors = Vec::new();
    scanner.feed(body, &mut |e| errors.push(e));
    errors
}

/// The longest `code` or `message` text kept per error (the start of a message, which names
/// the item, is what matters).
const MAX_FIELD_BYTES: usize = 1024;

/// Reads the `errors` list of an answer incrementally, chunk by chunk, holding only the
/// error being read (its `code` and the first [`MAX_FIELD_BYTES`] of its `message`), so an
/// answer of any length can be read whole in bounded memory, and a cut answer yields every
/// error that arrived complete.
///
/// It is a lenient scanner, not a validator: it follows strings, escapes and nesting, reads
/// the top-level object's `errors` array, and reports each element when it ends.
#[derive(Debug, Default)]
pub(crate) struct ErrorScanner {
    /// Open objects and arrays.
    depth: u32,
    /// Inside a string.
    in_string: bool,
    /// After a backslash inside a string.
    escape: bool,
    /// The top-level value started (`{`), or the body is not an object (`stop`).
    started: bool,
    /// The top-level object closed, or the body is not a JSON object: nothing more to read.
    done: bool,
    /// At depth 1 or 3: the next string is a key.
    expect_key: bool,
    /// The last key read at depth 1 (top object) and depth 3 (an error object).
    key: Vec<u8>,
    /// Capturing the current string's bytes into `key` (a key) or `value`.
    capture: Capture,
    /// Inside the `errors` array (it is open at depth 2).
    in_errors: bool,
    /// The current element of `errors` has begun.
    element: bool,
    code: Option<Vec<u8>>,
    message: Option<Vec<u8>>,
    value: Vec<u8>,
    /// Bytes of the current `value` that end outside an escape sequence.
    value_safe: usize,
    escape_left: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Capture {
    #[default]
    None,
    Key,
    Code,
    Message,
}

impl ErrorScanner {
    /// Whether the whole top-level value was read (or the body is not a JSON object), so
    /// nothing more can follow.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any of the body's JSON was seen (an empty body says nothing).
    pub(crate) fn is_started(&self) -> bool {
        self.started
    }

    /// Reads `chunk`, calling `found` for each error that ends in it.
    pub(crate) fn feed(&mut self, chunk: &[u8], found: &mut impl FnMut(ApiError)) {
        for &b in chunk {
            if self.done {
                return;
            }
            self.byte(b, found);
        }
    }

    fn byte(&mut self, b: u8, found: &mut impl FnMut(ApiError)) {
        if self.in_string {
            self.string_byte(b);
            return;
        }
        if !self.started {
            match b {
                // Whitespace, and a UTF-8 byte order mark, before the value.
                b' ' | b'\t' | b'\n' | b'\r' | 0xEF | 0xBB | 0xBF => {}
                b'{' => {
                    self.started = true;
                    self.depth = 1;
                    self.expect_key = true;
                }
                _ => self.done = true,
            }
            return;
        }
        if self.in_errors
            && self.depth == 2
            && !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b']')
        {
            self.element = true;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.escape = false;
                self.capture = if self.expect_key && (self.depth == 1 || self.in_element_object()) {
                    self.key.clear();
                    Capture::Key
                } else if self.in_element_object() && self.key == b"code" {
                    self.start_value();
                    Capture::Code
                } else if self.in_element_object() && self.key == b"message" {
                    self.start_value();
                    Capture::Message
                } else if self.in_errors && self.depth == 2 {
                    // An error given as a bare string: read it as the message.
                    self.start_value();
                    Capture::Message
                } else {
                    Capture::None
                };
            }
            b'{' | b'[' => {
                if self.depth == 1 && !self.expect_key && b == b'[' && self.key == b"errors" {
                    self.in_errors = true;
                }
                self.depth = self.depth.saturating_add(1);
                self.expect_key = b == b'{' && (self.depth == 1 || self.in_element_object());
                if self.in_element_object() && b == b'{' {
                    self.key.clear();
                }
            }
            b'}' | b']' => {
                if self.depth == 2 && self.in_errors && b == b']' {
                    self.end_element(found);
                    self.in_errors = false;
                }
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.done = true;
                }
                self.expect_key = false;
                if self.depth == 1 {
                    self.key.clear();
                }
            }
            b':' => self.expect_key = false,
            b',' => {
                if self.depth == 2 && self.in_errors {
                    self.end_element(found);
                }
                if self.depth == 1 || self.in_element_object() {
                    self.expect_key = true;
                }
            }
            _ => {}
        }
    }

    /// At depth 3 inside the `errors` array: directly inside one error object.
    fn in_element_object(&self) -> bool {
        self.in_errors && self.depth == 3
    }

    fn start_value(&mut self) {
        self.value.clear();
        self.value_safe = 0;
        self.escape_left = 0;
    }

    fn string_byte(&mut self, b: u8) {
        let ends = !self.escape && b == b'"';
        let was_escape = self.escape;
        self.escape = !self.escape && b == b'\\';
        if ends {
            self.in_string = false;
            match self.capture {
                Capture::Key => {}
                Capture::Code => self.code = Some(self.finish_value()),
                Capture::Message => self.message = Some(self.finish_value()),
                Capture::None => {}
            }
            self.capture = Capture::None;
            return;
        }
        match self.capture {
            Capture::Key => {
                if self.key.len() < 16 {
                    self.key.push(b);
                }
            }
            Capture::Code | Capture::Message => {
                if self.value.len() < MAX_FIELD_BYTES {
                    self.value.push(b);
                    // Track where a cut would not split an escape (`\"`, `\u00e9`).
                    if self.escape {
                        self.escape_left = 1;
                    } else if was_escape {
                        self.escape_left = if b == b'u' { 4 } else { 0 };
                    } else if self.escape_left > 0 {
                        self.escape_left -= 1;
                    }
                    if self.escape_left == 0 && !self.escape {
                        self.value_safe = self.value.len();
                    }
                }
            }
            Capture::None => {}
        }
    }

    /// The captured string's text, its escapes decoded (a cut one dropped).
    fn finish_value(&mut self) -> Vec<u8> {
        let raw = &self.value[..self.value_safe];
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(raw);
        quoted.push(b'"');
        match serde_json::from_slice::<String>(&quoted) {
            Ok(text) => text.into_bytes(),
            Err(_) => raw.to_vec(),
        }
    }

    fn end_element(&mut self, found: &mut impl FnMut(ApiError)) {
        if !std::mem::take(&mut self.element) {
            return;
        }
        let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
        found(ApiError {
            code: text(self.code.take()),
            message: text(self.message.take()),
        });
        self.key.clear();
    }
}

#[cfg(test)]
/// The first error's code and message as a rejection with `status`.
pub(crate) fn rejection(status: u16, body: &[u8]) -> Rejection {
    let first = parse_errors(body).into_iter().next();
    match first {
        Some(e) => Rejection::new(status, e.code, e.message),
        None => Rejection::new(status, None, None),
    }
}

/// The index of the bulk item an mParticle message names: `Path '[3].events[0]…'`,
/// `path "$[3]"`, or a message that starts with `[3]`.
pub(crate) fn item_index(message: &str) -> Option<usize> {
    let lower = message.to_ascii_lowercase();
    let rest = match lower.find("path") {
        Some(at) => &message[at + 4..],
        None => message,
    };
    let rest = rest.trim_start_matches([' ', ':', '=', '\'', '"', '`', '$']);
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    let digits = &inner[..end];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a 2xx answer with `errors` says about the items of its request.
#[derive(Debug, PartialEq)]
pub(crate) struct Attribution {
    /// Items named by an error, with the first error that named them.
    pub(crate) rejected: Vec<(usize, Rejection)>,
    /// Errors that name no item of this request.
    pub(crate) unattributed: usize,
}

#[cfg(test)]
/// Attributes `errors` to the `items` of a request answered with `status`. A request with one
/// item owns every error.
pub(crate) fn attribute(status: u16, errors: Vec<ApiError>, items: usize) -> Attribution {
    let mut acc = Attributor::new(status, items);
    for e in errors {
        acc.add(e);
    }
    acc.finish()
}

/// [`attribute`], one error at a time: keeps at most one rejection per item and a count, so
/// an answer naming any number of errors is held in memory bounded by the item count.
#[derive(Debug)]
pub(crate) struct Attributor {
    status: u16,
    rejected: Vec<Option<Rejection>>,
    unattributed: usize,
    errors: usize,
}

impl Attributor {
    pub(crate) fn new(status: u16, items: usize) -> Attributor {
        Attributor {
            status,
            rejected: vec![None; items],
            unattributed: 0,
            errors: 0,
        }
    }

    /// How many errors were read.
    pub(crate) fn errors(&self) -> usize {
        self.errors
    }

    pub(crate) fn add(&mut self, e: ApiError) {
        self.errors = self.errors.saturating_add(1);
        let items = self.rejected.len();
        let index = if items == 1 {
            Some(0)
        } else {
            e.message
                .as_deref()
                .and_then(item_index)
                .filter(|&i| i < items)
        };
        match index {
            Some(i) => {
                if self.rejected[i].is_none() {
                    self.rejected[i] = Some(Rejection::new(self.status, e.code, e.message));
                }
            }
            None => self.unattributed = self.unattributed.saturating_add(1),
        }
    }

    pub(crate) fn finish(self) -> Attribution {
        Attribution {
            rejected: self
                .rejected
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (i, r)))
                .collect(),
            unattributed: self.unattributed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_item_indices() {
        assert_eq!(
            item_index("Path '[3].events[0].data.event_name' is required"),
            Some(3)
        );
        assert_eq!(item_index("path: \"$[12]\" bad"), Some(12));
        assert_eq!(item_index("[0].user_identities: invalid"), Some(0));
        assert_eq!(
            item_index("Required event field \"event_type\" is missing or empty."),
            None
        );
        assert_eq!(item_index("Path 'events[0]'"), None);
        assert_eq!(item_index("Path '[x]'"), None);
        assert_eq!(item_index("Path '[99999999999]'"), None);
        assert_eq!(item_index("Path '["), None);
        assert_eq!(item_index(""), None);
    }

    #[test]
    fn parses_errors_leniently() {
        let body = br#"{"errors":[{"code":"BAD_REQUEST","message":"Path '[1]' x"},{"code":7}]}"#;
        let errors = parse_errors(body);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code.as_deref(), Some("BAD_REQUEST"));
        assert_eq!(errors[1].code, None);
        assert!(parse_errors(b"").is_empty());
        assert!(parse_errors(b"<html>").is_empty());
        assert!(parse_errors(b"{}").is_empty());
        assert!(parse_errors(br#"{"errors":"no"}"#).is_empty());
        assert!(parse_errors(br#"{"other":{"errors":[{"code":"X"}]}}"#).is_empty());
    }

    #[test]
    fn reads_every_complete_error_of_a_cut_answer() {
        let body = br#"{"errors":[{"code":"BAD_REQUEST","message":"Path '[0]' \"x\""},{"code":"BAD_REQUEST","message":"Path '[1]' y"},{"code":"BAD_REQ"#;
        let errors = parse_errors(body);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].message.as_deref(), Some("Path '[0]' \"x\""));
        assert_eq!(item_index(errors[1].message.as_deref().unwrap()), Some(1));
    }

    #[test]
    fn reads_an_answer_split_anywhere_as_it_reads_it_whole() {
        let body = br#" {"ok":[1,{"errors":[]}],"errors":[{"message":"Path '[2]' \u00e9\"]","code":"BAD_REQUEST","extra":{"code":"NO"}}, {"code":"X_Y"} ,"bare"]}"#;
        let whole = parse_errors(body);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].code.as_deref(), Some("BAD_REQUEST"));
        assert_eq!(whole[0].message.as_deref(), Some("Path '[2]' \u{e9}\"]"));
        assert_eq!(whole[1].code.as_deref(), Some("X_Y"));
        assert_eq!(
            whole[2],
            ApiError {
                code: None,
                message: Some("bare".into())
            }
        );
        for at in 0..body.len() {
            let mut s = ErrorScanner::default();
            let mut got = Vec::new();
            s.feed(&body[..at], &mut |e| got.push(e));
            s.feed(&body[at..], &mut |e| got.push(e));
            assert_eq!(got, whole, "split at {at}");
            assert!(s.is_done());
        }
    }

    #[test]
    fn a_byte_order_mark_and_bare_string_errors_are_read() {
        let body = "\u{feff}{\"errors\":[\"Path '[4]' bad\", 7]}";
        let errors = parse_errors(body.as_bytes());
        assert_eq!(errors.len(), 2);
        assert_eq!(item_index(errors[0].message.as_deref().unwrap()), Some(4));
        assert_eq!(
            errors[1],
            ApiError {
                code: None,
                message: None
            }
        );
    }

    #[test]
    fn a_long_message_keeps_its_start() {
        let long = "x".repeat(100_000);
        let body =
            format!(r#"{{"errors":[{{"code":"BAD_REQUEST","message":"Path '[7]' {long}"}}]}}"#);
        let errors = parse_errors(body.as_bytes());
        assert_eq!(errors.len(), 1);
        let m = errors[0].message.as_deref().unwrap();
        assert!(m.len() <= MAX_FIELD_BYTES && m.starts_with("Path '[7]'"));
    }

    #[test]
    fn attributes_errors_to_items() {
        let e = |m: &str| ApiError {
            code: Some("BAD_REQUEST".into()),
            message: Some(m.into()),
        };
        let a = attribute(
            202,
            vec![
                e("Path '[3].x' bad"),
                e("Path '[1]' bad"),
                e("Path '[3].y' bad"),
            ],
            5,
        );
        assert_eq!(
            a.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(a.unattributed, 0);
        assert_eq!(a.rejected[0].1.status, 202);
        let a = attribute(202, vec![e("Path '[7]' bad"), e("something")], 5);
        assert!(a.rejected.is_empty());
        assert_eq!(a.unattributed, 2);
        let a = attribute(202, vec![e("something")], 1);
        assert_eq!(a.rejected.len(), 1);
    }

    #[test]
    fn rejection_keeps_code_only_in_display() {
        let r = rejection(
            400,
            br#"{"errors":[{"code":"BAD_REQUEST","message":"bad value jane@example.com"}]}"#,
        );
        assert_eq!(r.code.as_deref(), Some("BAD_REQUEST"));
        assert!(!r.to_string().contains("jane"));
        assert!(!format!("{r:?}").contains("jane"));
        let r = rejection(401, b"Unauthorized");
        assert_eq!((r.status, r.code), (401, None));
        let r = rejection(400, br#"{"errors":[{"code":"<script>","message":"x"}]}"#);
        assert_eq!(r.code, None);
    }
}
