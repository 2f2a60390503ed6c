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
}

impl Error {
    /// Whether the event itself is at fault (retrying cannot help): status 400.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidEvent(_) | Error::Validation(_) | Error::TooLarge { .. }
        )
    }

    /// The HTTP-like status Segment reports for this failure.
    pub fn status(&self) -> u16 {
        400
    }

    /// Segment's error type for bad input.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Validation(_) => crate::payload::PAYLOAD_VALIDATION_FAILED,
            Error::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Error::InvalidEvent(_) => "INVALID_EVENT",
            _ => "INVALID_CONFIGURATION",
        }
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
