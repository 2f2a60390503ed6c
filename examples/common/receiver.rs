//! A stand-in for Rokt on 127.0.0.1, so the examples run with no credentials and no network.
//! Included by `#[path]` from the event tester, forwarder and replay examples.
//!
//! It answers `202 Accepted` to a well-formed request with the right `Authorization`, and `401`
//! or `400` with mParticle's error shape otherwise, and counts what it received. It reads
//! requests only as far as it must: the request line, `Authorization`, `Content-Length` and
//! the body (as reqwest sends it).

use rokt_capi::Credentials;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The largest body the receiver reads (mParticle's bulk limit is 256 KB).
const MAX_BODY: usize = 1 << 20;

/// What the receiver has seen so far.
#[derive(Debug, Default)]
pub struct Counts {
    requests: AtomicU64,
    batches: AtomicU64,
    historical: AtomicU64,
    refused: AtomicU64,
}

/// A running receiver. It stops with the tokio runtime.
#[derive(Clone, Debug)]
pub struct Receiver {
    url: String,
    credentials: Credentials,
    counts: Arc<Counts>,
}

impl Receiver {
    /// Starts a receiver on a free port of 127.0.0.1 that expects these local credentials.
    pub async fn start() -> Result<Receiver, String> {
        let credentials = Credentials::new("local-key", "local-secret");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot start the local receiver: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let counts = Arc::new(Counts::default());
        let expected = credentials.authorization();
        let task_counts = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, expected.clone(), task_counts.clone()));
            }
        });
        Ok(Receiver {
            url: format!("http://{addr}"),
            credentials,
            counts,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The credentials it expects.
    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    /// One line for a final report:
    /// `local receiver: requests=R batches=B historical=H refused=F`.
    pub fn report(&self) -> String {
        let c = &self.counts;
        format!(
            "local receiver: requests={} batches={} historical={} refused={}",
            c.requests.load(Ordering::Relaxed),
            c.batches.load(Ordering::Relaxed),
            c.historical.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
        )
    }
}

async fn serve(stream: TcpStream, expected: String, counts: Arc<Counts>) {
    let mut stream = BufReader::new(stream);
    while let Some((path, auth, body)) = read_request(&mut stream).await {
        let verdict = judge(&path, auth.as_deref(), &body, &expected);
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let (status, answer) = match verdict {
            Ok(batches) => {
                counts.batches.fetch_add(batches, Ordering::Relaxed);
                if path.ends_with("/historical") {
                    counts.historical.fetch_add(batches, Ordering::Relaxed);
                }
                (202, "{}".to_owned())
            }
            Err(refusal) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                refusal
            }
        };
        tracing::debug!(%path, status, "local receiver");
        let reply = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            if status == 202 { "Accepted" } else { "Error" },
            answer.len()
        );
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// The path, `Authorization` and body of one HTTP/1.1 request; `None` at the end of the
/// connection or on anything unexpected (the connection is then closed).
async fn read_request(
    stream: &mut BufReader<TcpStream>,
) -> Option<(String, Option<String>, Vec<u8>)> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let (mut auth, mut length) = (None, 0);
    loop {
        line.clear();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => auth = Some(value.trim().to_owned()),
            "content-length" => length = value.trim().parse().ok()?,
            _ => {}
        }
    }
    if length > MAX_BODY {
        return None;
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((path, auth, body))
}

/// How many batches a request carries, or the refusal to send back.
fn judge(
    path: &str,
    auth: Option<&str>,
    body: &[u8],
    expected: &str,
) -> Result<u64, (u16, String)> {
    let error = |status, code: &str, message: &str| {
        (
            status,
            json!({"errors": [{"code": code, "message": message}]}).to_string(),
        )
    };
    if auth != Some(expected) {
        return Err(error(
            401,
            "UNAUTHORIZED",
            "Missing or invalid credentials.",
        ));
    }
    let batches = match (path, serde_json::from_slice::<Value>(body)) {
        ("/events", Ok(batch @ Value::Object(_))) => vec![batch],
        ("/bulkevents" | "/bulkevents/historical", Ok(Value::Array(batches))) => batches,
        (_, Err(_)) => return Err(error(400, "BAD_REQUEST", "The body is not JSON.")),
        _ => return Err(error(400, "BAD_REQUEST", "Unexpected path or body shape.")),
    };
    let shaped = |batch: &Value| {
        [
            "environment",
            "user_identities",
            "user_attributes",
            "device_info",
        ]
        .iter()
        .all(|k| batch.get(k).is_some())
    };
    if !batches.iter().all(shaped) {
        return Err(error(
            400,
            "BAD_REQUEST",
            "A batch is missing a required field.",
        ));
    }
    Ok(batches.len() as u64)
}
