//! Durable spools: where a [`Dispatcher`](crate::client::Dispatcher) keeps each event from the
//! moment [`enqueue`](crate::client::Dispatcher::enqueue) accepts it until its outcome is
//! settled, so that a crash, a kill or a long outage loses nothing that was acknowledged.
//!
//! A spool stores events already encoded (the exact bytes that are sent) with their routing.
//! Each stored event has a persistent id, unique in its spool and never reused: it is the
//! [`Ticket`](crate::client::Ticket) the dispatcher returns and the one its outcome carries, in
//! this process or in the one that resumes it after a restart.
//!
//! Two spools ship:
//! - `SqliteSpool` (feature `sqlite`): one file on local disk, owned by one process, with
//!   group commit and a size bound.
//! - `PostgresSpool` (feature `postgres`): one table shared by dispatchers on many machines,
//!   which claim rows with a lease; a service can also write events inside its own transaction.
//!
//! A spool holds each row in one of two areas: *pending* (waiting to be sent, or being sent) and
//! *dead letters* (failed after the retry window; listed with [`Spool::dead_letters`] and sent
//! again with [`Spool::requeue`]).
//!
//! Errors about a spool never quote an event: they name what failed and why.

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresSpool, PostgresSpoolBuilder};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{SqliteSpool, SqliteSpoolBuilder};

/// A boxed future, as the [`Spool`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One event as a spool stores it: the encoded batch and its routing.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The encoded batch, byte for byte what is sent.
    pub body: Bytes,
    /// The Segment `messageId` (the batch's `source_message_id`), when it has one.
    pub message_id: Option<String>,
    /// The newest `timestamp_unixtime_ms` of its events (it chooses the route).
    pub newest_ms: Option<i64>,
    /// The destination's subscription that mapped it, when there was one: its outcome names it.
    pub subscription: Option<String>,
}

impl Record {
    /// A record of an encoded body and its routing.
    pub fn new(body: Bytes, message_id: Option<String>, newest_ms: Option<i64>) -> Record {
        Record {
            body,
            message_id,
            newest_ms,
            subscription: None,
        }
    }

    /// The same record, naming the subscription that mapped it.
    pub fn with_subscription(mut self, subscription: Option<String>) -> Record {
        self.subscription = subscription;
        self
    }
}

impl std::fmt::Debug for Record {
    /// Prints the body's length only (it carries personal data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("body_len", &self.body.len())
            .field("message_id", &self.message_id)
            .field("newest_ms", &self.newest_ms)
            .field("subscription", &self.subscription)
            .finish()
    }
}

/// A pending event handed to a dispatcher by [`Spool::claim`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stored {
    /// Its persistent id.
    pub id: u64,
    /// What was stored.
    pub record: Record,
    /// How many times it was sent and failed (each time after the client's retry policy gave up).
    pub attempts: u32,
    /// When it was first stored, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// What becomes of a claimed event; a dispatcher hands these to [`Spool::settle`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settle {
    /// It has its outcome (delivered or rejected): remove it.
    Done(u64),
    /// It failed this time: send it again no earlier than `not_before_ms`.
    Retry {
        /// The event.
        id: u64,
        /// Milliseconds since the Unix epoch.
        not_before_ms: i64,
        /// Its attempts so far, this one included.
        attempts: u32,
    },
    /// It failed for good: move it to the dead letters.
    Dead {
        /// The event.
        id: u64,
        /// Its attempts, this one included.
        attempts: u32,
        /// Why, without personal data (a verdict, a status and an error type).
        reason: String,
    },
    /// It was not sent (its dispatcher stopped): leave it pending, to be claimed again now.
    Release(u64),
}

/// An event in the dead-letter area.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its persistent id.
    pub id: u64,
    /// Its Segment `messageId`, when it has one.
    pub message_id: Option<String>,
    /// How many times it was sent.
    pub attempts: u32,
    /// When it was first stored (ms since the Unix epoch).
    pub created_ms: i64,
    /// Why it failed, without personal data.
    pub reason: String,
}

/// How many events a spool holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolCounts {
    /// Waiting to be sent or being sent.
    pub pending: u64,
    /// In the dead-letter area.
    pub dead: u64,
}

/// Why a spool could not do what was asked. It never quotes an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool reached its size bound: nothing was stored. Back-pressure: try again once
    /// events have drained.
    #[error("the spool is full (its bound is {limit} bytes of events)")]
    Full {
        /// The bound, in bytes of stored bodies.
        limit: u64,
    },
    /// The spool's file or table is damaged or is not a spool.
    #[error("the spool is damaged or is not a spool: {reason}")]
    Damaged {
        /// What the storage engine reported.
        reason: String,
    },
    /// Another process holds the spool (an embedded spool has one owner at a time).
    #[error("the spool is in use by another process")]
    Busy,
    /// The spool was written by a newer version of this crate.
    #[error("the spool's schema version {found} is newer than this crate's ({supported})")]
    Version {
        /// The version found.
        found: i64,
        /// The newest this crate knows.
        supported: i64,
    },
    /// The storage failed (disk, network, database).
    #[error("the spool's storage failed: {reason}")]
    Storage {
        /// What the storage engine reported.
        reason: String,
    },
    /// The spool's worker has stopped.
    #[error("the spool is closed")]
    Closed,
}

/// Durable storage for a dispatcher's events. See the [module docs](self).
///
/// A dispatcher calls [`append`](Self::append) from `enqueue` (and acknowledges the event only
/// once it returns), [`claim`](Self::claim) to take pending events into memory (its own new
/// ones, and those left by a process that stopped), and [`settle`](Self::settle) once an
/// outcome is known. Implement it to keep events elsewhere; the ids must be unique in the spool
/// and never reused.
pub trait Spool: Send + Sync + 'static {
    /// Stores one event durably and returns its id. [`SpoolError::Full`] when the bound is
    /// reached.
    fn append(&self, record: Record) -> BoxFuture<'_, Result<u64, SpoolError>>;

    /// Takes up to `max` pending events that no live dispatcher holds, in id order (events due
    /// for another attempt too). A claimed event is not handed out again until it is settled
    /// or, for a shared spool, until its holder's lease expires.
    fn claim(&self, max: usize) -> BoxFuture<'_, Result<Vec<Stored>, SpoolError>>;

    /// Records what became of claimed events.
    fn settle(&self, ops: Vec<Settle>) -> BoxFuture<'_, Result<(), SpoolError>>;

    /// Up to `limit` dead letters, oldest first.
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, SpoolError>>;

    /// Moves these dead letters back to pending, due now; returns how many were moved (ids that
    /// are not dead letters are ignored).
    fn requeue(&self, ids: Vec<u64>) -> BoxFuture<'_, Result<usize, SpoolError>>;

    /// How many events it holds.
    fn counts(&self) -> BoxFuture<'_, Result<SpoolCounts, SpoolError>>;
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}
