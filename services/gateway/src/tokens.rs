//! Personal access tokens (`spec/http-api.md` §2.2): `at:<uuid>`, shown once at creation,
//! stored as a SHA-256 in the `access_tokens` collection (unique `hash`), listed with a
//! `tokenHint` only. They act as their user and are refused on `login` routes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use refract_http::{ApiError, Json};
use refract_storage::{Collections, Expect, collections};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::GatewayState;
use crate::auth::{PAT_PREFIX, Principal, require_user};
use crate::error::{internal, storage};
use crate::secrets::fingerprint;

/// Longest lifetime of a token: a leaked forgotten token stops working within a year.
pub const MAX_TOKEN_LIFETIME_DAYS: i64 = 366;
/// Longest token name.
pub const MAX_NAME_LEN: usize = 200;
/// Most tokens listed per user.
pub const MAX_TOKENS_PER_USER: u32 = 1_000;

/// A token as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    pub id: String,
    pub name: String,
    pub user_id: String,
    /// SHA-256 of the token.
    pub hash: String,
    pub token_hint: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// `AccessToken` as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    pub id: String,
    pub name: String,
    /// Only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub token_hint: String,
    pub expires_at: DateTime<Utc>,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<StoredToken> for AccessToken {
    fn from(t: StoredToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            token: None,
            token_hint: t.token_hint,
            expires_at: t.expires_at,
            user_id: t.user_id,
            created_at: t.created_at,
        }
    }
}

fn decode(body: Value) -> Result<StoredToken, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| internal(format!("corrupt access token document: {e}")))
}

/// The unexpired token whose value is `token`.
pub async fn lookup(store: &dyn Collections, token: &str) -> Result<Option<StoredToken>, ApiError> {
    if token.len() > 128 {
        return Ok(None);
    }
    let hash = Value::String(fingerprint(token));
    let found = store
        .find(&collections::ACCESS_TOKENS, "hash", &hash, 1)
        .await
        .map_err(storage)?;
    match found.into_iter().next() {
        Some(doc) => Ok(Some(decode(doc.body)?).filter(|t| t.expires_at > Utc::now())),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    expires_at: String,
}

/// The caller of a token-changing route: a logged-in user (not a PAT, not anonymous) whose
/// cookie-authenticated write carries its CSRF token.
async fn login_principal(
    state: &GatewayState,
    method: &axum::http::Method,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let principal = require_user(state, headers).await?;
    principal.require_login()?;
    crate::auth::check_csrf(method, headers, &principal, &state.config().allowed_origins)?;
    Ok(principal)
}

/// `POST /v2/user/accessTokens`.
#[utoipa::path(post, path = "/v2/user/accessTokens", tag = "accounts", request_body = CreateToken,
    responses((status = 200, description = "The token, with its value shown this once.", body = AccessToken)))]
pub async fn create(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    method: axum::http::Method,
    Json(input): Json<CreateToken>,
) -> Result<Json<AccessToken>, ApiError> {
    let principal = login_principal(&state, &method, &headers).await?;
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::validation(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    let expires_at = DateTime::parse_from_rfc3339(&input.expires_at)
        .map_err(|_| {
            ApiError::validation(
                "expiresAt",
                "must be an ISO-8601 date, e.g. 2027-01-31T00:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    let now = Utc::now();
    if expires_at <= now {
        return Err(ApiError::validation("expiresAt", "must be in the future"));
    }
    if expires_at > now + chrono::Duration::days(MAX_TOKEN_LIFETIME_DAYS) {
        return Err(ApiError::validation(
            "expiresAt",
            "must be at most one year from now",
        ));
    }
    let token = format!("{PAT_PREFIX}{}", uuid::Uuid::new_v4());
    let stored = StoredToken {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name,
        user_id: principal.user_id.clone(),
        hash: fingerprint(&token),
        token_hint: token[token.len() - 4..].to_string(),
        expires_at,
        created_at: now,
    };
    let body = serde_json::to_value(&stored).map_err(internal)?;
    state
        .store()
        .put(
            &collections::ACCESS_TOKENS,
            &stored.id,
            &body,
            Expect::Absent,
        )
        .await
        .map_err(storage)?;
    tracing::info!(user_id = %stored.user_id, token_id = %stored.id, "access token created");
    Ok(Json(AccessToken {
        token: Some(token),
        ..stored.into()
    }))
}

/// `GET /v2/user/accessTokens`: the caller's tokens, without their values.
#[utoipa::path(get, path = "/v2/user/accessTokens", tag = "accounts",
    responses((status = 200, description = "The caller's tokens, without their values.", body = [AccessToken])))]
pub async fn list(
    State(state): State<GatewayState>,
    headers: HeaderMap,
) -> Result<Json<Vec<AccessToken>>, ApiError> {
    let principal = require_user(&state, &headers).await?;
    principal.require_login()?;
    let docs = state
        .store()
        .find(
            &collections::ACCESS_TOKENS,
            "userId",
            &Value::String(principal.user_id),
            MAX_TOKENS_PER_USER,
        )
        .await
        .map_err(storage)?;
    let mut tokens = docs
        .into_iter()
        .map(|d| decode(d.body).map(AccessToken::from))
        .collect::<Result<Vec<_>, _>>()?;
    tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    Ok(Json(tokens))
}

/// `DELETE /v2/user/accessTokens/{token}`: by id, or by the token value itself.
#[utoipa::path(delete, path = "/v2/user/accessTokens/{token}", tag = "accounts",
    params(("token" = String, Path, description = "The token's id, or its value.")),
    responses((status = 200, description = "The revoked token.", body = AccessToken)))]
pub async fn revoke(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    method: axum::http::Method,
    Path(token): Path<String>,
) -> Result<Json<AccessToken>, ApiError> {
    let principal = login_principal(&state, &method, &headers).await?;
    let store = state.store();
    let found = if token.starts_with(PAT_PREFIX) {
        let hash = Value::String(fingerprint(&token));
        store
            .find(&collections::ACCESS_TOKENS, "hash", &hash, 1)
            .await
            .map_err(storage)?
            .into_iter()
            .next()
    } else if token.is_empty() || token.len() > 128 {
        None
    } else {
        store
            .get(&collections::ACCESS_TOKENS, &token)
            .await
            .map_err(storage)?
    };
    let not_found = || ApiError::not_found("no such access token");
    let doc = found.ok_or_else(not_found)?;
    let stored = decode(doc.body)?;
    if stored.user_id != principal.user_id {
        return Err(not_found());
    }
    store
        .delete(&collections::ACCESS_TOKENS, &stored.id, Expect::Any)
        .await
        .map_err(storage)?;
    tracing::info!(user_id = %stored.user_id, token_id = %stored.id, "access token revoked");
    Ok(Json(stored.into()))
}
