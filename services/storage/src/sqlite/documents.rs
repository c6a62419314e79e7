//! Document collections on SQLite: `documents` rows plus a `document_keys` row per unique
//! value, written in one IMMEDIATE transaction so a version check and its write cannot
//! interleave with another writer.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Sqlite;

use super::{SqliteStore, op_error};
use crate::documents::{
    CollectionSpec, Collections, Document, Expect, check_find, check_id, check_put,
    expectation_met, version_conflict,
};
use crate::error::Result;
use crate::sql;

#[async_trait]
impl Collections for SqliteStore {
    async fn put(
        &self,
        spec: &CollectionSpec,
        id: &str,
        body: &Value,
        expect: Expect,
    ) -> Result<Document> {
        check_put(spec, id, body)?;
        let err = |e| op_error(&self.location, "put document", e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        let current = sql::current_version::<Sqlite>(&mut tx, spec, id)
            .await
            .map_err(err)?;
        if !expectation_met(expect, current) {
            return Err(version_conflict(spec, id, expect, current));
        }
        sql::replace_keys::<Sqlite>(&mut tx, spec, id, body, err).await?;
        let version = current.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO documents (collection, id, version, body) VALUES (?, ?, ?, ?)
             ON CONFLICT (collection, id) DO UPDATE SET version = excluded.version, body = excluded.body",
        )
        .bind(spec.name)
        .bind(id.to_string())
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .bind(body.to_string())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Document {
            id: id.to_string(),
            version,
            body: body.clone(),
        })
    }

    async fn get(&self, spec: &CollectionSpec, id: &str) -> Result<Option<Document>> {
        check_id(id)?;
        self.pools().get_document(spec, id).await
    }

    async fn delete(&self, spec: &CollectionSpec, id: &str, expect: Expect) -> Result<bool> {
        check_id(id)?;
        let err = |e| op_error(&self.location, "delete document", e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        let current = sql::current_version::<Sqlite>(&mut tx, spec, id)
            .await
            .map_err(err)?;
        if matches!(expect, Expect::Version(_)) && !expectation_met(expect, current) {
            return Err(version_conflict(spec, id, expect, current));
        }
        sql::delete_keys::<Sqlite>(&mut tx, spec, id)
            .await
            .map_err(err)?;
        sqlx::query("DELETE FROM documents WHERE collection = ? AND id = ?")
            .bind(spec.name)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(current.is_some())
    }

    async fn find_after(
        &self,
        spec: &CollectionSpec,
        field: &str,
        value: &Value,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>> {
        let segments = check_find(spec, field, value, limit)?;
        self.pools()
            .find_documents(spec, &segments, value, after, limit)
            .await
    }
}
