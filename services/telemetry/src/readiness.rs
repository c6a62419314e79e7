//! `GET /sys/readiness`: whether this instance can do its work now, which is whether its
//! dependencies answer a cheap ping within [`TIMEOUT`]. A load balancer or orchestrator stops
//! sending work to an instance that answers 503 and resumes when it answers 200 again;
//! `/sys/healthcheck` stays liveness (the process serves), so a dependency outage never gets
//! healthy processes restarted.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, FutureExt, join_all};
use serde_json::{Map, Value, json};

/// How long one dependency may take to answer: well under the few seconds a balancer's probe
/// waits, so a hung dependency is reported rather than hanging the probe.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency probe.
pub struct Check {
    name: &'static str,
    probe: BoxFuture<'static, Result<(), String>>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl Check {
    /// `name` is ready when `probe` resolves to `Ok` within [`TIMEOUT`].
    pub fn new<E: Display>(
        name: &'static str,
        probe: impl Future<Output = Result<(), E>> + Send + 'static,
    ) -> Self {
        Self {
            name,
            probe: probe.map(|r| r.map_err(|e| e.to_string())).boxed(),
        }
    }

    async fn run(self) -> (&'static str, Result<(), String>) {
        let outcome = match tokio::time::timeout(TIMEOUT, self.probe).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", TIMEOUT.as_millis())),
        };
        (self.name, outcome)
    }
}

/// Runs `checks` (they decide readiness) and `informative` ones (reported under `upstreams`,
/// never flipping readiness) concurrently: 200 `{ready: true, checks}` or 503 `{ready: false,
/// error: "NotReady", message, checks}` where each failing check is `{ok: false, error}`.
pub async fn readiness(checks: Vec<Check>, informative: Vec<Check>) -> Response {
    let (checks, informative) = tokio::join!(
        join_all(checks.into_iter().map(Check::run)),
        join_all(informative.into_iter().map(Check::run))
    );
    let failing: Vec<&str> = checks
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(name, _)| *name)
        .collect();
    let mut body = json!({ "ready": failing.is_empty(), "checks": report(&checks) });
    if !informative.is_empty() {
        body["upstreams"] = report(&informative);
    }
    if failing.is_empty() {
        return (StatusCode::OK, Json(body)).into_response();
    }
    for (name, result) in &checks {
        if let Err(error) = result {
            tracing::warn!(dependency = name, %error, "not ready");
        }
    }
    body["error"] = json!("NotReady");
    body["message"] = json!(format!("not ready: {} unavailable", failing.join(", ")));
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

fn report(results: &[(&'static str, Result<(), String>)]) -> Value {
    let map: Map<String, Value> = results
        .iter()
        .map(|(name, result)| {
            let entry = match result {
                Ok(()) => json!({ "ok": true }),
                Err(error) => json!({ "ok": false, "error": error }),
            };
            (name.to_string(), entry)
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(res: Response) -> Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_failing_dependency_is_named_and_upstreams_never_decide() {
        let ok = || Check::new("documents", async { Ok::<(), String>(()) });
        let down = Check::new("cache", async { Err::<(), _>("connection refused") });
        let upstream_down = Check::new("runtime", async { Err::<(), _>("502") });

        let res = readiness(vec![ok(), down], vec![]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let b = body(res).await;
        assert_eq!(b["ready"], false);
        assert_eq!(b["error"], "NotReady");
        assert_eq!(
            b["checks"]["cache"],
            json!({"ok": false, "error": "connection refused"})
        );
        assert_eq!(b["checks"]["documents"]["ok"], true);
        assert!(b["message"].as_str().unwrap().contains("cache"));

        let res = readiness(vec![ok()], vec![upstream_down]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let b = body(res).await;
        assert_eq!(b["upstreams"]["runtime"]["ok"], false);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_dependency_times_out() {
        let hung = Check::new("broker", futures::future::pending::<Result<(), String>>());
        let res = readiness(vec![hung], vec![]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body(res).await["checks"]["broker"]["error"]
                .as_str()
                .unwrap()
                .contains("no answer")
        );
    }
}
