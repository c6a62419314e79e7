//! Document collections on PostgreSQL: the version check is in the write's WHERE clause and
//! unique keys are rows of `document_keys`, all in one transaction.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{Postgres, Row};

use super::{PostgresStore, op_error};
use crate::documents::{
    CollectionSpec, Collections, Document, Expect, check_find, check_id, check_put,
    version_conflict,
};
use crate::error::Result;
use crate::sql;

impl PostgresStore {
    async fn current_version(&self, spec: &CollectionSpec, id: &str) -> Result<Option<u64>> {
        let err = |e| op_error(&self.location, "get document", e);
        let mut conn = self.pool.acquire().await.map_err(err)?;
        sql::current_version::<Postgres>(&mut conn, spec, id)
            .await
            .map_err(err)
    }
}

#[async_trait]
impl Collections for PostgresStore {
    async fn put(
        &self,
        spec: &CollectionSpec,
        id: &str,
        body: &Value,
        expect: Expect,
    ) -> Result<Document> {
        check_put(spec, id, body)?;
        let err = |e| op_error(&self.location, "put document", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let sql = match expect {
            Expect::Any => {
                "INSERT INTO documents (collection, id, version, body) VALUES ($1, $2, 1, $3::jsonb)
                 ON CONFLICT (collection, id) DO UPDATE SET version = documents.version + 1, body = excluded.body
                 RETURNING version"
            }
            Expect::Absent => {
                "INSERT INTO documents (collection, id, version, body) VALUES ($1, $2, 1, $3::jsonb)
                 ON CONFLICT (collection, id) DO NOTHING RETURNING version"
            }
            Expect::Version(_) => {
                "UPDATE documents SET version = version + 1, body = $3::jsonb
                 WHERE collection = $1 AND id = $2 AND version = $4 RETURNING version"
            }
        };
        let expected = match expect {
            Expect::Version(v) => i64::try_from(v).unwrap_or(i64::MAX),
            _ => 0,
        };
        let mut query = sqlx::query(sql)
            .bind(spec.name)
            .bind(id.to_string())
            .bind(body.to_string());
        if matches!(expect, Expect::Version(_)) {
            query = query.bind(expected);
        }
        let row = query.fetch_optional(&mut *tx).await.map_err(err)?;
        let Some(row) = row else {
            drop(tx);
            let found = self.current_version(spec, id).await?;
            return Err(version_conflict(spec, id, expect, found));
        };
        let version: i64 = row.try_get("version").map_err(err)?;
        sql::replace_keys::<Postgres>(&mut tx, spec, id, body, err).await?;
        tx.commit().await.map_err(err)?;
        Ok(Document {
            id: id.to_string(),
            version: u64::try_from(version).unwrap_or(0),
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
        let mut tx = self.pool.begin().await.map_err(err)?;
        let done = match expect {
            Expect::Version(v) => sqlx::query(
                "DELETE FROM documents WHERE collection = $1 AND id = $2 AND version = $3",
            )
            .bind(spec.name)
            .bind(id.to_string())
            .bind(i64::try_from(v).unwrap_or(i64::MAX)),
            _ => sqlx::query("DELETE FROM documents WHERE collection = $1 AND id = $2")
                .bind(spec.name)
                .bind(id.to_string()),
        }
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            drop(tx);
            if matches!(expect, Expect::Version(_)) {
                let found = self.current_version(spec, id).await?;
                return Err(version_conflict(spec, id, expect, found));
            }
            return Ok(false);
        }
        sql::delete_keys::<Postgres>(&mut tx, spec, id)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(true)
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
