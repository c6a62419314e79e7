//! The event history on SQL: the conditions and paging both dialects write alike, and every
//! read and delete of `events`; only appends stay in the backends.

use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type};

use super::{Dialect, Pools};
use crate::error::{Result, StorageError};
use crate::history::{HistoryQuery, SortOrder, TypeFilter, decode_event, id_key};

impl<DB> Pools<'_, DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB> + Default,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    /// The events `q` selects, in its order and page.
    pub(crate) async fn query_events(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
        q.validate()?;
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT workspace, id, {} FROM events WHERE ",
            DB::json_as_text("doc")
        ));
        push_where(&mut qb, q);
        push_page(&mut qb, q);
        let err = self.err("query");
        let rows = qb.build().fetch_all(self.reader).await.map_err(&err)?;
        rows.iter()
            .map(|row| {
                let get = |c: &str| row.try_get::<String, _>(c).map_err(&err);
                let key = format!("{}/{}", get("workspace")?, get("id")?);
                decode_event(DB::BACKEND, &key, &get("doc")?)
            })
            .collect()
    }

    /// How many events `q` selects, ignoring its page.
    pub(crate) async fn count_events(&self, q: &HistoryQuery) -> Result<u64> {
        q.validate()?;
        let mut qb = QueryBuilder::<DB>::new("SELECT COUNT(*) AS n FROM events WHERE ");
        push_where(&mut qb, q);
        let err = self.err("count");
        let row = qb.build().fetch_one(self.reader).await.map_err(&err)?;
        let n: i64 = row.try_get("n").map_err(err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes the events of `workspace` created before `cutoff` (whenever created when
    /// `None`); `operation` names it in errors.
    pub(crate) async fn delete_events(
        &self,
        operation: &'static str,
        workspace: &WorkspaceId,
        cutoff: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let mut qb = QueryBuilder::<DB>::new("DELETE FROM events WHERE workspace = ");
        qb.push_bind(workspace.as_str().to_string());
        if let Some(cutoff) = cutoff {
            qb.push(" AND created_at < ")
                .push_bind(cutoff.timestamp_millis());
        }
        let done = qb
            .build()
            .execute(self.writer)
            .await
            .map_err(self.err(operation))?;
        Ok(DB::rows_affected(&done))
    }

    /// The workspaces that have events; a stored id that is not valid is
    /// [`StorageError::Corrupt`].
    pub(crate) async fn event_workspaces(&self) -> Result<Vec<WorkspaceId>> {
        let err = self.err("workspaces");
        let rows = QueryBuilder::<DB>::new("SELECT DISTINCT workspace FROM events")
            .build()
            .fetch_all(self.reader)
            .await
            .map_err(&err)?;
        rows.iter()
            .map(|row| {
                let ws: String = row.try_get("workspace").map_err(&err)?;
                WorkspaceId::new(ws.as_str())
                    .map_err(|e| StorageError::corrupt(DB::BACKEND, format!("workspace {ws}"), e))
            })
            .collect()
    }
}

/// The WHERE clause of `q`: the conditions both dialects write alike (workspace, types, time
/// and id ranges), the dialect's text conditions, then field equalities. Every value is
/// bound, never interpolated.
fn push_where<DB>(qb: &mut QueryBuilder<DB>, q: &HistoryQuery)
where
    DB: Dialect,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let prefix_column = DB::BYTE_ORDERED_TYPE;
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
    DB::push_text_conditions(qb, q);
    for f in &q.fields {
        qb.push(" AND ");
        DB::push_json_eq(qb, "doc", f.segments(), f.value());
    }
}

/// ORDER BY, LIMIT and OFFSET of a history query.
fn push_page<DB>(qb: &mut QueryBuilder<DB>, q: &HistoryQuery)
where
    DB: Dialect,
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
