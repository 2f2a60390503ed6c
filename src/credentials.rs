//! The API key and secret, kept out of every `Debug`, `Display` and log line.

use base64::Engine as _;

/// Rokt CAPI credentials: an API key and secret, sent as HTTP Basic auth.
///
/// `Debug` shows neither value:
///
/// ```
/// let c = rokt_capi::Credentials::new("key", "s3cret");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    api_key: String,
    api_secret: String,
}

impl Credentials {
    /// Credentials from an API key and secret.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// The `Authorization` header value: `Basic base64(key:secret)`.
    pub fn authorization(&self) -> String {
        let raw = format!("{}:{}", self.api_key, self.api_secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Whether both parts are present (the reference requires both).
    pub fn is_complete(&self) -> bool {
        !self.api_key.is_empty() && !self.api_secret.is_empty()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { api_key: <redacted>, api_secret: <redacted> }")
    }
}
