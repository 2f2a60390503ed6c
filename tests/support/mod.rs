//! A controllable HTTP/1.1 server on loopback, standing in for Rokt in tests.
//!
//! Raw tokio sockets and minimal parsing, so a test can answer anything, answer late, close
//! the connection, or reset it. Every request is recorded.
#![allow(dead_code)]

use rokt_capi::client::{Client, ClientBuilder, RetryPolicy};
use rokt_capi::rokt::Batch;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

/// `Basic base64("test-key:test-secret")`.
pub fn expected_auth() -> String {
    rokt_capi::Credentials::new(KEY, SECRET).authorization()
}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Received {
    /// 0-based order of arrival.
    pub seq: usize,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// The batches of the body: the array of a bulk request, or the one object of `/events`.
    pub fn batches(&self) -> Vec<Batch> {
        match self.json() {
            Value::Array(items) => items
                .into_iter()
                .map(|v| serde_json::from_value(v).expect("a batch"))
                .collect(),
            v => vec![serde_json::from_value(v).expect("a batch")],
        }
    }

    /// The `source_message_id` of each batch in the body.
    pub fn message_ids(&self) -> Vec<String> {
        self.batches()
            .iter()
            .map(|b| b.source_message_id().expect("has events").to_owned())
            .collect()
    }
}

/// What the server does with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An answer.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then do the inner reply.
    Delay(Duration, Box<Reply>),
    /// Reset the connection (TCP RST) instead of answering.
    Reset,
    /// Close the connection (FIN) instead of answering.
    Close,
    /// Hold the request (the connection stays open, nothing is sent) until the gate opens,
    /// then do the inner reply.
    Hold(Gate, Box<Reply>),
}

/// A gate that [`Reply::Hold`] waits on: closed when made, opened once for good.
#[derive(Clone, Debug)]
pub struct Gate {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Gate {
    pub fn closed() -> Gate {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Gate {
            tx: Arc::new(tx),
            rx,
        }
    }

    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_open(&self) -> bool {
        *self.rx.borrow()
    }

    async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|open| *open).await;
    }
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn accepted() -> Reply {
        Reply::status(202).body("{}")
    }

    pub fn errors(status: u16, errors: &[(&str, &str)]) -> Reply {
        let list: Vec<Value> = errors
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message}))
            .collect();
        Reply::status(status).body(&json!({ "errors": list }).to_string())
    }

    pub fn body(self, text: &str) -> Reply {
        match self {
            Reply::Answer {
                status, headers, ..
            } => Reply::Answer {
                status,
                headers,
                body: text.to_owned(),
            },
            other => other,
        }
    }

    pub fn header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Answer {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.to_owned(), value.to_owned()));
                Reply::Answer {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }

    pub fn after(self, delay: Duration) -> Reply {
        Reply::Delay(delay, Box::new(self))
    }

    /// This reply, once `gate` is open.
    pub fn when_open(self, gate: &Gate) -> Reply {
        Reply::Hold(gate.clone(), Box::new(self))
    }
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// The mock server. Stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    /// A server that answers every request with `handler(request)`.
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> MockServer {
        MockServer::start_on("127.0.0.1", handler).await
    }

    /// Like [`start`](Self::start), listening on `ip` (any address of 127.0.0.0/8 works on
    /// Linux, so a second "host" can be had on loopback).
    pub async fn start_on(
        ip: &str,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> MockServer {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let task = {
            let received = received.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            connections.fetch_add(1, Ordering::Relaxed);
                            conns.spawn(serve(stream, handler.clone(), received.clone()));
                        }
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
            })
        };
        MockServer {
            addr,
            received,
            connections,
            task,
        }
    }

    /// A server that answers from a script, one reply per request in order, then repeats the
    /// last one.
    pub async fn script(replies: Vec<Reply>) -> MockServer {
        let next = AtomicUsize::new(0);
        MockServer::start(move |_| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            replies[i.min(replies.len() - 1)].clone()
        })
        .await
    }

    /// Forgets the requests received so far (a long benchmark would otherwise keep them all).
    pub fn clear_received(&self) {
        self.received.lock().unwrap().clear();
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

async fn serve(stream: TcpStream, handler: Handler, received: Arc<Mutex<Vec<Received>>>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader).await else {
            return;
        };
        let request = {
            let mut log = received.lock().unwrap();
            let request = Received {
                seq: log.len(),
                ..request
            };
            log.push(request.clone());
            request
        };
        let mut reply = handler(&request);
        loop {
            match reply {
                Reply::Delay(d, inner) => {
                    tokio::time::sleep(d).await;
                    reply = *inner;
                }
                Reply::Hold(gate, inner) => {
                    gate.wait().await;
                    reply = *inner;
                }
                Reply::Reset => {
                    let _ = reader.get_ref().set_zero_linger();
                    return;
                }
                Reply::Close => {
                    let _ = reader.get_mut().shutdown().await;
                    return;
                }
                Reply::Answer {
                    status,
                    headers,
                    body,
                } => {
                    let mut out = format!(
                        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                        reason(status),
                        body.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    if reader.get_mut().write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Reads one request; `None` at the end of the connection or on garbage.
async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse().ok()?;
        }
        headers.push((k, v));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Received {
        seq: 0,
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// A retry policy with tiny back-offs, so tests run in milliseconds.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(5)
        .with_base_delay(Duration::from_millis(1))
        .with_max_delay(Duration::from_millis(5))
        .with_deadline(Duration::from_secs(10))
}

/// A client builder for `server` with the test credentials and fast retries.
pub fn builder(server: &MockServer) -> ClientBuilder {
    Client::builder()
        .api_key(KEY)
        .api_secret(SECRET)
        .endpoint_url(&server.url())
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(5))
}

pub fn client(server: &MockServer) -> Client {
    builder(server).build().expect("client")
}

/// A valid conversion event with `messageId` `m-{i}`, at `timestamp` (RFC 3339).
pub fn event_at(i: usize, timestamp: &str) -> Value {
    json!({
        "type": "track",
        "event": "Order Completed",
        "messageId": format!("m-{i}"),
        "userId": format!("u-{i}"),
        "timestamp": timestamp,
        "context": {"traits": {"email": format!("user{i}@example.com")}, "ip": "203.0.113.9"},
        "properties": {"order_id": format!("o-{i}"), "revenue": 20.5, "currency": "USD"}
    })
}

/// A valid conversion event happening now.
pub fn event(i: usize) -> Value {
    event_at(i, &chrono::Utc::now().to_rfc3339())
}

/// A Segment call that is not valid input (no identifier, no messageId).
pub fn bad_event() -> Value {
    json!({"type": "track"})
}

/// The batch for `event(i)`.
pub fn batch(client: &Client, i: usize) -> Batch {
    client.pipeline().batch(event(i)).expect("valid event")
}

/// The process's resident set size in KiB (Linux: `VmRSS` of /proc/self/status).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub mod raw;

/// The built example, if `cargo test` built it.
pub fn example(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        Some(path)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{} is not built (cargo test builds the examples)",
            path.display()
        );
    } else {
        println!("skipped: {} is not built", path.display());
        None
    }
}
