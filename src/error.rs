//! The crate's errors: bad input, bad configuration, and (from the client) rejection by Rokt
//! or transient failure. Messages name fields and rules, never personal data or secrets.

use crate::mapping::MappingError;
use crate::payload::ValidationError;

/// Every failure the crate reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a Segment event (not JSON, or not shaped like an event).
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    /// The mapped event breaks a field rule (`PAYLOAD_VALIDATION_FAILED`).
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// The batch built from one event exceeds Rokt's size limit.
    #[error("the batch is {bytes} bytes, over the limit of {limit} bytes per batch")]
    TooLarge {
        /// The encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A mapping could not be compiled.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Rokt refused the request or the item for good (400, 401, 403, another 4xx, a redirect,
    /// or an item named in a 202's `errors`). Sending it again cannot help.
    #[error("{0}")]
    Rejected(Rejection),
    /// Rokt could not be reached or kept failing (5xx, 429, timeouts, connection errors) until
    /// the retry policy gave up.
    ///
    /// When the last attempt got no answer, [`source`](std::error::Error::source) is the
    /// underlying transport error ([`TransportError`], its URL removed).
    #[error("delivery failed after {attempts} attempt(s) ({reason}); last: {last}")]
    Failed {
        /// How many attempts were made.
        attempts: u32,
        /// Why the client stopped trying.
        reason: GiveUp,
        /// What the last attempt ran into.
        last: AttemptFailure,
        /// The last attempt's transport error, when it got no answer.
        #[source]
        cause: Option<TransportError>,
    },
    /// The [`Dispatcher`](crate::client::Dispatcher) was shut down (or its background task
    /// ended) before the event could be sent.
    #[error("the dispatcher is shut down")]
    Closed,
}

impl Error {
    /// Whether the event itself is at fault (retrying cannot help): status 400.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidEvent(_) | Error::Validation(_) | Error::TooLarge { .. }
        )
    }

    /// Whether the failure is final: bad input, bad configuration or a rejection by Rokt.
    /// Only [`Error::Failed`] and [`Error::Closed`] may succeed if the event is sent later.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Error::Failed { .. } | Error::Closed)
    }

    /// The HTTP-like status Segment reports for this failure: 400 for bad input and
    /// configuration, Rokt's status for a rejection, the last status seen for a failure after
    /// retries, and for a failure without any answer Segment's gateway convention, 504
    /// (timeout) or 502 (any other transport error). Those two are not answers from Rokt: use
    /// [`http_status`](Self::http_status) to tell them apart.
    pub fn status(&self) -> u16 {
        match self {
            Error::Rejected(r) => r.status,
            Error::Failed { last, .. } => last.status(),
            Error::Closed => 503,
            Error::InvalidEvent(_)
            | Error::Validation(_)
            | Error::TooLarge { .. }
            | Error::Mapping(_)
            | Error::Config(_) => 400,
        }
    }

    /// The HTTP status Rokt actually answered with: a rejection's status, or the last status of
    /// a failure after retries. `None` when no answer was involved (bad input, configuration,
    /// a transport failure, shutdown).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Rejected(r) => Some(r.status),
            Error::Failed { last, .. } => last.http_status(),
            Error::InvalidEvent(_)
            | Error::Validation(_)
            | Error::TooLarge { .. }
            | Error::Mapping(_)
            | Error::Config(_)
            | Error::Closed => None,
        }
    }

    /// The kind of transport failure, when the last attempt got no answer.
    pub fn transport_kind(&self) -> Option<TransportErrorKind> {
        match self {
            Error::Failed {
                last: AttemptFailure::Transport(kind),
                ..
            } => Some(*kind),
            _ => None,
        }
    }

    /// Whether the last attempt timed out.
    pub fn is_timeout(&self) -> bool {
        self.transport_kind() == Some(TransportErrorKind::Timeout)
    }

    /// Segment's error type for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Validation(_) => crate::payload::PAYLOAD_VALIDATION_FAILED,
            Error::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Error::InvalidEvent(_) => "INVALID_EVENT",
            Error::Rejected(r) => match r.status {
                401 => "INVALID_AUTHENTICATION",
                403 => "FORBIDDEN",
                300..=399 => "UNEXPECTED_REDIRECT",
                _ => "BAD_REQUEST",
            },
            Error::Failed { last, .. } => match last {
                AttemptFailure::Status(429) => "RATE_LIMITED",
                AttemptFailure::Status(_) => "RETRYABLE_ERROR",
                AttemptFailure::Transport(kind) => kind.error_type(),
            },
            Error::Closed => "SHUT_DOWN",
            Error::Mapping(_) | Error::Config(_) => "INVALID_CONFIGURATION",
        }
    }
}

/// A permanent refusal by Rokt: the HTTP status and mParticle's error `code`.
///
/// `Display` and `Debug` show only the status and the code. mParticle's message text may echo
/// the data that was sent (personal data), so it is kept apart, shortened, behind
/// [`message`](Rejection::message).
///
/// ```
/// use rokt_capi::error::Rejection;
/// let r = Rejection::new(400, Some("BAD_REQUEST".into()), Some("Path '[0].email' bad: jane@x.com".into()));
/// assert_eq!(r.to_string(), "rejected by Rokt: HTTP 400 BAD_REQUEST");
/// assert!(!format!("{r:?}").contains("jane"));
/// assert!(r.message().unwrap().contains("jane"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// The HTTP status of the answer (a 202 when the item was named in its `errors`).
    pub status: u16,
    /// mParticle's error code (`BAD_REQUEST`, `UNAUTHORIZED`, …), when the answer had one.
    pub code: Option<String>,
    message: Option<String>,
}

/// The longest message text a [`Rejection`] keeps, in characters.
pub const MAX_REJECTION_MESSAGE: usize = 200;

impl Rejection {
    /// A rejection. The code is kept only if it looks like one of the API's codes: up to 64
    /// characters, upper-case words joined by `_` (`BAD_REQUEST`, `UNAUTHORIZED`). Anything
    /// else (a code echoing an id, lower case, digits) is redacted to `None`, since it may
    /// carry personal data into logs. The message is cut to [`MAX_REJECTION_MESSAGE`]
    /// characters with control characters replaced.
    ///
    /// ```
    /// use rokt_capi::error::Rejection;
    /// assert_eq!(Rejection::new(400, Some("BAD_REQUEST".into()), None).code.as_deref(), Some("BAD_REQUEST"));
    /// assert_eq!(Rejection::new(400, Some("user8812".into()), None).code, None);
    /// assert_eq!(Rejection::new(400, Some("JANE42".into()), None).code, None);
    /// ```
    pub fn new(status: u16, code: Option<String>, message: Option<String>) -> Rejection {
        let code = code.filter(|c| is_api_code(c));
        let message = message.map(|m| {
            m.chars()
                .take(MAX_REJECTION_MESSAGE)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        });
        Rejection {
            status,
            code,
            message,
        }
    }

    /// mParticle's message, shortened. It may echo personal data from the request: do not
    /// log it where such data must not go.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

/// Whether `code` looks like one of the API's error codes: upper-case ASCII words joined by
/// single underscores, at most 64 bytes.
fn is_api_code(code: &str) -> bool {
    code.len() <= 64
        && code
            .split('_')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase()))
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rejected by Rokt: HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejection")
            .field("status", &self.status)
            .field("code", &self.code)
            .field(
                "message_chars",
                &self.message.as_ref().map(|m| m.chars().count()),
            )
            .finish()
    }
}

/// Why the client stopped retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The policy's maximum number of attempts was reached.
    MaxAttempts,
    /// The next wait would end past the policy's total deadline.
    Deadline,
}

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GiveUp::MaxAttempts => "attempts exhausted",
            GiveUp::Deadline => "deadline reached",
        })
    }
}

/// What went wrong with one attempt that may succeed if tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// Rokt answered with this status (429, 408 or 5xx).
    Status(u16),
    /// No usable answer arrived.
    Transport(TransportErrorKind),
}

impl AttemptFailure {
    /// The status Segment would report: the HTTP status, or Segment's gateway convention
    /// for an attempt without an answer, 504 for a timeout and 502 for the other transport
    /// errors (not answers from Rokt; see [`http_status`](Self::http_status)).
    pub fn status(&self) -> u16 {
        match self {
            AttemptFailure::Status(s) => *s,
            AttemptFailure::Transport(TransportErrorKind::Timeout) => 504,
            AttemptFailure::Transport(_) => 502,
        }
    }

    /// The HTTP status Rokt answered with, `None` for a transport failure.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            AttemptFailure::Status(s) => Some(*s),
            AttemptFailure::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptFailure::Status(s) => write!(f, "HTTP {s}"),
            AttemptFailure::Transport(k) => write!(f, "{k}"),
        }
    }
}

/// The kind of a transport failure (no HTTP answer, or a broken one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The host name could not be resolved.
    Dns,
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// The TLS handshake failed (bad certificate, not a TLS server).
    Tls,
    /// The connect or request timeout passed.
    Timeout,
    /// The connection broke while sending or before the answer's status line arrived
    /// (reset, closed early, malformed answer).
    Connection,
    /// The request body could not be sent, or the answer's body could not be read.
    Body,
}

impl TransportErrorKind {
    /// Segment's error type for a failure of this kind.
    pub fn error_type(self) -> &'static str {
        match self {
            TransportErrorKind::Dns => "ENOTFOUND",
            TransportErrorKind::Connect => "ECONNREFUSED",
            TransportErrorKind::Tls => "TLS_ERROR",
            TransportErrorKind::Timeout => "ETIMEDOUT",
            TransportErrorKind::Connection | TransportErrorKind::Body => "ECONNRESET",
        }
    }
}

impl std::fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Dns => "DNS error",
            TransportErrorKind::Connect => "connect error",
            TransportErrorKind::Tls => "TLS error",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Connection => "connection error",
            TransportErrorKind::Body => "body error",
        })
    }
}

/// A transport failure: its [`kind`](Self::kind) to branch on and the underlying error as
/// [`source`](std::error::Error::source) to debug (the HTTP library's error, with the URL
/// removed so no host or path is carried). Cheap to clone; two are equal when their kinds
/// are.
#[derive(Clone)]
pub struct TransportError {
    kind: TransportErrorKind,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A transport error of `kind` caused by `source`.
    pub fn new(
        kind: TransportErrorKind,
        source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    ) -> TransportError {
        TransportError { kind, source }
    }

    /// The kind.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl std::fmt::Debug for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The source by its text: the HTTP library's `Debug` shows the peer's address.
        f.debug_struct("TransportError")
            .field("kind", &self.kind)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Input that is not a Segment event. The message says where (JSON path, line and column) and
/// what kind of problem, never the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct EventError {
    /// Where: a JSON path (`$.context.traits`) or `$` for the whole input.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

impl EventError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        EventError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Input that is not UTF-8 text.
    pub fn new_utf8(valid_up_to: usize) -> Self {
        EventError::new(
            "$",
            format!("the input is not UTF-8 (invalid byte at offset {valid_up_to})"),
        )
    }

    /// From a JSON parse error, keeping only its position and category (never the text).
    pub fn from_json(e: &serde_json::Error) -> Self {
        Self::syntax(e)
    }

    /// From a JSON syntax error, keeping only its position and category.
    pub(crate) fn syntax(e: &serde_json::Error) -> Self {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the JSON ends early",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Io => "unreadable input",
            serde_json::error::Category::Data => "unexpected JSON value",
        };
        EventError::new(
            "$",
            format!("{what} at line {} column {}", e.line(), e.column()),
        )
    }
}

/// A pod name that is none of `us1`, `us2`, `eu1`, `au1`, from
/// [`Pod::from_str`](crate::request::Pod); the message lists the accepted names (and never
/// repeats the text given).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown pod: expected one of us1, us2, eu1, au1")]
#[non_exhaustive]
pub struct ParsePodError {}

impl ParsePodError {
    pub(crate) fn new() -> Self {
        ParsePodError {}
    }
}

/// An invalid setting, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The setting.
    pub setting: &'static str,
    /// Why it is invalid.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            setting,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_transport_cause_does_not_grow_the_error() {
        // The largest variant is still a rejection; the cause is one `Arc` in an `Option`.
        assert!(std::mem::size_of::<super::Error>() <= 56);
    }
}
