//! Document collections on SQLite: `documents` rows plus a `document_keys` row per unique
//! value, written in one IMMEDIATE transaction so a version check and its write cannot
//! interleave with another writer.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::history::push_json_eq;
use super::{BACKEND, SqliteStore, op_error};
use crate::documents::{
    CollectionSpec, Collections, Document, Expect, check_find, check_id, check_put,
    expectation_met, unique_conflict, unique_keys, version_conflict,
};
use crate::error::Result;
use crate::sql;

/// The version of `id` as the write transaction `tx` sees it.
async fn current_version(
    tx: &mut SqliteConnection,
    spec: &CollectionSpec,
    id: &str,
) -> sqlx::Result<Option<u64>> {
    let current: Option<i64> =
        sqlx::query("SELECT version FROM documents WHERE collection = ? AND id = ?")
            .bind(spec.name)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<i64, _>("version"))
            .transpose()?;
    Ok(current.map(|v| u64::try_from(v).unwrap_or(0)))
}

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
        let current = current_version(&mut tx, spec, id).await.map_err(err)?;
        if !expectation_met(expect, current) {
            return Err(version_conflict(spec, id, expect, current));
        }
        sqlx::query("DELETE FROM document_keys WHERE collection = ? AND id = ?")
            .bind(spec.name)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for (field, value) in unique_keys(spec, body) {
            let done = sqlx::query(
                "INSERT INTO document_keys (collection, field, value, id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(spec.name)
            .bind(field)
            .bind(value)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            if done.rows_affected() == 0 {
                return Err(unique_conflict(spec, field));
            }
        }
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
        let row =
            sqlx::query("SELECT id, version, body FROM documents WHERE collection = ? AND id = ?")
                .bind(spec.name)
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| op_error(&self.location, "get document", e))?;
        row.map(|r| sql::decode_document(BACKEND, spec, &r))
            .transpose()
    }

    async fn delete(&self, spec: &CollectionSpec, id: &str, expect: Expect) -> Result<bool> {
        check_id(id)?;
        let err = |e| op_error(&self.location, "delete document", e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err)?;
        let current = current_version(&mut tx, spec, id).await.map_err(err)?;
        if matches!(expect, Expect::Version(_)) && !expectation_met(expect, current) {
            return Err(version_conflict(spec, id, expect, current));
        }
        for sql in [
            "DELETE FROM document_keys WHERE collection = ? AND id = ?",
            "DELETE FROM documents WHERE collection = ? AND id = ?",
        ] {
            sqlx::query(sql)
                .bind(spec.name)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(current.is_some())
    }

    async fn find(
        &self,
        spec: &CollectionSpec,
        field: &str,
        value: &Value,
        limit: u32,
    ) -> Result<Vec<Document>> {
        let segments = check_find(spec, field, value, limit)?;
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT id, version, body FROM documents WHERE collection = ",
        );
        qb.push_bind(spec.name).push(" AND ");
        push_json_eq(&mut qb, "body", &segments, value);
        qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| op_error(&self.location, "find documents", e))?;
        rows.iter()
            .map(|r| sql::decode_document(BACKEND, spec, r))
            .collect()
    }
}
