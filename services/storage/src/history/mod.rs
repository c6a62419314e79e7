//! The event history (datalake): every persisted event, queryable per workspace.
//!
//! Events are keyed by `(source.workspaceId, id)` (`spec/http-api.md` §13.1), so appending the
//! same event twice stores it once: the broker delivers at least once. Pages are ordered by
//! event id (`<ms>-<seq>`, the workspace partition's order), newest first by default, and the
//! `beforeId`/`afterId` cursors compare ids the same way. Time bounds apply to `createdAt`.

mod filter;
pub(crate) mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{CorrelationId, Event, EventId, WorkspaceId};
use std::sync::Arc;

use crate::error::{Result, StorageError};

use filter::search_words;
pub use filter::{FieldFilter, TypeFilter, event_text, text_words};
pub(crate) use filter::{json_eq, segment_ok as filter_path_ok};

/// Largest page a query may ask for: a page is held in memory and serialized in one response.
pub const MAX_PAGE_LIMIT: u32 = 1_000;

/// Page size when a query leaves `limit` out (`spec/http-api.md` §1.3).
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

/// Most payload/source field filters in one query (§7.1): each one is a condition the store
/// evaluates per candidate row.
pub const MAX_FIELD_FILTERS: usize = 20;

/// Most events appended in one batch: one statement/transaction per batch keeps a single
/// append from holding the database for long.
pub const MAX_APPEND_BATCH: usize = 5_000;

/// Page order, by event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// What an event-history query selects. Every condition is optional except the workspace.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// The one workspace searched.
    pub workspace: WorkspaceId,
    /// Exact types or `prefix.*`; empty = any type.
    pub types: Vec<TypeFilter>,
    /// Exclusive bounds on `createdAt`.
    pub after_date: Option<DateTime<Utc>>,
    /// See `after_date`.
    pub before_date: Option<DateTime<Utc>>,
    /// Cursors: only events strictly older / newer than this id.
    pub before_id: Option<EventId>,
    /// See `before_id`.
    pub after_id: Option<EventId>,
    /// Only events of this correlation (one request and what it caused).
    pub correlation_id: Option<CorrelationId>,
    /// Plain words, all required, matched as whole words in `type` and payload strings.
    pub text: Option<String>,
    /// Equality on dotted paths of the envelope (`payload.order.id`, `source.userId`).
    pub fields: Vec<FieldFilter>,
    /// By id, newest first by default.
    pub sort: SortOrder,
    /// Zero-based page of `limit` events.
    pub page: u32,
    /// Events per page.
    pub limit: u32,
}

impl HistoryQuery {
    /// Every event of `workspace`, first page, newest first.
    pub fn new(workspace: WorkspaceId) -> Self {
        Self {
            workspace,
            types: Vec::new(),
            after_date: None,
            before_date: None,
            before_id: None,
            after_id: None,
            correlation_id: None,
            text: None,
            fields: Vec::new(),
            sort: SortOrder::Desc,
            page: 0,
            limit: DEFAULT_PAGE_LIMIT,
        }
    }

    /// Checks the limits every backend relies on.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_PAGE_LIMIT {
            return Err(StorageError::invalid(
                "limit",
                format!("must be 1 to {MAX_PAGE_LIMIT}"),
            ));
        }
        if self.fields.len() > MAX_FIELD_FILTERS {
            return Err(StorageError::invalid(
                "fields",
                format!("at most {MAX_FIELD_FILTERS} field filters"),
            ));
        }
        Ok(())
    }

    /// Rows to skip for `page`.
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.limit)
    }

    /// The words of `text`, lowercased; `None` when there is no text condition.
    pub fn words(&self) -> Option<Vec<String>> {
        let words = text_words(self.text.as_deref()?);
        (!words.is_empty()).then_some(words)
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    /// Events stored by this call.
    pub inserted: u64,
    /// Events skipped because `(workspace, id)` was already stored.
    pub duplicates: u64,
}

/// The event history of every workspace.
#[async_trait]
pub trait EventHistory: Send + Sync {
    /// Stores `events`; already-stored `(workspace, id)` pairs are skipped. Every event needs
    /// an id and a workspace; a batch with one that lacks them stores nothing.
    async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome>;

    /// One page of matching events.
    async fn query(&self, query: &HistoryQuery) -> Result<Vec<Event>>;

    /// How many events match, ignoring `page` and `limit`.
    async fn count(&self, query: &HistoryQuery) -> Result<u64>;

    /// Deletes every event of `workspace` (workspace deletion); returns how many.
    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64>;

    /// Per-workspace retention: deletes the events of `workspace` created before `cutoff`;
    /// returns how many.
    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64>;

    /// Every workspace that has stored events, so a retention pass can apply each one's
    /// own age limit (there is no other list of workspaces in the history).
    async fn workspaces(&self) -> Result<Vec<WorkspaceId>>;
}

/// The columns every backend indexes, extracted once from an event.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub workspace: String,
    pub id: String,
    pub id_ms: i64,
    pub id_seq: i64,
    pub event_type: String,
    pub correlation_id: String,
    pub created_at: i64,
    pub text: String,
    /// The envelope as stored (JSON text).
    pub json: String,
}

impl EventRow {
    pub fn from_event(event: &Event) -> Result<Self> {
        let id = event
            .id
            .as_ref()
            .ok_or_else(|| StorageError::invalid("id", "an event needs an id to be stored"))?;
        let workspace = event.source.workspace_id.as_ref().ok_or_else(|| {
            StorageError::invalid(
                "source.workspaceId",
                "an event needs a workspace to be stored",
            )
        })?;
        let (ms, seq) = id.parts();
        let json = serde_json::to_string(event)
            .map_err(|e| StorageError::invalid("event", e.to_string()))?;
        Ok(Self {
            workspace: workspace.as_str().to_string(),
            id: id.as_str().to_string(),
            id_ms: clamp_i64(ms),
            id_seq: clamp_i64(seq),
            event_type: event.event_type.as_str().to_string(),
            correlation_id: event.source.correlation_id.as_str().to_string(),
            created_at: event.created_at.timestamp_millis(),
            // Pre-split into lowercase words so every backend's tokenizer sees the same words
            // (PostgreSQL's parser would otherwise keep `orders.paid` as one host-like token).
            text: search_words(&event_text(event)),
            json,
        })
    }

    /// Rows for a whole batch, or the first event's error.
    pub fn batch(events: &[Arc<Event>]) -> Result<Vec<Self>> {
        if events.len() > MAX_APPEND_BATCH {
            return Err(StorageError::invalid(
                "events",
                format!("at most {MAX_APPEND_BATCH} events per append"),
            ));
        }
        events.iter().map(|e| Self::from_event(e)).collect()
    }
}

/// Ids are u64 parts; the SQL columns are signed 64-bit. Ids past i64::MAX (year 292 million)
/// sort last instead of wrapping.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An id cursor as `(ms, seq)` columns.
pub(crate) fn id_key(id: &EventId) -> (i64, i64) {
    let (ms, seq) = id.parts();
    (clamp_i64(ms), clamp_i64(seq))
}

/// Decodes a stored event document; a bad one is [`StorageError::Corrupt`], not a panic.
pub(crate) fn decode_event(backend: &'static str, key: &str, doc: &str) -> Result<Event> {
    serde_json::from_str(doc).map_err(|e| StorageError::corrupt(backend, format!("event {key}"), e))
}
