//! The forwarder and replay examples, run as the built binaries over loopback.
//!
//! `cargo test` builds the examples; when a test runs without them (e.g. `cargo test --test
//! examples` alone, or `--tests`), it says so and passes, except under `CI=true`, where a
//! missing example fails the test.

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{MockServer, Reply};

use support::example;

const TIMEOUT: Duration = Duration::from_secs(60);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An example run offline: no credentials in its environment, started in the crate's directory.
fn command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.current_dir(manifest_dir())
        .env_remove("ROKT_API_KEY")
        .env_remove("ROKT_API_SECRET")
        .env_remove("ROKT_ENDPOINT")
        .env_remove("FORWARDER_TOKEN")
        .env_remove("PREVIEW_BLOCK_BYTES")
        .env_remove("RUST_LOG");
    cmd
}

/// A running example whose stdout is read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
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
        Running {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The next line on stdout.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(_) => {
                let _ = self.child.kill();
                panic!("no output; so far: {:?}", self.seen);
            }
        }
    }

    /// Waits for the exit; returns the status, every stdout line, and stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let status = wait(&mut self.child);
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(line);
        }
        let stderr = self.stderr.join().unwrap();
        (status, self.seen, stderr)
    }
}

fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example did not stop within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request over a fresh connection: the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post(addr: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(addr, "POST", "/segment", &[], body);
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, json)
}

/// The `key=value` pairs of the last line starting with `prefix`.
fn report(lines: &[String], prefix: &str) -> HashMap<String, String> {
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {lines:#?}"));
    line[prefix.len()..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Asserts `key=value` for each pair.
fn assert_counts(report: &HashMap<String, String>, expected: &[(&str, u64)]) {
    for (key, value) in expected {
        assert_eq!(
            report.get(*key).map(String::as_str),
            Some(value.to_string().as_str()),
            "{key} in {report:?}"
        );
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn order(id: &str, timestamp: &str) -> Value {
    json!({
        "type": "track", "event": "Order Completed", "userId": format!("user-{id}"),
        "messageId": format!("fw-{id}"), "timestamp": timestamp,
        "context": {"traits": {"email": format!("{id}@example.com")}, "ip": "203.0.113.5"},
        "properties": {"order_id": format!("o-{id}"), "revenue": 12.5, "currency": "USD"}
    })
}

fn identify(id: &str) -> Value {
    json!({
        "type": "identify", "userId": format!("user-{id}"), "messageId": format!("fw-{id}"),
        "timestamp": now(), "traits": {"email": format!("{id}@example.com"), "first_name": "Pat"}
    })
}

/// The forwarder on a free port with the bundled subscriptions; returns it and its address.
fn start_forwarder(exe: &Path, extra: &[&str], token: Option<&str>) -> (Running, String) {
    let mut cmd = command(exe);
    cmd.args(["--listen", "127.0.0.1:0"]).args(extra);
    if let Some(t) = token {
        cmd.env("FORWARDER_TOKEN", t);
    }
    let mut fw = Running::start(cmd);
    let first = fw.line();
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_owned();
    (fw, addr)
}

#[test]
fn the_forwarder_routes_answers_and_drains_on_shutdown() {
    let Some(exe) = example("forwarder") else {
        return;
    };
    let (fw, addr) = start_forwarder(&exe, &["--shutdown-endpoint"], None);
    let mut answers = Vec::new();

    // One event.
    let (status, body) = post(&addr, &order("a", &now()).to_string());
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(body["results"][0]["message_id"], "fw-a");
    answers.push(body);

    // A batch as Segment's tracking API sends it: one per subscription, one for none.
    let page = json!({"type": "page", "name": "Home", "messageId": "fw-p", "timestamp": now(),
                      "userId": "user-p"});
    let batch = json!({"batch": [identify("b"), order("c", &now()), page]});
    let (status, body) = post(&addr, &batch.to_string());
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (
            body["events"].as_u64(),
            body["accepted"].as_u64(),
            body["ignored"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{body}"
    );
    assert_eq!(body["results"][2]["ignored"], true);
    answers.push(body);

    // A JSON array, as a batching webhook sends it.
    let array = json!([order("d", &now()), order("e", &now())]);
    let (status, body) = post(&addr, &array.to_string());
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(2)),
        "{body}"
    );
    answers.push(body);

    // A bad event: no identifier at all. Nothing accepted, so 400 (Segment does not retry it).
    let bad = json!({"type": "track", "event": "Order Completed", "messageId": "fw-bad",
                     "timestamp": now(), "properties": {"revenue": 1, "email_hint": "x@example.com"}});
    let (status, body) = post(&addr, &bad.to_string());
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["rejected"], 1);
    let error = &body["results"][0]["errors"][0];
    assert_eq!(error["subscription"], "Conversions");
    assert_eq!(error["error_type"], "PAYLOAD_VALIDATION_FAILED");
    answers.push(body);

    // Not JSON, not an event.
    let (status, _) = http(&addr, "POST", "/segment", &[], "nope");
    assert_eq!(status, 400);
    let (status, _) = http(&addr, "POST", "/segment", &[], "42");
    assert_eq!(status, 400);

    // Metrics.
    let (status, stats) = http(&addr, "GET", "/stats", &[], "");
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["subscriptions"].as_array().map(Vec::len), Some(2));
    assert_eq!(stats["events"], 7);

    // No answer echoes personal data.
    for body in &answers {
        let text = body.to_string();
        for secret in ["@example.com", "user-", "203.0.113.5", "o-a", "Pat"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    // Shut down: everything accepted is delivered before the report.
    let (status, _) = http(&addr, "POST", "/shutdown", &[], "");
    assert_eq!(status, 202);
    let (exit, lines, stderr) = fw.finish();
    assert!(exit.success(), "{exit:?}\n{lines:#?}\n{stderr}");
    let r = report(&lines, "report: ");
    assert_counts(
        &r,
        &[
            ("events", 7),
            ("accepted", 5),
            ("ignored", 1),
            ("delivered", 5),
            ("rejected", 1),
            ("failed", 0),
        ],
    );
    let receiver = report(&lines, "local receiver: ");
    assert_counts(
        &receiver,
        &[("batches", 5), ("historical", 0), ("refused", 0)],
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("subscription \"Engage audiences\": accepted=1 delivered=1")),
        "{lines:#?}"
    );
}

/// SIGTERM drains the queue too; with `FORWARDER_TOKEN` set, requests need the bearer token
/// and `POST /shutdown` is off unless asked for.
#[cfg(unix)]
#[test]
fn the_forwarder_stops_on_sigterm_without_losing_events() {
    let Some(exe) = example("forwarder") else {
        return;
    };
    let (fw, addr) = start_forwarder(&exe, &[], Some("s3cret"));
    let event = order("t", &now()).to_string();
    let (status, _) = http(&addr, "POST", "/segment", &[], &event);
    assert_eq!(status, 401);
    let auth = [("authorization", "Bearer s3cret")];
    let (status, body) = http(&addr, "POST", "/segment", &auth, &event);
    assert_eq!(status, 202, "{body}");
    let (status, _) = http(&addr, "POST", "/shutdown", &auth, "");
    assert_eq!(
        status, 404,
        "no shutdown endpoint unless --shutdown-endpoint"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &fw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (exit, lines, stderr) = fw.finish();
    assert!(exit.success(), "{exit:?}\n{lines:#?}\n{stderr}");
    assert_counts(
        &report(&lines, "report: "),
        &[("events", 1), ("accepted", 1), ("delivered", 1)],
    );
    assert_counts(&report(&lines, "local receiver: "), &[("batches", 1)]);
}

/// A scratch directory for one test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("rokt-capi-examples-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs replay with `args` to completion: exit status, stdout lines, stderr.
fn replay(exe: &Path, args: &[&Path], env: &[(&str, &str)]) -> (ExitStatus, Vec<String>, String) {
    let mut cmd = command(exe);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running::start(cmd).finish()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn bundled() -> PathBuf {
    manifest_dir().join("examples/data/events.ndjson")
}

#[test]
fn replay_delivers_the_bundled_events_and_dead_letters_the_rest() {
    let Some(exe) = example("replay") else {
        return;
    };
    let tmp = TempDir::new("bundled");
    let dead = tmp.path("dead.ndjson");
    let (exit, lines, stderr) = replay(&exe, &[&bundled(), "--dead-letter".as_ref(), &dead], &[]);
    assert_eq!(
        exit.code(),
        Some(2),
        "some were not delivered\n{lines:#?}\n{stderr}"
    );
    assert_counts(
        &report(&lines, "report: "),
        &[
            ("records", 9),
            ("delivered", 6),
            ("rejected", 3),
            ("failed", 0),
            ("skipped", 0),
            ("dead_letter", 3),
        ],
    );
    assert_counts(
        &report(&lines, "local receiver: "),
        &[("batches", 6), ("refused", 0)],
    );
    // stderr is not a terminal: no progress bar drawn.
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );

    // Each dead letter keeps its original line exactly, and a reason without personal data.
    let original: Vec<String> = std::fs::read_to_string(bundled())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let letters = read_lines(&dead);
    let records: Vec<u64> = letters
        .iter()
        .map(|l| l["dead_letter"]["record"].as_u64().unwrap())
        .collect();
    assert_eq!(records, [3, 7, 8]);
    for l in &letters {
        let n = l["dead_letter"]["record"].as_u64().unwrap() as usize;
        assert_eq!(l["event"].as_str(), Some(original[n - 1].as_str()));
        assert_eq!(l["dead_letter"]["verdict"], "rejected");
        let why = l["dead_letter"].to_string();
        assert!(!why.contains('@') && !why.contains("female"), "{why}");
    }
    let types: Vec<&str> = letters
        .iter()
        .map(|l| l["dead_letter"]["error_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "PAYLOAD_VALIDATION_FAILED",
            "PAYLOAD_VALIDATION_FAILED",
            "INVALID_EVENT"
        ]
    );

    // Replaying the dead letters gives the same rejections, and the same dead letters.
    let again = tmp.path("again.ndjson");
    let (exit, lines, _) = replay(&exe, &[&dead, "--dead-letter".as_ref(), &again], &[]);
    assert_eq!(exit.code(), Some(2));
    assert_counts(
        &report(&lines, "report: "),
        &[
            ("records", 3),
            ("delivered", 0),
            ("rejected", 3),
            ("dead_letter", 3),
        ],
    );
    let strip = |mut v: Value| {
        v["dead_letter"].as_object_mut().unwrap().remove("record");
        v
    };
    let first: Vec<Value> = letters.into_iter().map(strip).collect();
    let second: Vec<Value> = read_lines(&again).into_iter().map(strip).collect();
    assert_eq!(first, second);

    // The dead-letter file may not be the input.
    let (exit, _, stderr) = replay(&exe, &[&dead, "--dead-letter".as_ref(), &dead], &[]);
    assert_eq!(exit.code(), Some(1));
    assert!(stderr.contains("is the input file"), "{stderr}");
    assert_eq!(read_lines(&dead).len(), 3, "the input is untouched");
}

#[test]
fn replay_reads_gzip_by_name_or_by_magic_bytes() {
    let Some(exe) = example("replay") else {
        return;
    };
    let tmp = TempDir::new("gzip");
    let data = std::fs::read(bundled()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    for name in ["events.ndjson.gz", "events.archive"] {
        let path = tmp.path(name);
        std::fs::write(&path, &gz).unwrap();
        let (exit, lines, stderr) = replay(&exe, &[&path, "--rate".as_ref(), "0".as_ref()], &[]);
        assert_eq!(exit.code(), Some(2), "{name}\n{lines:#?}\n{stderr}");
        assert_counts(
            &report(&lines, "report: "),
            &[
                ("records", 9),
                ("delivered", 6),
                ("rejected", 3),
                ("failed", 0),
            ],
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("3 records were not delivered")),
            "without --dead-letter it says what was not kept: {lines:#?}"
        );
    }
}

#[test]
fn replay_sends_old_events_to_the_historical_endpoint() {
    let Some(exe) = example("replay") else {
        return;
    };
    let tmp = TempDir::new("historical");
    let old = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let input = tmp.path("mixed.ndjson");
    let text = format!("{}\n\n{}\n", order("new", &now()), order("old", &old));
    std::fs::write(&input, text).unwrap();
    let (exit, lines, stderr) = replay(&exe, &[&input], &[]);
    assert!(exit.success(), "{lines:#?}\n{stderr}");
    assert_counts(
        &report(&lines, "report: "),
        &[
            ("records", 2),
            ("delivered", 2),
            ("bulk", 1),
            ("historical", 1),
        ],
    );
    assert_counts(
        &report(&lines, "local receiver: "),
        &[("batches", 2), ("historical", 1)],
    );
}

/// Against Rokt that keeps failing (a mock on loopback, reached with credentials and
/// `ROKT_ENDPOINT`), failures are dead-lettered as `failed`, after the retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dead_letters_failures_after_retries() {
    let Some(exe) = example("replay") else {
        return;
    };
    let server = MockServer::script(vec![Reply::status(503)]).await;
    let tmp = TempDir::new("failures");
    let dead = tmp.path("dead.ndjson");
    let url = server.url();
    let run = {
        let dead = dead.clone();
        tokio::task::spawn_blocking(move || {
            let args: [&Path; 6] = [
                &bundled(),
                "--dead-letter".as_ref(),
                &dead,
                "--max-attempts".as_ref(),
                "2".as_ref(),
                "--quiet".as_ref(),
            ];
            let env = [
                ("ROKT_API_KEY", support::KEY),
                ("ROKT_API_SECRET", support::SECRET),
                ("ROKT_ENDPOINT", url.as_str()),
            ];
            replay(&exe, &args, &env)
        })
    };
    let (exit, lines, stderr) = run.await.unwrap();
    assert_eq!(exit.code(), Some(2), "{lines:#?}\n{stderr}");
    assert_counts(
        &report(&lines, "report: "),
        &[
            ("records", 9),
            ("delivered", 0),
            ("failed", 6),
            ("rejected", 3),
            ("dead_letter", 9),
        ],
    );
    let r = report(&lines, "report: ");
    assert!(r["retries"].parse::<u64>().unwrap() >= 1, "{r:?}");
    assert!(server.count() >= 2);
    let failed: Vec<Value> = read_lines(&dead)
        .into_iter()
        .filter(|l| l["dead_letter"]["verdict"] == "failed")
        .collect();
    assert_eq!(failed.len(), 6);
    assert!(failed.iter().all(|l| l["dead_letter"]["status"] == 503
        && l["dead_letter"]["error_type"] == "RETRYABLE_ERROR"));
    // A failed event keeps the batch that was sent (from its outcome), named by message id.
    for l in &failed {
        let Some(id) = l["dead_letter"]["message_id"].as_str() else {
            // An identify's batch of attributes only: no event, no message id.
            assert!(l["batch"]["user_identities"].is_object(), "{l}");
            continue;
        };
        let events = l["batch"]["events"].as_array().unwrap();
        // The conversion carries the message id; an Engage event's membership event `aud_<id>`.
        let carries = |e: &Value| {
            e["data"]["source_message_id"]
                .as_str()
                .is_some_and(|s| s.ends_with(id))
        };
        assert!(events.iter().any(carries), "{l}");
    }
    // Replayed once Rokt is back, the kept batches are delivered as they were, byte for byte.
    let healthy = MockServer::script(vec![Reply::accepted()]).await;
    let url = healthy.url();
    let again = tmp.path("again.ndjson");
    let run = {
        let (dead, again) = (dead.clone(), again.clone());
        let exe = example("replay").unwrap();
        tokio::task::spawn_blocking(move || {
            let args: [&Path; 4] = [&dead, "--dead-letter".as_ref(), &again, "--quiet".as_ref()];
            let env = [
                ("ROKT_API_KEY", support::KEY),
                ("ROKT_API_SECRET", support::SECRET),
                ("ROKT_ENDPOINT", url.as_str()),
            ];
            replay(&exe, &args, &env)
        })
    };
    let (exit, lines, stderr) = run.await.unwrap();
    assert_eq!(
        exit.code(),
        Some(2),
        "the bad input is still bad\n{lines:#?}\n{stderr}"
    );
    assert_counts(
        &report(&lines, "report: "),
        &[
            ("records", 9),
            ("delivered", 6),
            ("rejected", 3),
            ("failed", 0),
        ],
    );
    let first_bodies: Vec<Vec<u8>> = server.received().into_iter().map(|r| r.body).collect();
    for r in healthy.received() {
        // Read as typed batches, which keep their order, and written again.
        let batches: Vec<rokt_capi::rokt::Batch> = serde_json::from_slice(&r.body).unwrap();
        for batch in &batches {
            let bytes = serde_json::to_vec(batch).unwrap();
            let sent_before = first_bodies
                .iter()
                .any(|b| b.windows(bytes.len()).any(|w| w == &bytes[..]));
            assert!(
                sent_before,
                "a replayed batch differs from the one first sent"
            );
        }
    }
    // Every request carried the credentials from the environment.
    assert!(
        server
            .received()
            .iter()
            .all(|r| r.header("authorization") == Some(support::expected_auth().as_str()))
    );
}

/// Runs the preview over `input` with `args`, returning its stdout.
fn preview(exe: &Path, args: &[&str], input: impl AsRef<[u8]>) -> String {
    preview_with(exe, args, &[], input)
}

/// [`preview`] with variables set in its environment.
fn preview_with(
    exe: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: impl AsRef<[u8]>,
) -> String {
    let mut child = command(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the preview");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.as_ref().to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    writer.join().unwrap().unwrap();
    assert!(wait(&mut child).success());
    out
}

#[test]
fn the_preview_reports_the_same_outcomes_in_the_same_order_on_any_number_of_threads() {
    let Some(exe) = example("preview") else {
        return;
    };
    // Over many read-ahead chunks and blocks of lines, with rejected and unreadable lines
    // among them: not JSON, blank, CRLF, not UTF-8, a line longer than a block and one over
    // the size limit (each straddling block ends), and a last line without its newline.
    let bundled = std::fs::read_to_string(bundled()).unwrap();
    let mut input: Vec<u8> = Vec::new();
    for i in 0..1_900 {
        input.extend_from_slice(bundled.as_bytes());
        match i % 300 {
            0 => input.extend_from_slice(b"{\"type\":\"track\"\n\n  \t\n"),
            100 => input.extend_from_slice(b"{\"type\":\"track\",\"event\":\"\xff\"}\r\n"),
            150 => input.extend_from_slice(b"{\"type\":\"identify\",\"userId\":\"u\"}\r\n"),
            _ => {}
        }
        match i {
            700 => {
                input.extend_from_slice(b"{\"type\":\"track\",\"event\":\"");
                input.extend(std::iter::repeat_n(b'x', 600 << 10));
                input.extend_from_slice(b"\"}\n");
            }
            1200 => {
                input.extend(std::iter::repeat_n(b' ', (5 << 19) + 3000));
                input.extend_from_slice(b"{}\n");
            }
            _ => {}
        }
    }
    input.extend_from_slice(bundled.trim_end().as_bytes());
    let lines = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count();
    for args in [
        &["--batch", "7"][..],
        &["--batch", "1"][..],
        &[][..],
        &["--trigger", "type = \"track\""][..],
    ] {
        let one = preview(&exe, args, &input);
        let mut accounted = 0;
        for line in one.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            accounted += match v.get("body") {
                Some(Value::Array(items)) => items.len(),
                _ => 1,
            };
        }
        assert_eq!(accounted, lines, "one outcome per line with {args:?}");
        for threads in ["2", "3"] {
            let many = preview(&exe, &[args, &["--threads", threads]].concat(), &input);
            assert!(one == many, "--threads {threads} differs with {args:?}");
        }
    }
}

/// With `--threads` above 1 the input is read in blocks cut at their last newline, and the
/// lines are split inside each block: however small the blocks (so that every kind of line
/// straddles block ends, and lines longer than a block make it grow up to the size limit), the
/// outcomes are those of one thread reading line by line.
#[test]
fn the_preview_splits_lines_the_same_way_at_any_block_size() {
    let Some(exe) = example("preview") else {
        return;
    };
    let bundled = std::fs::read_to_string(bundled()).unwrap();
    let limit = rokt_capi::ndjson::DEFAULT_MAX_LINE;
    let mut input: Vec<u8> = Vec::new();
    for i in 0..16 {
        input.extend_from_slice(bundled.as_bytes());
        match i {
            0 => input.extend_from_slice(b"\n  \t\r\n\r\n\n"),
            1 => input.extend_from_slice(b"{\"type\":\"track\",\"event\":\"\xff\"}\r\n"),
            2 => input.extend_from_slice(b"not json\n  {\"type\":\"identify\"}  \r\n"),
            3 => {
                input.extend_from_slice(b"{\"type\":\"track\",\"event\":\"");
                input.extend(std::iter::repeat_n(b'x', 5000));
                input.extend_from_slice(b"\"}\n");
            }
            // One byte over the size limit; then far over it (passed over as it is read), a
            // short line read with its end, and a line at the limit (with its `\r`, which
            // counts).
            4 => {
                input.extend(std::iter::repeat_n(b' ', limit - 1));
                input.extend_from_slice(b"{}\n");
                input.extend(std::iter::repeat_n(b' ', limit + 10_000));
                input.extend_from_slice(b"{}\n{\"type\":\"track\"}\n");
                input.extend(std::iter::repeat_n(b' ', limit - 3));
                input.extend_from_slice(b"{}\r\n");
            }
            _ => {}
        }
    }
    // Over the limit, without a newline.
    input.extend(std::iter::repeat_n(b'y', limit + 1));
    let args = ["--batch", "7"];
    let one = preview(&exe, &args, &input);
    assert!(one.contains("over the limit"), "{one}");
    for block in ["5", "300", "4096"] {
        for threads in ["2", "3"] {
            let env = [("PREVIEW_BLOCK_BYTES", block)];
            let many = preview_with(
                &exe,
                &[&args[..], &["--threads", threads]].concat(),
                &env,
                &input,
            );
            assert!(
                one == many,
                "--threads {threads} differs with blocks of {block} bytes"
            );
        }
    }
}

#[test]
fn the_preview_with_an_rtid_memory_maps_each_conversion_with_its_landing_pages_rtid() {
    let Some(exe) = example("preview") else {
        return;
    };
    let sessions =
        std::fs::read_to_string(manifest_dir().join("examples/data/sessions.ndjson")).unwrap();
    let trigger = [
        "--trigger",
        "type = \"track\" and event = \"Order Completed\"",
    ];
    // Each conversion's order id and rtid, or the error type when it is not sent.
    let conversions = |args: &[&str]| -> Vec<(String, Value)> {
        preview(&exe, &[&trigger[..], args].concat(), &sessions)
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|v| v["status"] != "skipped")
            .map(|v| match v.get("body") {
                Some(b) => (
                    b["events"][0]["data"]["custom_attributes"]["confirmationref"].to_string(),
                    b["user_identities"]["other2"].clone(),
                ),
                None => (v["index"].to_string(), v["errortype"].clone()),
            })
            .collect()
    };
    let with = conversions(&["--rtid-memory"]);
    let expected = [
        ("\"o-101\"", json!("rt-101")),  // the landing page's query
        ("\"o-102\"", json!("rt-102b")), // the newer click, through identify's userId
        ("\"o-103\"", Value::Null),      // no click in the session
        ("\"o-104\"", Value::Null),      // `integrations.All: false`, Rokt not named
        ("\"o-105\"", json!("rt-105")),  // through alias's previousId
    ];
    let expected: Vec<(String, Value)> = expected
        .into_iter()
        .map(|(o, r)| (o.to_owned(), r))
        .collect();
    assert_eq!(with, expected);
    assert_eq!(with, conversions(&["--rtid-memory", "--threads", "3"]));
    // Without the memory, the first session's conversion has no identifier.
    assert_eq!(
        conversions(&[])[0],
        ("3".to_owned(), json!("PAYLOAD_VALIDATION_FAILED"))
    );
}

/// The forwarder's durable flags, end to end: events are acknowledged (`202`) while Rokt does
/// not answer, the forwarder is killed (SIGKILL: no shutdown, nothing sent), and the next
/// start with the same spool sends them, once Rokt answers.
#[cfg(all(unix, any(feature = "sqlite", feature = "postgres")))]
async fn forwarder_crash_and_restart(spool_args: Vec<String>) {
    let Some(exe) = example("forwarder") else {
        return;
    };
    // Rokt that never answers, then Rokt that does.
    let gate = support::Gate::closed();
    let silent = MockServer::start({
        let gate = gate.clone();
        move |_| Reply::accepted().when_open(&gate)
    })
    .await;
    let server = MockServer::script(vec![Reply::accepted()]).await;
    let start = move |exe: PathBuf, url: String, spool_args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let mut cmd = command(&exe);
            cmd.args(["--listen", "127.0.0.1:0"])
                .args(&spool_args)
                .env("ROKT_API_KEY", support::KEY)
                .env("ROKT_API_SECRET", support::SECRET)
                .env("ROKT_ENDPOINT", url);
            let mut fw = Running::start(cmd);
            let first = fw.line();
            let addr = first
                .strip_prefix("listening on http://")
                .unwrap_or_else(|| panic!("first line: {first:?}"))
                .to_owned();
            (fw, addr)
        })
    };
    let (mut first, addr) = start(exe.clone(), silent.url(), spool_args.clone())
        .await
        .unwrap();
    let now = now();
    let events: Vec<Value> = (0..5).map(|i| order(&format!("crash-{i}"), &now)).collect();
    let body = Value::Array(events).to_string();
    let answer = tokio::task::spawn_blocking(move || post(&addr, &body));
    let (status, answer) = answer.await.unwrap();
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 5, "{answer}");
    // Acknowledged: now crash, with Rokt still silent.
    first.child.kill().unwrap();
    let _ = first.child.wait();

    let (second, addr) = start(exe, server.url(), spool_args).await.unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut delivered = std::collections::HashSet::new();
    while delivered.len() < 5 {
        assert!(Instant::now() < deadline, "only {delivered:?} delivered");
        for r in server.received() {
            for id in r.message_ids() {
                delivered.insert(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: std::collections::HashSet<String> =
        (0..5).map(|i| format!("fw-crash-{i}")).collect();
    assert_eq!(delivered, expected);
    let stop = tokio::task::spawn_blocking(move || {
        let killed = Command::new("kill")
            .args(["-TERM", &second.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = addr;
        second.finish()
    });
    let (exit, lines, stderr) = stop.await.unwrap();
    assert!(exit.success(), "{exit:?}\n{lines:#?}\n{stderr}");
    assert_counts(
        &report(&lines, "report: "),
        &[("delivered", 5), ("failed", 0)],
    );
}

#[cfg(all(unix, feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_with_a_spool_dir_sends_after_a_crash_what_it_acknowledged() {
    let tmp = TempDir::new("forwarder-spool");
    let dir = tmp.path("spool").to_string_lossy().into_owned();
    forwarder_crash_and_restart(vec!["--spool".into(), dir]).await;
    assert!(tmp.path("spool").join("spool.db").exists());
}

#[cfg(all(unix, feature = "postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_with_a_database_url_sends_after_a_crash_what_it_acknowledged() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and DATABASE_URL is not set: this test needs a database")
        }
        _ => return println!("skipped: DATABASE_URL is not set"),
    };
    // A database of its own: the outbox table is shared by whoever uses the database.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let name = format!("rokt_forwarder_{}", std::process::id());
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    // A short lease: the crashed instance's claims expire within the test.
    let url = format!("{base}/{name}");
    forwarder_crash_and_restart(vec![
        "--database-url".into(),
        url,
        "--lease".into(),
        "1".into(),
    ])
    .await;
}
