//! End-to-end: what operators see (`spec/http-api.md` §12). `/metrics` counts a webhook's run
//! and is closed to tenants; `/sys/readiness` follows a dependency going away and coming back;
//! a `refract serve` process with `REFRACT_LOG_FORMAT=json` writes JSON lines carrying the
//! correlation id, and with `OTEL_EXPORTER_OTLP_ENDPOINT` exports one trace that follows a
//! webhook through the broker into a second run and its host calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use refract::Config;
use refract_tests::platform::{Client, Platform, serve_on_loopback};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const KEY: &str = "metrics-key-for-tests";

/// A DSL webhook that emits `orders.placed`, and a DSL automation on `orders.placed` that
/// emits `orders.done`: one request, two runs, one hop through the broker.
async fn deploy_order_flow(ada: &Client, ws: &str) {
    let automations = format!("/v2/workspaces/{ws}/automations");
    let hook = json!({"slug": "place", "name": "Place", "when": {"endpoint": true}, "do": [
        {"emit": {"event": "orders.placed", "payload": {"order": "{{body.order}}"}}}
    ], "output": {"placed": "{{body.order}}"}});
    let on_placed = json!({"slug": "on-placed", "name": "On placed", "when": {"events": ["orders.placed"]}, "do": [
        {"emit": {"event": "orders.done", "payload": {"order": "{{payload.order}}"}}}
    ]});
    for automation in [hook, on_placed] {
        let (status, body) = ada
            .json(Method::POST, &automations, Some(automation))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Posts to the `place` webhook; returns the correlation id.
async fn place(url: &str, ws: &str, order: u32) -> String {
    let res = reqwest::Client::new()
        .post(format!("{url}/v2/workspaces/{ws}/webhooks/place"))
        .json(&json!({"order": order}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The value of the sample `name{labels}` in Prometheus text (0 when absent).
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(url: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_webhook_run_and_are_closed_to_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        internal_api_key: Some(KEY.into()),
        ..Config::default()
    };
    let platform = Platform::start_with(config).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Metrics").await.unwrap();
    deploy_order_flow(&ada, &ws).await;

    // The recorder is per process: other tests' runs count too, so compare before and after.
    let runs = r#"kind="dsl",trigger="endpoint",outcome="success""#;
    let (status, before) = scrape(&platform.url, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let correlation = place(&platform.url, &ws, 7).await;
    ada.wait_for_event(&ws, "orders.done", |e| {
        e["source"]["correlationId"] == correlation.as_str()
    })
    .await
    .unwrap();

    let res = reqwest::Client::new()
        .get(format!("{}/metrics", platform.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let after = res.text().await.unwrap();
    assert!(
        sample(&after, "runs_total", runs) > sample(&before, "runs_total", runs),
        "{after}"
    );
    assert!(
        sample(
            &after,
            "runs_total",
            r#"kind="dsl",trigger="event",outcome="success""#
        ) >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("# TYPE run_duration_seconds histogram"),
        "{after}"
    );
    assert!(after.contains("events_published_total"), "{after}");
    // Requests are counted by route template, never by raw path (no workspace id in labels);
    // other tests share the recorder, so count this test's answered webhook call as a rise.
    let webhook = r#"service="runtime",route="/v2/workspaces/{workspace_id}/webhooks/{endpoint}",method="POST",status="200""#;
    assert!(
        sample(&after, "http_requests_total", webhook)
            > sample(&before, "http_requests_total", webhook),
        "{after}"
    );
    assert!(
        !after
            .lines()
            .filter(|l| !l.starts_with("workspace_"))
            .any(|l| l.contains(&ws)),
        "a workspace id leaked into a metric other than the per-workspace usage: {after}"
    );
    // Usage per workspace is labelled by workspace (added every flush, at most 2 s behind):
    // the webhook's run and the run it triggered.
    let series = format!(r#"workspace_id="{ws}""#);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, text) = scrape(&platform.url, Some(KEY)).await;
        if sample(&text, "workspace_runs_total", &series) >= 2.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no workspace_runs_total for {ws}: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        after.contains(r#"http_requests_total{service="gateway""#),
        "{after}"
    );

    // Tenants, even signed in, and anonymous callers get nothing.
    let (status, _) = ada.json(Method::GET, "/metrics", None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = scrape(&platform.url, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, ready) = platform
        .client()
        .json(Method::GET, "/sys/readiness", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    for dependency in ["broker", "documents", "cache", "files"] {
        assert_eq!(ready["checks"][dependency]["ok"], true, "{ready}");
    }
    platform.stop().await.unwrap();

    // Without an internal key, the public listener does not serve metrics at all.
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let (status, body) = scrape(&platform.url, Some(KEY)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    platform.stop().await.unwrap();
}

/// A TCP proxy that can be cut (every connection closed, new ones refused) and restored: a
/// dependency going away without touching the shared server.
struct CuttableProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (flag, conns) = (cut.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            addr,
            cut,
            open,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Polls `/sys/readiness` until its status is `want`; returns the last body.
async fn readiness_until(client: &Client, want: StatusCode) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = client
            .json(Method::GET, "/sys/readiness", None)
            .await
            .unwrap();
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_cache_going_away_and_back() {
    let Ok(redis_url) = std::env::var("REFRACT_TEST_REDIS_URL") else {
        eprintln!("readiness test skipped: REFRACT_TEST_REDIS_URL is not set");
        return;
    };
    let (scheme, rest) = redis_url.split_once("://").unwrap();
    let (userinfo, hostpath) = rest.rsplit_once('@').unwrap_or(("", rest));
    let (authority, path) = hostpath.split_once('/').unwrap_or((hostpath, ""));
    let proxy = CuttableProxy::start(authority.to_string()).await;
    let at = if userinfo.is_empty() {
        String::new()
    } else {
        format!("{userinfo}@")
    };
    let cache_url = format!("{scheme}://{at}{}/{path}", proxy.addr);

    let dir = tempfile::tempdir().unwrap();
    let namespace = format!("ready{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        cache_url: Some(cache_url),
        namespace,
        disable_rate_limit: true,
        ..Config::default()
    };
    let platform = Platform::start_with(config).await.unwrap();
    let client = platform.client();
    let ready = readiness_until(&client, StatusCode::OK).await;
    assert_eq!(ready["checks"]["cache"]["ok"], true, "{ready}");

    proxy.cut();
    let down = readiness_until(&client, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(down["ready"], false);
    assert_eq!(down["error"], "NotReady");
    assert_eq!(down["checks"]["cache"]["ok"], false, "{down}");
    assert!(
        down["checks"]["cache"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    assert!(
        down["message"].as_str().unwrap().contains("cache"),
        "{down}"
    );
    assert_eq!(
        down["checks"]["documents"]["ok"], true,
        "only the cache is down: {down}"
    );
    // Liveness does not follow dependencies: the process still serves.
    let (status, _) = client
        .json(Method::GET, "/sys/healthcheck", None)
        .await
        .unwrap();
    assert_ne!(status, StatusCode::NOT_FOUND);

    proxy.restore();
    let back = readiness_until(&client, StatusCode::OK).await;
    assert_eq!(back["checks"]["cache"]["ok"], true, "{back}");
    // And it serves again without a restart: sessions live in the cache.
    client.signed_up("back@example.com").await.unwrap();
    platform.stop().await.unwrap();
}

/// Spans received by an in-test OTLP/HTTP collector, as (trace id, name, attributes).
type Spans = Arc<Mutex<Vec<(String, String, HashMap<String, String>)>>>;

async fn start_collector() -> (SocketAddr, Spans) {
    let spans: Spans = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return StatusCode::BAD_REQUEST;
                };
                let mut sink = sink.lock().unwrap();
                for span in request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans)
                {
                    let attributes = span
                        .attributes
                        .into_iter()
                        .filter_map(|kv| match kv.value.and_then(|v| v.value) {
                            Some(AnyValue::StringValue(s)) => Some((kv.key, s)),
                            Some(AnyValue::IntValue(i)) => Some((kv.key, i.to_string())),
                            _ => None,
                        })
                        .collect();
                    sink.push((hex(&span.trace_id), span.name, attributes));
                }
                StatusCode::OK
            }
        }),
    );
    let addr = serve_on_loopback(app).await.unwrap();
    (addr, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_webhook_through_the_broker_and_logs_are_json() {
    let (collector, spans) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("refract.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = std::fs::File::create(&log).unwrap();
    let child = Command::new(Path::new(env!("CARGO_BIN_EXE_refract-node")))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("REFRACT_LOG_FORMAT", "json")
        .env("REFRACT_DISABLE_RATE_LIMIT", "true")
        .env("RUST_LOG", "info,sqlx=warn")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("REFRACT_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(child);

    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while http
        .get(format!("{url}/sys/healthcheck"))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refract serve did not start: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = Client {
        http: http.clone(),
        url: url.clone(),
        token: None,
    };
    let ada = client.signed_up("ada@example.com").await.unwrap();
    let ws = ada.workspace("Traced").await.unwrap();
    deploy_order_flow(&ada, &ws).await;
    let correlation = place(&url, &ws, 42).await;
    let done = ada
        .wait_for_event(&ws, "orders.done", |e| {
            e["source"]["correlationId"] == correlation.as_str()
        })
        .await
        .unwrap();
    let traceparent = done["source"]["traceparent"].as_str().map(str::to_string);

    // The runs of both automations (the second one reached through the broker), the emit host
    // calls, and the gateway's request span: one trace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let found = {
            let spans = spans.lock().unwrap();
            let webhook_run = spans.iter().find(|(_, name, a)| {
                name == "execute"
                    && a.get("automation").map(String::as_str) == Some("place")
                    && a.get("correlation_id") == Some(&correlation)
            });
            webhook_run
                .map(|(trace, ..)| trace.clone())
                .filter(|trace| {
                    let in_trace: Vec<_> = spans.iter().filter(|(t, ..)| t == trace).collect();
                    let has = |name: &str, key: &str, value: &str| {
                        in_trace.iter().any(|(_, n, a)| {
                            n == name && a.get(key).map(String::as_str) == Some(value)
                        })
                    };
                    has("execute", "automation", "on-placed")
                        && has("host_call", "call", "emit")
                        && in_trace.iter().any(|(_, n, _)| n == "gateway")
                        && has("event", "event_type", "orders.placed")
                })
        };
        if let Some(trace) = found {
            break trace;
        }
        if tokio::time::Instant::now() > deadline {
            let spans = spans.lock().unwrap();
            panic!(
                "no complete trace for {correlation}; spans: {:#?}",
                spans
                    .iter()
                    .map(|(t, n, a)| (t, n, a.get("correlation_id")))
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The envelope carries the trace context of the span that published it.
    let carried = traceparent.expect("orders.done carries a traceparent");
    assert_eq!(carried.split('-').nth(1), Some(trace.as_str()), "{carried}");

    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut served = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            // Only the CLI's own banner (meant for a person) is not a log line.
            assert!(
                line.starts_with("refract is listening"),
                "not a JSON log line: {line}"
            );
            continue;
        };
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{entry}"
        );
        if entry["message"] == "request served"
            && entry["span"]["correlation_id"] == correlation.as_str()
        {
            served += 1;
            assert_eq!(entry["status"], 200, "{entry}");
        }
    }
    assert_eq!(
        served, 1,
        "one request log line with the webhook's correlation id:\n{text}"
    );
}

/// Every process of a distributed cluster is ready and serves its metrics on its own port;
/// the public side (balancer → gateway) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_process_is_ready_and_scraped_on_its_own_port() {
    use refract_tests::cluster::{LocalCluster, Shape, SharedBackends};
    let backends = match SharedBackends::from_env() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("cluster observability test skipped: {why}");
            return;
        }
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_refract-node"));
    let cluster = LocalCluster::start(
        bin,
        &backends,
        Shape {
            gateways: 1,
            runtimes: 1,
            events: 1,
        },
    )
    .await
    .unwrap();
    let ada = cluster.client().signed_up("ada@example.com").await.unwrap();
    let ws = ada.workspace("Scraped").await.unwrap();
    deploy_order_flow(&ada, &ws).await;
    let correlation = place(&cluster.url, &ws, 1).await;
    ada.wait_for_event(&ws, "orders.done", |e| {
        e["source"]["correlationId"] == correlation.as_str()
    })
    .await
    .unwrap();

    let http = reqwest::Client::new();
    for (name, url) in cluster.nodes() {
        let res = http
            .get(format!("{url}/sys/readiness"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["checks"]["broker"]["ok"], true, "{name}: {body}");
        let (status, text) = scrape(&url, None).await;
        if name.starts_with("gw-") {
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{name}: the gateway's metrics need the internal key"
            );
            assert_eq!(body["upstreams"]["runtime"]["ok"], true, "{name}: {body}");
        } else {
            assert_eq!(status, StatusCode::OK, "{name}");
            assert!(text.contains("http_requests_total"), "{name}: {text}");
        }
        if name.starts_with("rt-") {
            assert!(
                sample(
                    &text,
                    "runs_total",
                    r#"kind="dsl",trigger="event",outcome="success""#
                ) >= 1.0,
                "{name}: {text}"
            );
            assert!(
                text.contains(r#"events_pending{group="runtime"}"#),
                "{name}: {text}"
            );
            assert!(
                text.contains(r#"events_lag{group="runtime"}"#),
                "{name}: {text}"
            );
        }
    }
    let (status, _) = scrape(&cluster.url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
