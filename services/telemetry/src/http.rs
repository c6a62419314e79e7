//! Every request counted and timed, by route template: `http_requests_total` and
//! `http_request_duration_seconds` with labels `service`, `route`, `method`, `status`. The
//! route is the matched template (`/v2/workspaces/{workspaceId}/webhooks/{slug}`), never the raw
//! path, so the number of series stays bounded whatever clients send.
//!
//! Behind the gateway, the request also gets a span carrying the correlation id the gateway
//! set, continuing the gateway's trace when the request carries a `traceparent`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::propagation::{TRACEPARENT, set_parent};

/// The header the gateway sets with each request's correlation id (`spec/http-api.md` §1.4).
pub const CORRELATION_ID: &str = "x-correlation-id";

/// The route label of requests no route matched (fallbacks, 404s).
pub const UNMATCHED: &str = "unmatched";

/// Which service's listener a request reached (the `service` label).
#[derive(Debug, Clone, Copy)]
pub struct Service(pub &'static str);

/// Middleware for a backend's router (`from_fn_with_state(Service("runtime"), track)`), added
/// with `Router::layer` so the matched route is known.
pub async fn track(State(Service(service)): State<Service>, req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let method = method_label(req.method());
    let correlation_id = req
        .headers()
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let span = tracing::info_span!("request", service, correlation_id, method, route = %route);
    if let Some(parent) = req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
        set_parent(&span, parent);
    }
    let started = Instant::now();
    let res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    record(service, route, method, status, seconds);
    span.in_scope(|| tracing::debug!(status, duration_ms = seconds * 1000.0, "request served"));
    res
}

/// The matched route template of `req`; before routing (the gateway's outermost layer, a
/// fallback), the path's [`coarse_route`].
pub fn route_of(req: &Request) -> String {
    req.extensions().get::<MatchedPath>().map_or_else(
        || coarse_route(req.uri().path()),
        |p| p.as_str().to_string(),
    )
}

/// Path segments kept as they are in a coarse route; every other segment is an id.
const KNOWN_SEGMENTS: &[&str] = &[
    "v2",
    "workspaces",
    "automations",
    "webhooks",
    "events",
    "ws",
    "search",
    "usage",
    "security",
    "roles",
    "apikeys",
    "secrets",
    "permissions",
    "versions",
    "apps",
    "files",
    "pages",
    "components",
    "test",
    "signup",
    "login",
    "anonymous",
    "callback",
    "providers",
    "logout",
    "me",
    "user",
    "accessTokens",
    "sys",
    "healthcheck",
    "readiness",
    "metrics",
    "export",
    "import",
    "duplicate",
    "publish",
    "instances",
];

/// Segments a coarse route keeps; deeper ones are cut (`/…`).
const MAX_SEGMENTS: usize = 6;

/// A route template guessed from a raw path, for requests no router has matched yet: known
/// words stay, any other segment becomes `{id}`, and the depth is capped, so clients cannot
/// create series at will. Paths outside the API (the console's files) are [`UNMATCHED`].
pub fn coarse_route(path: &str) -> String {
    if !(path.starts_with("/v2/") || path.starts_with("/sys/") || path == "/metrics") {
        return UNMATCHED.to_string();
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut route = String::new();
    for seg in segments.iter().take(MAX_SEGMENTS) {
        route.push('/');
        route.push_str(if KNOWN_SEGMENTS.contains(seg) {
            seg
        } else {
            "{id}"
        });
    }
    if segments.len() > MAX_SEGMENTS {
        route.push_str("/…");
    }
    route
}

/// The gateway's outermost layer: the span of the whole request at the edge, whose trace
/// context replaces any `traceparent` a client sent (the gateway starts every trace, as it
/// starts every correlation id), so backends reached over HTTP continue it; and the request's
/// metrics under the `gateway` service label.
pub async fn edge(req: Request, next: Next) -> Response {
    let mut req = req;
    let route = route_of(&req);
    let method = method_label(req.method());
    let span = tracing::info_span!("gateway", method, route = %route);
    req.headers_mut().remove(TRACEPARENT);
    if let Some(traceparent) = crate::propagation::traceparent_of(&span)
        && let Ok(value) = axum::http::HeaderValue::from_str(&traceparent)
    {
        req.headers_mut().insert(TRACEPARENT, value);
    }
    let started = Instant::now();
    let res = next.run(req).instrument(span).await;
    record(
        "gateway",
        route,
        method,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// Records one request. The gateway calls it from its own edge middleware.
pub fn record(
    service: &'static str,
    route: String,
    method: &'static str,
    status: u16,
    seconds: f64,
) {
    let status = status.to_string();
    metrics::counter!("http_requests_total", "service" => service, "route" => route.clone(), "method" => method, "status" => status.clone())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "service" => service, "route" => route, "method" => method, "status" => status)
        .record(seconds);
}

/// The method as a label: the standard ones by name, anything else as `OTHER` (a client can
/// send arbitrary method tokens; each must not become a series).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_are_counted_by_route_template() {
        crate::metrics::install();
        let app = Router::new()
            .route("/v2/items/{id}", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Service("unit-test"),
                track,
            ));
        for path in ["/v2/items/1", "/v2/items/2", "/nowhere/abc"] {
            let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        let text = crate::metrics::render();
        assert!(
            text.contains(r#"http_requests_total{service="unit-test",route="/v2/items/{id}",method="GET",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"route="unmatched",method="GET",status="404"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("/v2/items/1"),
            "raw paths never become labels: {text}"
        );
    }

    #[test]
    fn coarse_routes_keep_words_and_hide_ids() {
        assert_eq!(
            coarse_route("/v2/workspaces/w-123/webhooks/hello"),
            "/v2/workspaces/{id}/webhooks/{id}"
        );
        assert_eq!(coarse_route("/v2/login"), "/v2/login");
        assert_eq!(
            coarse_route("/v2/a/b/c/d/e/f/g"),
            "/v2/{id}/{id}/{id}/{id}/{id}/…"
        );
        assert_eq!(coarse_route("/assets/app.js"), UNMATCHED);
    }
}
