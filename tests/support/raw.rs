//! Hostile servers on loopback: answers written as exact bytes, step by step (cut, reset,
//! trickled, endless, oversized), for tests of what the client believes about an answer.

use super::{Received, read_request};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One step of an answer.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Write these bytes one at a time, waiting this long before each.
    Trickle(Vec<u8>, Duration),
    /// Write these bytes again and again until the client goes away.
    Endless(Vec<u8>),
    /// Wait.
    Sleep(Duration),
    /// Reset the connection (TCP RST) and stop.
    Reset,
    /// Close the connection (FIN) and stop.
    Close,
    /// Keep the connection open, saying nothing, until the client goes away.
    Hang,
}

impl Step {
    pub fn text(text: &str) -> Step {
        Step::Write(text.as_bytes().to_vec())
    }
}

/// A status line and headers ending in the blank line; `content_length` as given (it may
/// announce more than is sent), or `Transfer-Encoding: chunked` when `None`.
pub fn head(status: u16, headers: &[(&str, &str)], content_length: Option<usize>) -> Step {
    let mut out = format!("HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\n");
    match content_length {
        Some(n) => out.push_str(&format!("content-length: {n}\r\n")),
        None => out.push_str("transfer-encoding: chunked\r\n"),
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    Step::text(&out)
}

/// One chunk of a chunked body.
pub fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// A whole answer: `status` with `body` and an honest `content-length`.
pub fn answer(status: u16, body: &str) -> Vec<Step> {
    vec![head(status, &[], Some(body.len())), Step::text(body)]
}

/// `{"errors":[…]}` with one `BAD_REQUEST` error per message.
pub fn errors_body(messages: impl IntoIterator<Item = String>) -> String {
    let list: Vec<serde_json::Value> = messages
        .into_iter()
        .map(|m| serde_json::json!({"code": "BAD_REQUEST", "message": m}))
        .collect();
    serde_json::json!({ "errors": list }).to_string()
}

type Handler = Arc<dyn Fn(&Received) -> Vec<Step> + Send + Sync>;

/// The server. Each request is answered by the steps its handler returns; the connection is
/// then kept for the next request unless a step ended it. Stops when dropped.
pub struct RawServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let task = {
            let received = received.clone();
            tokio::spawn(async move {
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            conns.spawn(serve(stream, handler.clone(), received.clone()));
                        }
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
            })
        };
        RawServer {
            addr,
            received,
            task,
        }
    }

    /// Answers every request with the same steps.
    pub async fn always(steps: Vec<Step>) -> RawServer {
        RawServer::start(move |_| steps.clone()).await
    }

    /// Answers the n-th request (from 0) with `script[n]`, the last one repeated.
    pub async fn script(script: Vec<Vec<Step>>) -> RawServer {
        let next = AtomicUsize::new(0);
        RawServer::start(move |_| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            script[i.min(script.len() - 1)].clone()
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
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
        for step in handler(&request) {
            let stream = reader.get_mut();
            match step {
                Step::Write(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Trickle(bytes, every) => {
                    for b in bytes {
                        tokio::time::sleep(every).await;
                        if stream.write_all(&[b]).await.is_err() {
                            return;
                        }
                    }
                }
                Step::Endless(bytes) => loop {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                },
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Reset => {
                    let _ = reader.get_ref().set_zero_linger();
                    return;
                }
                Step::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Step::Hang => {
                    // Until the client closes: reading returns 0 or fails.
                    let mut buf = [0u8; 1024];
                    loop {
                        match tokio::io::AsyncReadExt::read(stream, &mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                }
            }
        }
    }
}
