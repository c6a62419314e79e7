//! From a provider's identity to a Refract account: found by `authData.<provider>.id = sub`,
//! linked by verified email when the provider allows it, created on first login.

use chrono::Utc;
use refract_http::ApiError;
use refract_storage::{Collections, Expect, StorageError, collections};
use serde_json::{Map, Value};

use super::ProviderConfig;
use super::provider::Identity;
use crate::error::{internal, storage};
use crate::secrets::fingerprint;
use crate::users::{
    self, StoredUser, User, UserStatus, VerifiedEmail, check_email, normalize_email,
};

/// Longest profile text copied from a provider's claims (names, language).
const MAX_CLAIM_LEN: usize = 200;

/// The account of `identity` at `provider`: the one already linked to it, else (with
/// `link_by_email` and a verified email) the local account with that email, else a new one.
/// Every login refreshes `authData.<provider>` with the latest claims, which role bindings
/// read.
pub async fn find_or_create(
    store: &dyn Collections,
    provider: &ProviderConfig,
    identity: &Identity,
) -> Result<User, ApiError> {
    let field = format!("authData.{}.id", provider.name);
    let linked = store
        .find(
            &collections::USERS,
            &field,
            &Value::String(identity.subject.clone()),
            1,
        )
        .await
        .map_err(storage)?;
    if let Some(doc) = linked.into_iter().next() {
        return refresh(store, doc, provider, identity).await;
    }
    if provider.link_by_email
        && identity.email_verified
        && let Some(email) = &identity.email
        && let Some(existing) = users::find_by_email(store, &normalize_email(email)).await?
        && !existing.user.auth_data.contains_key(&provider.name)
        && let Some(doc) = store
            .get(&collections::USERS, &existing.user.id)
            .await
            .map_err(storage)?
    {
        return refresh(store, doc, provider, identity).await;
    }
    create(store, provider, identity).await
}

/// Writes the latest claims into an existing account. A concurrent write of the same account
/// (two logins at once) wins; this login still proceeds with what it read.
async fn refresh(
    store: &dyn Collections,
    doc: refract_storage::Document,
    provider: &ProviderConfig,
    identity: &Identity,
) -> Result<User, ApiError> {
    let mut stored: StoredUser = serde_json::from_value(doc.body)
        .map_err(|e| internal(format!("corrupt user document: {e}")))?;
    let fresh = Value::Object(identity.auth_data.clone());
    let verified = verified_email(provider, identity).filter(|v| {
        stored.user.email.as_deref() == Some(v.email.as_str()) && stored.verified_email().is_none()
    });
    if stored.user.auth_data.get(&provider.name) != Some(&fresh) || verified.is_some() {
        stored.user.auth_data.insert(provider.name.clone(), fresh);
        if verified.is_some() {
            stored.email_verified = verified;
        }
        let body = serde_json::to_value(&stored).map_err(internal)?;
        match store
            .put(
                &collections::USERS,
                &doc.id,
                &body,
                Expect::Version(doc.version),
            )
            .await
        {
            Ok(_) | Err(StorageError::Conflict { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    Ok(stored.user)
}

/// The email `identity` carries if `provider` says it verified it: recorded on the account
/// with that email, it is what makes a listed address a superadmin.
fn verified_email(provider: &ProviderConfig, identity: &Identity) -> Option<VerifiedEmail> {
    let email = normalize_email(identity.email.as_deref()?);
    (identity.email_verified && check_email(&email).is_ok()).then(|| VerifiedEmail {
        email,
        provider: provider.name.clone(),
    })
}

/// The id of the account created for `sub` at `provider`: derived from both, so two first
/// logins racing on two gateways create one account (the second create conflicts).
fn account_id(provider: &str, subject: &str) -> String {
    fingerprint(&format!("oidc\n{provider}\n{subject}"))[..32].to_string()
}

fn claim(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
        .map(|v| v.chars().take(MAX_CLAIM_LEN).collect())
}

async fn create(
    store: &dyn Collections,
    provider: &ProviderConfig,
    identity: &Identity,
) -> Result<User, ApiError> {
    let id = account_id(&provider.name, &identity.subject);
    // Only a verified email becomes the account's: the email decides superadmin rights and
    // password-account links, so an unverified claim stays in authData only.
    let email = identity
        .email
        .as_deref()
        .map(normalize_email)
        .filter(|e| identity.email_verified && check_email(e).is_ok());
    let mut auth_data = Map::new();
    auth_data.insert(
        provider.name.clone(),
        Value::Object(identity.auth_data.clone()),
    );
    let mut user = User {
        id: id.clone(),
        email,
        first_name: claim(&identity.given_name)
            .or_else(|| claim(&identity.email))
            .unwrap_or_else(|| provider.name.clone()),
        last_name: claim(&identity.family_name),
        language: claim(&identity.locale),
        photo: claim(&identity.picture),
        status: UserStatus::Validated,
        auth_data,
        created_at: Utc::now(),
    };
    loop {
        let mut stored = StoredUser::new(user.clone(), None);
        stored.email_verified = user.email.clone().map(|email| VerifiedEmail {
            email,
            provider: provider.name.clone(),
        });
        let body = serde_json::to_value(&stored).map_err(internal)?;
        match store
            .put(&collections::USERS, &id, &body, Expect::Absent)
            .await
        {
            Ok(_) => {
                tracing::info!(user_id = %id, provider = %provider.name, "account created at first OIDC login");
                return Ok(user);
            }
            Err(StorageError::Conflict { .. }) => {
                if let Some(winner) = users::get(store, &id).await? {
                    return Ok(winner.user);
                }
                if user.email.is_none() {
                    return Err(internal("conflict creating an OIDC account without email"));
                }
                // The email belongs to another account that is not linked to this provider:
                // this account is created without it (no takeover by email).
                user.email = None;
            }
            Err(e) => return Err(storage(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refract_storage::MemoryStore;

    fn provider(link_by_email: bool) -> ProviderConfig {
        ProviderConfig {
            name: "corp".into(),
            issuer: "https://idp.example.org".into(),
            client_id: "refract".into(),
            client_secret: None,
            scopes: vec!["openid".into()],
            link_by_email,
            label: None,
        }
    }

    fn identity(sub: &str, email: &str, verified: bool) -> Identity {
        let mut auth_data = Map::new();
        auth_data.insert("id".into(), Value::String(sub.into()));
        Identity {
            subject: sub.into(),
            email: Some(email.into()),
            email_verified: verified,
            given_name: Some("Ada".into()),
            family_name: None,
            picture: None,
            locale: None,
            auth_data,
        }
    }

    async fn local_account(store: &MemoryStore, email: &str) -> String {
        let user = User {
            id: "local1".into(),
            email: Some(email.into()),
            first_name: "Local".into(),
            last_name: None,
            language: None,
            photo: None,
            status: UserStatus::Validated,
            auth_data: Map::new(),
            created_at: Utc::now(),
        };
        users::create(store, &StoredUser::new(user, Some("h".into())))
            .await
            .unwrap();
        "local1".into()
    }

    #[tokio::test]
    async fn first_login_creates_later_logins_find() {
        let store = MemoryStore::new();
        let first = find_or_create(&store, &provider(false), &identity("s1", "ada@x.org", true))
            .await
            .unwrap();
        assert_eq!(first.email.as_deref(), Some("ada@x.org"));
        let stored = users::get(&store, &first.id).await.unwrap().unwrap();
        assert_eq!(stored.verified_email(), Some("ada@x.org"));
        assert_eq!(first.first_name, "Ada");
        assert_eq!(first.auth_data["corp"]["id"], "s1");
        let again = find_or_create(&store, &provider(false), &identity("s1", "ada@x.org", true))
            .await
            .unwrap();
        assert_eq!(again.id, first.id);
        let other = find_or_create(&store, &provider(false), &identity("s2", "bob@x.org", true))
            .await
            .unwrap();
        assert_ne!(other.id, first.id);
    }

    #[tokio::test]
    async fn an_email_is_linked_only_when_verified_and_allowed() {
        let store = MemoryStore::new();
        let local = local_account(&store, "ada@x.org").await;
        // Not allowed by the provider's settings: a separate account without the email.
        let separate = find_or_create(&store, &provider(false), &identity("s1", "ada@x.org", true))
            .await
            .unwrap();
        assert_ne!(separate.id, local);
        assert_eq!(separate.email, None);
        // Allowed but unverified: no takeover either.
        let unverified =
            find_or_create(&store, &provider(true), &identity("s2", "ada@x.org", false))
                .await
                .unwrap();
        assert_ne!(unverified.id, local);
        assert_eq!(unverified.email, None);
        // Allowed and verified: the local account gains the provider identity.
        let linked = find_or_create(&store, &provider(true), &identity("s3", "ada@x.org", true))
            .await
            .unwrap();
        assert_eq!(linked.id, local);
        assert_eq!(linked.auth_data["corp"]["id"], "s3");
        let stored = users::get(&store, &local).await.unwrap().unwrap();
        assert_eq!(
            stored.verified_email(),
            Some("ada@x.org"),
            "the provider vouched for the local account's email"
        );
        let unverified = users::get(&store, &unverified.id).await.unwrap().unwrap();
        assert_eq!(unverified.email_verified, None);
    }
}
