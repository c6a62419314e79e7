//! Write-through persistence of durable cache keys in the embedded SQLite file, so sessions
//! and global/user contexts survive a restart of the embedded mode.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json};
use sqlx::{Row, SqlitePool};
use tokio::time::Instant;

use super::memory::{Entry, Value};
use crate::error::{Result, StorageError};
use crate::location::Location;
use crate::sqlite;

const BACKEND: &str = "sqlite cache";

pub(crate) struct Durable {
    pool: SqlitePool,
    pub location: Location,
    /// Held across one durable update (map + row) so rows follow the map's order.
    pub order: tokio::sync::Mutex<()>,
}

/// A durable entry as written to the database: `None` = deleted.
pub(crate) struct Snapshot(Option<(String, Option<i64>)>);

impl Snapshot {
    pub fn of(slot: &Option<Entry>) -> Self {
        Snapshot(slot.as_ref().map(|e| {
            let json = match &e.value {
                Value::Bytes(b) => serde_json::json!({ "bytes": hex::encode(b) }),
                Value::Hash(h) => {
                    let fields: Map<String, Json> = h
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::String(hex::encode(v))))
                        .collect();
                    serde_json::json!({ "hash": fields })
                }
            };
            (json.to_string(), e.expires.map(to_wall_ms))
        }))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn to_wall_ms(at: Instant) -> i64 {
    let left = at.saturating_duration_since(Instant::now());
    now_ms().saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX))
}

fn decode(key: &str, json: &str) -> Result<Value> {
    let corrupt = |why: &str| StorageError::corrupt(BACKEND, format!("cache entry {key}"), why);
    let doc: Json = serde_json::from_str(json).map_err(|e| corrupt(&e.to_string()))?;
    let unhex = |v: &Json| {
        v.as_str()
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| corrupt("a value is not hex"))
    };
    if let Some(b) = doc.get("bytes") {
        return Ok(Value::Bytes(unhex(b)?));
    }
    if let Some(Json::Object(fields)) = doc.get("hash") {
        let mut h = BTreeMap::new();
        for (k, v) in fields {
            h.insert(k.clone(), unhex(v)?);
        }
        return Ok(Value::Hash(h));
    }
    Err(corrupt("neither bytes nor hash"))
}

impl Durable {
    /// Opens the database and loads the unexpired entries whose key starts with `prefix`.
    /// A corrupt row fails the open: silently dropping a session or context would lose data.
    pub async fn open(location: &Location, prefix: &str) -> Result<(Self, HashMap<String, Entry>)> {
        // One connection: durable writes are serialized anyway, and it keeps its page cache.
        let pool = sqlite::connect(location, 1).await?;
        sqlite::migrate(&pool, location).await?;
        let err = |e| sqlite::op_error(location, "load cache", e);
        sqlx::query("DELETE FROM cache_entries WHERE expires_at IS NOT NULL AND expires_at <= ?")
            .bind(now_ms())
            .execute(&pool)
            .await
            .map_err(err)?;
        let rows = sqlx::query(
            "SELECT key, value, expires_at FROM cache_entries WHERE substr(key, 1, ?) = ?",
        )
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix.to_string())
        .fetch_all(&pool)
        .await
        .map_err(err)?;
        let mut loaded = HashMap::new();
        let now = now_ms();
        for row in rows {
            let key: String = row.try_get("key").map_err(err)?;
            let json: String = row.try_get("value").map_err(err)?;
            let at: Option<i64> = row.try_get("expires_at").map_err(err)?;
            let expires = at.map(|ms| {
                Instant::now()
                    + std::time::Duration::from_millis(u64::try_from(ms - now).unwrap_or(0))
            });
            loaded.insert(
                key.clone(),
                Entry {
                    value: decode(&key, &json)?,
                    expires,
                },
            );
        }
        Ok((
            Self {
                pool,
                location: location.clone(),
                order: tokio::sync::Mutex::new(()),
            },
            loaded,
        ))
    }

    pub async fn write(&self, key: &str, snapshot: Snapshot) -> Result<()> {
        let err = |e| sqlite::op_error(&self.location, "persist cache entry", e);
        match snapshot.0 {
            Some((json, expires)) => sqlx::query(
                "INSERT INTO cache_entries (key, value, expires_at) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            )
            .bind(key.to_string())
            .bind(json)
            .bind(expires)
            .execute(&self.pool)
            .await
            .map_err(err)?,
            None => sqlx::query("DELETE FROM cache_entries WHERE key = ?")
                .bind(key.to_string())
                .execute(&self.pool)
                .await
                .map_err(err)?,
        };
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| sqlite::unavailable(&self.location, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_rows_are_errors() {
        assert!(decode("k", "not json").is_err());
        assert!(decode("k", r#"{"bytes":"zz"}"#).is_err());
        assert!(decode("k", r#"{"other":1}"#).is_err());
        assert_eq!(
            decode("k", r#"{"bytes":"6869"}"#).unwrap(),
            Value::Bytes(b"hi".to_vec())
        );
    }
}
