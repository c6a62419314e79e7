//! Local accounts and sessions (`spec/http-api.md` §2.2 [core]; OIDC logins are [`crate::oidc`]'s): signup, password
//! login, anonymous login, logout and `/v2/me`.

use refract_core::platform::types;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use refract_http::headers::{CSRF_TOKEN, SESSION_ID};
use refract_http::{ApiError, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::GatewayState;
use crate::auth::{SESSION_COOKIE, authenticate, check_csrf, require_user};
use crate::edge::RequestMeta;
use crate::error::internal;
use crate::secrets::{Secret, hash_password, verify_against_dummy, verify_password};
use crate::sessions::{self, SessionRecord};
use crate::users::{self, StoredUser, User, UserStatus, check_email, normalize_email};

/// The one message of every failed password login, so it does not tell which emails exist.
const BAD_CREDENTIALS: &str = "wrong email or password";
/// Longest first/last name and language tag accepted.
const MAX_NAME_LEN: usize = 200;
const MAX_LANGUAGE_LEN: usize = 35;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupInput {
    email: String,
    #[schema(value_type = String)]
    password: Secret,
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    email: String,
    #[schema(value_type = String)]
    password: Secret,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnonymousInput {
    #[serde(default)]
    expires_after: Option<u64>,
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), ApiError> {
    let len = value.trim().chars().count();
    if (required && len == 0) || len > max || value.chars().any(char::is_control) {
        let min = if required { 1 } else { 0 };
        return Err(ApiError::validation(
            field,
            format!("must be {min} to {max} characters without control characters"),
        ));
    }
    Ok(())
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `POST /v2/signup`: creates a validated local account (`ACCOUNT_VALIDATION_METHOD=auto`);
/// opens no session.
#[utoipa::path(post, path = "/v2/signup", tag = "accounts", security(()), request_body = SignupInput,
    responses((status = 200, description = "The new account.", body = crate::users::User),
        (status = 409, description = "The email is taken.", body = refract_http::openapi::ErrorBody)))]
pub async fn signup(
    State(state): State<GatewayState>,
    meta: RequestMeta,
    Json(input): Json<SignupInput>,
) -> Result<Json<User>, ApiError> {
    let email = normalize_email(&input.email);
    check_email(&email)?;
    if !state.password_rule().is_match(input.password.expose()) {
        return Err(ApiError::validation(
            "password",
            format!("must match {}", state.config().password_rule),
        ));
    }
    check_text("firstName", &input.first_name, MAX_NAME_LEN, true)?;
    if let Some(last) = &input.last_name {
        check_text("lastName", last, MAX_NAME_LEN, false)?;
    }
    if let Some(lang) = &input.language {
        check_text("language", lang, MAX_LANGUAGE_LEN, true)?;
    }
    // Cheap check first, so a taken email does not cost an argon2 hash; the unique index
    // still decides races.
    if users::find_by_email(state.store(), &email).await?.is_some() {
        return Err(ApiError::already_used(
            "email",
            "this email is already used by another account",
        ));
    }
    let password = input.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(password.expose()))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut auth_data = Map::new();
    auth_data.insert("prismeai".into(), json!({ "id": id }));
    let user = User {
        id,
        email: Some(email),
        first_name: input.first_name.trim().to_string(),
        last_name: input
            .last_name
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        language: input.language.map(|s| s.trim().to_string()),
        photo: None,
        status: UserStatus::Validated,
        auth_data,
        created_at: Utc::now(),
    };
    users::create(state.store(), &StoredUser::new(user.clone(), Some(hash))).await?;
    tracing::info!(user_id = %user.id, "account created");
    let payload = json!({ "user": user, "ip": meta.ip() });
    state
        .emit(
            types::SIGNUP_SUCCEEDED,
            payload,
            &meta,
            Some(&user.id),
            None,
        )
        .await;
    Ok(Json(user))
}

/// The `Set-Cookie` value carrying a new session's token (§1.8 flags).
pub(crate) fn session_cookie(
    state: &GatewayState,
    token: &Secret,
    record: &SessionRecord,
) -> Result<HeaderValue, ApiError> {
    let config = state.config();
    let mut cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; Path=/; SameSite={}; Max-Age={}",
        token.expose(),
        config.cookie_same_site.as_str(),
        (record.expires - Utc::now()).num_seconds().max(0)
    );
    if config.cookie_secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(internal)
}

/// The body and headers of a response that opened a session.
fn session_response(
    state: &GatewayState,
    user: &User,
    token: &Secret,
    record: &SessionRecord,
) -> Result<Response, ApiError> {
    let mut body = serde_json::to_value(user).map_err(internal)?;
    body["token"] = Value::String(token.expose().to_string());
    body["sessionId"] = Value::String(record.session_id.clone());
    body["expires"] = Value::String(iso(record.expires));
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, session_cookie(state, token, record)?);
    insert(&mut headers, SESSION_ID, &record.session_id)?;
    insert(&mut headers, CSRF_TOKEN, record.csrf_token.expose())?;
    Ok((headers, axum::Json(body)).into_response())
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), ApiError> {
    headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from_str(value).map_err(internal)?,
    );
    Ok(())
}

/// `POST /v2/login`: password login. Unknown email, wrong password and deactivated account
/// all get the same 401.
#[utoipa::path(post, path = "/v2/login", tag = "accounts", security(()), request_body = LoginInput,
    responses((status = 200, description = "The session: the user with `token` (shown once), `sessionId` and `expires`; the session cookie is set, and the CSRF token it needs on writes is in a header.", body = crate::openapi::Session,
        headers(("x-prismeai-session-id" = String, description = "The session's id."),
            ("x-prismeai-csrf-token" = String, description = "The session's CSRF token: send it with the cookie on every write."),
            ("set-cookie" = String, description = "The session cookie (HttpOnly).")))))]
pub async fn login(
    State(state): State<GatewayState>,
    meta: RequestMeta,
    Json(input): Json<LoginInput>,
) -> Result<Response, ApiError> {
    let email = normalize_email(&input.email);
    let found = if check_email(&email).is_ok() {
        users::find_by_email(state.store(), &email).await?
    } else {
        None
    };
    let password = input.password;
    let stored_hash = found.as_ref().and_then(|u| u.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || match stored_hash {
        Some(hash) => verify_password(password.expose(), &hash),
        None => {
            verify_against_dummy(password.expose());
            false
        }
    })
    .await
    .map_err(internal)?;
    let user = match found {
        Some(stored) if matches && stored.user.status != UserStatus::Deactivated => stored.user,
        _ => {
            let payload = json!({ "email": email, "ip": meta.ip(), "provider": "prismeai" });
            state
                .emit(types::LOGIN_FAILED, payload, &meta, None, None)
                .await;
            return Err(ApiError::unauthenticated(BAD_CREDENTIALS));
        }
    };
    if user.status == UserStatus::Pending {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "ValidateEmailError",
            "validate your email address first",
        ));
    }
    open_session(&state, &meta, &user, "prismeai", state.config().session_ttl).await
}

/// Opens a session for `user` and reports `gateway.login.succeeded` (never with the token);
/// returns the token (shown once) and the session record.
pub(crate) async fn start_session(
    state: &GatewayState,
    meta: &RequestMeta,
    user: &User,
    provider: &str,
    ttl: Duration,
) -> Result<(Secret, SessionRecord), ApiError> {
    let anonymous = provider == "anonymous";
    let (token, record) = sessions::open(state.cache(), &user.id, ttl, anonymous).await?;
    let mut payload = json!({
        "id": user.id,
        "ip": meta.ip(),
        "provider": provider,
        "authData": user.auth_data,
        "session": { "id": record.session_id, "expiresIn": ttl.as_secs(), "expires": iso(record.expires) },
    });
    if let Some(email) = &user.email {
        payload["email"] = json!(email);
    }
    state
        .emit(
            types::LOGIN_SUCCEEDED,
            payload,
            meta,
            Some(&user.id),
            Some(&record.session_id),
        )
        .await;
    Ok((token, record))
}

/// Opens a session for `user` and answers with the user, the token and the session cookie.
async fn open_session(
    state: &GatewayState,
    meta: &RequestMeta,
    user: &User,
    provider: &str,
    ttl: Duration,
) -> Result<Response, ApiError> {
    let (token, record) = start_session(state, meta, user, provider, ttl).await?;
    session_response(state, user, &token, &record)
}

/// `POST /v2/login/anonymous`: a user without email or password, and a session lasting
/// `expiresAfter` seconds (capped at the session lifetime).
#[utoipa::path(post, path = "/v2/login/anonymous", tag = "accounts", security(()),
    request_body(content = Option<AnonymousInput>, description = "Optional: `{expiresAfter}` seconds."),
    responses((status = 200, description = "The session: the user with `token` (shown once), `sessionId` and `expires`; the session cookie is set, and the CSRF token it needs on writes is in a header.", body = crate::openapi::Session,
        headers(("x-prismeai-session-id" = String, description = "The session's id."),
            ("x-prismeai-csrf-token" = String, description = "The session's CSRF token: send it with the cookie on every write."),
            ("set-cookie" = String, description = "The session cookie (HttpOnly).")))))]
pub async fn login_anonymous(
    State(state): State<GatewayState>,
    meta: RequestMeta,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(state.config().body_limit),
        _ => ApiError::validation("body", rejection.body_text()),
    })?;
    let input: AnonymousInput = if body.iter().all(u8::is_ascii_whitespace) {
        AnonymousInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::validation("body", e.to_string()))?
    };
    let max = state.config().session_ttl;
    let ttl = match input.expires_after {
        Some(0) => {
            return Err(ApiError::validation(
                "expiresAfter",
                "must be at least 1 second",
            ));
        }
        Some(secs) => Duration::from_secs(secs).min(max),
        None => max,
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut auth_data = Map::new();
    auth_data.insert("anonymous".into(), json!({ "id": id }));
    let user = User {
        id,
        email: None,
        first_name: "Anonymous".into(),
        last_name: None,
        language: None,
        photo: None,
        status: UserStatus::Validated,
        auth_data,
        created_at: Utc::now(),
    };
    users::create(state.store(), &StoredUser::new(user.clone(), None)).await?;
    open_session(&state, &meta, &user, "anonymous", ttl).await
}

/// `POST /v2/logout`: revokes the calling session and clears the cookie. Idempotent: without a
/// live session it still answers 200. Personal access tokens get 403.
#[utoipa::path(post, path = "/v2/logout", tag = "accounts", security((), ("bearer" = []), ("sessionCookie" = [], "csrfToken" = [])),
    responses((status = 200, description = "`{success: true}`; the cookie is cleared.", body = crate::openapi::LoggedOut)))]
pub async fn logout(
    State(state): State<GatewayState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(principal) = authenticate(&state, &headers).await? {
        principal.refuse_access_token()?;
        check_csrf(
            &method,
            &headers,
            &principal,
            &state.config().allowed_origins,
        )?;
        if let Some(token) = principal.session_token() {
            sessions::revoke(state.cache(), token.expose()).await?;
            tracing::info!(user_id = %principal.user_id, session_id = %principal.session_id, "logged out");
        }
    }
    let mut cookie = format!(
        "{SESSION_COOKIE}=; HttpOnly; Path=/; SameSite={}; Max-Age=0",
        state.config().cookie_same_site.as_str()
    );
    if state.config().cookie_secure {
        cookie.push_str("; Secure");
    }
    let mut out = HeaderMap::new();
    out.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(internal)?,
    );
    Ok((out, axum::Json(json!({ "success": true }))).into_response())
}

/// `GET /v2/me`: the caller, its session id and expiry; the CSRF token for cookie sessions.
#[utoipa::path(get, path = "/v2/me", tag = "accounts",
    responses((status = 200, description = "The caller with `sessionId` and `expires`; for cookie sessions the CSRF token is in a header.", body = crate::openapi::Me,
        headers(("x-prismeai-session-id" = String, description = "The session's id."),
            ("x-prismeai-csrf-token" = String, description = "Cookie sessions only: the session's CSRF token, to send with the cookie on every write.")))))]
pub async fn me(
    State(state): State<GatewayState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = require_user(&state, &headers).await?;
    let mut body = serde_json::to_value(&principal.user).map_err(internal)?;
    body["sessionId"] = Value::String(principal.session_id.clone());
    body["expires"] = Value::String(iso(principal.expires));
    let mut out = HeaderMap::new();
    insert(&mut out, SESSION_ID, &principal.session_id)?;
    if let Some(csrf) = principal.cookie_csrf() {
        insert(&mut out, CSRF_TOKEN, csrf.expose())?;
    }
    Ok((out, axum::Json(body)).into_response())
}
