//! What happens to every request at the edge, before routing: the path is rewritten to its
//! canonical form ([`crate::path`]) or refused with 400, the client hop is read from the socket
//! peer and trusted proxies ([`crate::client`]), client-sent trusted and forwarding headers are
//! deleted (§1.5), a fresh correlation id is set on the request and on the response — errors
//! included — (§1.4), and one log line records method, path, status, duration and the id.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refract_core::CorrelationId;
use refract_http::ApiError;
use refract_http::headers::{CORRELATION_ID, is_trusted_header};
use tracing::Instrument;

use crate::GatewayState;
use crate::auth::LEGACY_TOKEN_HEADER;
use crate::client::ClientHop;

/// Headers describing the client hop; read only from trusted proxies ([`crate::client`]),
/// deleted here, and set again by the proxy from [`RequestMeta`].
const FORWARDED_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
];

/// Per-request facts the edge established, for handlers and the proxy.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub correlation_id: CorrelationId,
    /// The client hop: its address (the peer, or behind trusted proxies the nearest untrusted
    /// `X-Forwarded-For` hop), scheme and host.
    pub client: ClientHop,
}

impl RequestMeta {
    /// The client IP as text, for events, rate-limit keys and `x-forwarded-for`.
    pub fn ip(&self) -> Option<String> {
        self.client.ip.map(|ip| ip.to_string())
    }

    /// Sets `x-forwarded-for` (the client address alone), `x-forwarded-proto` (when a trusted
    /// proxy gave it) and `x-forwarded-host` on a request leaving for a backend.
    pub fn set_forwarded(&self, headers: &mut HeaderMap) {
        let values = [
            ("x-forwarded-for", self.ip()),
            ("x-forwarded-proto", self.client.proto.clone()),
            ("x-forwarded-host", self.client.host.clone()),
        ];
        for (name, value) in values {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestMeta>()
            .cloned()
            .unwrap_or_else(|| {
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0);
                RequestMeta {
                    correlation_id: CorrelationId::generate(),
                    client: ClientHop {
                        ip: peer.map(|p| p.ip()),
                        ..ClientHop::default()
                    },
                }
            }))
    }
}

/// Deletes every header only the gateway may set, and the client's forwarding headers.
pub fn strip_untrusted(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            // The legacy token header is a credential, not an identity claim: authentication
            // reads it, and the proxy removes it before forwarding.
            (is_trusted_header(name) && name != LEGACY_TOKEN_HEADER)
                || FORWARDED_HEADERS.contains(&name)
        })
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// `path` with secrets replaced: `DELETE /v2/user/accessTokens/{token}` accepts the token
/// value itself, which must not end up in log files.
pub fn loggable_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let lower = seg.to_ascii_lowercase();
            if lower.starts_with("at:") || lower.starts_with("at%3a") {
                "***"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `uri` with its path in canonical form (the query is kept as sent).
fn canonical_uri(uri: &Uri) -> Result<Option<Uri>, ApiError> {
    let refuse = |e: &dyn std::fmt::Display| ApiError::validation("path", e.to_string());
    let path = crate::path::canonical(uri.path()).map_err(|e| refuse(&e))?;
    if path == uri.path() {
        return Ok(None);
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.into_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).map_err(|e| refuse(&e))?);
    Uri::from_parts(parts).map(Some).map_err(|e| refuse(&e))
}

/// The edge middleware. It runs before routing (see [`crate::router`]), so the routes match
/// the canonical path too.
pub async fn edge(State(state): State<GatewayState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let correlation_id = CorrelationId::generate();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let method = req.method().clone();
    let canonical = canonical_uri(req.uri());
    if let Ok(Some(uri)) = &canonical {
        *req.uri_mut() = uri.clone();
    }
    // Logged once canonical, so a token in the path is masked however it was spelled.
    let path = loggable_path(req.uri().path());
    let client = crate::client::resolve(peer, req.headers(), state.trusted_proxies());
    strip_untrusted(req.headers_mut());
    // 32 hex characters: always a valid header value.
    let id_value = HeaderValue::from_str(correlation_id.as_str()).ok();
    if let Some(v) = &id_value {
        req.headers_mut().insert(CORRELATION_ID, v.clone());
    }
    req.extensions_mut().insert(RequestMeta {
        correlation_id: correlation_id.clone(),
        client,
    });
    let span =
        tracing::info_span!("request", correlation_id = %correlation_id, %method, path = %path);
    let mut res = match canonical {
        Err(e) => e.into_response(),
        Ok(_) => next.run(req).instrument(span.clone()).await,
    };
    if let Some(v) = id_value {
        res.headers_mut().insert(CORRELATION_ID, v);
    }
    let status = res.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, duration_ms, "request served"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_values_never_reach_the_request_log() {
        assert_eq!(
            loggable_path("/v2/user/accessTokens/at:1234-abcd"),
            "/v2/user/accessTokens/***"
        );
        assert_eq!(
            loggable_path("/v2/user/accessTokens/AT%3A1234"),
            "/v2/user/accessTokens/***"
        );
        assert_eq!(
            loggable_path("/v2/workspaces/w1/automations/attack"),
            "/v2/workspaces/w1/automations/attack"
        );
    }

    #[test]
    fn identity_and_forwarding_headers_from_clients_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("x-prismeai-user-id", HeaderValue::from_static("admin"));
        h.insert("x-refract-gateway-key", HeaderValue::from_static("k"));
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("x-prismeai-api-key", HeaderValue::from_static("key"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_untrusted(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("x-prismeai-api-key") && h.contains_key("content-type"));
    }
}
