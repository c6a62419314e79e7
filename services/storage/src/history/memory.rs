//! The in-memory event history: the twin the conformance suite checks the real backends
//! against, and the store of tests and throw-away runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};

use super::filter::text_words;
use super::{AppendOutcome, EventHistory, EventRow, HistoryQuery, SortOrder, id_key};
use crate::error::{Result, StorageError};

/// Events by `(workspace, id_ms, id_seq)`.
type EventMap = BTreeMap<(String, i64, i64), Stored>;

struct Stored {
    row: EventRow,
    doc: serde_json::Value,
    words: HashSet<String>,
    event: Event,
}

/// Events by `(workspace, id_ms, id_seq)`, which is also page order.
#[derive(Default)]
pub struct MemoryHistory {
    events: RwLock<EventMap>,
}

impl MemoryHistory {
    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, EventMap>> {
        self.events
            .read()
            .map_err(|_| StorageError::backend("memory", "read", "lock poisoned"))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, EventMap>> {
        self.events
            .write()
            .map_err(|_| StorageError::backend("memory", "write", "lock poisoned"))
    }

    fn matching<'a>(
        map: &'a EventMap,
        q: &'a HistoryQuery,
    ) -> impl DoubleEndedIterator<Item = &'a Stored> + 'a {
        let ws = q.workspace.as_str().to_string();
        let lo = q.after_id.as_ref().map(id_key);
        let hi = q.before_id.as_ref().map(id_key);
        let words = q.words();
        let after = q.after_date.map(|d| d.timestamp_millis());
        let before = q.before_date.map(|d| d.timestamp_millis());
        let corr = q.correlation_id.as_ref().map(|c| c.as_str().to_string());
        map.range((ws.clone(), i64::MIN, i64::MIN)..=(ws, i64::MAX, i64::MAX))
            .map(|(_, s)| s)
            .filter(move |s| {
                let r = &s.row;
                let key = (r.id_ms, r.id_seq);
                lo.is_none_or(|lo| key > lo)
                    && hi.is_none_or(|hi| key < hi)
                    && after.is_none_or(|a| r.created_at > a)
                    && before.is_none_or(|b| r.created_at < b)
                    && (q.types.is_empty() || q.types.iter().any(|t| t.matches(&r.event_type)))
                    && corr.as_ref().is_none_or(|c| &r.correlation_id == c)
                    && words
                        .as_ref()
                        .is_none_or(|ws| ws.iter().all(|w| s.words.contains(w)))
                    && q.fields.iter().all(|f| f.matches(&s.doc))
            })
    }
}

#[async_trait]
impl EventHistory for MemoryHistory {
    async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome> {
        let rows = EventRow::batch(events)?;
        let mut map = self.write()?;
        let mut outcome = AppendOutcome::default();
        for (row, event) in rows.into_iter().zip(events) {
            let key = (row.workspace.clone(), row.id_ms, row.id_seq);
            if map.contains_key(&key) {
                outcome.duplicates += 1;
                continue;
            }
            let words = text_words(&row.text).into_iter().collect();
            let doc = serde_json::to_value(event)
                .map_err(|e| StorageError::invalid("event", e.to_string()))?;
            map.insert(
                key,
                Stored {
                    row,
                    doc,
                    words,
                    event: Event::clone(event),
                },
            );
            outcome.inserted += 1;
        }
        Ok(outcome)
    }

    async fn query(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
        q.validate()?;
        let map = self.read()?;
        let skip = usize::try_from(q.offset()).unwrap_or(usize::MAX);
        let take = q.limit as usize;
        let it = Self::matching(&map, q);
        let page: Vec<Event> = match q.sort {
            SortOrder::Desc => it
                .rev()
                .skip(skip)
                .take(take)
                .map(|s| s.event.clone())
                .collect(),
            SortOrder::Asc => it.skip(skip).take(take).map(|s| s.event.clone()).collect(),
        };
        Ok(page)
    }

    async fn count(&self, q: &HistoryQuery) -> Result<u64> {
        q.validate()?;
        let map = self.read()?;
        Ok(Self::matching(&map, q).count() as u64)
    }

    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64> {
        let mut map = self.write()?;
        let before = map.len();
        map.retain(|(ws, _, _), _| ws != workspace.as_str());
        Ok((before - map.len()) as u64)
    }

    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        let cutoff = cutoff.timestamp_millis();
        let mut map = self.write()?;
        let before = map.len();
        map.retain(|(ws, _, _), s| ws != workspace.as_str() || s.row.created_at >= cutoff);
        Ok((before - map.len()) as u64)
    }

    async fn workspaces(&self) -> Result<Vec<WorkspaceId>> {
        let map = self.read()?;
        let mut out: Vec<WorkspaceId> = Vec::new();
        for (ws, _, _) in map.keys() {
            if out.last().is_none_or(|last| last.as_str() != ws) {
                out.push(
                    WorkspaceId::new(ws.as_str()).map_err(|e| {
                        StorageError::corrupt("memory", format!("workspace {ws}"), e)
                    })?,
                );
            }
        }
        Ok(out)
    }
}
