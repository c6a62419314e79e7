//! What the SQL backends ([`sqlite`](crate::sqlite), [`postgres`](crate::postgres)) write
//! the same way: the history conditions and paging both dialects share, and decoding rows
//! once fetched. Generic over `sqlx::Database`; SQL that differs by dialect (full-text search,
//! JSON comparison, upserts, migrations) stays in each backend, and so does fetching.

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use crate::documents::{CollectionSpec, Document};
use crate::error::{Result, StorageError};
use crate::history::{HistoryQuery, SortOrder, TypeFilter, decode_event, id_key};

/// The conditions of `q` both dialects write alike: workspace, types, time and id ranges
/// (every value bound, never interpolated). `prefix_column` is the `type` column as compared
/// for a prefix range, which must be in byte order.
pub(crate) fn push_history_conditions<DB>(
    qb: &mut QueryBuilder<DB>,
    q: &HistoryQuery,
    prefix_column: &str,
) where
    DB: Database,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    qb.push("workspace = ")
        .push_bind(q.workspace.as_str().to_string());
    if !q.types.is_empty() {
        qb.push(" AND (");
        for (i, t) in q.types.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            match t {
                TypeFilter::Exact(t) => {
                    qb.push("type = ").push_bind(t.clone());
                }
                TypeFilter::Prefix(p) => {
                    qb.push(format!("({prefix_column} >= "))
                        .push_bind(p.clone());
                    qb.push(format!(" AND {prefix_column} < "))
                        .push_bind(TypeFilter::prefix_upper_bound(p))
                        .push(")");
                }
            }
        }
        qb.push(")");
    }
    if let Some(d) = q.after_date {
        qb.push(" AND created_at > ")
            .push_bind(d.timestamp_millis());
    }
    if let Some(d) = q.before_date {
        qb.push(" AND created_at < ")
            .push_bind(d.timestamp_millis());
    }
    if let Some(id) = &q.before_id {
        let (ms, seq) = id_key(id);
        qb.push(" AND (id_ms, id_seq) < (")
            .push_bind(ms)
            .push(", ")
            .push_bind(seq)
            .push(")");
    }
    if let Some(id) = &q.after_id {
        let (ms, seq) = id_key(id);
        qb.push(" AND (id_ms, id_seq) > (")
            .push_bind(ms)
            .push(", ")
            .push_bind(seq)
            .push(")");
    }
}

/// ORDER BY, LIMIT and OFFSET of a history query.
pub(crate) fn push_history_page<DB>(qb: &mut QueryBuilder<DB>, q: &HistoryQuery)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    qb.push(match q.sort {
        SortOrder::Desc => " ORDER BY id_ms DESC, id_seq DESC",
        SortOrder::Asc => " ORDER BY id_ms ASC, id_seq ASC",
    });
    qb.push(" LIMIT ").push_bind(i64::from(q.limit));
    qb.push(" OFFSET ")
        .push_bind(i64::try_from(q.offset()).unwrap_or(i64::MAX));
}

/// Events from rows of `workspace, id, doc` (all text); `err` maps a column that cannot be
/// read.
pub(crate) fn decode_events<R>(
    backend: &'static str,
    rows: &[R],
    err: impl Fn(sqlx::Error) -> StorageError,
) -> Result<Vec<refract_core::Event>>
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    rows.iter()
        .map(|row| {
            let get = |c: &str| row.try_get::<String, _>(c).map_err(&err);
            let key = format!("{}/{}", get("workspace")?, get("id")?);
            decode_event(backend, &key, &get("doc")?)
        })
        .collect()
}

/// Workspace ids from `SELECT DISTINCT workspace` rows; a stored id that is not valid is
/// [`StorageError::Corrupt`].
pub(crate) fn decode_workspaces(
    backend: &'static str,
    rows: Vec<(String,)>,
) -> Result<Vec<refract_core::WorkspaceId>> {
    rows.into_iter()
        .map(|(ws,)| {
            refract_core::WorkspaceId::new(ws.as_str())
                .map_err(|e| StorageError::corrupt(backend, format!("workspace {ws}"), e))
        })
        .collect()
}

/// The count of a `SELECT COUNT(*) AS n` row.
pub(crate) fn decode_count<R>(row: &R, err: impl Fn(sqlx::Error) -> StorageError) -> Result<u64>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    let n: i64 = row.try_get("n").map_err(err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A document from a row of `id, version, body` (the body as JSON text).
pub(crate) fn decode_document<R>(
    backend: &'static str,
    spec: &CollectionSpec,
    row: &R,
) -> Result<Document>
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
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
