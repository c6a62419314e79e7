//! Dispatch to the backends: which service answers a path, with which auth rule, body cap and
//! timeout ([`routes`]), where the backends are ([`upstream`]), the forwarding itself, in process
//! (embedded mode: the backend's router is called directly) or over HTTP (distributed mode: a
//! pooled client, bodies streamed both ways) ([`forward`]), and WebSocket upgrades over HTTP
//! ([`upgrade`]). This file holds the fallback handler and the CORS answers of public routes.

mod forward;
mod routes;
mod upgrade;
mod upstream;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use routes::proxied_paths;
pub(crate) use routes::{Service, classify};
pub use upstream::{Instances, Upstream, Upstreams};

use crate::GatewayState;
use crate::edge::RequestMeta;

/// `Retry-After` of a 503: long enough for a restarting backend, short enough for humans.
const RETRY_AFTER_SECS: &str = "5";

/// The fallback handler: proxies the paths of the route table ([`routes`]), answers 404 JSON
/// for anything else.
pub(crate) async fn dispatch(
    State(state): State<GatewayState>,
    meta: RequestMeta,
    req: Request,
) -> Response {
    let Some(route) = classify(req.uri().path(), state.config()) else {
        return refract_http::not_found().await.into_response();
    };
    let public = !route.user_required;
    if public && is_preflight(&req) {
        return preflight(req.headers());
    }
    let cross_origin = public && req.headers().contains_key(header::ORIGIN);
    match forward::forward(&state, &meta, route, req).await {
        Ok(mut res) => {
            // §1.8: webhooks are callable from any page, without credentials.
            if cross_origin
                && !res
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            {
                res.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            res
        }
        Err(e) => {
            let mut res = e.into_response();
            if res.status() == StatusCode::SERVICE_UNAVAILABLE {
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            res
        }
    }
}

fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// How long a browser may cache a webhook preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The answer to a CORS preflight on a public (webhook) path: any origin, any method, the
/// requested headers, no credentials.
fn preflight(headers: &HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let out = res.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
    );
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    out.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-correlation-id, retry-after"),
    );
    res
}
