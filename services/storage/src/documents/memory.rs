//! In-memory document collections: the twin of the database backends.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    CollectionSpec, Collections, Document, Expect, check_find, check_id, check_put,
    expectation_met, unique_conflict, unique_keys, value_at, version_conflict,
};
use crate::error::{Result, StorageError};
use crate::history::json_eq;

#[derive(Default)]
struct Collection {
    docs: BTreeMap<String, Document>,
    /// (field, canonical value) -> id
    keys: HashMap<(&'static str, String), String>,
}

#[derive(Default)]
pub struct MemoryCollections {
    collections: Mutex<HashMap<&'static str, Collection>>,
}

impl MemoryCollections {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<&'static str, Collection>>> {
        self.collections
            .lock()
            .map_err(|_| StorageError::backend("memory", "documents", "lock poisoned"))
    }
}

#[async_trait]
impl Collections for MemoryCollections {
    async fn put(
        &self,
        spec: &CollectionSpec,
        id: &str,
        body: &Value,
        expect: Expect,
    ) -> Result<Document> {
        check_put(spec, id, body)?;
        let mut all = self.lock()?;
        let coll = all.entry(spec.name).or_default();
        let current = coll.docs.get(id).map(|d| d.version);
        if !expectation_met(expect, current) {
            return Err(version_conflict(spec, id, expect, current));
        }
        let keys = unique_keys(spec, body);
        for (field, value) in &keys {
            if coll
                .keys
                .get(&(*field, value.clone()))
                .is_some_and(|owner| owner != id)
            {
                return Err(unique_conflict(spec, field));
            }
        }
        coll.keys.retain(|_, owner| owner != id);
        for key in keys {
            coll.keys.insert(key, id.to_string());
        }
        let doc = Document {
            id: id.to_string(),
            version: current.unwrap_or(0) + 1,
            body: body.clone(),
        };
        coll.docs.insert(id.to_string(), doc.clone());
        Ok(doc)
    }

    async fn get(&self, spec: &CollectionSpec, id: &str) -> Result<Option<Document>> {
        check_id(id)?;
        Ok(self
            .lock()?
            .get(spec.name)
            .and_then(|c| c.docs.get(id).cloned()))
    }

    async fn delete(&self, spec: &CollectionSpec, id: &str, expect: Expect) -> Result<bool> {
        check_id(id)?;
        let mut all = self.lock()?;
        let Some(coll) = all.get_mut(spec.name) else {
            return match expect {
                Expect::Version(_) => Err(version_conflict(spec, id, expect, None)),
                _ => Ok(false),
            };
        };
        let current = coll.docs.get(id).map(|d| d.version);
        if matches!(expect, Expect::Version(_)) && !expectation_met(expect, current) {
            return Err(version_conflict(spec, id, expect, current));
        }
        coll.keys.retain(|_, owner| owner != id);
        Ok(coll.docs.remove(id).is_some())
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
        let all = self.lock()?;
        let Some(coll) = all.get(spec.name) else {
            return Ok(Vec::new());
        };
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        Ok(coll
            .docs
            .range((from, Bound::Unbounded))
            .map(|(_, d)| d)
            .filter(|d| value_at(&d.body, field).is_some_and(|v| json_eq(v, value)))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
