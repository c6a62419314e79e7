//! Dispatch to the backends: which service answers a path, with which auth rule, body cap and
//! timeout, and the forwarding itself, in process (embedded mode: the backend's router is
//! called directly) or over HTTP (distributed mode: a pooled client, bodies streamed both
//! ways).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use refract_http::ApiError;
use refract_http::headers::{API_KEY, AUTH_DATA, GATEWAY_KEY, ROLE, SESSION_ID, USER_ID};
use serde_json::json;
use tower::ServiceExt;

use crate::GatewayState;
use crate::auth::{LEGACY_TOKEN_HEADER, admit, authenticate, strip_session_cookie};
use crate::config::ConfigError;
use crate::edge::RequestMeta;
use crate::error::upstream_timeout;

/// Where one backend service is.
#[derive(Clone)]
pub enum Upstream {
    /// Embedded mode: the backend's router, called in process. The header contract of §1.5
    /// holds at this boundary exactly as over HTTP.
    InProcess(axum::Router),
    /// Distributed mode: the instances of the backend, in order of preference.
    Http(Arc<Instances>),
}

impl Upstream {
    /// Distributed mode: `urls` are the base URLs of the backend's instances
    /// (`http://runtime-1:3002`), without a trailing path (the request path is appended as is),
    /// in order of preference. `setting` names them in errors.
    pub fn http<S: Into<String>>(
        setting: &'static str,
        urls: impl IntoIterator<Item = S>,
    ) -> Result<Upstream, ConfigError> {
        Instances::new(setting, urls.into_iter().map(Into::into).collect())
            .map(|i| Upstream::Http(Arc::new(i)))
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::InProcess(_) => f.write_str("InProcess(router)"),
            Upstream::Http(instances) => write!(f, "Http({:?})", instances.urls),
        }
    }
}

/// How long an instance that refused a connection is passed over.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// The instances of one backend in distributed mode. A request goes to the first instance that
/// is not marked down; one that refuses a connection is marked down for [`DOWN_FOR`], and a
/// request without a body moves on to the next at once (one with a body cannot be sent twice:
/// it gets 503 and `Retry-After`, and its retry finds the next instance). When every instance is
/// marked down they are all tried anyway, so a backend that comes back is found at once.
///
/// Listing the same instances in another order on each gateway spreads the load; listing more
/// than one means a dead instance costs a failed connection, not an outage.
pub struct Instances {
    urls: Vec<String>,
    /// Per instance: until when, in ms since `epoch`, it is passed over (0: up).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Instances {
    /// Instances per backend: the down set is a 64-bit mask.
    const MAX: usize = 64;

    fn new(setting: &'static str, urls: Vec<String>) -> Result<Instances, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { setting, reason };
        if urls.is_empty() || urls.len() > Self::MAX {
            return Err(invalid(format!(
                "give 1 to {} instance URLs, not {}",
                Self::MAX,
                urls.len()
            )));
        }
        for url in &urls {
            let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("{url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
                return Err(invalid(format!(
                    "{url:?}: not an http:// or https:// URL with a host"
                )));
            }
        }
        let down_until = urls.iter().map(|_| AtomicU64::new(0)).collect();
        let urls = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect();
        Ok(Instances {
            urls,
            down_until,
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instances to try, in turn: those up in the order given, then those marked down.
    fn order(&self) -> impl Iterator<Item = usize> + use<> {
        let now = self.now_ms();
        let down = self
            .down_until
            .iter()
            .enumerate()
            .filter(|(_, until)| until.load(Ordering::Relaxed) > now)
            .fold(0u64, |mask, (i, _)| mask | 1 << i);
        let n = self.urls.len();
        let is_down = move |i: &usize| down & (1 << i) != 0;
        (0..n)
            .filter(move |i| !is_down(i))
            .chain((0..n).filter(is_down))
    }

    /// Instance `i` refused a connection.
    fn failed(&self, i: usize) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(DOWN_FOR.as_millis()).unwrap_or(u64::MAX));
        self.down_until[i].store(until, Ordering::Relaxed);
    }
}

/// The three backends the gateway dispatches to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub workspaces: Upstream,
    pub runtime: Upstream,
    pub events: Upstream,
}

/// A backend service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Workspaces,
    Runtime,
    Events,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Workspaces => "workspaces",
            Service::Runtime => "runtime",
            Service::Events => "events",
        }
    }
}

/// How a proxied path is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub service: Service,
    /// Whether an authenticated principal is required (else credentials are optional).
    pub user_required: bool,
    pub body_limit: usize,
    pub timeout: Duration,
}

/// The route of `path` under `/v2/workspaces`, or `None` for paths the gateway does not proxy.
pub fn classify(path: &str, config: &crate::Config) -> Option<Route> {
    // The app store (`/v2/apps**`, §11) is the workspaces service's.
    if let Some(apps) = path.strip_prefix("/v2/apps")
        && (apps.is_empty() || apps.starts_with('/'))
        && !apps.contains('\\')
        && !apps.split('/').any(is_dot_segment)
    {
        return Some(Route {
            service: Service::Workspaces,
            user_required: true,
            body_limit: config.proxy_body_limit,
            timeout: config.upstream_timeout,
        });
    }
    let rest = path.strip_prefix("/v2/workspaces")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let segs: Vec<&str> = rest.split('/').skip(1).collect();
    // An HTTP client normalizes `..` (also spelled `%2e%2e`, or with `\` for `/`) before
    // sending, which would let `/v2/workspaces/w/webhooks/../../../sys/…` reach a backend
    // path the gateway never routes, without authentication.
    if rest.contains('\\') || segs.iter().any(|seg| is_dot_segment(seg)) {
        return None;
    }
    let ordinary = Route {
        service: Service::Workspaces,
        user_required: true,
        body_limit: config.proxy_body_limit,
        timeout: config.upstream_timeout,
    };
    let route = match segs.as_slice() {
        [_, "webhooks", ..] => Route {
            service: Service::Runtime,
            user_required: false,
            body_limit: config.webhook_body_limit,
            timeout: config.webhook_timeout,
        },
        [_, "test", ..] => Route {
            service: Service::Runtime,
            body_limit: config.webhook_body_limit,
            timeout: config.webhook_timeout,
            ..ordinary
        },
        [_, "events", ..] | [_, "search"] => Route {
            service: Service::Events,
            ..ordinary
        },
        [_, "automations", _, "component"] => Route {
            body_limit: config.component_upload_limit,
            timeout: config.upload_timeout,
            ..ordinary
        },
        _ => ordinary,
    };
    Some(route)
}

/// `Retry-After` of a 503: long enough for a restarting backend, short enough for humans.
const RETRY_AFTER_SECS: &str = "5";

/// `.` or `..`, percent-encoded or not.
fn is_dot_segment(seg: &str) -> bool {
    let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

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

/// The fallback handler: proxies `/v2/workspaces**`, answers 404 JSON for anything else.
pub async fn dispatch(
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
    match forward(&state, &meta, route, req).await {
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

async fn forward(
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

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A WebSocket upgrade to an HTTP upstream: the handshake goes to the backend over its own
/// connection (reqwest cannot carry an upgrade); once the backend answers 101, the client's
/// and the backend's upgraded connections are spliced byte for byte until either side closes.
async fn forward_upgrade(
    route: Route,
    instances: &Instances,
    mut parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    let service = route.service.name();
    let down = |what: &dyn std::fmt::Display| {
        tracing::warn!(service, error = %what, "upstream WebSocket upgrade failed");
        unavailable()
    };
    let client_side = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| down(&"the client connection cannot be upgraded"))?;
    let deadline = tokio::time::Instant::now() + route.timeout;
    let mut connected = None;
    for i in instances.order() {
        let url = reqwest::Url::parse(&instances.urls[i]).map_err(|e| down(&e))?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(down(&"the upstream URL has no host"));
        };
        if url.scheme() != "http" {
            return Err(down(&"WebSocket upgrades reach http:// upstreams only"));
        }
        let connect = tokio::net::TcpStream::connect((host, port));
        match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => return Err(upstream_timeout(service, route.timeout)),
            Ok(Ok(stream)) => {
                connected = Some((stream, format!("{host}:{port}")));
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(service, url = %url, error = %e, "upstream unreachable");
                instances.failed(i);
            }
        }
    }
    let (stream, authority) = connected.ok_or_else(unavailable)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| down(&e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path_and_query.parse().map_err(|e| down(&e))?;
    if let Ok(h) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, h);
    }
    let req = Request::from_parts(parts, http_body_util::Empty::<bytes::Bytes>::new());
    let answer = tokio::time::timeout_at(deadline, sender.send_request(req)).await;
    let mut res = match answer {
        Err(_) => return Err(upstream_timeout(service, route.timeout)),
        Ok(res) => res.map_err(|e| down(&e))?,
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(res.map(Body::new));
    }
    let backend_side = hyper::upgrade::on(&mut res);
    tokio::spawn(async move {
        let (Ok(client), Ok(backend)) = tokio::join!(client_side, backend_side) else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut backend = hyper_util::rt::TokioIo::new(backend);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    });
    let (head, _) = res.into_parts();
    Ok(Response::from_parts(head, Body::empty()))
}

/// 503 `ServiceUnavailable` with `Retry-After` (§1.2).
fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "a backend is unavailable; retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn paths_route_to_the_documented_services() {
        let c = Config::default();
        let r = |p: &str| classify(p, &c).map(|r| (r.service, r.user_required));
        assert_eq!(r("/v2/workspaces"), Some((Service::Workspaces, true)));
        assert_eq!(
            r("/v2/workspaces/w1/webhooks/echo"),
            Some((Service::Runtime, false))
        );
        assert_eq!(
            r("/v2/workspaces/w1/test/echo"),
            Some((Service::Runtime, true))
        );
        assert_eq!(r("/v2/workspaces/w1/events"), Some((Service::Events, true)));
        assert_eq!(
            r("/v2/workspaces/w1/events/ws"),
            Some((Service::Events, true))
        );
        assert_eq!(r("/v2/workspaces/w1/search"), Some((Service::Events, true)));
        assert_eq!(
            r("/v2/workspaces/w1/automations/a"),
            Some((Service::Workspaces, true))
        );
        assert_eq!(r("/v2/workspacesX"), None);
        assert_eq!(r("/v2/apps"), Some((Service::Workspaces, true)));
        assert_eq!(r("/v2/apps/crm"), Some((Service::Workspaces, true)));
        assert_eq!(r("/v2/apps/../sys/x"), None);
        assert_eq!(r("/v2/appsX"), None);
        assert_eq!(r("/v2/workspaces/w1/webhooks/../../../sys/metrics"), None);
        assert_eq!(r("/v2/workspaces/w1/webhooks/%2E%2e/x"), None);
        assert_eq!(r("/v2/workspaces/w1/webhooks/./x"), None);
        assert_eq!(
            r("/v2/workspaces/w1/webhooks/a..b"),
            Some((Service::Runtime, false))
        );
        assert_eq!(r("/v2/other"), None);
        let upload = classify("/v2/workspaces/w1/automations/a/component", &c).unwrap();
        assert_eq!(
            (upload.body_limit, upload.timeout),
            (c.component_upload_limit, c.upload_timeout)
        );
        let hook = classify("/v2/workspaces/w1/webhooks/a", &c).unwrap();
        assert_eq!(
            (hook.body_limit, hook.timeout),
            (c.webhook_body_limit, c.webhook_timeout)
        );
    }
}
