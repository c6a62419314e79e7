//! The event history on PostgreSQL: one UNNEST insert per batch, queries on b-tree, GIN
//! (JSONB containment) and tsvector indexes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};

use super::{BACKEND, PostgresStore, op_error};
use crate::error::Result;
use crate::history::{AppendOutcome, EventHistory, EventRow, HistoryQuery};
use crate::sql;

#[async_trait]
impl EventHistory for PostgresStore {
    async fn append(&self, events: &[Event]) -> Result<AppendOutcome> {
        let rows = EventRow::batch(events)?;
        if rows.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let col = |f: fn(&EventRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        let num = |f: fn(&EventRow) -> i64| rows.iter().map(f).collect::<Vec<_>>();
        let done = sqlx::query(
            "INSERT INTO events (workspace, id_ms, id_seq, id, type, correlation_id, created_at, tsv, doc)
             SELECT w, ms, sq, i, t, c, ca, to_tsvector('simple', tx), d::jsonb
             FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[],
                         $8::text[], $9::text[]) AS u (w, ms, sq, i, t, c, ca, tx, d)
             ON CONFLICT DO NOTHING",
        )
        .bind(col(|r| r.workspace.clone()))
        .bind(num(|r| r.id_ms))
        .bind(num(|r| r.id_seq))
        .bind(col(|r| r.id.clone()))
        .bind(col(|r| r.event_type.clone()))
        .bind(col(|r| r.correlation_id.clone()))
        .bind(num(|r| r.created_at))
        .bind(col(|r| r.text.clone()))
        .bind(col(|r| r.json.clone()))
        .execute(&self.pool)
        .await
        .map_err(|e| op_error(&self.location, "append", e))?;
        let inserted = done.rows_affected();
        Ok(AppendOutcome {
            inserted,
            duplicates: rows.len() as u64 - inserted,
        })
    }

    async fn query(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
        q.validate()?;
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT workspace, id, doc::text AS doc FROM events WHERE ",
        );
        push_where(&mut qb, q);
        sql::push_history_page(&mut qb, q);
        let err = |e| op_error(&self.location, "query", e);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(err)?;
        sql::decode_events(BACKEND, &rows, err)
    }

    async fn count(&self, q: &HistoryQuery) -> Result<u64> {
        q.validate()?;
        let mut qb = QueryBuilder::<Postgres>::new("SELECT COUNT(*) AS n FROM events WHERE ");
        push_where(&mut qb, q);
        let err = |e| op_error(&self.location, "count", e);
        let row = qb.build().fetch_one(&self.pool).await.map_err(err)?;
        sql::decode_count(&row, err)
    }

    async fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(cutoff.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(|e| op_error(&self.location, "retention", e))?;
        Ok(done.rows_affected())
    }

    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE workspace = $1")
            .bind(workspace.as_str().to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| op_error(&self.location, "delete workspace", e))?;
        Ok(done.rows_affected())
    }

    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE workspace = $1 AND created_at < $2")
            .bind(workspace.as_str().to_string())
            .bind(cutoff.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(|e| op_error(&self.location, "retention", e))?;
        Ok(done.rows_affected())
    }

    async fn workspaces(&self) -> Result<Vec<WorkspaceId>> {
        let err = |e| op_error(&self.location, "workspaces", e);
        let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT workspace FROM events")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        sql::decode_workspaces(BACKEND, rows)
    }
}

fn push_where(qb: &mut QueryBuilder<Postgres>, q: &HistoryQuery) {
    // COLLATE "C": byte order, so a prefix's range is exactly the prefix's.
    sql::push_history_conditions(qb, q, "type COLLATE \"C\"");
    if let Some(c) = &q.correlation_id {
        qb.push(" AND correlation_id = ")
            .push_bind(c.as_str().to_string());
    }
    if let Some(words) = q.words() {
        qb.push(" AND tsv @@ plainto_tsquery('simple', ")
            .push_bind(words.join(" "))
            .push(")");
    }
    for f in &q.fields {
        qb.push(" AND ");
        push_json_eq(qb, "doc", f.segments(), f.value(), &f.as_containment());
    }
}

/// `column` has `value` at `segments`: containment (served by the GIN index) narrows, the
/// path comparison makes it exact (containment alone lets `[1]` match `[1, 2]`).
pub(super) fn push_json_eq(
    qb: &mut QueryBuilder<Postgres>,
    column: &str,
    segments: &[String],
    value: &Value,
    containment: &Value,
) {
    qb.push(format!("({column} @> "))
        .push_bind(containment.to_string())
        .push("::jsonb");
    qb.push(format!(" AND {column} #> "))
        .push_bind(segments.to_vec())
        .push("::text[] = ");
    qb.push_bind(value.to_string()).push("::jsonb)");
}
