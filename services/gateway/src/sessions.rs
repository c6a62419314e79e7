//! Login sessions, kept in the shared cache so every gateway instance (and, in the embedded
//! mode, a restart) sees them. The client holds an opaque random token; the cache key is the
//! token's SHA-256, so reading the cache does not yield working credentials. The record holds
//! the session id shown to clients and backends, the user, the CSRF token and the expiry.
//!
//! Tokens are not JWTs yet: RS256 session JWTs with a JWKS are a later step; the client
//! treats the token as opaque either way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use refract_core::SessionId;
use refract_http::ApiError;
use refract_storage::{Cache, CacheKey};
use serde::{Deserialize, Serialize};

use crate::error::{internal, storage};
use crate::secrets::{Secret, fingerprint, random_token};

/// What the cache holds for one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// The id shown to the client and sent to backends (`x-prismeai-session-id`).
    pub session_id: String,
    pub user_id: String,
    /// The token cookie-authenticated writes must echo (§1.8).
    pub csrf_token: Secret,
    pub expires: DateTime<Utc>,
    #[serde(default)]
    pub anonymous: bool,
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// The cache key of the session whose token is `token`.
fn key(token: &str) -> Result<CacheKey, ApiError> {
    // A SHA-256 in hex is 64 characters of [0-9a-f]: always a valid id.
    SessionId::new(fingerprint(token))
        .map(|id| CacheKey::session(&id))
        .map_err(internal)
}

/// Opens a session for `user_id` lasting `ttl`; returns the token (shown once) and the record.
pub async fn open(
    cache: &dyn Cache,
    user_id: &str,
    ttl: Duration,
    anonymous: bool,
) -> Result<(Secret, SessionRecord), ApiError> {
    let token = random_token().map_err(internal)?;
    let csrf = random_token().map_err(internal)?;
    let expires = Utc::now() + chrono::Duration::from_std(ttl).map_err(internal)?;
    let record = SessionRecord {
        session_id: uuid::Uuid::new_v4().simple().to_string(),
        user_id: user_id.to_string(),
        csrf_token: csrf,
        expires,
        anonymous,
    };
    let body = serde_json::to_vec(&record).map_err(internal)?;
    cache
        .set(&key(token.expose())?, &body, Some(ttl))
        .await
        .map_err(storage)?;
    cache
        .set(&user_key(&record.session_id)?, user_id.as_bytes(), Some(ttl))
        .await
        .map_err(storage)?;
    Ok((token, record))
}

/// Where the user of a session is found by the session's id (automation-dsl §5.5).
fn user_key(session_id: &str) -> Result<CacheKey, ApiError> {
    SessionId::new(session_id)
        .map(|id| CacheKey::session_user(&id))
        .map_err(internal)
}

/// The live session of `token`, if any. Tokens of the wrong shape are simply unknown.
pub async fn lookup(cache: &dyn Cache, token: &str) -> Result<Option<SessionRecord>, ApiError> {
    if token.is_empty() || token.len() > 512 {
        return Ok(None);
    }
    let Some(bytes) = cache.get(&key(token)?).await.map_err(storage)? else {
        return Ok(None);
    };
    let record: SessionRecord = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable session record; treating it as absent");
            return Ok(None);
        }
    };
    Ok((record.expires > Utc::now()).then_some(record))
}

/// Revokes the session of `token`; `false` when there was none.
pub async fn revoke(cache: &dyn Cache, token: &str) -> Result<bool, ApiError> {
    if let Some(record) = lookup(cache, token).await? {
        cache
            .delete(&user_key(&record.session_id)?)
            .await
            .map_err(storage)?;
    }
    cache.delete(&key(token)?).await.map_err(storage)
}
