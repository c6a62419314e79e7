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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// Signed up, not yet validated (email or manual validation).
    Pending,
    /// May log in.
    Validated,
    /// Refused every login and every credential it holds.
    Deactivated,
}

/// A user as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The account's id (a UUID), stable across email changes.
    pub id: String,
    /// The login email; `None` for anonymous accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Given name, shown in the UI.
    pub first_name: String,
    /// Family name, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Preferred UI language (`fr`, `en`, …).
    pub language: Option<String>,
    /// Picture URL (the `picture` claim of an identity provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// Whether the account may log in.
    pub status: UserStatus,
    /// Provider name (`prismeai`, `anonymous`, an OIDC provider) → that provider's identity.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub auth_data: Map<String, Value>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A user as stored: the public fields, the argon2 hash of local accounts, and what makes an
/// account a platform superadmin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredUser {
    /// What clients see of the account.
    #[serde(flatten)]
    pub user: User,
    /// The argon2 hash of a local account's password; `None` for external and anonymous ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Who vouched for the account's email. Only an identity provider that said
    /// `email_verified` does; a self-signup (validated automatically) never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<VerifiedEmail>,
    /// A platform role an operator granted (`refract admin grant EMAIL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_role: Option<PlatformRole>,
}

/// An email an identity provider verified, as it was then: a later change of the account's
/// email is not verified by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedEmail {
    /// The email as the provider verified it.
    pub email: String,
    /// The provider's name (`[auth_providers.<name>]`).
    pub provider: String,
}

/// Roles over the whole platform, granted by an operator against the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformRole {
    /// Every right in every workspace (`x-prismeai-role: superadmin`).
    Superadmin,
}

impl StoredUser {
    /// A new account with no verified email and no platform role.
    pub fn new(user: User, password_hash: Option<String>) -> Self {
        Self {
            user,
            password_hash,
            email_verified: None,
            platform_role: None,
        }
    }

    /// The account's email, if an identity provider verified it (the same address).
    pub fn verified_email(&self) -> Option<&str> {
        let email = self.user.email.as_deref()?;
        self.email_verified
            .as_ref()
            .filter(|v| v.email == email)
            .map(|_| email)
    }

    /// Whether the account is a platform superadmin: granted by an operator, or its
    /// provider-verified email is in `super_admin_emails`. The one rule: a self-signup with a
    /// listed address is not, whoever signed up first.
    pub fn is_superadmin(&self, super_admin_emails: &[String]) -> bool {
        if self.user.status == UserStatus::Deactivated {
            return false;
        }
        self.platform_role == Some(PlatformRole::Superadmin)
            || self.verified_email().is_some_and(|email| {
                super_admin_emails
                    .iter()
                    .any(|admin| normalize_email(admin) == email)
            })
    }
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

/// The account `id`, if it exists.
pub async fn get(store: &dyn Collections, id: &str) -> Result<Option<StoredUser>, ApiError> {
    match store.get(&collections::USERS, id).await.map_err(storage)? {
        Some(doc) => decode(doc.body).map(Some),
        None => Ok(None),
    }
}

/// How many times [`update_by_email`] retries a write that raced another one.
const UPDATE_ATTEMPTS: usize = 5;

/// Changes the account with this email with `change`, written only if nobody wrote it since it
/// was read (retried a few times); `None` when there is no such account.
pub async fn update_by_email(
    store: &dyn Collections,
    email: &str,
    change: impl Fn(&mut StoredUser),
) -> Result<Option<StoredUser>, ApiError> {
    let email = normalize_email(email);
    for _ in 0..UPDATE_ATTEMPTS {
        let docs = store
            .find(
                &collections::USERS,
                "email",
                &Value::String(email.clone()),
                1,
            )
            .await
            .map_err(storage)?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(None);
        };
        let mut stored = decode(doc.body)?;
        change(&mut stored);
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
            Ok(_) => return Ok(Some(stored)),
            Err(StorageError::Conflict { .. }) => continue,
            Err(e) => return Err(storage(e)),
        }
    }
    Err(internal(format!(
        "the account {email} kept changing during {UPDATE_ATTEMPTS} attempts"
    )))
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
        let stored = StoredUser::new(
            User {
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
            Some("$argon2id$secret".into()),
        );
        let doc = serde_json::to_value(&stored).unwrap();
        assert_eq!(doc["passwordHash"], "$argon2id$secret");
        let back: StoredUser = serde_json::from_value(doc).unwrap();
        let public = serde_json::to_value(&back.user).unwrap();
        assert!(public.get("passwordHash").is_none());
        assert_eq!(public["firstName"], "Ann");
    }

    #[test]
    fn only_a_provider_verified_listed_email_or_a_grant_makes_a_superadmin() {
        let listed = vec!["Root@Example.org".to_string()];
        let mut user = StoredUser::new(
            User {
                id: "u1".into(),
                email: Some("root@example.org".into()),
                first_name: "Root".into(),
                last_name: None,
                language: None,
                photo: None,
                status: UserStatus::Validated,
                auth_data: Map::new(),
                created_at: Utc::now(),
            },
            None,
        );
        assert!(!user.is_superadmin(&listed), "a self-signup is not");
        user.email_verified = Some(VerifiedEmail {
            email: "other@example.org".into(),
            provider: "corp".into(),
        });
        assert!(!user.is_superadmin(&listed), "another address was verified");
        user.email_verified = Some(VerifiedEmail {
            email: "root@example.org".into(),
            provider: "corp".into(),
        });
        assert!(user.is_superadmin(&listed));
        assert!(!user.is_superadmin(&[]));
        user.email_verified = None;
        user.platform_role = Some(PlatformRole::Superadmin);
        assert!(user.is_superadmin(&[]), "granted by an operator");
        user.user.status = UserStatus::Deactivated;
        assert!(!user.is_superadmin(&[]));
    }
}
