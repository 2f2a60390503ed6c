//! The embedded spool: one SQLite file on local disk (WAL journal, `synchronous=FULL`), written
//! by one thread that commits whatever has arrived since its last commit in one transaction
//! (group commit: many enqueues share one sync).

use super::{
    BoxFuture, DeadLetter, Record, Settle, Spool, SpoolCounts, SpoolError, Stored, now_ms,
};
use bytes::Bytes;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// The schema version this crate writes (`PRAGMA user_version`).
const VERSION: i64 = 2;

/// The most commands one transaction takes.
const MAX_GROUP: usize = 4096;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY,
    state INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    message_id TEXT,
    newest_ms INTEGER,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS spool_due ON spool (not_before_ms) WHERE state = 0 AND not_before_ms > 0;
CREATE INDEX IF NOT EXISTS spool_dead ON spool (id) WHERE state = 1;
";

/// Version 2: the subscription that mapped each event, so that its outcome names it.
const SCHEMA_V2: &str = "ALTER TABLE spool ADD COLUMN subscription TEXT;";

/// Configures a [`SqliteSpool`].
#[derive(Debug)]
#[must_use]
pub struct SqliteSpoolBuilder {
    path: PathBuf,
    max_bytes: u64,
}

impl SqliteSpoolBuilder {
    /// The bound on the bytes of events it holds, pending and dead (default 1 GiB). An append
    /// past it fails with [`SpoolError::Full`]; the file itself is larger by SQLite's pages and
    /// journal.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Opens (or creates) the file, checks it, upgrades its schema, and starts the writer
    /// thread. A file that is not a spool or is damaged is [`SpoolError::Damaged`]; one held by
    /// another process is [`SpoolError::Busy`].
    pub fn open(self) -> Result<SqliteSpool, SpoolError> {
        let mut conn = Connection::open(&self.path).map_err(open_error)?;
        prepare(&mut conn)?;
        let (live_bytes, next) = {
            let bytes: i64 = conn
                .query_row(
                    "SELECT COALESCE(SUM(length(body)), 0) FROM spool",
                    [],
                    |r| r.get(0),
                )
                .map_err(open_error)?;
            let max_id: i64 = conn
                .query_row("SELECT COALESCE(MAX(id), 0) FROM spool", [], |r| r.get(0))
                .map_err(open_error)?;
            let mark: i64 = conn
                .query_row(
                    "SELECT value FROM spool_meta WHERE key = 'next_id'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(open_error)?
                .unwrap_or(1);
            (
                u64::try_from(bytes).unwrap_or(0),
                u64::try_from(mark.max(max_id + 1)).unwrap_or(1),
            )
        };
        let commits = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            next_id: next,
            commits: commits.clone(),
            live_bytes,
            max_bytes: self.max_bytes,
            cursor: 0,
        };
        let thread = std::thread::Builder::new()
            .name("rokt-spool".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| SpoolError::Storage {
                reason: format!("cannot start the spool thread: {e}"),
            })?;
        Ok(SqliteSpool {
            tx,
            commits,
            thread: Some(thread),
            path: self.path,
        })
    }
}

/// A spool in one SQLite file on local disk, owned by one process at a time (SQLite's exclusive
/// locking mode: a second process gets [`SpoolError::Busy`]).
///
/// An [`append`](Spool::append) returns once its transaction is committed with
/// `synchronous=FULL` in WAL mode, so the event survives a crash of the process or of the
/// machine. One writer thread commits everything that arrived during the previous commit in one
/// transaction, so concurrent enqueues share each sync.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rokt_capi::spool::{Record, Spool, SqliteSpool};
/// let dir = std::env::temp_dir().join(format!("rokt-spool-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let spool = SqliteSpool::open(dir.join("events.db"))?;
/// let id = spool.append(Record::new("{}".into(), Some("m-1".into()), None)).await?;
/// let claimed = spool.claim(10).await?;
/// assert_eq!(claimed[0].id, id);
/// assert_eq!(spool.counts().await?.pending, 1);
/// # drop(spool);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct SqliteSpool {
    tx: mpsc::Sender<Cmd>,
    commits: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for SqliteSpool {
    /// Stops the writer thread once it has answered every command, and closes the file.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for SqliteSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSpool")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteSpool {
    /// Opens (or creates) a spool at `path` with the default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteSpool, SpoolError> {
        SqliteSpool::builder(path).open()
    }

    /// A builder for a spool at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteSpoolBuilder {
        SqliteSpoolBuilder {
            path: path.as_ref().to_owned(),
            max_bytes: 1 << 30,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many transactions it has committed since it was opened (each is one sync to disk,
    /// shared by every command it carried).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, SpoolError>>) -> Cmd,
    ) -> Result<T, SpoolError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }
}

impl Spool for SqliteSpool {
    fn append(&self, record: Record) -> BoxFuture<'_, Result<u64, SpoolError>> {
        Box::pin(self.call(|reply| Cmd::Append(record, reply)))
    }

    fn claim(&self, max: usize) -> BoxFuture<'_, Result<Vec<Stored>, SpoolError>> {
        Box::pin(self.call(move |reply| Cmd::Claim(max, reply)))
    }

    fn settle(&self, ops: Vec<Settle>) -> BoxFuture<'_, Result<(), SpoolError>> {
        Box::pin(self.call(|reply| Cmd::Settle(ops, reply)))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, SpoolError>> {
        Box::pin(self.call(move |reply| Cmd::Dead(limit, reply)))
    }

    fn requeue(&self, ids: Vec<u64>) -> BoxFuture<'_, Result<usize, SpoolError>> {
        Box::pin(self.call(|reply| Cmd::Requeue(ids, reply)))
    }

    fn counts(&self) -> BoxFuture<'_, Result<SpoolCounts, SpoolError>> {
        Box::pin(self.call(Cmd::Counts))
    }
}

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

enum Cmd {
    Append(Record, Reply<u64>),
    Claim(usize, Reply<Vec<Stored>>),
    Settle(Vec<Settle>, Reply<()>),
    Dead(usize, Reply<Vec<DeadLetter>>),
    Requeue(Vec<u64>, Reply<usize>),
    Counts(Reply<SpoolCounts>),
}

/// Sets the pragmas, takes the exclusive lock, checks the file and brings its schema up to date.
fn prepare(conn: &mut Connection) -> Result<(), SpoolError> {
    conn.busy_timeout(std::time::Duration::from_millis(200))
        .map_err(open_error)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(open_error)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SpoolError::Storage {
            reason: format!("SQLite would not use a WAL journal (it chose {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_error)?;
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(open_error)?;
    if check != "ok" {
        return Err(SpoolError::Damaged {
            reason: "SQLite's integrity check failed".into(),
        });
    }
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_error)?;
    if found > VERSION {
        return Err(SpoolError::Version {
            found,
            supported: VERSION,
        });
    }
    let tx = conn.transaction().map_err(open_error)?;
    if found == 0 {
        // A new file, or a database that is not a spool: only an empty one becomes a spool.
        let foreign: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'spool%'",
                [],
                |r| r.get(0),
            )
            .map_err(open_error)?;
        if foreign > 0 {
            return Err(SpoolError::Damaged {
                reason: "the file is an SQLite database with other tables, not a spool".into(),
            });
        }
        tx.execute_batch(SCHEMA_V1).map_err(open_error)?;
    }
    if found < 2 {
        tx.execute_batch(SCHEMA_V2).map_err(open_error)?;
    }
    if found < VERSION {
        tx.pragma_update(None, "user_version", VERSION)
            .map_err(open_error)?;
    }
    tx.commit().map_err(open_error)?;
    Ok(())
}

fn open_error(e: rusqlite::Error) -> SpoolError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SpoolError::Busy,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            SpoolError::Damaged { reason: reason(&e) }
        }
        _ => SpoolError::Storage { reason: reason(&e) },
    }
}

/// SQLite's message: it names the failure (statements bind their values, so none appear).
fn reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg)) => format!("{msg} ({:?})", err.code),
        rusqlite::Error::SqliteFailure(err, None) => format!("{:?}", err.code),
        other => other.to_string(),
    }
}

/// Owns the connection; runs on its own thread.
struct Writer {
    conn: Connection,
    /// The id the next append gets (stored in `spool_meta` with each commit).
    next_id: u64,
    commits: Arc<AtomicU64>,
    /// Bytes of bodies held.
    live_bytes: u64,
    max_bytes: u64,
    /// New rows above this id have not been claimed in this process.
    cursor: u64,
}

/// A command's result, to be sent once its transaction committed.
enum Done {
    Id(Reply<u64>, Result<u64, SpoolError>),
    Rows(Reply<Vec<Stored>>, Result<Vec<Stored>, SpoolError>),
    Unit(Reply<()>, Result<(), SpoolError>),
    Dead(Reply<Vec<DeadLetter>>, Result<Vec<DeadLetter>, SpoolError>),
    Count(Reply<usize>, Result<usize, SpoolError>),
    Counts(Reply<SpoolCounts>, Result<SpoolCounts, SpoolError>),
}

impl Done {
    /// The result, or `err` in its place when the transaction failed.
    fn send(self, err: Option<&SpoolError>) {
        fn pick<T>(r: Result<T, SpoolError>, err: Option<&SpoolError>) -> Result<T, SpoolError> {
            match err {
                Some(e) => Err(e.clone()),
                None => r,
            }
        }
        match self {
            Done::Id(tx, r) => drop(tx.send(pick(r, err))),
            Done::Rows(tx, r) => drop(tx.send(pick(r, err))),
            Done::Unit(tx, r) => drop(tx.send(pick(r, err))),
            Done::Dead(tx, r) => drop(tx.send(pick(r, err))),
            Done::Count(tx, r) => drop(tx.send(pick(r, err))),
            Done::Counts(tx, r) => drop(tx.send(pick(r, err))),
        }
    }
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Cmd>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while let Ok(first) = rx.recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(cmd) => group.push(cmd),
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group);
        }
    }

    /// Runs every command of the group in one transaction, then answers each.
    fn commit_group(&mut self, group: &mut Vec<Cmd>) {
        let (bytes, cursor) = (self.live_bytes, self.cursor);
        let mut done = Vec::with_capacity(group.len());
        let result = self.transaction(group, &mut done);
        if result.is_err() {
            // Nothing of the group was stored: forget its effects on the counters.
            self.live_bytes = bytes;
            self.cursor = cursor;
        }
        let err = result.err();
        for d in done {
            d.send(err.as_ref());
        }
    }

    fn transaction(
        &mut self,
        group: &mut Vec<Cmd>,
        done: &mut Vec<Done>,
    ) -> Result<(), SpoolError> {
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let err = run_error(&e);
                for cmd in group.drain(..) {
                    done.push(refuse(cmd));
                }
                return Err(err);
            }
        };
        let mut failed = None;
        let now = now_ms();
        for cmd in group.drain(..) {
            done.push(match cmd {
                Cmd::Append(record, reply) => {
                    let len = record.body.len() as u64;
                    let r = if self.live_bytes + len > self.max_bytes {
                        Err(SpoolError::Full {
                            limit: self.max_bytes,
                        })
                    } else {
                        let id = self.next_id;
                        self.next_id += 1;
                        tx.prepare_cached(
                            "INSERT INTO spool (id, body, message_id, newest_ms, created_ms, subscription) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                id as i64,
                                &record.body[..],
                                record.message_id,
                                record.newest_ms,
                                now,
                                record.subscription
                            ])
                        })
                        .map(|_| {
                            self.live_bytes += len;
                            id
                        })
                        .map_err(|e| run_error(&e))
                    };
                    if let Err(e @ SpoolError::Damaged { .. } | e @ SpoolError::Storage { .. }) = &r
                    {
                        failed.get_or_insert(e.clone());
                    }
                    Done::Id(reply, r)
                }
                Cmd::Claim(max, reply) => {
                    let r = claim(&tx, max, now, &mut self.cursor).map_err(|e| run_error(&e));
                    Done::Rows(reply, r)
                }
                Cmd::Settle(ops, reply) => {
                    let r = settle(&tx, &ops, &mut self.live_bytes).map_err(|e| run_error(&e));
                    if let Err(e) = &r {
                        failed.get_or_insert(e.clone());
                    }
                    Done::Unit(reply, r)
                }
                Cmd::Dead(limit, reply) => {
                    Done::Dead(reply, dead_letters(&tx, limit).map_err(|e| run_error(&e)))
                }
                Cmd::Requeue(ids, reply) => {
                    Done::Count(reply, requeue(&tx, &ids).map_err(|e| run_error(&e)))
                }
                Cmd::Counts(reply) => Done::Counts(reply, counts(&tx).map_err(|e| run_error(&e))),
            });
        }
        if let Some(e) = failed {
            let _ = tx.rollback();
            return Err(e);
        }
        let next = self.next_id as i64;
        tx.execute(
            "INSERT INTO spool_meta (key, value) VALUES ('next_id', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [next],
        )
        .map_err(|e| run_error(&e))?;
        tx.commit().map_err(|e| run_error(&e))?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A command answered with an error before it ran.
fn refuse(cmd: Cmd) -> Done {
    match cmd {
        Cmd::Append(_, r) => Done::Id(r, Err(SpoolError::Closed)),
        Cmd::Claim(_, r) => Done::Rows(r, Err(SpoolError::Closed)),
        Cmd::Settle(_, r) => Done::Unit(r, Err(SpoolError::Closed)),
        Cmd::Dead(_, r) => Done::Dead(r, Err(SpoolError::Closed)),
        Cmd::Requeue(_, r) => Done::Count(r, Err(SpoolError::Closed)),
        Cmd::Counts(r) => Done::Counts(r, Err(SpoolError::Closed)),
    }
}

fn run_error(e: &rusqlite::Error) -> SpoolError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            SpoolError::Damaged { reason: reason(e) }
        }
        Some(ErrorCode::DiskFull) => SpoolError::Storage {
            reason: "the disk is full".into(),
        },
        _ => SpoolError::Storage { reason: reason(e) },
    }
}

fn row_to_stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let id: i64 = r.get(0)?;
    let body: Vec<u8> = r.get(1)?;
    Ok(Stored {
        id: id as u64,
        record: Record {
            body: Bytes::from(body),
            message_id: r.get(2)?,
            newest_ms: r.get(3)?,
            subscription: r.get(6)?,
        },
        attempts: r.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
        created_ms: r.get(5)?,
    })
}

fn claim(
    tx: &rusqlite::Transaction<'_>,
    max: usize,
    now: i64,
    cursor: &mut u64,
) -> rusqlite::Result<Vec<Stored>> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    // Events due for another attempt (or released, or re-queued) first: they are older.
    {
        let mut s = tx.prepare_cached(
            "SELECT id, body, message_id, newest_ms, attempts, created_ms, subscription FROM spool \
             WHERE state = 0 AND not_before_ms > 0 AND not_before_ms <= ?1 \
             ORDER BY not_before_ms, id LIMIT ?2",
        )?;
        let rows = s.query_map(params![now, max], row_to_stored)?;
        for row in rows {
            out.push(row?);
        }
        let mut mark = tx.prepare_cached("UPDATE spool SET not_before_ms = 0 WHERE id = ?1")?;
        for st in &out {
            // Held in memory now; a restart finds it again (its id is below no cursor then).
            mark.execute([st.id as i64])?;
        }
    }
    let left = max - out.len() as i64;
    if left > 0 {
        let mut s = tx.prepare_cached(
            "SELECT id, body, message_id, newest_ms, attempts, created_ms, subscription FROM spool \
             WHERE id > ?1 AND state = 0 AND not_before_ms = 0 ORDER BY id LIMIT ?2",
        )?;
        let rows = s.query_map(params![*cursor as i64, left], row_to_stored)?;
        for row in rows {
            let st = row?;
            *cursor = (*cursor).max(st.id);
            out.push(st);
        }
    }
    Ok(out)
}

fn settle(
    tx: &rusqlite::Transaction<'_>,
    ops: &[Settle],
    live_bytes: &mut u64,
) -> rusqlite::Result<()> {
    for op in ops {
        match op {
            Settle::Done(id) => {
                let len: Option<i64> = tx
                    .prepare_cached("DELETE FROM spool WHERE id = ?1 RETURNING length(body)")?
                    .query_row([*id as i64], |r| r.get(0))
                    .optional()?;
                *live_bytes = live_bytes.saturating_sub(len.unwrap_or(0) as u64);
            }
            Settle::Retry {
                id,
                not_before_ms,
                attempts,
            } => {
                tx.prepare_cached(
                    "UPDATE spool SET not_before_ms = ?2, attempts = ?3 WHERE id = ?1 AND state = 0",
                )?
                .execute(params![*id as i64, (*not_before_ms).max(1), attempts])?;
            }
            Settle::Dead {
                id,
                attempts,
                reason,
            } => {
                tx.prepare_cached(
                    "UPDATE spool SET state = 1, attempts = ?2, reason = ?3, not_before_ms = 0 \
                     WHERE id = ?1",
                )?
                .execute(params![*id as i64, attempts, reason])?;
            }
            Settle::Release(id) => {
                tx.prepare_cached(
                    "UPDATE spool SET not_before_ms = 1 WHERE id = ?1 AND state = 0",
                )?
                .execute([*id as i64])?;
            }
        }
    }
    Ok(())
}

fn dead_letters(tx: &rusqlite::Transaction<'_>, limit: usize) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut s = tx.prepare_cached(
        "SELECT id, message_id, attempts, created_ms, reason FROM spool WHERE state = 1 \
         ORDER BY id LIMIT ?1",
    )?;
    let rows = s.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(DeadLetter {
            id: r.get::<_, i64>(0)? as u64,
            message_id: r.get(1)?,
            attempts: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
            created_ms: r.get(3)?,
            reason: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        })
    })?;
    rows.collect()
}

fn requeue(tx: &rusqlite::Transaction<'_>, ids: &[u64]) -> rusqlite::Result<usize> {
    let mut s = tx.prepare_cached(
        "UPDATE spool SET state = 0, not_before_ms = 1, reason = NULL WHERE id = ?1 AND state = 1",
    )?;
    let mut n = 0;
    for id in ids {
        n += s.execute([*id as i64])?;
    }
    Ok(n)
}

fn counts(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<SpoolCounts> {
    tx.query_row(
        "SELECT COALESCE(SUM(state = 0), 0), COALESCE(SUM(state = 1), 0) FROM spool",
        [],
        |r| {
            Ok(SpoolCounts {
                pending: r.get::<_, i64>(0)? as u64,
                dead: r.get::<_, i64>(1)? as u64,
            })
        },
    )
}
