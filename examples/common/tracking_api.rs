//! HTTP details of Segment's tracking API for the forwarder: reading the body (`gzip` or
//! plain), reading credentials (Basic with the write key as user, or a bearer token) and the
//! answers Segment's SDKs understand. The request bodies themselves are unpacked by
//! [`rokt_capi::segment::intake`].

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rokt_capi::segment::intake::{MAX_REQUEST_BYTES, RequestError, WriteKey};
use serde_json::{Value, json};
use std::io::Read;

/// The keys and token a request may present. Empty: every request is taken.
#[derive(Default)]
pub struct Keys {
    /// Segment write keys (Basic user or `writeKey` in the body).
    pub write_keys: Vec<WriteKey>,
    /// The bearer token (also taken as a write key).
    pub token: Option<WriteKey>,
}

/// What the request's `Authorization` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No keys are configured: anything goes.
    Open,
    /// The header carries a configured key or the token.
    Granted,
    /// The header carries credentials that are not configured.
    Denied,
    /// No usable header: the body's `writeKey` decides.
    Absent,
}

impl Keys {
    fn is_empty(&self) -> bool {
        self.write_keys.is_empty() && self.token.is_none()
    }

    fn knows(&self, key: &str) -> bool {
        self.write_keys
            .iter()
            .chain(self.token.as_ref())
            .any(|k| k.matches(key))
    }

    /// Judges the `Authorization` header: `Bearer TOKEN`, or `Basic` with a write key (or the
    /// token) as the user and the password ignored (Segment's SDKs send it empty).
    pub fn check_header(&self, headers: &HeaderMap) -> Auth {
        if self.is_empty() {
            return Auth::Open;
        }
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Auth::Absent;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        let given = if scheme.eq_ignore_ascii_case("bearer") {
            Some(credentials.to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(|pair| {
                    pair.split_once(':')
                        .map_or(pair.clone(), |(u, _)| u.to_owned())
                })
        } else {
            None
        };
        match given {
            Some(key) if self.knows(&key) => Auth::Granted,
            Some(key) if key.is_empty() => Auth::Absent,
            _ => Auth::Denied,
        }
    }

    /// Whether a request whose header was [`Auth::Absent`] may go on with this body key.
    pub fn check_body(&self, key: Option<&WriteKey>) -> bool {
        key.is_some_and(|k| self.knows(k.expose()))
    }
}

/// Why a body could not be read.
pub enum BodyError {
    /// A `Content-Encoding` other than `gzip` or `identity`.
    Unsupported,
    /// The gzip stream is broken.
    BadGzip,
    /// The body, decompressed, is over the limit.
    TooLarge,
}

/// The request body as JSON bytes: decompressed when `Content-Encoding: gzip`, at most
/// [`MAX_REQUEST_BYTES`] + 1 bytes decompressed (the intake refuses what is over).
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let cap = MAX_REQUEST_BYTES as u64 + 1;
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body)
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|_| BodyError::BadGzip)?;
            if out.len() as u64 >= cap {
                return Err(BodyError::TooLarge);
            }
            Ok(out)
        }
        _ => Err(BodyError::Unsupported),
    }
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            BodyError::Unsupported => refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                "Content-Encoding must be gzip or none",
            ),
            BodyError::BadGzip => refuse(
                StatusCode::BAD_REQUEST,
                "invalid_gzip",
                "the body is not valid gzip",
            ),
            BodyError::TooLarge => refuse(
                StatusCode::BAD_REQUEST,
                "payload_too_large",
                &format!("the decompressed body is over {MAX_REQUEST_BYTES} bytes"),
            ),
        }
    }
}

/// `400` for a request that cannot be read as a whole.
pub fn bad_request(e: &RequestError) -> Response {
    refuse(StatusCode::BAD_REQUEST, e.code(), &e.to_string())
}

/// A body the server could not take in (over the raw size limit, or broken off): `400` as
/// for any oversized or unreadable body.
pub fn unreadable_body(status: StatusCode) -> Response {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        refuse(
            StatusCode::BAD_REQUEST,
            "payload_too_large",
            "the body is over the size limit",
        )
    } else {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body could not be read",
        )
    }
}

/// Adds the headers that let a web page read the answer (any origin: the write key, not the
/// origin, is the credential).
pub fn with_cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Content-Encoding"),
    );
    response
}

/// `401`.
pub fn unauthorized() -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a configured write key is required (Basic auth or `writeKey`)",
    )
}

/// `503` with `Retry-After`: the SDKs keep the events and send them again.
pub fn busy(retry_after_seconds: u64, why: &str) -> Response {
    let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why);
    if let Ok(v) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Segment's error shape, `{"code", "message"}`.
pub fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!({"code": code, "message": message}))
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
