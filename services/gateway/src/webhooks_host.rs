//! Webhooks on a host of their own (`webhooks_origin`, e.g. `https://hooks.example.com`).
//! A webhook answer is written by a tenant; served from the console's origin it would share
//! that origin's cookies and storage. With the setting, the two hosts split the paths:
//!
//! - on the webhooks host, only webhooks (`/v2/workspaces/{id}/webhooks/…`) and
//!   `/sys/healthcheck` are served, anything else is a JSON 404, and the session cookie is
//!   never read (no browser would send the platform's cookie there; one that arrives was set
//!   by someone else);
//! - on any other host, a webhook request is redirected (308, method and body kept) to the same
//!   path and query on the webhooks origin.
//!
//! The host is the `Host` the client asked for ([`crate::client`]: a trusted proxy's
//! `X-Forwarded-Host` counts), compared by name only, so the webhooks origin needs a host name
//! of its own.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refract_http::ApiError;

use crate::GatewayState;
use crate::edge::RequestMeta;

/// A validated `webhooks_origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhooksOrigin {
    /// `scheme://host[:port]`, without a trailing `/`.
    origin: String,
    /// The host name, lowercase.
    host: String,
}

impl WebhooksOrigin {
    /// An `http(s)://host[:port]` URL without path, query or credentials.
    pub fn parse(url: &str) -> Result<Self, String> {
        if !crate::oidc::is_http_base(url) {
            return Err(format!(
                "{url:?} is not an http(s) URL without path, query or fragment"
            ));
        }
        let host = host_name(url.split_once("://").map_or(url, |(_, rest)| rest))
            .ok_or_else(|| format!("{url:?} has no host name"))?;
        Ok(Self {
            origin: url.trim_end_matches('/').to_string(),
            host,
        })
    }

    /// Whether the request asked for the webhooks host (`Host` as `name[:port]`).
    pub fn is_host(&self, requested: Option<&str>) -> bool {
        requested
            .and_then(host_name)
            .is_some_and(|h| h == self.host)
    }
}

/// The lowercase host name of an authority (`Hooks.Example.com:8443` → `hooks.example.com`).
fn host_name(authority: &str) -> Option<String> {
    let authority = authority.trim_end_matches('/');
    let parsed = authority.parse::<axum::http::uri::Authority>().ok()?;
    Some(parsed.host().to_ascii_lowercase())
}

/// Whether `path` (canonical) is a webhook: the public runtime route of [`crate::proxy`].
pub fn is_webhook(path: &str, config: &crate::Config) -> bool {
    crate::proxy::classify(path, config)
        .is_some_and(|r| r.service == crate::proxy::Service::Runtime && !r.user_required)
}

/// The middleware; a no-op while `webhooks_origin` is unset.
pub async fn split(State(state): State<GatewayState>, mut req: Request, next: Next) -> Response {
    let Some(hooks) = state.webhooks_origin() else {
        return next.run(req).await;
    };
    let requested = req
        .extensions()
        .get::<RequestMeta>()
        .and_then(|m| m.client.host.clone())
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let on_hooks_host = hooks.is_host(requested.as_deref());
    let path = req.uri().path().to_string();
    let webhook = is_webhook(&path, state.config());
    match (on_hooks_host, webhook) {
        (true, true) => {
            crate::auth::strip_session_cookie(req.headers_mut());
            next.run(req).await
        }
        (true, false) if path == "/sys/healthcheck" => next.run(req).await,
        (true, false) => {
            ApiError::not_found("the webhooks host serves webhooks only").into_response()
        }
        (false, true) => {
            let target = req
                .uri()
                .path_and_query()
                .map_or(path.as_str(), |p| p.as_str());
            match HeaderValue::from_str(&format!("{}{target}", hooks.origin)) {
                Ok(location) => {
                    let mut res = StatusCode::PERMANENT_REDIRECT.into_response();
                    res.headers_mut().insert(header::LOCATION, location);
                    res
                }
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
        (false, false) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_matched_by_host_name() {
        let hooks = WebhooksOrigin::parse("https://Hooks.Example.com/").unwrap();
        assert_eq!(hooks.origin, "https://Hooks.Example.com");
        assert_eq!(hooks.host, "hooks.example.com");
        assert!(hooks.is_host(Some("hooks.example.com")));
        assert!(hooks.is_host(Some("HOOKS.example.com:8443")));
        assert!(!hooks.is_host(Some("api.example.com")));
        assert!(!hooks.is_host(Some("hooks.example.com.evil.example")));
        assert!(!hooks.is_host(None));
        for bad in [
            "hooks.example.com",
            "ftp://hooks.example.com",
            "https://hooks.example.com/path",
            "https://u:p@hooks.example.com",
        ] {
            assert!(WebhooksOrigin::parse(bad).is_err(), "{bad}");
        }
    }
}
