//! Document collections: small JSON documents by id (users, workspaces, permissions), with an
//! optimistic version and unique keys, under the typed repositories of the services.
//!
//! Every write names the version it expects ([`Expect`]); a stale one is a
//! [`StorageError::Conflict`], so two replicas editing the same workspace cannot silently
//! overwrite each other. A [`CollectionSpec`] lists the body fields that must be unique
//! (a user's email, a workspace's slug); breaking one is also a `Conflict`.

pub(crate) mod memory;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{Result, StorageError};
use crate::history::filter_path_ok;

/// Longest document id, in bytes: ids end up in index keys.
pub const MAX_DOCUMENT_ID_LEN: usize = 128;

/// Largest page [`Collections::find`] returns.
pub const MAX_FIND_LIMIT: u32 = 1_000;

/// A collection and its unique fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionSpec {
    /// `[a-z_]{1,48}`: used as a table/collection name suffix.
    pub name: &'static str,
    /// Dotted body paths whose values are unique across the collection (absent/null skip).
    pub unique: &'static [&'static str],
}

/// The collections the services use, named in one place.
pub mod collections {
    use super::CollectionSpec;

    /// Accounts of the gateway, unique by email.
    pub const USERS: CollectionSpec = CollectionSpec {
        name: "users",
        unique: &["email"],
    };
    /// Workspaces, unique by slug.
    pub const WORKSPACES: CollectionSpec = CollectionSpec {
        name: "workspaces",
        unique: &["slug"],
    };
    /// Who holds which role or policies on a workspace or app.
    pub const PERMISSIONS: CollectionSpec = CollectionSpec {
        name: "permissions",
        unique: &[],
    };
    /// Automations, by `refract_core::model::automation_doc_id` (`<workspaceId>:<slug>`).
    pub const AUTOMATIONS: CollectionSpec = CollectionSpec {
        name: "automations",
        unique: &[],
    };
    /// Limits changed live through the API, by workspace id.
    pub const WORKSPACE_QUOTAS: CollectionSpec = CollectionSpec {
        name: "workspace_quotas",
        unique: &[],
    };
    /// Failed runs waiting for their next attempt (`state` pending or running), by id.
    pub const RETRIES: CollectionSpec = CollectionSpec {
        name: "run_retries",
        unique: &[],
    };
    /// Runs that failed every attempt, by id (time-ordered: `dl-<ms>-<random>`).
    pub const DEAD_LETTERS: CollectionSpec = CollectionSpec {
        name: "dead_letters",
        unique: &[],
    };
    /// Workspace secrets, by `<workspaceId>:<name>`.
    pub const SECRETS: CollectionSpec = CollectionSpec {
        name: "secrets",
        unique: &[],
    };
    /// Personal access tokens, by token id; `hash` is the SHA-256 of the token.
    pub const ACCESS_TOKENS: CollectionSpec = CollectionSpec {
        name: "access_tokens",
        unique: &["hash"],
    };
    /// Workspace API keys (`refract_core::permissions::ApiKeyRecord`), by key id; `hash` is
    /// the SHA-256 of the key.
    pub const API_KEYS: CollectionSpec = CollectionSpec {
        name: "api_keys",
        unique: &["hash"],
    };
    /// Workspace custom roles and rules (`refract_core::permissions::Authorizations`), by
    /// workspace id.
    pub const SECURITY: CollectionSpec = CollectionSpec {
        name: "security",
        unique: &[],
    };
    /// Published apps (`refract_core::apps::App`), by app slug.
    pub const APPS: CollectionSpec = CollectionSpec {
        name: "apps",
        unique: &[],
    };
    /// Immutable app versions (`refract_core::apps::AppVersion`), by `<appSlug>@<version>`.
    pub const APP_VERSIONS: CollectionSpec = CollectionSpec {
        name: "app_versions",
        unique: &[],
    };
    /// App instances (`refract_core::apps::AppInstance`), by `<workspaceId>:<slug>`.
    pub const APP_INSTANCES: CollectionSpec = CollectionSpec {
        name: "app_instances",
        unique: &[],
    };
    /// Workspace versions (`refract_core::apps::WorkspaceVersion`), by `<workspaceId>@<name>`.
    pub const WORKSPACE_VERSIONS: CollectionSpec = CollectionSpec {
        name: "workspace_versions",
        unique: &[],
    };
    /// Automation versions (`refract_workspaces`): an index per automation by
    /// `<workspaceId>:<slug>`, and each version by `<workspaceId>:<slug>@<n>`.
    pub const AUTOMATION_VERSIONS: CollectionSpec = CollectionSpec {
        name: "automation_versions",
        unique: &[],
    };
}

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Unique in its collection.
    pub id: String,
    /// 1 on creation, +1 on every write.
    pub version: u64,
    /// A JSON object.
    pub body: Value,
}

/// The state a write expects the document to be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (last write wins).
    Any,
    /// No document with this id yet (create).
    Absent,
    /// Exactly this version (update/delete after a read).
    Version(u64),
}

/// Document collections.
#[async_trait]
pub trait Collections: Send + Sync {
    /// Creates or replaces document `id` if it is as `expect`ed; returns the stored document.
    async fn put(
        &self,
        collection: &CollectionSpec,
        id: &str,
        body: &Value,
        expect: Expect,
    ) -> Result<Document>;

    /// The document `id` of `collection`, if any.
    async fn get(&self, collection: &CollectionSpec, id: &str) -> Result<Option<Document>>;

    /// Deletes `id` if it is as `expect`ed; `false` when there was nothing to delete.
    async fn delete(&self, collection: &CollectionSpec, id: &str, expect: Expect) -> Result<bool>;

    /// Documents whose body has `value` at dotted `field`, by id, at most `limit`.
    async fn find(
        &self,
        collection: &CollectionSpec,
        field: &str,
        value: &Value,
        limit: u32,
    ) -> Result<Vec<Document>> {
        self.find_after(collection, field, value, None, limit).await
    }

    /// One page of [`find`](Self::find): the documents with ids after `after` (from the first
    /// when `None`), by id, at most `limit`. A listing longer than [`MAX_FIND_LIMIT`] is read
    /// page by page, each starting after the last id of the one before.
    async fn find_after(
        &self,
        collection: &CollectionSpec,
        field: &str,
        value: &Value,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>>;

    /// Every document whose body has `value` at `field`, by id, read page by page (startup
    /// loads that must see all tenants' documents, however many).
    async fn find_all(
        &self,
        collection: &CollectionSpec,
        field: &str,
        value: &Value,
    ) -> Result<Vec<Document>> {
        let mut all: Vec<Document> = Vec::new();
        loop {
            let after = all.last().map(|d| d.id.clone());
            let page = self
                .find_after(collection, field, value, after.as_deref(), MAX_FIND_LIMIT)
                .await?;
            let full = page.len() == MAX_FIND_LIMIT as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
}

/// Checks a write's input; shared by every backend.
pub(crate) fn check_put(collection: &CollectionSpec, id: &str, body: &Value) -> Result<()> {
    check_collection(collection)?;
    check_id(id)?;
    if !body.is_object() {
        return Err(StorageError::invalid("body", "a document is a JSON object"));
    }
    Ok(())
}

pub(crate) fn check_collection(collection: &CollectionSpec) -> Result<()> {
    let n = collection.name;
    if n.is_empty() || n.len() > 48 || !n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(StorageError::invalid(
            "collection",
            format!("{n:?}: use [a-z_]{{1,48}}"),
        ));
    }
    for field in collection.unique {
        check_field(field)?;
    }
    Ok(())
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_DOCUMENT_ID_LEN || id.chars().any(char::is_control) {
        return Err(StorageError::invalid(
            "id",
            format!("1 to {MAX_DOCUMENT_ID_LEN} bytes, no control characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_field(field: &str) -> Result<Vec<String>> {
    let segments: Vec<String> = field.split('.').map(str::to_string).collect();
    if segments.is_empty() || segments.len() > 10 || !segments.iter().all(|s| filter_path_ok(s)) {
        return Err(StorageError::invalid(
            "field",
            format!("{field:?}: dotted segments of A-Z a-z 0-9 _ $ -"),
        ));
    }
    Ok(segments)
}

pub(crate) fn check_find(
    collection: &CollectionSpec,
    field: &str,
    value: &Value,
    limit: u32,
) -> Result<Vec<String>> {
    check_collection(collection)?;
    if value.is_null() {
        return Err(StorageError::invalid(
            "value",
            "find matches a present, non-null value",
        ));
    }
    if limit == 0 || limit > MAX_FIND_LIMIT {
        return Err(StorageError::invalid(
            "limit",
            format!("must be 1 to {MAX_FIND_LIMIT}"),
        ));
    }
    check_field(field)
}

/// The value at dotted `field` of `body`, if present and not null.
pub(crate) fn value_at<'a>(body: &'a Value, field: &str) -> Option<&'a Value> {
    let mut at = body;
    for seg in field.split('.') {
        at = at.get(seg)?;
    }
    (!at.is_null()).then_some(at)
}

/// The unique keys of `body`: `(field, canonical JSON of its value)`.
pub(crate) fn unique_keys(
    collection: &CollectionSpec,
    body: &Value,
) -> Vec<(&'static str, String)> {
    collection
        .unique
        .iter()
        .filter_map(|f| value_at(body, f).map(|v| (*f, canonical(v))))
        .collect()
}

/// One text form per JSON value, so `1` and `1.0` are the same key.
pub(crate) fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The conflict error of a unique key.
pub(crate) fn unique_conflict(collection: &CollectionSpec, field: &str) -> StorageError {
    StorageError::conflict(format!(
        "{}: another document has the same {field}",
        collection.name
    ))
}

/// The conflict error of a version mismatch.
pub(crate) fn version_conflict(
    collection: &CollectionSpec,
    id: &str,
    expect: Expect,
    found: Option<u64>,
) -> StorageError {
    let found = found.map_or("absent".to_string(), |v| format!("version {v}"));
    let wanted = match expect {
        Expect::Any => "any".to_string(),
        Expect::Absent => "absent".to_string(),
        Expect::Version(v) => format!("version {v}"),
    };
    StorageError::conflict(format!(
        "{}/{id}: expected {wanted}, found {found}",
        collection.name
    ))
}

/// Whether the current version satisfies `expect`.
pub(crate) fn expectation_met(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unique_keys_skip_absent_fields_and_normalise_numbers() {
        let spec = CollectionSpec {
            name: "t",
            unique: &["email", "n"],
        };
        assert_eq!(
            unique_keys(&spec, &json!({"email": "a@x", "n": 1.0})),
            vec![("email", "\"a@x\"".to_string()), ("n", "1".to_string())]
        );
        assert!(unique_keys(&spec, &json!({"email": null})).is_empty());
    }

    #[test]
    fn bad_names_ids_and_bodies_are_invalid() {
        let bad = CollectionSpec {
            name: "Users;drop",
            unique: &[],
        };
        assert!(check_put(&bad, "a", &json!({})).is_err());
        assert!(check_put(&collections::USERS, "", &json!({})).is_err());
        assert!(check_put(&collections::USERS, "a", &json!([1])).is_err());
        assert!(check_find(&collections::USERS, "a'b", &json!(1), 10).is_err());
    }
}
