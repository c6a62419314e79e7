//! Document collections on MongoDB: one collection per spec (`docs_<name>`); unique values are
//! copied to `keys.<field>` with a unique partial index, so every write is one atomic
//! single-document operation (no multi-document transaction, which needs a replica set).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::IndexModel;
use mongodb::bson::{Bson, Document as BsonDoc, doc};
use mongodb::options::{IndexOptions, ReturnDocument};
use serde_json::Value;

use super::{BACKEND, MongoStore, duplicate_key, op_error, to_bson, to_json};
use crate::documents::{
    CollectionSpec, Collections, Document, Expect, check_find, check_id, check_put,
    unique_conflict, unique_keys, version_conflict,
};
use crate::error::{Result, StorageError};

fn index_name(field: &str) -> String {
    format!("unique_{}", field.replace('.', "_"))
}

fn decode(spec: &CollectionSpec, d: BsonDoc) -> Result<Document> {
    let corrupt =
        |why: &str| StorageError::corrupt(BACKEND, format!("document in {}", spec.name), why);
    let id = d
        .get_str("_id")
        .map_err(|_| corrupt("_id is not a string"))?
        .to_string();
    let version = match d.get("version") {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        _ => return Err(corrupt("version is not an integer")),
    };
    let body = d.get("body").cloned().ok_or_else(|| corrupt("no body"))?;
    let body = to_json(body);
    if !body.is_object() {
        return Err(corrupt("body is not an object"));
    }
    Ok(Document {
        id,
        version: u64::try_from(version).unwrap_or(0),
        body,
    })
}

impl MongoStore {
    async fn docs(&self, spec: &CollectionSpec) -> Result<mongodb::Collection<BsonDoc>> {
        let coll = self
            .db
            .collection::<BsonDoc>(&format!("docs_{}", spec.name));
        let done = self
            .indexed
            .lock()
            .map(|s| s.contains(spec.name))
            .unwrap_or(false);
        if !done && !spec.unique.is_empty() {
            let models: Vec<IndexModel> = spec
                .unique
                .iter()
                .map(|f| {
                    let key = format!("keys.{}", f.replace('.', "_"));
                    let mut keys = BsonDoc::new();
                    keys.insert(key.clone(), 1);
                    let mut partial = BsonDoc::new();
                    partial.insert(key, doc! { "$exists": true });
                    IndexModel::builder()
                        .keys(keys)
                        .options(
                            IndexOptions::builder()
                                .name(index_name(f))
                                .unique(true)
                                .partial_filter_expression(partial)
                                .build(),
                        )
                        .build()
                })
                .collect();
            coll.create_indexes(models)
                .await
                .map_err(|e| op_error(&self.location, "create indexes", e))?;
        }
        if let Ok(mut s) = self.indexed.lock() {
            s.insert(spec.name);
        }
        Ok(coll)
    }

    fn conflict(
        &self,
        spec: &CollectionSpec,
        e: mongodb::error::Error,
        id: &str,
        expect: Expect,
    ) -> StorageError {
        match duplicate_key(&e) {
            Some(msg) => match spec.unique.iter().find(|f| msg.contains(&index_name(f))) {
                Some(field) => unique_conflict(spec, field),
                None => version_conflict(spec, id, expect, None),
            },
            None => op_error(&self.location, "put document", e),
        }
    }
}

#[async_trait]
impl Collections for MongoStore {
    async fn put(
        &self,
        spec: &CollectionSpec,
        id: &str,
        body: &Value,
        expect: Expect,
    ) -> Result<Document> {
        check_put(spec, id, body)?;
        let coll = self.docs(spec).await?;
        let mut keys = BsonDoc::new();
        for (field, value) in unique_keys(spec, body) {
            keys.insert(field.replace('.', "_"), value);
        }
        let body_bson = to_bson(body)?;
        let set = doc! { "$set": { "body": body_bson.clone(), "keys": keys.clone() }, "$inc": { "version": 1_i64 } };
        let result = match expect {
            Expect::Absent => coll
                .insert_one(doc! { "_id": id, "version": 1_i64, "body": body_bson, "keys": keys })
                .await
                .map(|_| Some(1_i64)),
            Expect::Any => coll
                .find_one_and_update(doc! { "_id": id }, set)
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await
                .map(|d| d.and_then(|d| d.get_i64("version").ok())),
            Expect::Version(v) => coll
                .find_one_and_update(
                    doc! { "_id": id, "version": i64::try_from(v).unwrap_or(i64::MAX) },
                    set,
                )
                .return_document(ReturnDocument::After)
                .await
                .map(|d| d.and_then(|d| d.get_i64("version").ok())),
        };
        match result {
            Ok(Some(version)) => Ok(Document {
                id: id.to_string(),
                version: u64::try_from(version).unwrap_or(0),
                body: body.clone(),
            }),
            Ok(None) => {
                let found = self.get(spec, id).await?.map(|d| d.version);
                Err(version_conflict(spec, id, expect, found))
            }
            Err(e) => Err(self.conflict(spec, e, id, expect)),
        }
    }

    async fn get(&self, spec: &CollectionSpec, id: &str) -> Result<Option<Document>> {
        check_id(id)?;
        let coll = self.docs(spec).await?;
        let found = coll
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| op_error(&self.location, "get document", e))?;
        found.map(|d| decode(spec, d)).transpose()
    }

    async fn delete(&self, spec: &CollectionSpec, id: &str, expect: Expect) -> Result<bool> {
        check_id(id)?;
        let coll = self.docs(spec).await?;
        let filter = match expect {
            Expect::Version(v) => {
                doc! { "_id": id, "version": i64::try_from(v).unwrap_or(i64::MAX) }
            }
            _ => doc! { "_id": id },
        };
        let done = coll
            .delete_one(filter)
            .await
            .map_err(|e| op_error(&self.location, "delete document", e))?;
        if done.deleted_count == 0 && matches!(expect, Expect::Version(_)) {
            let found = self.get(spec, id).await?.map(|d| d.version);
            return Err(version_conflict(spec, id, expect, found));
        }
        Ok(done.deleted_count > 0)
    }

    async fn find_after(
        &self,
        spec: &CollectionSpec,
        field: &str,
        value: &Value,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>> {
        check_find(spec, field, value, limit)?;
        let coll = self.docs(spec).await?;
        let mut filter = BsonDoc::new();
        filter.insert(format!("body.{field}"), to_bson(value)?);
        if let Some(after) = after {
            filter.insert("_id", doc! { "$gt": after });
        }
        let cursor = coll
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(i64::from(limit))
            .await
            .map_err(|e| op_error(&self.location, "find documents", e))?;
        let docs: Vec<BsonDoc> = cursor
            .try_collect()
            .await
            .map_err(|e| op_error(&self.location, "find documents", e))?;
        docs.into_iter().map(|d| decode(spec, d)).collect()
    }
}
