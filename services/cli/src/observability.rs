//! The operational endpoints every process serves (`spec/http-api.md` §12), wired here because
//! only the binary knows which backends a process opened:
//!
//! - `GET /sys/healthcheck`: liveness, on backends (the gateway has its own).
//! - `GET /sys/readiness`: 200 when every dependency the service uses answers a ping within
//!   two seconds, 503 naming the failing ones otherwise. The gateway also reports its HTTP
//!   upstreams, informatively.
//! - `GET /metrics`: Prometheus text. On the public listener (gateway, `refract serve`) only
//!   with `Authorization: Bearer <internal_api_key>`, and 404 while no key is configured, so
//!   tenants never read platform-wide figures; on a backend's private port, open unless a key
//!   is configured.
//! - the HTTP metrics layer on every router (`http_requests_total`, latency histogram).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use refract_broker::Broker;
use refract_telemetry::http::Service as Label;
use refract_telemetry::{Check, readiness};
use serde_json::json;

use crate::serve::{Backends, Service};

/// How long `/metrics` waits for the broker's backlog figures before rendering without them.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(2);

/// Which dependencies a service needs to work, hence what its readiness pings.
#[derive(Debug, Clone, Copy)]
struct Needs {
    broker: bool,
    documents: bool,
    cache: bool,
    files: bool,
}

impl Needs {
    /// `None`: the embedded mode, where one process needs everything.
    fn of(service: Option<Service>) -> Self {
        let all = |broker, documents, cache, files| Self {
            broker,
            documents,
            cache,
            files,
        };
        match service {
            Some(Service::Gateway) => all(true, true, true, false),
            Some(Service::Workspaces) => all(true, true, false, true),
            Some(Service::Runtime) => all(true, true, true, true),
            Some(Service::Events) => all(true, true, true, false),
            None => all(true, true, true, true),
        }
    }
}

/// Who may read `/metrics`.
#[derive(Clone)]
enum MetricsAccess {
    /// A private port: anyone who reaches it.
    Open,
    /// Callers presenting this bearer key.
    Key(Arc<str>),
    /// Not served (a public listener without a key).
    Hidden,
}

/// The label of `service` on HTTP metrics.
pub fn label(service: Service) -> &'static str {
    match service {
        Service::Gateway => "gateway",
        Service::Workspaces => "workspaces",
        Service::Runtime => "runtime",
        Service::Events => "events",
    }
}

/// `router` with every request counted under `service` (by matched route template).
pub fn tracked(router: Router, service: Service) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Label(label(service)),
        refract_telemetry::http::track,
    ))
}

/// A backend's router (on its private port) with liveness, readiness, metrics and the HTTP
/// metrics layer.
pub fn backend(
    router: Router,
    service: Service,
    backends: &Backends,
    internal_key: Option<&str>,
) -> Router {
    refract_telemetry::metrics::install();
    let access = internal_key.map_or(MetricsAccess::Open, |k| MetricsAccess::Key(k.into()));
    operational(
        tracked(router, service),
        Some(service),
        backends,
        access,
        Vec::new(),
    )
    .route(
        "/sys/healthcheck",
        get(|| async { axum::Json(json!({ "status": "ok", "healthy": true })) }),
    )
}

/// The gateway's (or the embedded platform's) public app with readiness, metrics behind the
/// internal key, and the edge layer (request span, trace context, HTTP metrics). `upstreams`
/// are the backends' base URLs in distributed mode.
pub fn public(
    app: Router,
    service: Option<Service>,
    backends: &Backends,
    internal_key: Option<&str>,
    upstreams: Vec<(&'static str, Vec<String>)>,
) -> Router {
    refract_telemetry::metrics::install();
    let access = internal_key.map_or(MetricsAccess::Hidden, |k| MetricsAccess::Key(k.into()));
    operational(app, service, backends, access, upstreams)
        .layer(axum::middleware::from_fn(refract_telemetry::http::edge))
}

fn operational(
    router: Router,
    service: Option<Service>,
    backends: &Backends,
    access: MetricsAccess,
    upstreams: Vec<(&'static str, Vec<String>)>,
) -> Router {
    let needs = Needs::of(service);
    let ready = backends.clone();
    let broker = backends.broker.clone();
    let http = reqwest::Client::new();
    router
        .route(
            "/sys/readiness",
            get(move || check(ready.clone(), needs, http.clone(), upstreams.clone())),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| serve_metrics(broker.clone(), access.clone(), headers)),
        )
}

async fn check(
    backends: Backends,
    needs: Needs,
    http: reqwest::Client,
    upstreams: Vec<(&'static str, Vec<String>)>,
) -> Response {
    let mut checks = Vec::new();
    if needs.broker {
        let broker = backends.broker.clone();
        checks.push(Check::new("broker", async move { broker.ping().await }));
    }
    if needs.documents {
        let store = backends.store.clone();
        checks.push(Check::new("documents", async move { store.ping().await }));
    }
    if needs.cache {
        let cache = backends.cache.clone();
        checks.push(Check::new("cache", async move { cache.ping().await }));
    }
    if needs.files {
        let files = backends.files.clone();
        // A HEAD of a key that need not exist: answered without reading anything.
        checks.push(Check::new("files", async move {
            files.exists(".readiness").await.map(|_| ())
        }));
    }
    // A backend is reachable when one of its instances is ready.
    let informative = upstreams
        .into_iter()
        .map(|(name, urls)| {
            let http = http.clone();
            Check::new(name, async move {
                let probes = urls.iter().map(|url| {
                    let http = http.clone();
                    async move {
                        let res = http
                            .get(format!("{}/sys/readiness", url.trim_end_matches('/')))
                            .send()
                            .await
                            .map_err(|e| format!("{url}: {e}"))?;
                        if res.status().is_success() {
                            Ok(())
                        } else {
                            Err(format!("{url}: not ready ({})", res.status()))
                        }
                    }
                });
                let failures: Vec<String> = futures::future::join_all(probes)
                    .await
                    .into_iter()
                    .filter_map(Result::err)
                    .collect();
                if failures.len() < urls.len() {
                    Ok(())
                } else {
                    Err(failures.join("; "))
                }
            })
        })
        .collect();
    readiness(checks, informative).await
}

async fn serve_metrics(
    broker: Arc<dyn Broker>,
    access: MetricsAccess,
    headers: HeaderMap,
) -> Response {
    match &access {
        MetricsAccess::Open => {}
        MetricsAccess::Hidden => {
            return refract_http::ApiError::not_found("no such route").into_response();
        }
        MetricsAccess::Key(key) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
                return refract_http::ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "metrics need the internal API key",
                )
                .into_response();
            }
        }
    }
    // Backlog gauges are read from the broker at scrape time: they describe the shared
    // streams, so every instance reports the same figures.
    if let Ok(Ok(groups)) = tokio::time::timeout(BACKLOG_TIMEOUT, broker.group_stats()).await {
        for g in groups {
            metrics::gauge!("events_pending", "group" => g.group.clone()).set(g.pending as f64);
            if let Some(lag) = g.lag {
                metrics::gauge!("events_lag", "group" => g.group).set(lag as f64);
            }
        }
    }
    refract_telemetry::metrics::response(refract_telemetry::metrics::render())
}

/// Byte equality in time independent of where the inputs differ (the key is a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_compare_whole() {
        assert!(super::same(b"k3y", b"k3y"));
        assert!(!super::same(b"k3y", b"k3x"));
        assert!(!super::same(b"k3", b"k3y"));
    }
}
