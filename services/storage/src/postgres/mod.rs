//! PostgreSQL (`postgres://…`): the shared document database of the distributed mode.
//! Events keep their envelope as JSONB (GIN `jsonb_path_ops` for payload equality), a
//! `tsvector` with a GIN index for text, and b-tree indexes on workspace + id, type, time and
//! correlation id. Connections are pooled.
//!
//! `?schema=name` (ours, stripped before connecting) puts every table in that schema, created
//! if missing: tests use one schema per run, deployments may share a database.

mod dialect;
mod documents;
mod history;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::error::{Result, StorageError};
use crate::location::{CONNECT_TIMEOUT, Location};
use crate::sql::{self, Migration, Pools};

pub(crate) const BACKEND: &str = "postgres";

/// Connections per process: enough for concurrent requests of one service replica without
/// exhausting `max_connections` (100 by default) when a dozen replicas share the server.
const MAX_CONNECTIONS: u32 = 8;

/// Advisory-lock key that serializes migrations between replicas starting together.
const MIGRATION_LOCK: i64 = 0x5245_4652_4143_5401;

/// Schema versions, applied in order. Never edit a released entry: add a new one.
const MIGRATIONS: &[Migration] = &[
    (
        1,
        r#"
CREATE TABLE events (
    workspace TEXT NOT NULL,
    id_ms BIGINT NOT NULL,
    id_seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    tsv TSVECTOR NOT NULL,
    doc JSONB NOT NULL,
    PRIMARY KEY (workspace, id_ms, id_seq)
);
CREATE INDEX events_ws_type ON events (workspace, type, id_ms, id_seq);
CREATE INDEX events_ws_created ON events (workspace, created_at);
CREATE INDEX events_ws_corr ON events (workspace, correlation_id);
CREATE INDEX events_created ON events (created_at);
CREATE INDEX events_doc ON events USING GIN (doc jsonb_path_ops);
CREATE INDEX events_tsv ON events USING GIN (tsv);
CREATE TABLE documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body JSONB NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX documents_body ON documents USING GIN (body jsonb_path_ops);
CREATE TABLE document_keys (
    collection TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (collection, field, value)
);
CREATE INDEX document_keys_owner ON document_keys (collection, id);
"#,
    ),
    (
        2,
        // Every delete by age is per workspace (`events_ws_created`); the global index on
        // `created_at` only cost an index write per appended event.
        "DROP INDEX IF EXISTS events_created;",
    ),
];

/// The PostgreSQL document store.
pub struct PostgresStore {
    pool: PgPool,
    location: Location,
}

impl PostgresStore {
    /// Connects (failing within [`CONNECT_TIMEOUT`] when the server does not answer), creates
    /// the schema if one is named, and applies pending migrations.
    pub async fn open(location: &Location) -> Result<Self> {
        let schema = location.options().get("schema").cloned();
        if let Some(s) = &schema {
            check_schema(location, s)?;
        }
        let url = location.without_options(&["schema"]);
        let mut options =
            PgConnectOptions::from_str(url.as_str()).map_err(|e| StorageError::InvalidUrl {
                abstraction: "document store",
                url: location.redacted().to_string(),
                reason: e.to_string(),
            })?;
        if let Some(s) = &schema {
            // Created before the pool exists, since every pooled connection starts in it.
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_with(options.clone())
                .await
                .map_err(|e| unavailable(location, e))?;
            // `IF NOT EXISTS` is not safe against a concurrent create (instances starting
            // together fail on the catalog's unique index): serialize on the migration lock.
            let fail = |e| op_error(location, "create schema", e);
            let mut tx = admin.begin().await.map_err(fail)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{s}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            admin.close().await;
            options = options.options([("search_path", s.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| unavailable(location, e))?;
        migrate(&pool, location).await?;
        Ok(Self {
            pool,
            location: location.clone(),
        })
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The pool as the shared SQL code uses it (one pool for reads and writes).
    fn pools(&self) -> Pools<'_, Postgres> {
        Pools {
            reader: &self.pool,
            writer: &self.pool,
            location: &self.location,
        }
    }

    /// Whether the server answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| unavailable(&self.location, e))?;
        Ok(())
    }
}

fn check_schema(location: &Location, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidUrl {
            abstraction: "document store",
            url: location.redacted().to_string(),
            reason: "schema must be [a-z0-9_]{1,48}, not pg_*".into(),
        })
    }
}

/// Applies pending migrations in one transaction, serialized between replicas starting
/// together by an advisory lock.
async fn migrate(pool: &PgPool, location: &Location) -> Result<()> {
    let fail = |e: sqlx::Error| op_error(location, "migrate", e);
    let mut tx = pool.begin().await.map_err(fail)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    sql::create_migrations_table::<Postgres>(&mut tx)
        .await
        .map_err(fail)?;
    for migration in MIGRATIONS {
        sql::apply_migration::<Postgres>(&mut tx, *migration)
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
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

pub(crate) fn op_error(
    location: &Location,
    operation: &'static str,
    e: sqlx::Error,
) -> StorageError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => unavailable(location, e),
        // JSONB cannot hold U+0000: the input is at fault, so retrying it cannot succeed.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("22P05") => {
            StorageError::invalid("event", format!("{operation}: {}", db.message()))
        }
        other => StorageError::backend(BACKEND, operation, other),
    }
}
