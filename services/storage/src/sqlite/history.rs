//! The event history on SQLite: one multi-row INSERT per chunk, FTS5 through triggers; reads
//! and deletes are the shared SQL ones ([`crate::sql`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};
use sqlx::{QueryBuilder, Sqlite};
use std::sync::Arc;

use super::{SqliteStore, op_error};
use crate::error::Result;
use crate::history::{AppendOutcome, EventHistory, EventRow, HistoryQuery};

/// Rows per INSERT statement: 9 bound values a row stays under SQLite's 32,766-variable cap.
const INSERT_CHUNK: usize = 1_000;

#[async_trait]
impl EventHistory for SqliteStore {
    async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome> {
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
                // Bound by reference: the rows outlive the statement, so no column is copied.
                b.push_bind(r.workspace.as_str())
                    .push_bind(r.id_ms)
                    .push_bind(r.id_seq)
                    .push_bind(r.id.as_str())
                    .push_bind(r.event_type.as_str())
                    .push_bind(r.correlation_id.as_str())
                    .push_bind(r.created_at)
                    .push_bind(r.text.as_str())
                    .push_bind(r.json.as_str());
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
