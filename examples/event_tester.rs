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

#[path = "common/receiver.rs"]
mod receiver;

use rokt_capi::request::RequestKind;
use rokt_capi::{Client, Error};
use serde_json::{Value, json};
use std::process::ExitCode;

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
    let mut local = None;
    let client = if !key.is_empty() && !secret.is_empty() {
        let mut builder = Client::builder().api_key(key).api_secret(secret);
        if let Ok(url) = std::env::var("ROKT_ENDPOINT") {
            builder = builder.endpoint_url(&url);
        }
        builder.build().map_err(|e| e.to_string())?
    } else {
        let receiver = receiver::Receiver::start().await?;
        println!(
            "ROKT_API_KEY / ROKT_API_SECRET are not set: sending to a local receiver at {}",
            receiver.url()
        );
        let client = Client::builder()
            .credentials(receiver.credentials())
            .endpoint_url(receiver.url())
            .build()
            .map_err(|e| e.to_string())?;
        local = Some(receiver);
        client
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

    let result = client.send_batch(&batch).await;
    if let Some(receiver) = &local {
        println!("{}", receiver.report());
    }
    match result {
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
