//! User accounts in the document store's `users` collection (unique `email`), and the `User`
//! shape of `spec/http-api.md` §2.2. The password hash is stored beside the public fields and
//! never leaves this module's [`StoredUser`].

use chrono::{DateTime, Utc};
use refract_http::ApiError;
use refract_storage::{Collections, Expect, StorageError, collections};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{internal, storage};

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Account status (`ACCOUNT_VALIDATION_METHOD` is `auto` for now: new accounts are validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Pending,
    Validated,
    Deactivated,
}

/// A user as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Picture URL (the `picture` claim of an identity provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    pub status: UserStatus,
    /// Provider name (`prismeai`, `anonymous`, an OIDC provider) → that provider's identity.
    #[serde(default)]
    pub auth_data: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

/// A user as stored: the public fields and the argon2 hash of local accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredUser {
    #[serde(flatten)]
    pub user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// Lower-cased, trimmed email, so `Ann@X.org` and `ann@x.org` are one account.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible email: `local@domain.tld`, no spaces, at most [`MAX_EMAIL_LEN`] bytes. The real
/// check is the validation email, which comes later.
pub fn check_email(email: &str) -> Result<(), ApiError> {
    let ok = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "email",
            "must be an email address like name@example.org",
        ))
    }
}

fn decode(body: Value) -> Result<StoredUser, ApiError> {
    serde_json::from_value(body).map_err(|e| internal(format!("corrupt user document: {e}")))
}

/// Creates `user`; 409 `AlreadyUsedError {field: email}` when the email is taken.
pub async fn create(store: &dyn Collections, user: &StoredUser) -> Result<(), ApiError> {
    let body = serde_json::to_value(user).map_err(internal)?;
    match store
        .put(&collections::USERS, &user.user.id, &body, Expect::Absent)
        .await
    {
        Ok(_) => Ok(()),
        Err(StorageError::Conflict { .. }) => Err(ApiError::already_used(
            "email",
            "this email is already used by another account",
        )),
        Err(e) => Err(storage(e)),
    }
}

pub async fn get(store: &dyn Collections, id: &str) -> Result<Option<StoredUser>, ApiError> {
    match store.get(&collections::USERS, id).await.map_err(storage)? {
        Some(doc) => decode(doc.body).map(Some),
        None => Ok(None),
    }
}

/// The account with this (normalized) email.
pub async fn find_by_email(
    store: &dyn Collections,
    email: &str,
) -> Result<Option<StoredUser>, ApiError> {
    let docs = store
        .find(
            &collections::USERS,
            "email",
            &Value::String(email.to_string()),
            1,
        )
        .await
        .map_err(storage)?;
    match docs.into_iter().next() {
        Some(doc) => decode(doc.body).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email("  Ann@Example.ORG "), "ann@example.org");
        assert!(check_email("ann@example.org").is_ok());
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.org",
            "a b@x.org",
            "a@x",
            "a@@x.org",
            "a@x.org.",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_hash_never_reaches_the_public_shape() {
        let stored = StoredUser {
            user: User {
                id: "u1".into(),
                email: Some("a@x.org".into()),
                first_name: "Ann".into(),
                last_name: None,
                language: None,
                photo: None,
                status: UserStatus::Validated,
                auth_data: Map::new(),
                created_at: Utc::now(),
            },
            password_hash: Some("$argon2id$secret".into()),
        };
        let doc = serde_json::to_value(&stored).unwrap();
        assert_eq!(doc["passwordHash"], "$argon2id$secret");
        let back: StoredUser = serde_json::from_value(doc).unwrap();
        let public = serde_json::to_value(&back.user).unwrap();
        assert!(public.get("passwordHash").is_none());
        assert_eq!(public["firstName"], "Ann");
    }
}
