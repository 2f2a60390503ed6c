//! Chaos: a child process enqueues events through a spooled dispatcher to a receiver on
//! loopback and prints each id once `enqueue` has returned; the test kills it with SIGKILL at
//! random moments, starts it again on the same spool, and checks at the end that every
//! acknowledged id reached the receiver. It prints one line per backend:
//! `durability: backend=embedded rounds=R acknowledged=A delivered=D lost=L duplicates=X`.
//!
//! The child is this test binary itself, started again with `ROKT_DURABILITY_CHILD` set and
//! filtered to `child_process`.
#![cfg(all(unix, any(feature = "sqlite", feature = "postgres")))]

mod support;

use rokt_capi::client::Dispatcher;
use rokt_capi::spool::Spool;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{MockServer, Reply};

const ROUNDS: usize = 20;

/// Which spool the child opens, and how it is told where.
#[derive(Clone, Debug)]
enum Backend {
    #[cfg(feature = "sqlite")]
    Embedded(std::path::PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

/// A running child and the ids it acknowledged so far.
struct Producer {
    child: Child,
    acked: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

fn spawn(backend: &Backend, url: &str, mode: &str, prefix: &str) -> Producer {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ROKT_DURABILITY_CHILD", mode)
    .env("ROKT_DURABILITY_URL", url)
    .env("ROKT_DURABILITY_PREFIX", prefix)
    .env_remove("RUST_LOG")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    match backend {
        #[cfg(feature = "sqlite")]
        Backend::Embedded(path) => cmd.env("ROKT_DURABILITY_SPOOL", path),
        #[cfg(feature = "postgres")]
        Backend::Postgres(url) => cmd.env("ROKT_DURABILITY_DATABASE", url),
    };
    let mut child = cmd.spawn().expect("start the child");
    let stdout = child.stdout.take().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let reader = std::thread::spawn({
        let acked = acked.clone();
        move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ack ") {
                    acked.lock().unwrap().push(id.to_owned());
                }
            }
        }
    });
    Producer {
        child,
        acked,
        reader,
    }
}

impl Producer {
    /// Kills it with SIGKILL; the ids it acknowledged.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
        let _ = self.reader.join();
        std::mem::take(&mut *self.acked.lock().unwrap())
    }

    /// Waits for it to exit by itself.
    fn wait(mut self, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the draining child failed: {status}");
                break;
            }
            assert!(start.elapsed() < limit, "the draining child did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.reader.join();
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

/// The report line, after checking nothing acknowledged was lost.
fn judge(backend: &str, rounds: usize, acked: &HashSet<String>, server: &MockServer) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in server.received() {
        for id in r.message_ids() {
            *seen.entry(id).or_default() += 1;
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "durability: backend={backend} rounds={rounds} acknowledged={} delivered={} lost={} duplicates={duplicates}",
        acked.len(),
        seen.len(),
        lost.len(),
    );
    assert!(
        lost.is_empty(),
        "acknowledged and never delivered: {lost:?}"
    );
    assert!(!acked.is_empty());
}

/// Runs `rounds` of start, random wait, SIGKILL for each of `workers` children, then one
/// drain; returns the acknowledged ids.
fn chaos(backend: &Backend, url: &str, rounds: usize, workers: usize) -> HashSet<String> {
    let mut acked = HashSet::new();
    for round in 0..rounds {
        let producers: Vec<Producer> = (0..workers)
            .map(|w| spawn(backend, url, "produce", &format!("r{round}w{w}-")))
            .collect();
        let mut producers: Vec<Option<Producer>> = producers.into_iter().map(Some).collect();
        // Each worker dies at its own random moment.
        let mut deaths: Vec<(Duration, usize)> = (0..workers)
            .map(|w| (Duration::from_millis(fastrand::u64(150..900)), w))
            .collect();
        deaths.sort();
        let start = Instant::now();
        for (at, w) in deaths {
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let p = producers[w].take().unwrap();
            acked.extend(p.kill());
        }
    }
    let drainers: Vec<Producer> = (0..workers)
        .map(|w| spawn(backend, url, "drain", &format!("drain{w}-")))
        .collect();
    for d in drainers {
        d.wait(Duration::from_secs(120));
    }
    acked
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_spool_loses_nothing_acknowledged_across_sigkills() {
    let dir = std::env::temp_dir().join(format!("rokt-durability-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let backend = Backend::Embedded(dir.join("spool.db"));
    let server = MockServer::start(|_| Reply::accepted()).await;
    let url = server.url();
    let acked = tokio::task::spawn_blocking(move || chaos(&backend, &url, ROUNDS, 1))
        .await
        .unwrap();
    judge("embedded", ROUNDS, &acked, &server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_loses_nothing_acknowledged_with_three_workers_killed() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and DATABASE_URL is not set: the postgres chaos test cannot be skipped"
        );
        println!("skipped: DATABASE_URL is not set");
        return;
    };
    let name = format!("rokt_chaos_{:016x}", fastrand::u64(..));
    let admin = rokt_capi::spool::PostgresSpool::open(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    let backend = Backend::Postgres(url.to_string());
    let server = MockServer::start(|_| Reply::accepted()).await;
    let receiver = server.url();
    let acked = tokio::task::spawn_blocking(move || chaos(&backend, &receiver, ROUNDS, 3))
        .await
        .unwrap();
    judge("postgres", ROUNDS, &acked, &server);
}

/// The child: produces until killed, or drains the spool and exits.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("ROKT_DURABILITY_CHILD") else {
        return; // only a child when started by the tests above
    };
    let url = std::env::var("ROKT_DURABILITY_URL").unwrap();
    let prefix = std::env::var("ROKT_DURABILITY_PREFIX").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let spool = open_spool().await;
        let client = rokt_capi::client::Client::builder()
            .api_key(support::KEY)
            .api_secret(support::SECRET)
            .endpoint_url(&url)
            .retry(support::fast_retry())
            .build()
            .unwrap();
        let dispatcher = Dispatcher::builder(client)
            .spool(spool.clone())
            .flush_interval(Duration::from_millis(5))
            .spool_max_backoff(Duration::from_millis(100))
            .build()
            .unwrap();
        if mode == "drain" {
            let start = Instant::now();
            loop {
                let counts = spool.counts().await.unwrap();
                if counts.pending == 0 {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(100), "{counts:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            dispatcher.shutdown().await;
            return;
        }
        let mut out = std::io::stdout().lock();
        for i in 0.. {
            let mut event = support::event(i);
            let id = format!("{prefix}{i}");
            event["messageId"] = serde_json::json!(id);
            dispatcher.enqueue(event).await.unwrap();
            writeln!(out, "ack {id}").unwrap();
            out.flush().unwrap();
        }
    });
}

async fn open_spool() -> Arc<dyn Spool> {
    #[cfg(feature = "sqlite")]
    if let Ok(path) = std::env::var("ROKT_DURABILITY_SPOOL") {
        // The killed child's lock goes with it; a moment may pass before the OS lets go.
        let start = Instant::now();
        loop {
            match rokt_capi::spool::SqliteSpool::open(&path) {
                Ok(s) => return Arc::new(s),
                Err(rokt_capi::spool::SpoolError::Busy)
                    if start.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("ROKT_DURABILITY_DATABASE") {
        return Arc::new(
            rokt_capi::spool::PostgresSpool::builder(&url)
                .lease(Duration::from_secs(2))
                .open()
                .await
                .unwrap(),
        );
    }
    panic!("no spool given to the child")
}
