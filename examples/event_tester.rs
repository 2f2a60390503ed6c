//! Segment's "Event Tester" for Rokt's Conversions API: builds one event, prints the payload it
//! will send, sends it, and prints the HTTP status.
//!
//! ```text
//! cargo run --example event_tester                  # a test conversion
//! cargo run --example event_tester -- event.json    # one Segment event from a file
//! ```
//!
//! With `ROKT_API_KEY` and `ROKT_API_SECRET` set it sends to Rokt (`ROKT_ENDPOINT` may name
//! another base URL, e.g. an mParticle pod). Without them it starts a receiver on 127.0.0.1
//! in this process, which checks the `Authorization` header and the body's shape and answers
//! `202 Accepted` as Rokt does, so the whole path runs offline.

use rokt_capi::request::RequestKind;
use rokt_capi::{Client, Credentials, Error};
use serde_json::{Value, json};
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<ExitCode, String> {
    let event = match std::env::args().nth(1) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            serde_json::from_str::<Value>(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => test_conversion(),
    };

    let key = std::env::var("ROKT_API_KEY").unwrap_or_default();
    let secret = std::env::var("ROKT_API_SECRET").unwrap_or_default();
    let client = if !key.is_empty() && !secret.is_empty() {
        let mut builder = Client::builder().api_key(key).api_secret(secret);
        if let Ok(url) = std::env::var("ROKT_ENDPOINT") {
            builder = builder.endpoint_url(&url);
        }
        builder.build().map_err(|e| e.to_string())?
    } else {
        let credentials = Credentials::new("local-key", "local-secret");
        let url = start_receiver(credentials.authorization()).await?;
        println!(
            "ROKT_API_KEY / ROKT_API_SECRET are not set: sending to a local receiver at {url}"
        );
        Client::builder()
            .credentials(credentials)
            .endpoint_url(&url)
            .build()
            .map_err(|e| e.to_string())?
    };

    // What will be sent: the batch the pipeline builds from the event.
    let batch = match client.pipeline().batch(&event) {
        Ok(batch) => batch,
        Err(e) => {
            println!("the event is not valid input: {e} ({})", e.error_type());
            return Ok(ExitCode::FAILURE);
        }
    };
    let kind = match client.route_for(&batch) {
        RequestKind::Bulk => RequestKind::Single,
        other => other,
    };
    // Serializing the batch itself keeps the field order of the wire.
    let payload = if kind == RequestKind::Single {
        serde_json::to_string_pretty(&batch)
    } else {
        serde_json::to_string_pretty(&[&batch])
    };
    println!("POST {}", client.endpoint().url(kind));
    println!("{}", payload.map_err(|e| e.to_string())?);

    match client.send_batch(&batch).await {
        Ok(receipt) => {
            println!("HTTP status: {}", receipt.status);
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Rejected(rejection)) => {
            println!("HTTP status: {}", rejection.status);
            if let Some(code) = &rejection.code {
                println!("error code: {code}");
            }
            if let Some(message) = rejection.message() {
                println!("message: {message}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!("not delivered: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// An "Order Completed" track call, happening now, like Segment's Event Tester sends.
fn test_conversion() -> Value {
    let now = chrono::Utc::now();
    json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": format!("event-tester-{}", now.timestamp_millis()),
        "timestamp": now.to_rfc3339(),
        "userId": "test-user-1",
        "context": {
            "ip": "203.0.113.10",
            "userAgent": "Mozilla/5.0 (event tester)",
            "page": {"url": "https://shop.example.com/checkout?rtid=test-rtid"},
            "traits": {"email": "test.user@example.com", "first_name": "Test", "last_name": "User"}
        },
        "properties": {"order_id": "test-order-1", "revenue": 42.5, "currency": "USD"}
    })
}

/// A receiver standing in for Rokt on 127.0.0.1: `202 Accepted` for a well-formed request with
/// the right `Authorization`, `401` or `400` with mParticle's error shape otherwise.
async fn start_receiver(authorization: String) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the local receiver: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let authorization = authorization.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while let Some((path, auth, body)) = read_request(&mut stream).await {
                    let (status, answer) = judge(&path, auth.as_deref(), &body, &authorization);
                    println!("local receiver: POST {path} -> {status}");
                    let reply = format!(
                        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        if status == 202 { "Accepted" } else { "Error" },
                        answer.len()
                    );
                    if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// The path, `Authorization` and body of one HTTP/1.1 request.
async fn read_request(
    stream: &mut BufReader<tokio::net::TcpStream>,
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
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((path, auth, body))
}

fn judge(path: &str, auth: Option<&str>, body: &[u8], expected: &str) -> (u16, String) {
    let error = |status, code: &str, message: &str| {
        (
            status,
            json!({"errors": [{"code": code, "message": message}]}).to_string(),
        )
    };
    if auth != Some(expected) {
        return error(401, "UNAUTHORIZED", "Missing or invalid credentials.");
    }
    let batches = match (path, serde_json::from_slice::<Value>(body)) {
        ("/events", Ok(batch @ Value::Object(_))) => vec![batch],
        ("/bulkevents" | "/bulkevents/historical", Ok(Value::Array(batches))) => batches,
        (_, Err(_)) => return error(400, "BAD_REQUEST", "The body is not JSON."),
        _ => return error(400, "BAD_REQUEST", "Unexpected path or body shape."),
    };
    for batch in &batches {
        let shaped = [
            "environment",
            "user_identities",
            "user_attributes",
            "device_info",
        ]
        .iter()
        .all(|k| batch.get(k).is_some());
        if !shaped {
            return error(400, "BAD_REQUEST", "A batch is missing a required field.");
        }
    }
    (202, "{}".to_owned())
}
