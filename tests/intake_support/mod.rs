//! Shared by the tracking API tests: the forwarder example run as a binary with a mock Rokt
//! behind it, raw HTTP on loopback, and the hand-made scenarios (each panics on a failure), so
//! `segment_intake` runs them as tests and `segment_sdks` counts them beside the SDKs.
#![allow(dead_code)]

use crate::support::{self, KEY, MockServer, Reply, SECRET};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const WRITE_KEY: &str = "wk-test-1";

pub use crate::support::example;

/// A forwarder sending to `rokt`, taking [`WRITE_KEY`]; stdout read line by line.
pub struct Forwarder {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    pub addr: String,
    token: Option<String>,
}

impl Forwarder {
    pub fn start(exe: &Path, rokt: &MockServer, extra: &[&str], env: &[(&str, &str)]) -> Forwarder {
        let mut cmd = Command::new(exe);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--listen", "127.0.0.1:0", "--shutdown-endpoint"])
            .args(extra)
            .env("ROKT_API_KEY", KEY)
            .env("ROKT_API_SECRET", SECRET)
            .env("ROKT_ENDPOINT", rokt.url())
            .env("SEGMENT_WRITE_KEYS", WRITE_KEY)
            .env_remove("FORWARDER_TOKEN")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the forwarder");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let first = lines.recv_timeout(TIMEOUT).expect("the first line");
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .to_owned();
        let token = env
            .iter()
            .find(|(k, _)| *k == "FORWARDER_TOKEN")
            .map(|(_, v)| (*v).to_owned());
        Forwarder {
            child,
            lines,
            stderr: Some(stderr),
            addr,
            token,
        }
    }

    /// Asks it to stop; returns its stdout lines and stderr once it has sent everything.
    pub fn stop(mut self) -> (Vec<String>, String) {
        let auth = match &self.token {
            Some(t) => vec![("authorization", format!("Bearer {t}"))],
            None => basic(WRITE_KEY),
        };
        let (status, _) = http(&self.addr, "POST", "/shutdown", &auth, b"");
        assert_eq!(status, 202);
        let deadline = Instant::now() + TIMEOUT;
        let status: ExitStatus = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the forwarder did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let lines: Vec<String> = self.lines.try_iter().collect();
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        assert!(status.success(), "{lines:?} {stderr}");
        (lines, stderr)
    }
}

impl Drop for Forwarder {
    /// A test that fails before [`Forwarder::stop`] leaves no process behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection: the status and the raw answer (head and body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        request.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // A server may answer and close before it has read an oversized body: what it said counts.
    let _ = stream.write_all(&bytes);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

pub fn body_json(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer:?}"))
}

/// `Authorization: Basic base64(key + ":")`, as Segment's SDKs send the write key.
pub fn basic(key: &str) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    vec![("authorization", format!("Basic {b64}"))]
}

pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn order(id: &str) -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": format!("user-{id}"),
           "messageId": id, "context": {"traits": {"email": format!("{id}@example.com")}},
           "properties": {"order_id": format!("o-{id}"), "revenue": 12.5, "currency": "USD"}})
}

/// An Engage audience identify (a plain identify carries no event for Rokt to count).
pub fn identify(id: &str) -> Value {
    json!({"type": "identify", "userId": format!("user-{id}"), "messageId": id,
           "context": {"personas": {"computation_key": "vip_buyers",
                                    "computation_class": "audience"}},
           "traits": {"email": format!("{id}@example.com"), "first_name": "Pat",
                      "vip_buyers": true}})
}

/// The `source_message_id` of every batch Rokt received, and whether any went to the
/// historical endpoint.
pub fn delivered(rokt: &MockServer) -> (Vec<String>, usize) {
    let received = rokt.received();
    let historical = received
        .iter()
        .filter(|r| r.path.contains("historical"))
        .count();
    let ids = received
        .iter()
        .flat_map(|r| r.batches())
        .map(|b| b.source_message_id().unwrap_or("<no events>").to_owned())
        .collect();
    (ids, historical)
}

pub async fn every_documented_route_is_accepted_and_its_events_reach_rokt(exe: &Path) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let fw = Forwarder::start(exe, &rokt, &[], &[]);
    let auth = basic(WRITE_KEY);
    let mut expected: HashSet<String> = HashSet::new();

    let batch = json!({"batch": [order("b-1"), identify("b-2"),
        {"type": "page", "anonymousId": "a-1", "name": "Home"}],
        "sentAt": iso(chrono::Utc::now()), "context": {"library": {"name": "hand"}}});
    expected.extend(["b-1".into(), "b-2".into()]);
    for (path, body) in [
        ("/v1/batch", batch.clone()),
        ("/v1/import", json!({"batch": [order("imp-1")]})),
        (
            "/v1/b",
            json!({"batch": [order("b-b")], "writeKey": WRITE_KEY}),
        ),
    ] {
        let (status, answer) = http(&fw.addr, "POST", path, &auth, body.to_string().as_bytes());
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(body_json(&answer)["success"], true, "{path}");
    }
    expected.extend(["imp-1".into(), "b-b".into()]);

    // Single calls: the type comes from the path, so the body has none.
    let without_type = |mut v: Value| {
        v.as_object_mut().unwrap().remove("type");
        v
    };
    let singles = [
        ("/v1/track", without_type(order("t-1")), true),
        ("/v1/t", without_type(order("t-2")), true),
        ("/v1/identify", without_type(identify("i-1")), true),
        ("/v1/i", without_type(identify("i-2")), true),
        (
            "/v1/page",
            json!({"anonymousId": "a", "name": "Home"}),
            false,
        ),
        ("/v1/p", json!({"anonymousId": "a"}), false),
        ("/v1/screen", json!({"userId": "u", "name": "Cart"}), false),
        ("/v1/s", json!({"userId": "u"}), false),
        ("/v1/group", json!({"userId": "u", "groupId": "g"}), false),
        ("/v1/g", json!({"userId": "u", "groupId": "g"}), false),
        (
            "/v1/alias",
            json!({"userId": "u", "previousId": "p"}),
            false,
        ),
        ("/v1/a", json!({"userId": "u", "previousId": "p"}), false),
        ("/v1/track/", without_type(order("t-3")), true),
        ("/some/prefix/v1/track", without_type(order("t-4")), true),
    ];
    for (path, body, reaches_rokt) in singles {
        // The browser SDK sends text/plain.
        let mut headers = auth.clone();
        headers.push(("content-type", "text/plain".into()));
        let (status, answer) = http(
            &fw.addr,
            "POST",
            path,
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{path}: {answer}");
        let answer = body_json(&answer);
        assert_eq!(
            (answer["success"].clone(), answer["invalid"].clone()),
            (json!(true), json!(0)),
            "{path}"
        );
        if reaches_rokt {
            expected.insert(body["messageId"].as_str().unwrap().to_owned());
        }
    }
    // Not a tracking API route: 404, never a redirect.
    let (status, _) = http(&fw.addr, "POST", "/v1/nope", &auth, b"{}");
    assert_eq!(status, 404);
    let (status, _) = http(&fw.addr, "GET", "/v1/batch", &auth, b"");
    assert_eq!(status, 405);
    // A browser's preflight, and the header that lets a page read the answer.
    let (status, answer) = http(&fw.addr, "OPTIONS", "/v1/t", &[], b"");
    assert_eq!(status, 204);
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *")
    );
    // The webhook route stays, behind the same keys.
    let mut webhook = order("seg-1");
    webhook["timestamp"] = json!(iso(chrono::Utc::now()));
    let webhook = webhook.to_string();
    let (status, _) = http(&fw.addr, "POST", "/segment", &[], webhook.as_bytes());
    assert_eq!(status, 401);
    let (status, _) = http(&fw.addr, "POST", "/segment", &auth, webhook.as_bytes());
    assert_eq!(status, 202);
    expected.insert("seg-1".into());

    let (lines, stderr) = fw.stop();
    let (ids, historical) = delivered(&rokt);
    let ids: HashSet<String> = ids.into_iter().collect();
    assert_eq!(ids, expected, "{lines:#?}");
    assert_eq!(historical, 0);
    assert!(
        !stderr.contains("@example.com") && !stderr.contains(WRITE_KEY),
        "{stderr}"
    );
}

pub async fn write_keys_are_taken_from_basic_auth_or_the_body_and_the_token_still_works(
    exe: &Path,
) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let fw = Forwarder::start(
        exe,
        &rokt,
        &["--write-key", "wk-second"],
        &[("FORWARDER_TOKEN", "tok-1")],
    );
    let call = |headers: &[(&str, String)], body: &Value| {
        http(
            &fw.addr,
            "POST",
            "/v1/track",
            headers,
            body.to_string().as_bytes(),
        )
        .0
    };
    let event = without_type_order("k-1");
    assert_eq!(call(&basic(WRITE_KEY), &event), 200);
    assert_eq!(call(&basic("wk-second"), &event), 200);
    assert_eq!(call(&basic("tok-1"), &event), 200);
    assert_eq!(
        call(&[("authorization", "Bearer tok-1".into())], &event),
        200
    );
    let mut with_key = event.clone();
    with_key["writeKey"] = json!(WRITE_KEY);
    assert_eq!(call(&[], &with_key), 200);

    assert_eq!(call(&basic("wk-wrong"), &event), 401);
    assert_eq!(call(&basic("wk-wrong"), &with_key), 401);
    assert_eq!(
        call(&[("authorization", "Bearer nope".into())], &event),
        401
    );
    assert_eq!(call(&[], &event), 401);
    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &[],
        json!({"batch": [order("k-2")], "writeKey": "wk-wrong"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 401);
    assert!(body_json(&answer)["code"].is_string());
    assert!(!answer.contains("wk-wrong"));
    let (_, stderr) = fw.stop();
    assert!(
        !stderr.contains("wk-") && !stderr.contains("tok-1"),
        "{stderr}"
    );
}

pub fn without_type_order(id: &str) -> Value {
    let mut v = order(id);
    v.as_object_mut().unwrap().remove("type");
    v
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub async fn gzip_is_read_with_a_cap_and_other_encodings_get_415(exe: &Path) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let fw = Forwarder::start(exe, &rokt, &[], &[]);
    let mut headers = basic(WRITE_KEY);
    headers.push(("content-encoding", "gzip".into()));
    let body = json!({"batch": [order("gz-1"), identify("gz-2")]}).to_string();
    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &headers,
        &gzip(body.as_bytes()),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(body_json(&answer)["accepted"], 2);

    // A small body that inflates past the request limit.
    let mut bomb = b"{\"batch\":[]".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 4 << 20));
    bomb.push(b'}');
    let (status, answer) = http(&fw.addr, "POST", "/v1/batch", &headers, &gzip(&bomb));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(body_json(&answer)["code"], "payload_too_large");
    let (status, _) = http(&fw.addr, "POST", "/v1/batch", &headers, b"not gzip");
    assert_eq!(status, 400);

    let mut br = basic(WRITE_KEY);
    br.push(("content-encoding", "br".into()));
    let (status, answer) = http(&fw.addr, "POST", "/v1/batch", &br, body.as_bytes());
    assert_eq!(status, 415, "{answer}");
    fw.stop();
    let (ids, _) = delivered(&rokt);
    assert_eq!(ids.len(), 2);
}

pub async fn oversized_or_unreadable_bodies_get_400_and_bad_events_do_not_spoil_a_batch(
    exe: &Path,
) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let fw = Forwarder::start(exe, &rokt, &[], &[]);
    let auth = basic(WRITE_KEY);
    let mut big = without_type_order("big-1");
    big["properties"]["blob"] = json!("x".repeat(40 * 1024));
    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/track",
        &auth,
        big.to_string().as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    let answer = body_json(&answer);
    assert_eq!(answer["code"], "payload_too_large");
    assert!(answer["message"].is_string());

    let mut big_in_batch = order("big-2");
    big_in_batch["properties"]["blob"] = json!("x".repeat(40 * 1024));
    // One event over 32 KB: Segment refuses the whole request.
    let batch = json!({"batch": [order("big-3"), big_in_batch]});
    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &auth,
        batch.to_string().as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(body_json(&answer)["code"], "payload_too_large");
    // Other bad events are counted, and the rest go on.
    let batch = json!({"batch": [order("ok-1"),
        {"type": "track", "event": "Order Completed", "context": {"traits": {"email": "nobody@example.com"}}},
        {"type": "track", "userId": "jane@example.com"}, "junk"]});
    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &auth,
        batch.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let json = body_json(&answer);
    assert_eq!(
        (json["accepted"].clone(), json["invalid"].clone()),
        (json!(1), json!(3))
    );
    assert!(!answer.contains("example.com"));

    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &auth,
        b"{\"batch\": [jane@example.com",
    );
    assert_eq!(status, 400);
    assert_eq!(body_json(&answer)["code"], "invalid_json");
    assert!(!answer.contains("jane"));
    let (status, _) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &auth,
        &vec![b' '; 600 * 1024],
    );
    assert_eq!(status, 400);
    // Over what the server reads at all: still Segment's 400, not another status.
    let (status, answer) = http(&fw.addr, "POST", "/v1/batch", &auth, &vec![b' '; 5 << 20]);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(body_json(&answer)["code"], "payload_too_large");

    let (_, stderr) = fw.stop();
    assert!(!stderr.contains("example.com"), "{stderr}");
    let (ids, _) = delivered(&rokt);
    assert_eq!(ids, ["ok-1"]);
}

pub async fn a_client_clock_forty_days_behind_is_corrected_and_sent_as_real_time(exe: &Path) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let fw = Forwarder::start(exe, &rokt, &[], &[]);
    let device_now = chrono::Utc::now() - chrono::Duration::days(40);
    let mut event = order("clock-1");
    event["timestamp"] = json!(iso(device_now - chrono::Duration::seconds(5)));
    let body = json!({"batch": [event], "sentAt": iso(device_now)});
    let (status, answer) = http(
        &fw.addr,
        "POST",
        "/v1/batch",
        &basic(WRITE_KEY),
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    fw.stop();
    let received = rokt.received();
    assert_eq!(received.len(), 1);
    assert!(
        !received[0].path.contains("historical"),
        "{}",
        received[0].path
    );
    let sent = received[0].json().to_string();
    let ms: i64 = sent
        .split("\"timestamp_unixtime_ms\":")
        .nth(1)
        .and_then(|s| {
            s.trim_start_matches('"')
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{sent}"));
    let skew = chrono::Utc::now().timestamp_millis() - ms;
    assert!((0..120_000).contains(&skew), "corrected to {skew} ms ago");
}

pub async fn a_full_queue_answers_503_with_retry_after_and_nothing_is_lost(exe: &Path) {
    // Rokt holds every request until the gate opens, so the queue fills.
    let gate = support::Gate::closed();
    let held = gate.clone();
    let rokt = MockServer::start(move |_| Reply::accepted().when_open(&held)).await;
    let fw = Forwarder::start(exe, &rokt, &["--queue-capacity", "20"], &[]);
    let auth = basic(WRITE_KEY);
    let mut answers = Vec::new();
    for i in 0..60 {
        let ids: Vec<String> = (0..10).map(|j| format!("q-{i}-{j}")).collect();
        let batch = json!({"batch": ids.iter().map(|id| order(id)).collect::<Vec<_>>()});
        let (status, answer) = http(
            &fw.addr,
            "POST",
            "/v1/batch",
            &auth,
            batch.to_string().as_bytes(),
        );
        let retry_after = answer.to_ascii_lowercase().contains("retry-after:");
        answers.extend(ids.into_iter().map(|id| (status, retry_after, id)));
        if status == 503 {
            break;
        }
    }
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(
        !busy.is_empty(),
        "never full: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(busy.iter().all(|(_, retry_after, _)| *retry_after));
    assert!(answers.iter().all(|(s, _, _)| *s == 200 || *s == 503));
    gate.open();
    fw.stop();
    let (ids, _) = delivered(&rokt);
    let ids: HashSet<String> = ids.into_iter().collect();
    for (status, _, id) in &answers {
        if *status == 200 {
            assert!(ids.contains(id), "{id} was accepted but not delivered");
        }
    }
}

/// A visitor lands with `?rtid=` on a page view, then buys on a page without it: the forwarder's
/// rtid memory carries the click id to the conversion, as Rokt's browser plugin would.
pub async fn a_click_id_from_the_landing_page_reaches_a_later_conversion(exe: &Path) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let fw = Forwarder::start(exe, &rokt, &[], &[]);
    let landing = json!({"type": "page", "anonymousId": "anon-7", "messageId": "land-7",
        "context": {"page": {"url": "https://shop.example/?utm=x&rtid=click-7",
                             "search": "?utm=x&rtid=click-7"}}});
    let mut conversion = order("buy-7");
    conversion["anonymousId"] = json!("anon-7");
    conversion["context"]["page"] = json!({"url": "https://shop.example/checkout"});
    for (path, body) in [("/v1/page", landing), ("/v1/track", conversion)] {
        let (status, answer) = http(
            &fw.addr,
            "POST",
            path,
            &basic(WRITE_KEY),
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
    }
    fw.stop();
    let sent: Vec<Value> = rokt
        .received()
        .iter()
        .flat_map(|r| r.batches())
        .map(|b| serde_json::to_value(b).unwrap())
        .collect();
    let conversion = sent
        .iter()
        .find(|b| b.to_string().contains("buy-7"))
        .unwrap_or_else(|| panic!("the conversion reached Rokt: {sent:?}"));
    assert_eq!(conversion["user_identities"]["other2"], "click-7");
    assert_eq!(
        conversion["integration_attributes"]["1277"]["passbackconversiontrackingid"],
        "click-7"
    );
}
