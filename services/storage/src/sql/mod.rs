//! What the SQL backends ([`sqlite`](crate::sqlite), [`postgres`](crate::postgres)) share:
//! every history read and delete, document reads, unique keys, and the migration runner,
//! written once over `sqlx`'s database-generic API. A backend is a [`Dialect`] (the few
//! spellings that differ: JSON comparison, full-text search, reading JSON as text, error
//! mapping) and hands its pools over as [`Pools`]. What genuinely differs stays in each
//! backend: bulk appends (PostgreSQL `UNNEST`, SQLite chunked multi-row inserts), the versioned
//! document write (PostgreSQL checks the version in the write's WHERE clause, SQLite reads it
//! inside an IMMEDIATE transaction), connecting, and how migrations are serialized.
//!
//! - [`history`]: history conditions, paging, queries, counts and deletes.
//! - [`documents`]: document reads, finds and the `document_keys` rows of unique fields.
//! - [`migrate`]: the `refract_migrations` table and applying one schema version.

mod documents;
mod history;
mod migrate;

use serde_json::Value;
use sqlx::{Database, Pool, QueryBuilder};

use crate::error::StorageError;
use crate::history::HistoryQuery;
use crate::location::Location;

pub(crate) use documents::{current_version, delete_keys, replace_keys};
pub(crate) use migrate::{Migration, apply_migration, create_migrations_table};

/// The SQL that differs between the dialects the shared code writes for.
pub(crate) trait Dialect: Database {
    /// The backend's name in errors and logs.
    const BACKEND: &'static str;
    /// The `type` column as compared for a prefix range, which must be in byte order.
    const BYTE_ORDERED_TYPE: &'static str;
    /// The `refract_migrations` table, created if missing.
    const MIGRATIONS_TABLE: &'static str;

    /// A SELECT-list item reading the JSON column `column` as text, named `column`.
    fn json_as_text(column: &'static str) -> String;

    /// Rows written or deleted by a statement.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Maps the error of `operation`: the database unreachable is
    /// [`StorageError::Unavailable`], the rest a failed operation.
    fn op_error(location: &Location, operation: &'static str, e: sqlx::Error) -> StorageError;

    /// The history conditions only a dialect can write: correlation id and full-text words.
    fn push_text_conditions(qb: &mut QueryBuilder<Self>, q: &HistoryQuery);

    /// `column` (JSON) has `value` at `segments`, exactly (every value bound).
    fn push_json_eq(qb: &mut QueryBuilder<Self>, column: &str, segments: &[String], value: &Value);
}

/// A backend's pools as the shared code uses them: reads go to `reader`, deletes to `writer`
/// (SQLite writes through one dedicated connection; PostgreSQL passes its one pool twice).
pub(crate) struct Pools<'a, DB: Database> {
    pub(crate) reader: &'a Pool<DB>,
    pub(crate) writer: &'a Pool<DB>,
    pub(crate) location: &'a Location,
}

impl<DB: Dialect> Pools<'_, DB> {
    /// A closure mapping the errors of `operation`.
    fn err(&self, operation: &'static str) -> impl Fn(sqlx::Error) -> StorageError + '_ {
        move |e| DB::op_error(self.location, operation, e)
    }
}
