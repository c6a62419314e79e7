//! Who may do what in a workspace, read from the document store the same way by every service
//! (workspaces, events, runtime): the principal's memberships (direct, public, through a
//! custom role), the custom roles its identity-provider claims bind it to, the rules of the
//! API key it presented, and the workspace's own rules. The decision itself is
//! [`refract_core::permissions::Grant::allows`]: one function for the whole platform.

use refract_core::model::{
    MemberRole, Membership, PUBLIC_MEMBER, ROLE_MEMBER_PREFIX, Role, permission_doc_id,
};
use refract_core::permissions::{Action, ApiKeyRecord, Authorizations, Grant, Principal, Subject};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::documents::{Collections, collections};
use crate::error::{Result, StorageError};

/// Longest API key looked up: real ones are 47 characters; longer input is simply unknown.
const MAX_API_KEY_LEN: usize = 128;

/// A principal's standing in one workspace.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceAccess {
    /// Its role or policies in the workspace (membership, public access, API key).
    pub grant: Grant,
    /// The workspace's custom roles and rules the grant is read against.
    pub authorizations: Authorizations,
}

impl WorkspaceAccess {
    /// Whether the principal may do `action` on `subject` (described by `resource`).
    pub fn allows(&self, action: Action, subject: Subject, resource: &Value) -> bool {
        self.grant
            .allows(&self.authorizations, action, subject, resource)
    }

    /// Whether the workspace exists for this principal at all: a member, a key of this
    /// workspace, or anything granted to everyone. Others get 404, never 403, so ids cannot
    /// be probed.
    pub fn visible(&self) -> bool {
        self.grant.is_member()
            || self.grant.api_key_rules.is_some()
            || self
                .authorizations
                .rules
                .iter()
                .any(|r| r.role.is_none() && !r.inverted)
    }
}

/// The hex SHA-256 under which an API key is stored.
pub fn api_key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The stored, enabled API key whose value is `key`, in any workspace.
pub async fn find_api_key<C: Collections + ?Sized>(
    store: &C,
    key: &str,
) -> Result<Option<ApiKeyRecord>> {
    if key.is_empty() || key.len() > MAX_API_KEY_LEN {
        return Ok(None);
    }
    let hash = Value::String(api_key_hash(key));
    let Some(doc) = store
        .find(&collections::API_KEYS, "hash", &hash, 1)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let record: ApiKeyRecord = serde_json::from_value(doc.body)
        .map_err(|e| StorageError::corrupt("api_keys", format!("api key {}", doc.id), e))?;
    Ok((!record.disabled).then_some(record))
}

async fn membership<C: Collections + ?Sized>(
    store: &C,
    workspace: &str,
    member: &str,
) -> Result<Option<MemberRole>> {
    let id = permission_doc_id(workspace, member);
    let Some(doc) = store.get(&collections::PERMISSIONS, &id).await? else {
        return Ok(None);
    };
    let m: Membership = serde_json::from_value(doc.body)
        .map_err(|e| StorageError::corrupt("permissions", format!("membership {id}"), e))?;
    Ok(Some(m.role))
}

/// Whether `user` is a member of `workspace` in their own name (a membership of theirs, with
/// any role; a share with everyone does not make a stranger a member).
pub async fn is_member<C: Collections + ?Sized>(
    store: &C,
    workspace: &str,
    user: &str,
) -> Result<bool> {
    Ok(membership(store, workspace, user).await?.is_some())
}

/// The workspace's custom roles and rules (none until an owner saves some).
pub async fn authorizations_of<C: Collections + ?Sized>(
    store: &C,
    workspace: &str,
) -> Result<Authorizations> {
    match store.get(&collections::SECURITY, workspace).await? {
        Some(doc) => serde_json::from_value(doc.body)
            .map_err(|e| StorageError::corrupt("security", format!("security of {workspace}"), e)),
        None => Ok(Authorizations::default()),
    }
}

fn add(grant: &mut Grant, role: MemberRole) {
    match role {
        MemberRole::BuiltIn(r) => grant.role = grant.role.max(Some(r)),
        MemberRole::Custom(name) => {
            if !grant.custom_roles.contains(&name) {
                grant.custom_roles.push(name);
            }
        }
    }
}

/// Everything `who` holds in `workspace` (an empty grant for strangers).
pub async fn access_of<C: Collections + ?Sized>(
    store: &C,
    workspace: &str,
    who: &Principal<'_>,
) -> Result<WorkspaceAccess> {
    let authorizations = authorizations_of(store, workspace).await?;
    let mut grant = Grant {
        superadmin: who.superadmin,
        ..Grant::default()
    };
    if let Some(user) = who.user_id {
        for member in [user, PUBLIC_MEMBER] {
            if let Some(role) = membership(store, workspace, member).await? {
                add(&mut grant, role);
            }
        }
        if let Some(auth_data) = who.auth_data {
            for name in authorizations.bound_roles(auth_data) {
                add(&mut grant, MemberRole::Custom(name));
            }
        }
        // What was shared with the holders of a custom role reaches them too (one level:
        // a share with a role gives a role, it does not chain further).
        for name in grant.custom_roles.clone() {
            let holder = format!("{ROLE_MEMBER_PREFIX}{name}");
            if let Some(role) = membership(store, workspace, &holder).await? {
                add(&mut grant, role);
            }
        }
    }
    if let Some(key) = who.api_key
        && let Some(record) = find_api_key(store, key).await?
        && record.workspace_id == workspace
    {
        grant.api_key_rules = Some(record.rules);
    }
    Ok(WorkspaceAccess {
        grant,
        authorizations,
    })
}

/// The built-in role of `user` in `workspace` (a direct membership, or what the workspace
/// shares with the public); `None` when neither gives one. For custom roles, rules and API
/// keys use [`access_of`].
pub async fn role_of<C: Collections + ?Sized>(
    store: &C,
    workspace: &str,
    user: &str,
) -> Result<Option<Role>> {
    let who = Principal {
        user_id: Some(user),
        ..Principal::default()
    };
    Ok(access_of(store, workspace, &who).await?.grant.role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Expect;
    use crate::store::MemoryStore;
    use serde_json::json;

    async fn put(store: &MemoryStore, spec: &crate::CollectionSpec, id: &str, body: Value) {
        store.put(spec, id, &body, Expect::Any).await.unwrap();
    }

    #[tokio::test]
    async fn memberships_public_shares_role_shares_and_keys_add_up() {
        let store = MemoryStore::new();
        let member =
            |user: &str, role: &str| json!({"workspaceId": "w1", "userId": user, "role": role});
        put(
            &store,
            &collections::PERMISSIONS,
            "w1:ann",
            member("ann", "editor"),
        )
        .await;
        put(
            &store,
            &collections::PERMISSIONS,
            "w1:*",
            member("*", "viewer"),
        )
        .await;
        put(
            &store,
            &collections::PERMISSIONS,
            "w1:bob",
            member("bob", "support"),
        )
        .await;
        put(
            &store,
            &collections::PERMISSIONS,
            "w1:role:support",
            member("role:support", "auditor"),
        )
        .await;
        put(
            &store,
            &collections::SECURITY,
            "w1",
            json!({
                "roles": {"support": {}, "auditor": {}},
                "rules": [{"role": "auditor", "action": "read", "subject": "secrets"}]
            }),
        )
        .await;
        let who = |user| Principal {
            user_id: Some(user),
            ..Principal::default()
        };

        assert_eq!(
            role_of(&store, "w1", "ann").await.unwrap(),
            Some(Role::Editor)
        );
        // The public share reaches any authenticated user, and only in its workspace.
        assert_eq!(
            role_of(&store, "w1", "carl").await.unwrap(),
            Some(Role::Viewer)
        );
        assert_eq!(role_of(&store, "w2", "carl").await.unwrap(), None);
        let bob = access_of(&store, "w1", &who("bob")).await.unwrap();
        assert_eq!(
            bob.grant.custom_roles,
            vec!["support".to_string(), "auditor".to_string()]
        );
        assert!(bob.allows(Action::Read, Subject::Secrets, &json!({})));
        assert!(!access_of(&store, "w1", &who("ann")).await.unwrap().allows(
            Action::Read,
            Subject::Secrets,
            &json!({})
        ));

        let record = json!({
            "id": "k1", "workspaceId": "w1", "name": "reader", "hash": api_key_hash("rfk_secret"),
            "keyHint": "cret", "rules": [{"action": "read", "subject": "events"}],
            "createdAt": "2026-01-01T00:00:00Z", "createdBy": "ann"
        });
        put(&store, &collections::API_KEYS, "k1", record.clone()).await;
        let key = |k| Principal {
            api_key: Some(k),
            ..Principal::default()
        };
        let keyed = access_of(&store, "w1", &key("rfk_secret")).await.unwrap();
        assert!(keyed.visible());
        assert!(keyed.allows(Action::Read, Subject::Events, &json!({"type": "x"})));
        assert!(!keyed.allows(Action::Update, Subject::Automations, &json!({})));
        // A key opens only its own workspace; a wrong key opens nothing.
        assert!(
            !access_of(&store, "w2", &key("rfk_secret"))
                .await
                .unwrap()
                .visible()
        );
        assert!(
            !access_of(&store, "w1", &key("rfk_other"))
                .await
                .unwrap()
                .visible()
        );
        let mut disabled = record;
        disabled["disabled"] = json!(true);
        put(&store, &collections::API_KEYS, "k1", disabled).await;
        assert!(find_api_key(&store, "rfk_secret").await.unwrap().is_none());
    }
}
