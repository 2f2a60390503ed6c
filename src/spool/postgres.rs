//! The shared spool: a Postgres outbox table drained by many dispatchers. Each claims rows
//! with a lease (`FOR UPDATE SKIP LOCKED`); rows whose holder died are claimed again once the
//! lease expires. The crate creates and upgrades the schema itself (versioned migrations).

use super::{BoxFuture, DeadLetter, Record, Settle, Spool, SpoolCounts, SpoolError, Stored};
use bytes::Bytes;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Executor, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The migrations, in order; the version of each is its index plus one. Applied once each,
/// under an advisory lock, recorded in `rokt_spool_migrations`.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE rokt_outbox (
    id BIGSERIAL PRIMARY KEY,
    state SMALLINT NOT NULL DEFAULT 0,
    body BYTEA NOT NULL,
    message_id TEXT,
    newest_ms BIGINT,
    created_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_ms BIGINT NOT NULL DEFAULT 0,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    reason TEXT
);
CREATE INDEX rokt_outbox_pending ON rokt_outbox (id) WHERE state = 0;
CREATE INDEX rokt_outbox_dead ON rokt_outbox (id) WHERE state = 1;
",
    "
ALTER TABLE rokt_outbox ADD COLUMN subscription TEXT;
",
];

/// The advisory lock key that serializes migrations between processes.
const MIGRATION_LOCK: i64 = 0x726f_6b74_7370_6f6f;

/// The database's clock in milliseconds, so that workers on several machines share one clock.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The most appends one insert carries.
const MAX_GROUP: usize = 2000;

/// Configures a [`PostgresSpool`].
#[derive(Debug)]
#[must_use]
pub struct PostgresSpoolBuilder {
    url: String,
    lease: Duration,
    connections: u32,
    writers: usize,
}

impl PostgresSpoolBuilder {
    /// How long a claim holds a row (default 60 s). The holder renews it every third of that
    /// while the row is in memory; when the holder dies, other workers claim the row once it
    /// has expired.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The connection pool's size (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.connections = n;
        self
    }

    /// Connects, applies the migrations this crate ships that the database lacks, and starts
    /// the writers (which insert concurrent appends together) and the lease renewal.
    pub async fn open(self) -> Result<PostgresSpool, SpoolError> {
        if self.lease < Duration::from_millis(100) {
            return Err(SpoolError::Storage {
                reason: "the lease must be at least 100 ms".into(),
            });
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(&self.url)
            .await
            .map_err(error)?;
        migrate(&pool).await?;
        let owner = format!(
            "{}-{}-{:016x}",
            hostname(),
            std::process::id(),
            fastrand::u64(..)
        );
        let (tx, rx) = mpsc::unbounded_channel::<Append>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..self.writers {
            tokio::spawn(writer(pool.clone(), rx.clone()));
        }
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let renew = tokio::spawn(renew(pool.clone(), owner.clone(), self.lease, lease_ms));
        Ok(PostgresSpool {
            pool,
            owner,
            lease_ms,
            appends: tx,
            renew,
        })
    }
}

/// An outbox table in Postgres (`rokt_outbox`), drained by any number of dispatchers on any
/// number of machines.
///
/// Each [`claim`](Spool::claim) takes rows with `FOR UPDATE SKIP LOCKED` and leases them to this
/// spool (its owner id names the host and process); the lease is renewed while the rows are
/// held, and rows of a worker that died are claimed by the others when the lease expires
/// (an event in flight at that moment may be sent twice; none is lost). Concurrent
/// [`append`](Spool::append)s are inserted together. [`append_in`](Self::append_in) writes an
/// event inside the service's own transaction (the transactional outbox): it is sent only if
/// that transaction commits.
pub struct PostgresSpool {
    pool: PgPool,
    owner: String,
    lease_ms: i64,
    appends: mpsc::UnboundedSender<Append>,
    renew: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresSpool {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

impl std::fmt::Debug for PostgresSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSpool")
            .field("owner", &self.owner)
            .field("lease_ms", &self.lease_ms)
            .finish_non_exhaustive()
    }
}

struct Append {
    record: Record,
    reply: oneshot::Sender<Result<u64, SpoolError>>,
}

impl PostgresSpool {
    /// A builder for a spool in the database at `url` (`postgres://…`).
    pub fn builder(url: &str) -> PostgresSpoolBuilder {
        PostgresSpoolBuilder {
            url: url.to_owned(),
            lease: Duration::from_secs(60),
            connections: 10,
            writers: 4,
        }
    }

    /// Connects to `url` with the default settings.
    pub async fn open(url: &str) -> Result<PostgresSpool, SpoolError> {
        PostgresSpool::builder(url).open().await
    }

    /// This spool's owner id, as written in the rows it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Writes `record` through `conn`, inside whatever transaction it is in (the
    /// transactional outbox): the event is sent once that transaction commits, and never if it
    /// rolls back. The schema must exist (open a `PostgresSpool` once first). Returns its id.
    pub async fn append_in(conn: &mut PgConnection, record: Record) -> Result<u64, SpoolError> {
        let row = sqlx::query(&format!(
            "INSERT INTO rokt_outbox (body, message_id, newest_ms, created_ms, subscription) \
             VALUES ($1, $2, $3, {NOW_MS}, $4) RETURNING id"
        ))
        .bind(&record.body[..])
        .bind(record.message_id)
        .bind(record.newest_ms)
        .bind(record.subscription)
        .fetch_one(conn)
        .await
        .map_err(error)?;
        Ok(id_of(row.try_get(0).map_err(error)?))
    }
}

fn id_of(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// What sqlx reported, without anything that may carry a secret (a URL with its password).
fn error(e: sqlx::Error) -> SpoolError {
    match e {
        sqlx::Error::Configuration(_) => SpoolError::Storage {
            reason: "the database URL is not valid".into(),
        },
        sqlx::Error::Database(db) => SpoolError::Storage {
            reason: format!(
                "the database refused: {} ({})",
                db.message(),
                db.code().unwrap_or_default()
            ),
        },
        sqlx::Error::Io(io) => SpoolError::Storage {
            reason: format!("cannot reach the database: {}", io.kind()),
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => SpoolError::Storage {
            reason: "no database connection was free".into(),
        },
        other => SpoolError::Storage {
            reason: format!("database error: {}", kind(&other)),
        },
    }
}

fn kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Tls(_) => "TLS",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "a column could not be read",
        _ => "other",
    }
}

async fn migrate(pool: &PgPool) -> Result<(), SpoolError> {
    let mut tx = pool.begin().await.map_err(error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(error)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS rokt_spool_migrations \
         (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(error)?;
    let found: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM rokt_spool_migrations")
        .fetch_one(&mut *tx)
        .await
        .map_err(error)?
        .try_get(0)
        .map_err(error)?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(SpoolError::Version { found, supported });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute(*sql).await.map_err(error)?;
        sqlx::query("INSERT INTO rokt_spool_migrations (version) VALUES ($1)")
            .bind(i as i64 + 1)
            .execute(&mut *tx)
            .await
            .map_err(error)?;
    }
    tx.commit().await.map_err(error)
}

/// Inserts whatever appends are waiting, together, in one transaction.
async fn writer(pool: PgPool, rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Append>>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut group, MAX_GROUP).await == 0 {
                return;
            }
        }
        let result = insert(&pool, &group).await;
        for (i, a) in group.drain(..).enumerate() {
            let _ = a.reply.send(match &result {
                Ok(ids) => Ok(ids[i]),
                Err(e) => Err(e.clone()),
            });
        }
    }
}

async fn insert(pool: &PgPool, group: &[Append]) -> Result<Vec<u64>, SpoolError> {
    let mut tx = pool.begin().await.map_err(error)?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('rokt_outbox', 'id')) FROM generate_series(1, $1)",
    )
    .bind(group.len() as i64)
    .fetch_all(&mut *tx)
    .await
    .map_err(error)?;
    let bodies: Vec<&[u8]> = group.iter().map(|a| &a.record.body[..]).collect();
    let message_ids: Vec<Option<&str>> = group
        .iter()
        .map(|a| a.record.message_id.as_deref())
        .collect();
    let newest: Vec<Option<i64>> = group.iter().map(|a| a.record.newest_ms).collect();
    let subscriptions: Vec<Option<&str>> = group
        .iter()
        .map(|a| a.record.subscription.as_deref())
        .collect();
    sqlx::query(&format!(
        "INSERT INTO rokt_outbox (id, body, message_id, newest_ms, created_ms, subscription) \
         SELECT id, body, message_id, newest_ms, {NOW_MS}, subscription \
         FROM UNNEST($1::bigint[], $2::bytea[], $3::text[], $4::bigint[], $5::text[]) \
         AS t(id, body, message_id, newest_ms, subscription)"
    ))
    .bind(&ids)
    .bind(&bodies)
    .bind(&message_ids)
    .bind(&newest)
    .bind(&subscriptions)
    .execute(&mut *tx)
    .await
    .map_err(error)?;
    tx.commit().await.map_err(error)?;
    Ok(ids.into_iter().map(id_of).collect())
}

/// Extends the leases of the rows this spool holds, every third of the lease.
async fn renew(pool: PgPool, owner: String, lease: Duration, lease_ms: i64) {
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tick.tick().await;
        let r = sqlx::query(&format!(
            "UPDATE rokt_outbox SET lease_until_ms = {NOW_MS} + $2 \
             WHERE owner = $1 AND state = 0 AND lease_until_ms > 0"
        ))
        .bind(&owner)
        .bind(lease_ms)
        .execute(&pool)
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %error(e), "rokt spool: leases not renewed");
        }
    }
}

impl Spool for PostgresSpool {
    fn append(&self, record: Record) -> BoxFuture<'_, Result<u64, SpoolError>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.appends
                .send(Append { record, reply })
                .map_err(|_| SpoolError::Closed)?;
            rx.await.map_err(|_| SpoolError::Closed)?
        })
    }

    fn claim(&self, max: usize) -> BoxFuture<'_, Result<Vec<Stored>, SpoolError>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "UPDATE rokt_outbox o SET lease_until_ms = {NOW_MS} + $3, owner = $2 \
                 FROM (SELECT id FROM rokt_outbox \
                       WHERE state = 0 AND not_before_ms <= {NOW_MS} AND lease_until_ms < {NOW_MS} \
                       ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) c \
                 WHERE o.id = c.id \
                 RETURNING o.id, o.body, o.message_id, o.newest_ms, o.attempts, o.created_ms, \
                           o.subscription"
            ))
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(&self.owner)
            .bind(self.lease_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(error)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let body: Vec<u8> = r.try_get(1).map_err(error)?;
                out.push(Stored {
                    id: id_of(r.try_get(0).map_err(error)?),
                    record: Record {
                        body: Bytes::from(body),
                        message_id: r.try_get(2).map_err(error)?,
                        newest_ms: r.try_get(3).map_err(error)?,
                        subscription: r.try_get(6).map_err(error)?,
                    },
                    attempts: u32::try_from(r.try_get::<i32, _>(4).map_err(error)?).unwrap_or(0),
                    created_ms: r.try_get(5).map_err(error)?,
                });
            }
            out.sort_by_key(|s| s.id);
            Ok(out)
        })
    }

    fn settle(&self, ops: Vec<Settle>) -> BoxFuture<'_, Result<(), SpoolError>> {
        Box::pin(async move {
            let mut done = Vec::new();
            let mut release = Vec::new();
            let mut tx = self.pool.begin().await.map_err(error)?;
            for op in ops {
                match op {
                    Settle::Done(id) => done.push(id as i64),
                    Settle::Release(id) => release.push(id as i64),
                    Settle::Retry {
                        id,
                        not_before_ms,
                        attempts,
                    } => {
                        sqlx::query(
                            "UPDATE rokt_outbox SET not_before_ms = $2, attempts = $3, \
                             lease_until_ms = 0, owner = NULL WHERE id = $1 AND state = 0",
                        )
                        .bind(id as i64)
                        .bind(not_before_ms)
                        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
                        .execute(&mut *tx)
                        .await
                        .map_err(error)?;
                    }
                    Settle::Dead {
                        id,
                        attempts,
                        reason,
                    } => {
                        sqlx::query(
                            "UPDATE rokt_outbox SET state = 1, attempts = $2, reason = $3, \
                             lease_until_ms = 0, owner = NULL WHERE id = $1",
                        )
                        .bind(id as i64)
                        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
                        .bind(reason)
                        .execute(&mut *tx)
                        .await
                        .map_err(error)?;
                    }
                }
            }
            if !done.is_empty() {
                sqlx::query("DELETE FROM rokt_outbox WHERE id = ANY($1)")
                    .bind(&done)
                    .execute(&mut *tx)
                    .await
                    .map_err(error)?;
            }
            if !release.is_empty() {
                sqlx::query(
                    "UPDATE rokt_outbox SET lease_until_ms = 0, owner = NULL \
                     WHERE id = ANY($1) AND owner = $2",
                )
                .bind(&release)
                .bind(&self.owner)
                .execute(&mut *tx)
                .await
                .map_err(error)?;
            }
            tx.commit().await.map_err(error)
        })
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, SpoolError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, message_id, attempts, created_ms, reason FROM rokt_outbox \
                 WHERE state = 1 ORDER BY id LIMIT $1",
            )
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(error)?;
            rows.into_iter()
                .map(|r| {
                    Ok(DeadLetter {
                        id: id_of(r.try_get(0)?),
                        message_id: r.try_get(1)?,
                        attempts: u32::try_from(r.try_get::<i32, _>(2)?).unwrap_or(0),
                        created_ms: r.try_get(3)?,
                        reason: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(error)
        })
    }

    fn requeue(&self, ids: Vec<u64>) -> BoxFuture<'_, Result<usize, SpoolError>> {
        Box::pin(async move {
            let ids: Vec<i64> = ids.into_iter().map(|i| i as i64).collect();
            let r = sqlx::query(
                "UPDATE rokt_outbox SET state = 0, not_before_ms = 0, lease_until_ms = 0, \
                 owner = NULL, reason = NULL WHERE id = ANY($1) AND state = 1",
            )
            .bind(&ids)
            .execute(&self.pool)
            .await
            .map_err(error)?;
            Ok(usize::try_from(r.rows_affected()).unwrap_or(usize::MAX))
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<SpoolCounts, SpoolError>> {
        Box::pin(async move {
            let r = sqlx::query(
                "SELECT COUNT(*) FILTER (WHERE state = 0), COUNT(*) FILTER (WHERE state = 1) \
                 FROM rokt_outbox",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(error)?;
            let pending: i64 = r.try_get(0).map_err(error)?;
            let dead: i64 = r.try_get(1).map_err(error)?;
            Ok(SpoolCounts {
                pending: u64::try_from(pending).unwrap_or(0),
                dead: u64::try_from(dead).unwrap_or(0),
            })
        })
    }
}
