//! The shared spool: a Postgres outbox table drained by many dispatchers.
