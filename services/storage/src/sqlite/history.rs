//! The event history on SQLite: one multi-row INSERT per chunk, FTS5 through triggers, and
//! queries built from the shared conditions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};
use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite};

use super::{BACKEND, SqliteStore, op_error};
use crate::error::Result;
use crate::history::{AppendOutcome, EventHistory, EventRow, HistoryQuery, text_words};
use crate::sql;

/// Rows per INSERT statement: 9 bound values a row stays under SQLite's 32,766-variable cap.
const INSERT_CHUNK: usize = 1_000;

#[async_trait]
impl EventHistory for SqliteStore {
    async fn append(&self, events: &[Event]) -> Result<AppendOutcome> {
        let rows = EventRow::batch(events)?;
        let loc = &self.location;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| op_error(loc, "append", e))?;
        let mut inserted = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (workspace, id_ms, id_seq, id, type, correlation_id, created_at, text, doc) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.workspace.clone())
                    .push_bind(r.id_ms)
                    .push_bind(r.id_seq)
                    .push_bind(r.id.clone())
                    .push_bind(r.event_type.clone())
                    .push_bind(r.correlation_id.clone())
                    .push_bind(r.created_at)
                    .push_bind(r.text.clone())
                    .push_bind(r.json.clone());
            });
            qb.push(" ON CONFLICT (workspace, id_ms, id_seq) DO NOTHING");
            let done = qb
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| op_error(loc, "append", e))?;
            inserted += done.rows_affected();
        }
        tx.commit().await.map_err(|e| op_error(loc, "append", e))?;
        Ok(AppendOutcome {
            inserted,
            duplicates: rows.len() as u64 - inserted,
        })
    }

    async fn query(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
        q.validate()?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT workspace, id, doc FROM events WHERE ");
        push_where(&mut qb, q);
        sql::push_history_page(&mut qb, q);
        let err = |e| op_error(&self.location, "query", e);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(err)?;
        sql::decode_events(BACKEND, &rows, err)
    }

    async fn count(&self, q: &HistoryQuery) -> Result<u64> {
        q.validate()?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) AS n FROM events WHERE ");
        push_where(&mut qb, q);
        let err = |e| op_error(&self.location, "count", e);
        let row = qb.build().fetch_one(&self.pool).await.map_err(err)?;
        sql::decode_count(&row, err)
    }

    async fn delete_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE created_at < ?")
            .bind(cutoff.timestamp_millis())
            .execute(&self.writer)
            .await
            .map_err(|e| op_error(&self.location, "retention", e))?;
        Ok(done.rows_affected())
    }

    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE workspace = ?")
            .bind(workspace.as_str().to_string())
            .execute(&self.writer)
            .await
            .map_err(|e| op_error(&self.location, "delete workspace", e))?;
        Ok(done.rows_affected())
    }

    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE workspace = ? AND created_at < ?")
            .bind(workspace.as_str().to_string())
            .bind(cutoff.timestamp_millis())
            .execute(&self.writer)
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

/// The WHERE clause of `q` (every value bound, never interpolated).
fn push_where(qb: &mut QueryBuilder<Sqlite>, q: &HistoryQuery) {
    sql::push_history_conditions(qb, q, "type");
    if let Some(c) = &q.correlation_id {
        qb.push(" AND correlation_id = ")
            .push_bind(c.as_str().to_string());
        let tokens = text_words(c.as_str());
        if !tokens.is_empty() {
            qb.push(" AND seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ")
                .push_bind(fts_all("correlation_id", &tokens))
                .push(")");
        }
    }
    if let Some(words) = q.words() {
        qb.push(" AND seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ")
            .push_bind(fts_all("text", &words))
            .push(")");
    }
    for f in &q.fields {
        qb.push(" AND ");
        push_json_eq(qb, "doc", f.segments(), f.value());
    }
}

/// An FTS5 query: every word in `column`. Words are alphanumeric runs (quoted anyway), one
/// token each, so no phrase query is needed (the index keeps no positions).
fn fts_all(column: &str, words: &[String]) -> String {
    let terms = words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("{column} : ({terms})")
}

/// `column` has `value` at `segments`, with SQLite's JSON functions. Segments are checked
/// (`[A-Za-z0-9_$-]`) and the path is bound anyway.
pub(super) fn push_json_eq(
    qb: &mut QueryBuilder<Sqlite>,
    column: &str,
    segments: &[String],
    value: &Value,
) {
    let path = sqlite_path(segments);
    let jtype = |qb: &mut QueryBuilder<Sqlite>| {
        qb.push(format!("json_type({column}, "))
            .push_bind(path.clone())
            .push(")");
    };
    match value {
        Value::Null => {
            jtype(qb);
            qb.push(" = 'null'");
        }
        Value::Bool(b) => {
            jtype(qb);
            qb.push(if *b { " = 'true'" } else { " = 'false'" });
        }
        Value::Number(n) => {
            qb.push("(");
            jtype(qb);
            qb.push(" IN ('integer', 'real') AND ");
            qb.push(format!("json_extract({column}, "))
                .push_bind(path.clone())
                .push(") = ");
            match n.as_i64() {
                Some(i) => qb.push_bind(i),
                None => qb.push_bind(n.as_f64().unwrap_or(f64::NAN)),
            };
            qb.push(")");
        }
        Value::String(s) => {
            qb.push("(");
            jtype(qb);
            qb.push(" = 'text' AND ");
            qb.push(format!("json_extract({column}, "))
                .push_bind(path.clone())
                .push(") = ");
            qb.push_bind(s.clone()).push(")");
        }
        Value::Array(_) | Value::Object(_) => {
            qb.push(format!("json_extract({column}, "))
                .push_bind(path.clone())
                .push(") = json(");
            qb.push_bind(value.to_string()).push(")");
        }
    }
}

/// `$."a"."b"`: quoted labels, so `-` and `$` in segments need no escaping.
fn sqlite_path(segments: &[String]) -> String {
    let mut path = String::from("$");
    for s in segments {
        path.push_str(".\"");
        path.push_str(s);
        path.push('"');
    }
    path
}
