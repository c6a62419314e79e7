//! Login with external OpenID Connect providers (`spec/http-api.md` §2.3).
//!
//! 1. `GET /v2/login?provider=<name>&redirect=<url>` (`start`) keeps the login in flight
//!    (state, nonce, PKCE verifier, where to return) in the **shared cache** for ten minutes,
//!    keyed by the state's hash and bound to the browser by a pre-auth cookie, and sends the
//!    browser to the provider. Any gateway instance can finish the login.
//! 2. `GET /v2/login/callback` (`callback`) consumes that entry (single use), exchanges the
//!    code, checks the ID token (`provider`), finds or creates the account (`link`),
//!    opens a session like a password login and sends the browser back with the session
//!    cookie. Failures go back to `redirect?error=<code>&error_description=<text>`.
//!
//! Logout is the ordinary `POST /v2/logout`: it revokes the Refract session (the provider's
//! own session is the provider's).

pub(crate) mod link;
pub(crate) mod provider;

use refract_core::platform::types;
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openidconnect::url::Url;
use refract_http::ApiError;
use refract_storage::CacheKey;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::GatewayState;
use crate::accounts::{session_cookie, start_session};
use crate::auth::cookie_value;
use crate::edge::RequestMeta;
use crate::error::{internal, storage};
use crate::secrets::{Secret, fingerprint, random_token};
use crate::users::UserStatus;

pub(crate) use provider::Providers;

/// How long a login may stay at the provider (entry TTL and pre-auth cookie `Max-Age`).
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

/// The pre-auth cookie binding a login in flight to the browser that started it, so a login
/// started by someone else (login CSRF) cannot be finished in this browser.
pub(crate) const PREAUTH_COOKIE: &str = refract_http::cookies::OIDC_PREAUTH;

/// Scopes asked when a provider's settings name none.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// Names that are not external providers (`authData` keys of local and anonymous accounts).
const RESERVED_NAMES: [&str; 3] = ["prismeai", "anonymous", "apiKey"];

/// One external identity provider (`[auth_providers.<name>]` of the CLI config).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// `[a-z0-9_-]{1,32}`: the `provider` query value and the `authData` key.
    pub name: String,
    /// The issuer URL; `<issuer>/.well-known/openid-configuration` is its discovery document.
    pub issuer: String,
    /// The client id the provider registered for this platform.
    pub client_id: String,
    /// `None` for a public client (PKCE alone).
    pub client_secret: Option<Secret>,
    /// Asked scopes; `openid` is always asked.
    pub scopes: Vec<String>,
    /// Whether a first login may join the local account with the same email, when the
    /// provider says the email is verified.
    pub link_by_email: bool,
    /// Text of the login button (`/v2/login/providers`).
    pub label: Option<String>,
}

/// Whether `url` is an `http(s)://host[:port]` base without path, query or fragment.
pub(crate) fn is_http_base(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.path() == "/"
            && !url.trim_end_matches('/').ends_with(':')
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
    })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(openidconnect::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks the providers' settings; the error names the provider and the setting. Plain
/// `http://` issuers are accepted on loopback only (local providers in tests and
/// development): anywhere else the code exchange would carry the client secret in clear.
pub(crate) fn validate_providers(providers: &[ProviderConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for p in providers {
        let name_ok = !p.name.is_empty()
            && p.name.len() <= 32
            && p.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && !RESERVED_NAMES.contains(&p.name.as_str());
        if !name_ok {
            return Err(format!(
                "provider name {:?}: use [a-z0-9_-]{{1,32}}, not prismeai or anonymous",
                p.name
            ));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(format!("provider {} is configured twice", p.name));
        }
        let issuer = Url::parse(&p.issuer)
            .map_err(|e| format!("provider {}: issuer {:?}: {e}", p.name, p.issuer))?;
        let secure =
            issuer.scheme() == "https" || (issuer.scheme() == "http" && is_loopback(&issuer));
        if !secure || issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(format!(
                "provider {}: issuer {:?} must be an https URL (http only on loopback) without query",
                p.name, p.issuer
            ));
        }
        if p.client_id.trim().is_empty() {
            return Err(format!("provider {}: client_id is empty", p.name));
        }
        if !p.scopes.iter().any(|s| s == "openid") {
            return Err(format!("provider {}: scopes must include openid", p.name));
        }
    }
    Ok(())
}

/// A login in flight, as the shared cache holds it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pending {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    /// Where the browser goes back, with the session or an error.
    redirect: String,
    /// The `redirect_uri` given to the provider (the exchange repeats it).
    callback: String,
    /// SHA-256 of the pre-auth cookie's value.
    browser: String,
}

fn state_key(state: &str) -> CacheKey {
    CacheKey::oidc_state(&fingerprint(state))
}

fn unknown_provider(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "UnknownAuthProvider", message)
}

fn invalid_redirect(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidRedirect", message)
}

/// The gateway's public base URL (`public_url`, else `Host`), without trailing slash.
fn public_base(state: &GatewayState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = &state.config().public_url {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| {
            ApiError::validation("host", "a Host header is needed to build the callback URL")
        })?;
    let scheme = if state.config().cookie_secure {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{host}"))
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where to send the browser after the login: `redirect` when it is a path of the gateway or
/// an absolute URL on the gateway's origin or an allowed one (§1.8), else the console.
fn return_to(state: &GatewayState, base: &str, redirect: Option<&str>) -> Result<String, ApiError> {
    let Some(redirect) = redirect.filter(|r| !r.is_empty()) else {
        return Ok(format!("{base}/"));
    };
    if redirect.starts_with('/') && !redirect.starts_with("//") && !redirect.starts_with("/\\") {
        return Ok(format!("{base}{redirect}"));
    }
    let url = Url::parse(redirect)
        .map_err(|_| invalid_redirect("redirect must be an absolute URL or a path"))?;
    let origin = origin_of(&url);
    let own = Url::parse(base).map(|b| origin_of(&b)).unwrap_or_default();
    let allowed = matches!(url.scheme(), "http" | "https")
        && (origin.eq_ignore_ascii_case(&own)
            || state
                .config()
                .allowed_origins
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin)));
    if allowed {
        Ok(url.to_string())
    } else {
        Err(invalid_redirect(format!(
            "{origin} is not an allowed origin"
        )))
    }
}

fn preauth_cookie(
    state: &GatewayState,
    value: &str,
    max_age: Duration,
) -> Result<HeaderValue, ApiError> {
    // Lax: the provider's redirect back is a top-level GET navigation, which Lax cookies join.
    let mut cookie = format!(
        "{PREAUTH_COOKIE}={value}; HttpOnly; Path=/v2/login; SameSite=Lax; Max-Age={}",
        max_age.as_secs()
    );
    if state.config().cookie_secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(internal)
}

fn query(
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::validation("query", e.body_text()))
}

/// `GET /v2/login?provider=<name>&redirect=<url>`: 302 to the provider's authorization
/// endpoint.
#[utoipa::path(get, path = "/v2/login", tag = "accounts", security(()),
    params(("provider" = String, Query, description = "A configured OpenID provider's name."),
        ("redirect" = Option<String>, Query, description = "Where to go after login: a path, or a URL of an allowed origin.")),
    responses((status = 302, description = "To the provider's authorization endpoint.")))]
pub(crate) async fn start(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let name = q
        .get("provider")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| unknown_provider("the provider query parameter is required"))?;
    if state.oidc().config(name).is_none() {
        return Err(unknown_provider(format!(
            "no identity provider is named {name:?}"
        )));
    }
    let base = public_base(&state, &headers)?;
    let redirect = return_to(&state, &base, q.get("redirect").map(String::as_str))?;
    let callback = format!("{base}/v2/login/callback");
    let auth = state.oidc().authorize(name, &callback).await.map_err(|e| {
        tracing::warn!(provider = %name, error = %e, "cannot start an OIDC login");
        ApiError::unavailable(e)
    })?;
    let browser = random_token().map_err(internal)?;
    let pending = Pending {
        provider: name.clone(),
        nonce: auth.nonce,
        pkce_verifier: auth.pkce_verifier,
        redirect,
        callback,
        browser: fingerprint(browser.expose()),
    };
    let body = serde_json::to_vec(&pending).map_err(internal)?;
    state
        .cache()
        .set(&state_key(&auth.state), &body, Some(LOGIN_TIMEOUT))
        .await
        .map_err(storage)?;
    let mut out = HeaderMap::new();
    out.insert(
        header::LOCATION,
        HeaderValue::from_str(&auth.url).map_err(internal)?,
    );
    out.insert(
        header::SET_COOKIE,
        preauth_cookie(&state, browser.expose(), LOGIN_TIMEOUT)?,
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::FOUND, out).into_response())
}

/// A failed callback: reported as `gateway.login.failed`, answered with a redirect carrying
/// the error when the login's `redirect` is known, else with JSON.
async fn fail(
    state: &GatewayState,
    meta: &RequestMeta,
    provider: Option<&str>,
    redirect: Option<&str>,
    code: &'static str,
    description: &str,
) -> Result<Response, ApiError> {
    let payload =
        json!({ "ip": meta.ip(), "provider": provider, "error": code, "message": description });
    state
        .emit(types::LOGIN_FAILED, payload, meta, None, None)
        .await;
    let Some(target) = redirect.and_then(|r| Url::parse(r).ok()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            format!("{code}: {description}"),
        ));
    };
    let mut target = target;
    target
        .query_pairs_mut()
        .append_pair("error", code)
        .append_pair("error_description", description);
    let mut out = HeaderMap::new();
    out.insert(
        header::LOCATION,
        HeaderValue::from_str(target.as_str()).map_err(internal)?,
    );
    out.insert(
        header::SET_COOKIE,
        preauth_cookie(state, "", Duration::ZERO)?,
    );
    Ok((StatusCode::FOUND, out).into_response())
}

/// `GET /v2/login/callback?code=…&state=…` (or `error=…`): finishes a login started by
/// [`start`] on any gateway instance.
#[utoipa::path(get, path = "/v2/login/callback", tag = "accounts", security(()),
    params(("code" = Option<String>, Query, description = "The provider's authorization code."),
        ("state" = Option<String>, Query, description = "The login's state."),
        ("error" = Option<String>, Query, description = "The provider's error, instead of a code.")),
    responses((status = 302, description = "Back to the login's redirect, with the session cookie set.")))]
pub(crate) async fn callback(
    State(state): State<GatewayState>,
    meta: RequestMeta,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let Some(login_state) = q.get("state").filter(|s| !s.is_empty() && s.len() <= 512) else {
        return fail(
            &state,
            &meta,
            None,
            None,
            "invalid_state",
            "the state parameter is missing",
        )
        .await;
    };
    let key = state_key(login_state);
    let pending: Option<Pending> = match state.cache().get(&key).await.map_err(storage)? {
        Some(bytes) => serde_json::from_slice(&bytes).ok(),
        None => None,
    };
    let Some(pending) = pending else {
        return fail(
            &state,
            &meta,
            None,
            None,
            "invalid_state",
            "unknown or expired login",
        )
        .await;
    };
    let (provider, redirect) = (
        Some(pending.provider.as_str()),
        Some(pending.redirect.as_str()),
    );
    let same_browser = cookie_value(&headers, PREAUTH_COOKIE).is_some_and(|c| {
        crate::secrets::constant_time_eq(fingerprint(&c).as_bytes(), pending.browser.as_bytes())
    });
    if !same_browser {
        return fail(
            &state,
            &meta,
            provider,
            redirect,
            "invalid_state",
            "this login was started in another browser",
        )
        .await;
    }
    // Single use: of two callbacks racing with the same state, only the one that deletes the
    // entry goes on.
    if !state.cache().delete(&key).await.map_err(storage)? {
        return fail(
            &state,
            &meta,
            provider,
            redirect,
            "invalid_state",
            "this login was already used",
        )
        .await;
    }
    if let Some(error) = q.get("error") {
        let code = if error == "access_denied" {
            "access_denied"
        } else {
            "idp_error"
        };
        let text = q
            .get("error_description")
            .map(String::as_str)
            .unwrap_or(error);
        let text: String = text.chars().take(300).collect();
        return fail(&state, &meta, provider, redirect, code, &text).await;
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return fail(
            &state,
            &meta,
            provider,
            redirect,
            "idp_error",
            "the provider sent no code",
        )
        .await;
    };
    let identity = match state
        .oidc()
        .finish(
            &pending.provider,
            code.clone(),
            pending.pkce_verifier.clone(),
            &pending.nonce,
            &pending.callback,
        )
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(provider = %pending.provider, error = %e, "OIDC login refused");
            return fail(
                &state,
                &meta,
                provider,
                redirect,
                "idp_error",
                &e.to_string(),
            )
            .await;
        }
    };
    let Some(config) = state.oidc().config(&pending.provider) else {
        return fail(
            &state,
            &meta,
            provider,
            redirect,
            "idp_error",
            "the provider is no longer configured",
        )
        .await;
    };
    let user = link::find_or_create(state.store(), config, &identity).await?;
    if user.status == UserStatus::Deactivated {
        return fail(
            &state,
            &meta,
            provider,
            redirect,
            "account_disabled",
            "this account is deactivated",
        )
        .await;
    }
    let (token, record) = start_session(
        &state,
        &meta,
        &user,
        &pending.provider,
        state.config().session_ttl,
    )
    .await?;
    let mut out = HeaderMap::new();
    out.insert(
        header::LOCATION,
        HeaderValue::from_str(&pending.redirect).map_err(internal)?,
    );
    out.append(header::SET_COOKIE, session_cookie(&state, &token, &record)?);
    out.append(
        header::SET_COOKIE,
        preauth_cookie(&state, "", Duration::ZERO)?,
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::FOUND, out).into_response())
}

/// `GET /v2/login/providers`: the configured providers, for login pages.
#[utoipa::path(get, path = "/v2/login/providers", tag = "accounts", security(()),
    responses((status = 200, description = "The configured providers: `[{name, type, label}]`.", body = [crate::openapi::LoginProvider])))]
pub(crate) async fn list(State(state): State<GatewayState>) -> axum::Json<serde_json::Value> {
    let providers: Vec<_> = state
        .config()
        .oidc_providers
        .iter()
        .map(|p| json!({ "name": p.name, "type": "oidc", "label": p.label.as_deref().unwrap_or(&p.name) }))
        .collect();
    axum::Json(json!(providers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, issuer: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            issuer: issuer.into(),
            client_id: "refract".into(),
            client_secret: None,
            scopes: vec!["openid".into()],
            link_by_email: false,
            label: None,
        }
    }

    #[test]
    fn provider_settings_are_checked() {
        assert!(
            validate_providers(&[provider("corp", "https://idp.example.org/realms/x")]).is_ok()
        );
        assert!(validate_providers(&[provider("dev", "http://127.0.0.1:9000")]).is_ok());
        assert!(validate_providers(&[provider("dev", "http://localhost:9000")]).is_ok());
        let http = validate_providers(&[provider("corp", "http://idp.example.org")]).unwrap_err();
        assert!(http.contains("https"), "{http}");
        assert!(validate_providers(&[provider("prismeai", "https://idp.example.org")]).is_err());
        assert!(validate_providers(&[provider("Corp", "https://idp.example.org")]).is_err());
        let twice = [
            provider("a", "https://a.example"),
            provider("a", "https://b.example"),
        ];
        assert!(validate_providers(&twice).is_err());
        let mut no_openid = provider("a", "https://a.example");
        no_openid.scopes = vec!["email".into()];
        assert!(validate_providers(&[no_openid]).is_err());
    }

    #[test]
    fn public_bases_are_plain_origins() {
        assert!(is_http_base("https://api.example.org"));
        assert!(is_http_base("http://127.0.0.1:3000/"));
        assert!(!is_http_base("https://api.example.org/v2"));
        assert!(!is_http_base("ftp://api.example.org"));
        assert!(!is_http_base("https://api.example.org?x=1"));
    }
}
