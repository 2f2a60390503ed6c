//! [`PostgresStore`]: an rtid memory every instance behind a load balancer shares.

use super::{AsyncRtidStore, Remembered, StoreError, StoreFuture, VisitorKey};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::collections::HashMap;

const STORE: &str = "postgres";

/// The table [`PostgresStore::connect`] uses.
pub const DEFAULT_TABLE: &str = "rokt_rtid_memory";

/// An [`AsyncRtidStore`] in PostgreSQL (feature `postgres`; sqlx on tokio, TLS by rustls):
/// every instance of a service that connects to the same table shares what any one of them
/// learned, so a visitor's conversion is attributed whichever instance its landing page went
/// through.
///
/// Entries live in one table (`visitor TEXT PRIMARY KEY`, `rtid TEXT`, `learned_ms BIGINT`,
/// indexed on `learned_ms`), created when missing. It is bounded by the memory's time to
/// live: expired rows are deleted at most once a minute, by each instance's memory. An
/// event costs two round trips at most: one read of its keys, one upsert of what changed.
///
/// Errors keep the client's cause, except a database error, which keeps only its SQLSTATE
/// code (a server message may quote a row).
///
/// ```no_run
/// use rokt_capi::rtid::memory::{PostgresStore, RtidMemory};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect(&std::env::var("DATABASE_URL")?).await?;
/// let memory = RtidMemory::builder().build_async(store)?;
/// let mut event = serde_json::json!({"type": "track", "event": "Order Completed", "userId": "u-1"});
/// memory.observe_value(&mut event).await?;
/// # Ok(())
/// # }
/// ```
pub struct PostgresStore {
    pool: PgPool,
    get: String,
    put: String,
    forget: String,
    count: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

/// A client error as a cause that quotes no row.
fn cause(e: sqlx::Error) -> Box<dyn std::error::Error + Send + Sync> {
    match e {
        sqlx::Error::Database(db) => format!(
            "database error, SQLSTATE {}",
            db.code().as_deref().unwrap_or("unknown")
        )
        .into(),
        sqlx::Error::Configuration(_) => "the connection URL is not valid".into(),
        other => Box::new(other),
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`) and creates the
    /// table [`DEFAULT_TABLE`] when missing. The pool holds up to 8 connections and waits at
    /// most 3 seconds for one ([`with_pool`](Self::with_pool) takes a pool set up otherwise).
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_to_table(url, DEFAULT_TABLE).await
    }

    /// [`connect`](Self::connect), with another table: lowercase ASCII letters, digits and
    /// `_`, not starting with a digit, at most 50 characters.
    pub async fn connect_to_table(url: &str, table: &str) -> Result<PostgresStore, StoreError> {
        check_table(table)?;
        // An event waits for its connection: give up after a few seconds, not sqlx's 30.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect(url)
            .await
            .map_err(|e| StoreError::new(STORE, "connect", cause(e)))?;
        PostgresStore::with_pool(pool, table).await
    }

    /// Uses a pool the service already has, with `table` (see
    /// [`connect_to_table`](Self::connect_to_table)), created when missing.
    pub async fn with_pool(pool: PgPool, table: &str) -> Result<PostgresStore, StoreError> {
        check_table(table)?;
        let schema = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 visitor TEXT PRIMARY KEY,
                 rtid TEXT NOT NULL,
                 learned_ms BIGINT NOT NULL
             )"
        );
        let index = format!("CREATE INDEX IF NOT EXISTS {table}_learned ON {table} (learned_ms)");
        for statement in [schema, index] {
            sqlx::query(&statement)
                .execute(&pool)
                .await
                .map_err(|e| StoreError::new(STORE, "create its table", cause(e)))?;
        }
        Ok(PostgresStore {
            pool,
            get: format!("SELECT visitor, rtid, learned_ms FROM {table} WHERE visitor = ANY($1)"),
            put: format!(
                "INSERT INTO {table} (visitor, rtid, learned_ms)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (visitor) DO UPDATE
                 SET rtid = EXCLUDED.rtid, learned_ms = EXCLUDED.learned_ms"
            ),
            forget: format!("DELETE FROM {table} WHERE learned_ms < $1"),
            count: format!("SELECT COUNT(*) FROM {table}"),
        })
    }

    /// The pool it uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The table name goes into SQL text, so it is held to a plain identifier.
fn check_table(table: &str) -> Result<(), StoreError> {
    let plain = !table.is_empty()
        && table.len() <= 50
        && !table.starts_with(|c: char| c.is_ascii_digit())
        && table
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(StoreError::new(
            STORE,
            "use its table name",
            "a table name is lowercase ASCII letters, digits and `_`, at most 50, not starting with a digit",
        ))
    }
}

impl AsyncRtidStore for PostgresStore {
    fn get_many<'a>(&'a self, keys: &'a [VisitorKey]) -> StoreFuture<'a, Vec<Option<Remembered>>> {
        Box::pin(async move {
            let wanted: Vec<&str> = keys.iter().map(VisitorKey::as_str).collect();
            let rows: Vec<(String, String, i64)> = sqlx::query_as(&self.get)
                .bind(&wanted)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| StoreError::new(STORE, "get", cause(e)))?;
            let mut by_key: HashMap<String, Remembered> = rows
                .into_iter()
                .map(|(visitor, rtid, learned_ms)| (visitor, Remembered { rtid, learned_ms }))
                .collect();
            Ok(wanted.iter().map(|k| by_key.remove(*k)).collect())
        })
    }

    fn put_many<'a>(&'a self, writes: &'a [(VisitorKey, Remembered)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let visitors: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
            let rtids: Vec<&str> = writes.iter().map(|(_, e)| e.rtid.as_str()).collect();
            let learned: Vec<i64> = writes.iter().map(|(_, e)| e.learned_ms).collect();
            sqlx::query(&self.put)
                .bind(&visitors)
                .bind(&rtids)
                .bind(&learned)
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(|e| StoreError::new(STORE, "put", cause(e)))
        })
    }

    fn forget_learned_before(&self, cutoff_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            sqlx::query(&self.forget)
                .bind(cutoff_ms)
                .execute(&self.pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| StoreError::new(STORE, "forget expired entries", cause(e)))
        })
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let (n,): (i64,) = sqlx::query_as(&self.count)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::new(STORE, "count", cause(e)))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}
