//! What happens to every request at the edge, before routing: client-sent trusted headers are
//! deleted (§1.5), a fresh correlation id is set on the request and on the response — errors
//! included — (§1.4), and one log line records method, path, status, duration and the id.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use refract_core::CorrelationId;
use refract_http::headers::{CORRELATION_ID, is_trusted_header};
use tracing::Instrument;

use crate::auth::LEGACY_TOKEN_HEADER;

/// Headers describing the client hop; rewritten from the socket peer, never trusted from the
/// client (no `TRUSTED_PROXIES` support yet).
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
    /// The socket peer, when the server was started with connect info.
    pub peer: Option<SocketAddr>,
}

impl RequestMeta {
    /// The client IP as text, for events and `x-forwarded-for`.
    pub fn ip(&self) -> Option<String> {
        self.peer.map(|p| p.ip().to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestMeta>()
            .cloned()
            .unwrap_or_else(|| RequestMeta {
                correlation_id: CorrelationId::generate(),
                peer: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0),
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

/// The edge middleware.
pub async fn edge(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let correlation_id = CorrelationId::generate();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    strip_untrusted(req.headers_mut());
    // 32 hex characters: always a valid header value.
    let id_value = HeaderValue::from_str(correlation_id.as_str()).ok();
    if let Some(v) = &id_value {
        req.headers_mut().insert(CORRELATION_ID, v.clone());
    }
    req.extensions_mut().insert(RequestMeta {
        correlation_id: correlation_id.clone(),
        peer,
    });
    let span =
        tracing::info_span!("request", correlation_id = %correlation_id, %method, path = %path);
    let mut res = next.run(req).instrument(span.clone()).await;
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
