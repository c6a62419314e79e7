//! Document collections on SQL: reads, finds, and the `document_keys` rows that make unique
//! fields unique. The versioned write itself stays in each backend.

use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};

use super::{Dialect, Pools};
use crate::documents::{CollectionSpec, Document, unique_conflict, unique_keys};
use crate::error::{Result, StorageError};

impl<DB> Pools<'_, DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB> + Default,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    /// The document `id` of `spec`, if any.
    pub(crate) async fn get_document(
        &self,
        spec: &CollectionSpec,
        id: &str,
    ) -> Result<Option<Document>> {
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT id, version, {} FROM documents WHERE collection = ",
            DB::json_as_text("body")
        ));
        qb.push_bind(spec.name)
            .push(" AND id = ")
            .push_bind(id.to_string());
        let row = qb
            .build()
            .fetch_optional(self.reader)
            .await
            .map_err(self.err("get document"))?;
        row.map(|r| decode_document::<DB>(spec, &r)).transpose()
    }

    /// Up to `limit` documents of `spec` with `value` at `segments` and an id after `after`,
    /// by id.
    pub(crate) async fn find_documents(
        &self,
        spec: &CollectionSpec,
        segments: &[String],
        value: &Value,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>> {
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT id, version, {} FROM documents WHERE collection = ",
            DB::json_as_text("body")
        ));
        qb.push_bind(spec.name).push(" AND ");
        if let Some(after) = after {
            qb.push("id > ").push_bind(after.to_owned()).push(" AND ");
        }
        DB::push_json_eq(&mut qb, "body", segments, value);
        qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        let rows = qb
            .build()
            .fetch_all(self.reader)
            .await
            .map_err(self.err("find documents"))?;
        rows.iter()
            .map(|r| decode_document::<DB>(spec, r))
            .collect()
    }
}

/// The version of `id` as `conn` (the caller's transaction) sees it.
pub(crate) async fn current_version<DB>(
    conn: &mut DB::Connection,
    spec: &CollectionSpec,
    id: &str,
) -> sqlx::Result<Option<u64>>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB> + Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Decode<'t, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let mut qb = QueryBuilder::<DB>::new("SELECT version FROM documents WHERE collection = ");
    qb.push_bind(spec.name)
        .push(" AND id = ")
        .push_bind(id.to_string());
    let current: Option<i64> = qb
        .build()
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<i64, _>("version"))
        .transpose()?;
    Ok(current.map(|v| u64::try_from(v).unwrap_or(0)))
}

/// Deletes the `document_keys` rows of `id`, in the caller's transaction.
pub(crate) async fn delete_keys<DB>(
    conn: &mut DB::Connection,
    spec: &CollectionSpec,
    id: &str,
) -> sqlx::Result<()>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB> + Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::<DB>::new("DELETE FROM document_keys WHERE collection = ");
    qb.push_bind(spec.name)
        .push(" AND id = ")
        .push_bind(id.to_string());
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

/// Replaces the `document_keys` rows of `id` with those of `body`, in the caller's
/// transaction; a value another document holds is a unique conflict. `err` maps the
/// database's errors.
pub(crate) async fn replace_keys<DB>(
    conn: &mut DB::Connection,
    spec: &CollectionSpec,
    id: &str,
    body: &Value,
    err: impl Fn(sqlx::Error) -> StorageError,
) -> Result<()>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB> + Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
{
    delete_keys::<DB>(&mut *conn, spec, id)
        .await
        .map_err(&err)?;
    for (field, value) in unique_keys(spec, body) {
        let mut qb = QueryBuilder::<DB>::new(
            "INSERT INTO document_keys (collection, field, value, id) VALUES (",
        );
        qb.push_bind(spec.name)
            .push(", ")
            .push_bind(field)
            .push(", ")
            .push_bind(value)
            .push(", ")
            .push_bind(id.to_string())
            .push(") ON CONFLICT DO NOTHING");
        let done = qb.build().execute(&mut *conn).await.map_err(&err)?;
        if DB::rows_affected(&done) == 0 {
            return Err(unique_conflict(spec, field));
        }
    }
    Ok(())
}

/// A document from a row of `id, version, body` (the body as JSON text).
fn decode_document<DB>(spec: &CollectionSpec, row: &DB::Row) -> Result<Document>
where
    DB: Dialect,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let backend = DB::BACKEND;
    let bad = |e: &dyn std::fmt::Display| {
        StorageError::corrupt(backend, format!("document in {}", spec.name), e)
    };
    let id: String = row.try_get("id").map_err(|e| bad(&e))?;
    let version: i64 = row.try_get("version").map_err(|e| bad(&e))?;
    let body: String = row.try_get("body").map_err(|e| bad(&e))?;
    let body: Value = serde_json::from_str(&body)
        .map_err(|e| StorageError::corrupt(backend, format!("document {}/{id}", spec.name), e))?;
    Ok(Document {
        id,
        version: u64::try_from(version).unwrap_or(0),
        body,
    })
}
