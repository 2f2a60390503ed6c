//! [`SqliteStore`]: an rtid memory kept in an SQLite file.

use super::{Remembered, RtidStore, StoreError, VisitorKey};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const STORE: &str = "sqlite";

/// The table, created when missing. `WITHOUT ROWID`: the key is the row.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rokt_rtid_memory (
    visitor TEXT PRIMARY KEY NOT NULL,
    rtid TEXT NOT NULL,
    learned_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rokt_rtid_memory_learned ON rokt_rtid_memory (learned_ms);
";

/// An [`RtidStore`] in an SQLite database (feature `sqlite`; SQLite itself is compiled in):
/// what an [`RtidMemory`](super::RtidMemory) learned survives a restart, and processes on
/// one machine that open the same file share it.
///
/// Entries live in the table `rokt_rtid_memory` (`visitor`, `rtid`, `learned_ms`), created
/// when missing. The store is bounded by the memory's time to live: expired rows are deleted
/// at most once a minute, by the memory. The file is opened in WAL mode with `synchronous =
/// NORMAL` (a power cut may lose the last writes; a crash of the program does not), and a
/// writer waits up to five seconds for another process's lock.
///
/// Calls block on the file (a primary-key read or write, well under a millisecond on a local
/// disk), behind one connection's lock.
///
/// ```
/// use rokt_capi::rtid::memory::{RtidMemory, SqliteStore};
/// # let dir = std::env::temp_dir().join(format!("rokt-capi-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("rtid-memory.sqlite");
/// let memory = RtidMemory::builder().store(SqliteStore::open(&path)?).build()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::new(STORE, "open", e))?;
        // WAL lets readers in other processes go on while one writes. With WAL, `NORMAL`
        // syncs at checkpoints rather than on every write: a crash of the program loses
        // nothing, a power cut may lose the last writes (clicks learned in the last moments).
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(|e| StoreError::new(STORE, "open", e))?;
        SqliteStore::with(conn)
    }

    /// A database in this process's memory only (for tests).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::with(
            Connection::open_in_memory().map_err(|e| StoreError::new(STORE, "open", e))?,
        )
    }

    fn with(conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| StoreError::new(STORE, "create its table", e))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a statement leaves SQLite's own state consistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RtidStore for SqliteStore {
    fn get(&self, key: &VisitorKey) -> Result<Option<Remembered>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT rtid, learned_ms FROM rokt_rtid_memory WHERE visitor = ?1")
            .map_err(|e| StoreError::new(STORE, "get", e))?;
        stmt.query_row(params![key.as_str()], |row| {
            Ok(Remembered {
                rtid: row.get(0)?,
                learned_ms: row.get(1)?,
            })
        })
        .optional()
        .map_err(|e| StoreError::new(STORE, "get", e))
    }

    fn put(&self, key: &VisitorKey, entry: &Remembered) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO rokt_rtid_memory (visitor, rtid, learned_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (visitor) DO UPDATE SET rtid = excluded.rtid,
                     learned_ms = excluded.learned_ms",
            )
            .map_err(|e| StoreError::new(STORE, "put", e))?;
        stmt.execute(params![key.as_str(), entry.rtid, entry.learned_ms])
            .map(drop)
            .map_err(|e| StoreError::new(STORE, "put", e))
    }

    fn forget_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("DELETE FROM rokt_rtid_memory WHERE learned_ms < ?1")
            .map_err(|e| StoreError::new(STORE, "forget expired entries", e))?;
        stmt.execute(params![cutoff_ms])
            .map(|n| n as u64)
            .map_err(|e| StoreError::new(STORE, "forget expired entries", e))
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM rokt_rtid_memory", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| StoreError::new(STORE, "count", e))
    }
}
