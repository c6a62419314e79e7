//! Who is calling: credentials read from a request (bearer token, `access-token` cookie,
//! legacy `x-prismeai-token`), resolved to a [`Principal`] through the session cache or the
//! personal access tokens and the account they belong to, and the CSRF rule for cookie sessions (`spec/http-api.md` §1.8,
//! §2.1).

use axum::http::{HeaderMap, HeaderValue, Method, header};
use chrono::{DateTime, Utc};
use refract_http::ApiError;
use refract_http::headers::CSRF_TOKEN;

use crate::GatewayState;
use crate::error::csrf;
use crate::secrets::{Secret, constant_time_eq};
use crate::users::{self, User, UserStatus};
use crate::{sessions, tokens};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = refract_http::cookies::SESSION;
/// The deprecated header some old clients send their token in.
pub const LEGACY_TOKEN_HEADER: &str = "x-prismeai-token";
/// Prefix of personal access tokens.
pub const PAT_PREFIX: &str = "at:";

/// How the credential arrived: only cookies are ambient, so only they need CSRF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
    LegacyHeader,
}

/// What authenticated the request.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A login session.
    Session {
        token: Secret,
        csrf: Secret,
        anonymous: bool,
    },
    /// A personal access token; refused on `login` routes.
    AccessToken,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    /// Sent to backends as `x-prismeai-session-id` (`at_<tokenId>` for access tokens: ids keep
    /// to `[A-Za-z0-9_-]`, so the spec's `at:` becomes `at_`).
    pub session_id: String,
    pub expires: DateTime<Utc>,
    pub via: Via,
    pub credential: Credential,
    /// The account, as stored when the request came in (never deactivated).
    pub user: User,
    /// Whether the account is a platform superadmin ([`crate::users::StoredUser::is_superadmin`]).
    pub superadmin: bool,
}

impl Principal {
    pub fn is_access_token(&self) -> bool {
        matches!(self.credential, Credential::AccessToken)
    }

    /// The session token, for logout.
    pub fn session_token(&self) -> Option<&Secret> {
        match &self.credential {
            Credential::Session { token, .. } => Some(token),
            Credential::AccessToken => None,
        }
    }

    /// The CSRF token of a cookie session (sent back in `x-prismeai-csrf-token`).
    pub fn cookie_csrf(&self) -> Option<&Secret> {
        match (&self.credential, self.via) {
            (Credential::Session { csrf, .. }, Via::Cookie) => Some(csrf),
            _ => None,
        }
    }

    /// 403 for personal access tokens (they may not end or mint sessions).
    pub fn refuse_access_token(&self) -> Result<(), ApiError> {
        if self.is_access_token() {
            return Err(ApiError::forbidden(
                "personal access tokens cannot manage credentials; log in with a password",
            ));
        }
        Ok(())
    }

    /// `login` auth (credential and account routes): 403 for personal access tokens and
    /// anonymous sessions.
    pub fn require_login(&self) -> Result<(), ApiError> {
        self.refuse_access_token()?;
        if matches!(
            self.credential,
            Credential::Session {
                anonymous: true,
                ..
            }
        ) {
            return Err(ApiError::forbidden(
                "anonymous sessions have no credentials to manage; sign up first",
            ));
        }
        Ok(())
    }
}

/// The raw token a request carries, and how. `Authorization: Bearer` wins over the legacy
/// header, which wins over the cookie.
pub fn credential(headers: &HeaderMap) -> Option<(String, Via)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            return Some((token.trim().to_string(), Via::Bearer));
        }
    }
    if let Some(token) = headers
        .get(LEGACY_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        && !token.trim().is_empty()
    {
        return Some((token.trim().to_string(), Via::LegacyHeader));
    }
    session_cookie(headers).map(|t| (t, Via::Cookie))
}

/// The `access-token` cookie's value.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of cookie `name`, if the request has it and it is not empty.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, value)| *n == name && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// The `Cookie` header without the session cookie (other cookies may matter to webhooks).
pub fn strip_session_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(name, _)| name != SESSION_COOKIE)
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
}

/// What a credential resolved to, before the account is read.
struct Resolved {
    user_id: String,
    session_id: String,
    expires: DateTime<Utc>,
    credential: Credential,
}

/// The principal behind the request's credential; `None` when there is no credential, when it
/// is unknown, expired or revoked, or when its account is deactivated or gone (callers decide
/// whether that is a 401). Every route, the gateway's own and the proxied ones, authenticates
/// here, and the account is read from the document store on every request, so a
/// deactivation takes effect on the next request of every session and token.
pub async fn authenticate(
    state: &GatewayState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some((token, via)) = credential(headers) else {
        return Ok(None);
    };
    let resolved = if token.starts_with(PAT_PREFIX) {
        // A PAT in a cookie would be ambient yet CSRF-free: accept PATs only as headers.
        if via == Via::Cookie {
            return Ok(None);
        }
        tokens::lookup(state.store(), &token)
            .await?
            .map(|t| Resolved {
                user_id: t.user_id,
                session_id: format!("at_{}", t.id),
                expires: t.expires_at,
                credential: Credential::AccessToken,
            })
    } else {
        sessions::lookup(state.cache(), &token)
            .await?
            .map(|record| Resolved {
                user_id: record.user_id,
                session_id: record.session_id,
                expires: record.expires,
                credential: Credential::Session {
                    token: Secret::new(token),
                    csrf: record.csrf_token,
                    anonymous: record.anonymous,
                },
            })
    };
    let Some(resolved) = resolved else {
        return Ok(None);
    };
    let Some(account) = users::get(state.store(), &resolved.user_id).await? else {
        return Ok(None);
    };
    if account.user.status == UserStatus::Deactivated {
        tracing::info!(user_id = %resolved.user_id, "credential of a deactivated account refused");
        return Ok(None);
    }
    Ok(Some(Principal {
        superadmin: account.is_superadmin(&state.config().super_admin_emails),
        user: account.user,
        user_id: resolved.user_id,
        session_id: resolved.session_id,
        expires: resolved.expires,
        via,
        credential: resolved.credential,
    }))
}

/// `authenticate`, with 401 `AuthenticationError` when nobody is authenticated.
pub async fn require_user(
    state: &GatewayState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    authenticate(state, headers).await?.ok_or_else(|| {
        ApiError::unauthenticated("missing, invalid, expired or revoked credentials")
    })
}

/// §1.8: a cookie-authenticated request with a method that can change state must echo its
/// session's CSRF token in `x-prismeai-csrf-token`; a cookie-authenticated WebSocket upgrade
/// (§8: a GET, yet a channel acting as the user, which browsers open cross-site with the
/// cookie) must come from an allow-listed `Origin`. Every other credential is exempt.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    principal: &Principal,
    allowed_origins: &[String],
) -> Result<(), ApiError> {
    let Some(expected) = principal.cookie_csrf() else {
        return Ok(());
    };
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade && !origin_allowed(headers, allowed_origins) {
        return Err(csrf());
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_TOKEN)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(sent, expected.expose().as_bytes())
        && origin_allowed(headers, allowed_origins)
    {
        Ok(())
    } else {
        Err(csrf())
    }
}

/// The identity a proxied request carries, decided once for the proxy and the rate limiter:
/// `principal` as authenticated, kept, dropped or refused by the rules of ambient credentials
/// (§1.8). Credentials sent as headers are never ambient and always kept.
///
/// On a route that needs a user, a cookie request that fails [`check_csrf`] is refused. On a
/// `public` route (webhooks) the cookie is only a bonus: it carries the user only on a
/// same-origin request ([`same_origin`]) that also passes [`check_csrf`]; otherwise the call
/// goes on anonymously, so a foreign page can trigger a public webhook but never as the user
/// whose browser it runs in.
pub fn admit(
    state: &GatewayState,
    method: &Method,
    headers: &HeaderMap,
    principal: Principal,
    public: bool,
) -> Result<Option<Principal>, ApiError> {
    let allowed = &state.config().allowed_origins;
    if let Err(e) = check_csrf(method, headers, &principal, allowed) {
        return if public { Ok(None) } else { Err(e) };
    }
    if public && principal.via == Via::Cookie && !same_origin(headers, allowed) {
        return Ok(None);
    }
    Ok(Some(principal))
}

/// Whether a browser says the request comes from the platform's own pages: `Sec-Fetch-Site:
/// same-origin`, or, from a browser that does not send `Sec-Fetch-Site`, an allow-listed
/// `Origin` ([`origin_allowed`]). A request that says neither (a top-level navigation from a
/// link, a form post from another site in an old browser) is not same-origin.
pub fn same_origin(headers: &HeaderMap, allowed: &[String]) -> bool {
    match headers.get(SEC_FETCH_SITE) {
        Some(site) => site.as_bytes().eq_ignore_ascii_case(b"same-origin"),
        None => headers.contains_key(header::ORIGIN) && origin_allowed(headers, allowed),
    }
}

/// The Fetch Metadata header browsers set on every request (`same-origin`, `same-site`,
/// `cross-site`, `none` for a typed URL or a bookmark).
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Whether the request's `Origin` may use the cookie: absent (not a cross-site browser
/// request), the gateway's own origin (same host), or one of `allowed`.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.split_once("://"), host) {
        (Some((_, authority)), Some(host)) => authority.eq_ignore_ascii_case(host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn credentials_are_read_in_order() {
        let h = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "access-token=zzz"),
        ]);
        assert_eq!(credential(&h), Some(("abc".into(), Via::Bearer)));
        let h = headers(&[
            ("x-prismeai-token", "leg"),
            ("cookie", "a=1; access-token=zzz"),
        ]);
        assert_eq!(credential(&h), Some(("leg".into(), Via::LegacyHeader)));
        let h = headers(&[
            ("authorization", "Basic xyz"),
            ("cookie", "a=1; access-token=zzz"),
        ]);
        assert_eq!(credential(&h), Some(("zzz".into(), Via::Cookie)));
        assert_eq!(credential(&HeaderMap::new()), None);
    }

    #[test]
    fn origins_are_same_host_or_allow_listed() {
        let allowed = vec!["https://console.example.org/".to_string()];
        assert!(origin_allowed(&headers(&[]), &allowed));
        let h = headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(origin_allowed(&h, &allowed));
        let h = headers(&[
            ("origin", "https://console.example.org"),
            ("host", "api.example.org"),
        ]);
        assert!(origin_allowed(&h, &allowed));
        let h = headers(&[
            ("origin", "https://evil.example"),
            ("host", "api.example.org"),
        ]);
        assert!(!origin_allowed(&h, &allowed));
        assert!(!origin_allowed(&headers(&[("origin", "null")]), &allowed));
    }

    #[test]
    fn only_same_origin_requests_are_same_origin() {
        let allowed = vec!["https://console.example.org".to_string()];
        let same = |pairs: &[(&str, &str)]| same_origin(&headers(pairs), &allowed);
        assert!(same(&[("sec-fetch-site", "same-origin")]));
        for site in ["cross-site", "same-site", "none"] {
            // Sec-Fetch-Site wins over an Origin that would pass.
            let pairs = [
                ("sec-fetch-site", site),
                ("origin", "https://console.example.org"),
            ];
            assert!(!same(&pairs), "{site}");
        }
        assert!(same(&[("origin", "https://console.example.org")]));
        assert!(same(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(!same(&[("origin", "https://evil.example")]));
        assert!(!same(&[]), "no browser evidence is not same-origin");
    }

    #[test]
    fn only_the_session_cookie_is_stripped() {
        let mut h = headers(&[("cookie", "a=1; access-token=zzz"), ("cookie", "b=2")]);
        strip_session_cookie(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut h = headers(&[("cookie", "access-token=zzz")]);
        strip_session_cookie(&mut h);
        assert!(h.get(header::COOKIE).is_none());
    }
}
