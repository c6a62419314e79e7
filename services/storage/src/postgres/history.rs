//! The event history on PostgreSQL: one UNNEST insert per batch; reads and deletes are the
//! shared SQL ones ([`crate::sql`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};
use std::sync::Arc;

use super::{PostgresStore, op_error};
use crate::error::Result;
use crate::history::{AppendOutcome, EventHistory, EventRow, HistoryQuery};

#[async_trait]
impl EventHistory for PostgresStore {
    async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome> {
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
        self.pools().query_events(q).await
    }

    async fn count(&self, q: &HistoryQuery) -> Result<u64> {
        self.pools().count_events(q).await
    }

    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64> {
        self.pools()
            .delete_events("delete workspace", workspace, None)
            .await
    }

    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        self.pools()
            .delete_events("retention", workspace, Some(cutoff))
            .await
    }

    async fn workspaces(&self) -> Result<Vec<WorkspaceId>> {
        self.pools().event_workspaces().await
    }
}
