//! The event history on MongoDB.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document as BsonDoc, doc};
use refract_core::{Event, WorkspaceId};
use std::sync::Arc;

use super::{BACKEND, MongoStore, op_error, to_bson, to_json};
use crate::error::{Result, StorageError};
use crate::history::{
    AppendOutcome, EventHistory, EventRow, HistoryQuery, SortOrder, TypeFilter, id_key,
};

const DUPLICATE_KEY: i32 = 11000;

impl MongoStore {
    fn events(&self) -> mongodb::Collection<BsonDoc> {
        self.db.collection("events")
    }
}

fn row_doc(r: &EventRow, event: &Event) -> Result<BsonDoc> {
    Ok(doc! {
        "_id": format!("{}/{}", r.workspace, r.id),
        "ws": &r.workspace,
        "ms": r.id_ms,
        "seq": r.id_seq,
        "type": &r.event_type,
        "corr": &r.correlation_id,
        "at": r.created_at,
        "text": &r.text,
        "doc": to_bson(event)?,
    })
}

fn filter(q: &HistoryQuery) -> Result<BsonDoc> {
    let mut and: Vec<Bson> = vec![Bson::Document(doc! { "ws": q.workspace.as_str() })];
    if !q.types.is_empty() {
        let any: Vec<Bson> = q
            .types
            .iter()
            .map(|t| {
                Bson::Document(match t {
                    TypeFilter::Exact(t) => doc! { "type": t.as_str() },
                    TypeFilter::Prefix(p) => {
                        doc! { "type": { "$gte": p.as_str(), "$lt": TypeFilter::prefix_upper_bound(p) } }
                    }
                })
            })
            .collect();
        and.push(Bson::Document(doc! { "$or": any }));
    }
    if let Some(d) = q.after_date {
        and.push(Bson::Document(
            doc! { "at": { "$gt": d.timestamp_millis() } },
        ));
    }
    if let Some(d) = q.before_date {
        and.push(Bson::Document(
            doc! { "at": { "$lt": d.timestamp_millis() } },
        ));
    }
    if let Some(id) = &q.before_id {
        let (ms, seq) = id_key(id);
        and.push(Bson::Document(
            doc! { "$or": [ { "ms": { "$lt": ms } }, { "ms": ms, "seq": { "$lt": seq } } ] },
        ));
    }
    if let Some(id) = &q.after_id {
        let (ms, seq) = id_key(id);
        and.push(Bson::Document(
            doc! { "$or": [ { "ms": { "$gt": ms } }, { "ms": ms, "seq": { "$gt": seq } } ] },
        ));
    }
    if let Some(c) = &q.correlation_id {
        and.push(Bson::Document(doc! { "corr": c.as_str() }));
    }
    if let Some(words) = q.words() {
        // Quoted words are ANDed by $text; unquoted ones would be ORed.
        let search = words
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(" ");
        and.push(Bson::Document(doc! { "$text": { "$search": search } }));
    }
    for f in &q.fields {
        let mut cond = BsonDoc::new();
        cond.insert(format!("doc.{}", f.path()), to_bson(f.value())?);
        and.push(Bson::Document(cond));
    }
    Ok(doc! { "$and": and })
}

fn decode(d: BsonDoc) -> Result<Event> {
    let key = d.get_str("_id").unwrap_or("?").to_string();
    let body = d
        .get("doc")
        .cloned()
        .ok_or_else(|| StorageError::corrupt(BACKEND, format!("event {key}"), "no doc field"))?;
    serde_json::from_value(to_json(body))
        .map_err(|e| StorageError::corrupt(BACKEND, format!("event {key}"), e))
}

#[async_trait]
impl EventHistory for MongoStore {
    async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome> {
        let rows = EventRow::batch(events)?;
        if rows.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let docs = rows
            .iter()
            .zip(events)
            .map(|(r, e)| row_doc(r, e))
            .collect::<Result<Vec<_>>>()?;
        let total = docs.len() as u64;
        match self.events().insert_many(docs).ordered(false).await {
            Ok(done) => Ok(AppendOutcome {
                inserted: done.inserted_ids.len() as u64,
                duplicates: 0,
            }),
            Err(e) => {
                let dups = match e.kind.as_ref() {
                    mongodb::error::ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
                        let errors = m.write_errors.as_deref().unwrap_or_default();
                        errors
                            .iter()
                            .all(|w| w.code == DUPLICATE_KEY)
                            .then_some(errors.len() as u64)
                    }
                    _ => None,
                };
                match dups {
                    Some(d) => Ok(AppendOutcome {
                        inserted: total - d,
                        duplicates: d,
                    }),
                    None => Err(op_error(&self.location, "append", e)),
                }
            }
        }
    }

    async fn query(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
        q.validate()?;
        let dir = if q.sort == SortOrder::Desc { -1 } else { 1 };
        let cursor = self
            .events()
            .find(filter(q)?)
            .sort(doc! { "ms": dir, "seq": dir })
            .skip(q.offset())
            .limit(i64::from(q.limit))
            .await
            .map_err(|e| op_error(&self.location, "query", e))?;
        let docs: Vec<BsonDoc> = cursor
            .try_collect()
            .await
            .map_err(|e| op_error(&self.location, "query", e))?;
        docs.into_iter().map(decode).collect()
    }

    async fn count(&self, q: &HistoryQuery) -> Result<u64> {
        q.validate()?;
        self.events()
            .count_documents(filter(q)?)
            .await
            .map_err(|e| op_error(&self.location, "count", e))
    }

    async fn delete_workspace(&self, workspace: &WorkspaceId) -> Result<u64> {
        let done = self
            .events()
            .delete_many(doc! { "ws": workspace.as_str() })
            .await
            .map_err(|e| op_error(&self.location, "delete workspace", e))?;
        Ok(done.deleted_count)
    }

    async fn delete_workspace_before(
        &self,
        workspace: &WorkspaceId,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        let done = self
            .events()
            .delete_many(
                doc! { "ws": workspace.as_str(), "at": { "$lt": cutoff.timestamp_millis() } },
            )
            .await
            .map_err(|e| op_error(&self.location, "retention", e))?;
        Ok(done.deleted_count)
    }

    async fn workspaces(&self) -> Result<Vec<WorkspaceId>> {
        let values = self
            .events()
            .distinct("ws", doc! {})
            .await
            .map_err(|e| op_error(&self.location, "workspaces", e))?;
        values
            .into_iter()
            .map(|v| match v {
                Bson::String(ws) => WorkspaceId::new(ws.as_str())
                    .map_err(|e| StorageError::corrupt(BACKEND, format!("workspace {ws}"), e)),
                other => Err(StorageError::corrupt(
                    BACKEND,
                    "events.ws",
                    format!("not a string: {other}"),
                )),
            })
            .collect()
    }
}
