//! Forwarding one request: body cap, credentials checked and replaced by identity headers
//! (§1.5), then the backend called in process or over HTTP, failing over between instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::TryStreamExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use refract_http::ApiError;
use refract_http::headers::{API_KEY, AUTH_DATA, GATEWAY_KEY, ROLE, SESSION_ID, USER_ID};
use serde_json::json;
use tower::ServiceExt;

use super::routes::{Route, Service};
use super::upgrade::{forward_upgrade, is_websocket_upgrade};
use super::upstream::{Instances, Upstream};
use crate::GatewayState;
use crate::auth::{LEGACY_TOKEN_HEADER, admit, authenticate, strip_session_cookie};
use crate::edge::RequestMeta;
use crate::error::upstream_timeout;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1). WebSocket upgrades keep
/// `upgrade` and `connection`: in process they reach the backend's router as they came, and
/// to an HTTP upstream they go through [`forward_upgrade`].
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large(limit: usize, length: Option<u64>) -> ApiError {
    let mut err = ApiError::too_large(limit);
    if let Some(length) = length {
        err = err.with_details(json!({ "length": length, "limit": limit }));
    }
    err
}

pub(super) async fn forward(
    state: &GatewayState,
    meta: &RequestMeta,
    route: Route,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let length = content_length(&parts.headers);
    if length.is_some_and(|l| l > route.body_limit as u64) {
        return Err(too_large(route.body_limit, length));
    }
    let principal = match authenticate(state, &parts.headers).await? {
        Some(p) => admit(
            state,
            &parts.method,
            &parts.headers,
            p,
            !route.user_required,
        )?,
        None => None,
    };
    // §2.1: a workspace API key is a credential of its own, alone or beside a user's. The
    // gateway only checks it exists and is enabled; the backend evaluates its rules.
    let api_key = parts
        .headers
        .get(API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(key) = &api_key
        && refract_storage::access::find_api_key(state.store(), key)
            .await
            .map_err(crate::error::storage)?
            .is_none()
    {
        return Err(ApiError::unauthenticated("unknown or disabled API key"));
    }
    if principal.is_none() && api_key.is_none() && route.user_required {
        return Err(ApiError::unauthenticated(
            "missing, invalid, expired or revoked credentials",
        ));
    }
    // Credentials stay at the gateway; identity travels as trusted headers (§1.5). The edge
    // already deleted client-sent trusted headers and set the correlation id.
    let headers = &mut parts.headers;
    headers.remove(header::AUTHORIZATION);
    headers.remove(LEGACY_TOKEN_HEADER);
    strip_session_cookie(headers);
    if let Some(p) = &principal {
        set(headers, USER_ID, &p.user_id);
        set(headers, SESSION_ID, &p.session_id);
        if let Ok(auth_data) = serde_json::to_string(&p.user.auth_data) {
            set(headers, AUTH_DATA, &auth_data);
        }
        if p.superadmin {
            set(headers, ROLE, "superadmin");
        }
    }
    if let Some(key) = &state.config().gateway_key {
        set(headers, GATEWAY_KEY, key.expose());
    }
    meta.set_forwarded(headers);
    let upstream = match route.service {
        Service::Workspaces => &state.upstreams().workspaces,
        Service::Runtime => &state.upstreams().runtime,
        Service::Events => &state.upstreams().events,
    };
    // The cap is enforced again while the body streams: Content-Length may be absent or lie.
    let body = Limited::new(body, route.body_limit);
    let mut res = match upstream {
        Upstream::InProcess(router) => {
            let req = Request::from_parts(parts, Body::new(body));
            match tokio::time::timeout(route.timeout, router.clone().oneshot(req)).await {
                Ok(Ok(res)) => res,
                Ok(Err(never)) => match never {},
                Err(_) => return Err(upstream_timeout(route.service.name(), route.timeout)),
            }
        }
        Upstream::Http(instances) if is_websocket_upgrade(&parts.headers) => {
            forward_upgrade(route, instances, parts).await?
        }
        Upstream::Http(instances) => {
            forward_http(state, route, instances, parts, body, length).await?
        }
    };
    // §1.5: the session id is echoed to the client too.
    if let Some(p) = &principal {
        set(res.headers_mut(), SESSION_ID, &p.session_id);
    }
    Ok(res)
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

async fn forward_http(
    state: &GatewayState,
    route: Route,
    instances: &Instances,
    mut parts: axum::http::request::Parts,
    body: Limited<Body>,
    length: Option<u64>,
) -> Result<Response, ApiError> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    strip_hop_by_hop(&mut parts.headers);
    let overflowed = Arc::new(AtomicBool::new(false));
    let empty = body.is_end_stream()
        || (length == Some(0)
            && matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
            ));
    // Streamed, so sent at most once; a request without one can go to the next instance.
    let mut body = (!empty).then(|| {
        let flag = overflowed.clone();
        let stream = body.into_data_stream().inspect_err(move |e| {
            if e.is::<LengthLimitError>() {
                flag.store(true, Ordering::Relaxed);
            }
        });
        reqwest::Body::wrap_stream(stream)
    });
    let service = route.service.name();
    let deadline = tokio::time::Instant::now() + route.timeout;
    let mut order = instances.order().peekable();
    while let Some(i) = order.next() {
        let retry = empty && order.peek().is_some();
        let url = format!("{}{}", instances.urls[i], path_and_query);
        let headers = if retry {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        let mut request = state
            .http()
            .request(parts.method.clone(), &url)
            .headers(headers);
        if let Some(body) = body.take() {
            request = request.body(body);
        }
        let res = match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => return Err(upstream_timeout(service, route.timeout)),
            Ok(Err(_)) if overflowed.load(Ordering::Relaxed) => {
                return Err(too_large(route.body_limit, None));
            }
            Ok(Err(e)) if e.is_timeout() => return Err(upstream_timeout(service, route.timeout)),
            Ok(Err(e)) => {
                tracing::warn!(service, url = %url, error = %e, "upstream unreachable");
                if e.is_connect() {
                    instances.failed(i);
                    if retry {
                        continue;
                    }
                }
                return Err(unavailable());
            }
            Ok(Ok(res)) => res,
        };
        let mut out = Response::builder().status(res.status());
        if let Some(headers) = out.headers_mut() {
            headers.extend(res.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
            strip_hop_by_hop(headers);
        }
        return out
            .body(Body::from_stream(res.bytes_stream()))
            .map_err(crate::error::internal);
    }
    Err(unavailable())
}

/// 503 `ServiceUnavailable` with `Retry-After` (§1.2).
pub(super) fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "a backend is unavailable; retry later",
    )
}
