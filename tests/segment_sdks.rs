//! Segment's own SDKs, unchanged but for their host, sending through the forwarder example to
//! a mock Rokt on loopback: `segment-analytics-python` 2.4.0, `@segment/analytics-node` 3.1.0
//! and the legacy `analytics-node` 6.2.0, each sending a realistic mix of events (`tests/sdks/`);
//! then the documented HTTP calls by hand (the `intake_support` scenarios). Prints
//! `segment sdks: N passed, M failed`.
//!
//! The SDKs are installed by `.ci/segment-sdks` into a temporary directory named by
//! `SEGMENT_SDKS_DIR` (`py/` for Python's packages, `node/node_modules/`), and runs this test
//! with `--ignored`: plain `cargo test` lists it as ignored and never touches the network.
//! Run, everything must be there (the forwarder built, Python and Node installed): a missing
//! piece fails.

mod intake_support;
mod support;

use intake_support::{Forwarder, WRITE_KEY, example};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{MockServer, Reply};

/// Events each SDK sends (the runs sent 204 per SDK).
const COUNT: usize = 204;

/// Where `.ci/segment-sdks` installed the SDKs.
struct Sdks {
    python_path: PathBuf,
    node_modules: PathBuf,
}

fn sdks() -> Option<Sdks> {
    let dir = std::env::var_os("SEGMENT_SDKS_DIR")?;
    let dir = PathBuf::from(dir);
    let sdks = Sdks {
        python_path: dir.join("py"),
        node_modules: dir.join("node").join("node_modules"),
    };
    for path in [
        sdks.python_path.join("segment").join("analytics"),
        sdks.node_modules.join("@segment").join("analytics-node"),
        sdks.node_modules.join("analytics-node"),
    ] {
        assert!(path.exists(), "{} is missing", path.display());
    }
    Some(sdks)
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One SDK run: the driver's command without its host and write key.
#[derive(Clone)]
struct Run {
    /// `python` or the Node SDK name the driver takes.
    sdk: &'static str,
    extra: Vec<&'static str>,
    /// Appended to the forwarder's address (a host with a path).
    host_path: &'static str,
    write_key: &'static str,
    /// Whether the events should reach Rokt (not with a wrong write key).
    delivered: bool,
}

impl Run {
    fn command(&self, sdks: &Sdks, host: &str, prefix: &str) -> Command {
        let mut cmd;
        let count = COUNT.to_string();
        if self.sdk == "python" {
            cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
            cmd.env("PYTHONPATH", &sdks.python_path)
                .arg(manifest().join("tests/sdks/send_python.py"));
        } else {
            cmd = Command::new("node");
            cmd.env("NODE_PATH", &sdks.node_modules)
                .arg(manifest().join("tests/sdks/send_node.js"))
                .arg(self.sdk);
        }
        cmd.args([host, self.write_key, prefix, &count])
            .args(&self.extra);
        cmd
    }
}

/// What Rokt received: every batch's `customerid` and `source_message_id`, and how many
/// requests went to the historical endpoint.
struct AtRokt {
    customer_ids: HashSet<String>,
    message_ids: HashSet<String>,
    timestamps: Vec<i64>,
    historical: usize,
}

fn at_rokt(rokt: &MockServer) -> AtRokt {
    let mut seen = AtRokt {
        customer_ids: HashSet::new(),
        message_ids: HashSet::new(),
        timestamps: Vec::new(),
        historical: 0,
    };
    for r in rokt.received() {
        if r.path.contains("historical") {
            seen.historical += 1;
        }
        let batches = match r.json() {
            Value::Array(items) => items,
            one => vec![one],
        };
        for b in batches {
            if let Some(id) = b["user_identities"]["customerid"].as_str() {
                seen.customer_ids.insert(id.to_owned());
            }
            for e in b["events"].as_array().into_iter().flatten() {
                if let Some(id) = e["data"]["source_message_id"].as_str() {
                    seen.message_ids.insert(id.to_owned());
                }
                let ms = &e["data"]["timestamp_unixtime_ms"];
                if let Some(ms) = ms
                    .as_i64()
                    .or_else(|| ms.as_str().and_then(|s| s.parse().ok()))
                {
                    seen.timestamps.push(ms);
                }
            }
        }
    }
    seen
}

/// Runs one SDK against a fresh forwarder and mock Rokt; panics on any failure.
async fn sdk_scenario(exe: PathBuf, sdks: &Sdks, run: Run, prefix: &str) {
    let rokt = MockServer::start(|_| Reply::accepted()).await;
    let config = manifest().join("tests/sdks/subscriptions.json");
    let config = config.to_str().unwrap();
    let fw = Forwarder::start(&exe, &rokt, &["--config", config], &[]);
    let host = format!("http://{}{}", fw.addr, run.host_path);
    let mut cmd = run.command(sdks, &host, prefix);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run the SDK driver");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "driver failed: {stderr}");
    let (_, forwarder_log) = fw.stop();

    let mut sent = Vec::new();
    let mut failed = None;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("flushed ") {
            failed = n.trim().parse::<usize>().ok();
        } else if let Ok(v) = serde_json::from_str::<Value>(line) {
            sent.push(v);
        }
    }
    assert_eq!(sent.len(), COUNT, "the driver sent {} events", sent.len());
    let failed = failed.expect("the driver reports its failures");
    let seen = at_rokt(&rokt);
    if run.delivered {
        assert_eq!(
            failed, 0,
            "the SDK reported {failed} failed events: {stderr}"
        );
        let missing: Vec<&str> = sent
            .iter()
            .filter_map(|v| v["userId"].as_str())
            .filter(|u| !seen.customer_ids.contains(*u))
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {COUNT} events never reached Rokt, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        let orders: Vec<&str> = sent
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 6 == 0)
            .filter_map(|(_, v)| v["messageId"].as_str())
            .collect();
        assert!(orders.iter().all(|m| seen.message_ids.contains(*m)));
        assert_eq!(seen.historical, 0, "sent to the historical endpoint");
        let now = chrono::Utc::now().timestamp_millis();
        assert!(
            seen.timestamps.iter().all(|t| (now - t).abs() < 600_000),
            "a timestamp is not within 10 minutes of now"
        );
    } else {
        assert_eq!(failed, COUNT, "the SDK should see every event refused");
        assert!(seen.customer_ids.is_empty(), "events got through");
    }
    assert!(
        !forwarder_log.contains("@example.com") && !forwarder_log.contains(run.write_key),
        "personal data or the write key in the forwarder's log"
    );
}

type Scenario = Box<dyn Fn(&Path) + std::panic::RefUnwindSafe>;

fn in_runtime(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

#[test]
#[ignore = "needs Segment's SDKs installed: run .ci/segment-sdks"]
fn segment_sdks_deliver_every_event_through_the_forwarder() {
    let Some(sdks) = sdks() else {
        panic!("SEGMENT_SDKS_DIR is not set: run .ci/segment-sdks, which installs the SDKs");
    };
    let exe = example("forwarder")
        .expect("the forwarder example is not built: cargo build --example forwarder");
    let sdks = std::sync::Arc::new(sdks);

    let run = |sdk, extra: &[&'static str], host_path, write_key, delivered| Run {
        sdk,
        extra: extra.to_vec(),
        host_path,
        write_key,
        delivered,
    };
    let sdk_runs: Vec<(&str, Run)> = vec![
        ("python", run("python", &[], "", WRITE_KEY, true)),
        (
            "python gzip",
            run("python", &["--gzip"], "", WRITE_KEY, true),
        ),
        (
            "python, host with a path",
            run("python", &[], "/segment-api", WRITE_KEY, true),
        ),
        (
            "python, clock 40 days behind",
            run(
                "python",
                &["--clock-offset-days", "-40"],
                "",
                WRITE_KEY,
                true,
            ),
        ),
        (
            "python, wrong write key",
            run("python", &[], "", "wk-wrong", false),
        ),
        (
            "@segment/analytics-node",
            run("analytics-node", &[], "", WRITE_KEY, true),
        ),
        (
            "@segment/analytics-node, host with a path",
            run("analytics-node", &[], "/segment-api", WRITE_KEY, true),
        ),
        (
            "@segment/analytics-node, clock 40 days behind",
            run(
                "analytics-node",
                &["--clock-offset-days", "-40"],
                "",
                WRITE_KEY,
                true,
            ),
        ),
        (
            "@segment/analytics-node, wrong write key",
            run("analytics-node", &[], "", "wk-wrong", false),
        ),
        (
            "analytics-node (legacy)",
            run("legacy", &[], "", WRITE_KEY, true),
        ),
        (
            "analytics-node (legacy), clock 40 days ahead",
            run(
                "legacy",
                &["--clock-offset-days", "40"],
                "",
                WRITE_KEY,
                true,
            ),
        ),
        (
            "analytics-node (legacy), wrong write key",
            run("legacy", &[], "", "wk-wrong", false),
        ),
    ];
    let mut scenarios: Vec<(String, Scenario)> = Vec::new();
    for (i, (name, r)) in sdk_runs.into_iter().enumerate() {
        let sdks = sdks.clone();
        let prefix = format!("s{i}");
        scenarios.push((
            name.to_owned(),
            Box::new(move |exe: &Path| {
                in_runtime(sdk_scenario(exe.to_owned(), &sdks, r.clone(), &prefix))
            }),
        ));
    }
    macro_rules! by_hand {
        ($name:literal, $f:path) => {
            scenarios.push(($name.to_owned(), Box::new(|exe: &Path| in_runtime($f(exe)))));
        };
    }
    by_hand!(
        "by hand: every documented route",
        intake_support::every_documented_route_is_accepted_and_its_events_reach_rokt
    );
    by_hand!(
        "by hand: write keys and the token",
        intake_support::write_keys_are_taken_from_basic_auth_or_the_body_and_the_token_still_works
    );
    by_hand!(
        "by hand: gzip",
        intake_support::gzip_is_read_with_a_cap_and_other_encodings_get_415
    );
    by_hand!(
        "by hand: oversized event and unreadable JSON",
        intake_support::oversized_or_unreadable_bodies_get_400_and_bad_events_do_not_spoil_a_batch
    );
    by_hand!(
        "by hand: client clock 40 days behind",
        intake_support::a_client_clock_forty_days_behind_is_corrected_and_sent_as_real_time
    );
    by_hand!(
        "by hand: a full queue answers 503",
        intake_support::a_full_queue_answers_503_with_retry_after_and_nothing_is_lost
    );

    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in &scenarios {
        match std::panic::catch_unwind(|| scenario(&exe)) {
            Ok(()) => {
                passed += 1;
                println!("ok: {name}");
            }
            Err(e) => {
                failed += 1;
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("FAILED: {name}: {why}");
            }
        }
    }
    println!("segment sdks: {passed} passed, {failed} failed");
    assert_eq!(failed, 0, "{failed} SDK scenario(s) failed");
}
