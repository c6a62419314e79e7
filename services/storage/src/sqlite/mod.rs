//! SQLite (`sqlite://path`): the embedded default. One file in WAL mode holds the event
//! history (with an FTS5 index), the document collections and the durable cache entries.

mod dialect;
mod documents;
mod history;

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Result, StorageError};
use crate::location::{CONNECT_TIMEOUT, Location};
use crate::sql::{self, Migration, Pools};
use sqlx::{Sqlite, SqlitePool};

pub(crate) const BACKEND: &str = "sqlite";

/// How long a writer waits for another connection's write lock before failing: WAL allows one
/// writer at a time, and appends from several tasks queue behind each other.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reader connections: readers run in parallel under WAL; more than the cores here buys
/// nothing.
const MAX_READERS: u32 = 4;

/// Page cache per connection, in KiB (SQLite's default is 2 MiB). At a million events the
/// indexes no longer fit the default, and every append then reads pages back from disk. It is
/// memory the process keeps once filled: measured with the history benchmark over 1,000,000
/// events, 32 MiB appends as fast as 256 MiB did (24,050 against 23,164 events/s; filtered
/// page p50 6.2 against 4.2 ms), and `refract serve` after a webhook burst holds 146 MiB
/// instead of 419 MiB.
const CACHE_KIB: u32 = 32 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1,000 = 4 MiB). Index pages
/// that every append touches are copied back to the database once per checkpoint, so rarer
/// checkpoints copy them fewer times; the WAL file grows to about 40 MiB before one.
const WAL_CHECKPOINT_PAGES: u32 = 10_000;

/// Correlation ids are random, so a b-tree index on them takes a write to a random page per
/// event: measured, it made appends 2.4x slower at 1M events. They are indexed in the FTS5
/// table instead (log-structured, cheap to append), which narrows a correlation query before
/// the exact comparison on the column.
///
/// Schema versions, applied in order, each in one transaction. Never edit a released entry:
/// add a new one.
const MIGRATIONS: &[Migration] = &[
    (
        1,
        r#"
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    workspace TEXT NOT NULL,
    id_ms INTEGER NOT NULL,
    id_seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    text TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (workspace, id_ms, id_seq)
);
CREATE INDEX events_ws_type ON events (workspace, type, id_ms, id_seq, created_at);
CREATE INDEX events_ws_created ON events (workspace, created_at);
CREATE INDEX events_created ON events (created_at);
CREATE VIRTUAL TABLE events_fts USING fts5(
    text, correlation_id, content='events', content_rowid='seq',
    tokenize='unicode61 remove_diacritics 0', detail='column'
);
CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, text, correlation_id) VALUES (new.seq, new.text, new.correlation_id);
END;
CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, text, correlation_id)
    VALUES ('delete', old.seq, old.text, old.correlation_id);
END;
CREATE TABLE documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE document_keys (
    collection TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (collection, field, value)
) WITHOUT ROWID;
CREATE INDEX document_keys_owner ON document_keys (collection, id);
CREATE TABLE cache_entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
"#,
    ),
    (
        2,
        // Every delete by age is per workspace (`events_ws_created`); the global index on
        // `created_at` only cost a b-tree write per appended event.
        "DROP INDEX IF EXISTS events_created;",
    ),
];

/// The SQLite document store (history + collections). Writes go through one dedicated
/// connection: SQLite allows one writer at a time anyway, and a connection's page cache is
/// discarded whenever another connection has written, so rotating writes over a pool would
/// re-read the indexes on every append (measured: appends got 2-3x slower at 1M events).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    location: Location,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, then applies pending migrations.
    pub async fn open(location: &Location) -> Result<Self> {
        let writer = connect(location, 1).await?;
        migrate(&writer, location).await?;
        let pool = connect(location, MAX_READERS).await?;
        Ok(Self {
            pool,
            writer,
            location: location.clone(),
        })
    }

    /// Where the database file is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The pools as the shared SQL code uses them: reads on the pool, deletes on the writer.
    fn pools(&self) -> Pools<'_, Sqlite> {
        Pools {
            reader: &self.pool,
            writer: &self.writer,
            location: &self.location,
        }
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| unavailable(&self.location, e))?;
        Ok(())
    }
}

/// A pool of `connections` on the file of `location`, its folder created if missing.
pub(crate) async fn connect(location: &Location, connections: u32) -> Result<SqlitePool> {
    let path = location.path_of_local("document store")?;
    if let Some(parent) = Path::new(&path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| unavailable(location, e))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // Index pages of a large history stay in memory: appends touch five b-trees.
        .pragma("cache_size", format!("-{CACHE_KIB}"))
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| unavailable(location, e))
}

/// Applies every migration newer than the database's version, each in its own transaction.
pub(crate) async fn migrate(pool: &SqlitePool, location: &Location) -> Result<()> {
    let fail = |e: sqlx::Error| StorageError::backend(BACKEND, "migrate", e);
    let mut conn = pool.acquire().await.map_err(|e| unavailable(location, e))?;
    sql::create_migrations_table::<Sqlite>(&mut conn)
        .await
        .map_err(|e| unavailable(location, e))?;
    drop(conn);
    for migration in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(fail)?;
        if sql::apply_migration::<Sqlite>(&mut tx, *migration)
            .await
            .map_err(fail)?
        {
            tx.commit().await.map_err(fail)?;
        }
    }
    Ok(())
}

/// The schema version of the database.
#[cfg(test)]
pub(crate) async fn schema_version(pool: &SqlitePool) -> Result<i64> {
    use sqlx::Row;
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM refract_migrations")
        .fetch_one(pool)
        .await
        .map_err(|e| StorageError::backend(BACKEND, "migrate", e))?;
    row.try_get::<i64, _>("v")
        .map_err(|e| StorageError::backend(BACKEND, "migrate", e))
}

pub(crate) fn unavailable(
    location: &Location,
    e: impl Into<crate::error::BoxError>,
) -> StorageError {
    StorageError::Unavailable {
        backend: BACKEND,
        url: location.redacted().to_string(),
        source: e.into(),
    }
}

/// Maps an error of an operation: pool exhaustion and I/O are the database being unavailable,
/// the rest is a failed operation.
pub(crate) fn op_error(
    location: &Location,
    operation: &'static str,
    e: sqlx::Error,
) -> StorageError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            unavailable(location, e)
        }
        other => StorageError::backend(BACKEND, operation, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/r.db", dir.path().display());
        let loc = Location::parse("document store", &url).unwrap();
        let store = SqliteStore::open(&loc).await.unwrap();
        assert_eq!(schema_version(store.pool()).await.unwrap(), 2);
        drop(store);
        let again = SqliteStore::open(&loc).await.unwrap();
        assert_eq!(schema_version(again.pool()).await.unwrap(), 2);
        // Version 2 dropped the global `created_at` index (deletes by age are per workspace).
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'",
        )
        .fetch_all(again.pool())
        .await
        .unwrap();
        let names: Vec<&str> = indexes.iter().map(|(n,)| n.as_str()).collect();
        assert!(names.contains(&"events_ws_created"), "{names:?}");
        assert!(!names.contains(&"events_created"), "{names:?}");
    }
}
