//! The document store: event history and collections behind one handle, chosen by URL.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use refract_core::{Event, WorkspaceId};
use serde_json::Value;

use crate::documents::memory::MemoryCollections;
use crate::documents::{CollectionSpec, Collections, Document, Expect};
use crate::error::Result;
use crate::history::memory::MemoryHistory;
use crate::history::{AppendOutcome, EventHistory, HistoryQuery};
use crate::location::{Location, unsupported};
use crate::{mongo, postgres, sqlite};

/// Schemes [`open_document_store`] accepts.
pub const DOCUMENT_STORE_SCHEMES: &str =
    "sqlite://path, postgres://… (or postgresql://), mongodb://… (or mongodb+srv://), memory://";

/// A document database: the event history and the document collections. Services hold it as
/// `Arc<dyn DocumentStore>` and may pass it on as `Arc<dyn EventHistory>` or
/// `Arc<dyn Collections>`.
#[async_trait]
pub trait DocumentStore: EventHistory + Collections {
    /// Backend name and URL without secrets, for logs and readiness.
    fn describe(&self) -> String;

    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<()>;
}

/// Opens the document store `url` names, connecting and migrating it:
/// `sqlite://path`, `postgres://…[?schema=name]`, `mongodb://…/database`, or `memory://`.
pub async fn open_document_store(url: &str) -> Result<Arc<dyn DocumentStore>> {
    let loc = Location::parse("document store", url)?;
    Ok(match loc.scheme() {
        "memory" => Arc::new(MemoryStore::new()),
        "sqlite" => Arc::new(sqlite::SqliteStore::open(&loc).await?),
        "postgres" | "postgresql" => Arc::new(postgres::PostgresStore::open(&loc).await?),
        "mongodb" | "mongodb+srv" => Arc::new(mongo::MongoStore::open(&loc).await?),
        _ => return Err(unsupported("document store", &loc, DOCUMENT_STORE_SCHEMES)),
    })
}

/// The in-memory document store (`memory://`): nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    history: MemoryHistory,
    collections: MemoryCollections,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    fn describe(&self) -> String {
        "memory://".into()
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl EventHistory for MemoryStore {
    async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome> {
        self.history.append(events).await
    }
    async fn query(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
        self.history.query(q).await
    }
    async fn count(&self, q: &HistoryQuery) -> Result<u64> {
        self.history.count(q).await
    }
    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64> {
        self.history.delete_workspace(workspace).await
    }
    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        self.history
            .delete_workspace_before(workspace, cutoff)
            .await
    }
    async fn workspaces(&self) -> Result<Vec<WorkspaceId>> {
        self.history.workspaces().await
    }
}

#[async_trait]
impl Collections for MemoryStore {
    async fn put(
        &self,
        c: &CollectionSpec,
        id: &str,
        body: &Value,
        expect: Expect,
    ) -> Result<Document> {
        self.collections.put(c, id, body, expect).await
    }
    async fn get(&self, c: &CollectionSpec, id: &str) -> Result<Option<Document>> {
        self.collections.get(c, id).await
    }
    async fn delete(&self, c: &CollectionSpec, id: &str, expect: Expect) -> Result<bool> {
        self.collections.delete(c, id, expect).await
    }
    async fn find_after(
        &self,
        c: &CollectionSpec,
        field: &str,
        value: &Value,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>> {
        self.collections
            .find_after(c, field, value, after, limit)
            .await
    }
}

#[async_trait]
impl DocumentStore for sqlite::SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite {}", self.location().redacted())
    }

    async fn ping(&self) -> Result<()> {
        sqlite::SqliteStore::ping(self).await
    }
}

#[async_trait]
impl DocumentStore for postgres::PostgresStore {
    fn describe(&self) -> String {
        format!("postgres {}", self.location().redacted())
    }

    async fn ping(&self) -> Result<()> {
        postgres::PostgresStore::ping(self).await
    }
}

#[async_trait]
impl DocumentStore for mongo::MongoStore {
    fn describe(&self) -> String {
        format!("mongodb {}", self.location().redacted())
    }

    async fn ping(&self) -> Result<()> {
        mongo::MongoStore::ping(self).await
    }
}
