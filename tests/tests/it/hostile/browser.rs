//! What a browser or a client in front of the gateway can do with addresses and spellings:
//! re-encoding a path for a fresh rate-limit budget, forging `X-Forwarded-For`, a foreign page
//! triggering a webhook with the victim's cookie, webhooks on the console's origin.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use refract_gateway::ratelimit::{Limit, RateLimits};
use refract_storage::{Cache, DocumentStore, MemoryStore};
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A gateway with `config` on a loopback port, in front of stub backends that answer every
/// request with the path and the `x-forwarded-for` they received.
async fn gateway(config: refract_gateway::Config) -> (String, tokio::task::JoinHandle<()>) {
    let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
    let cache: Arc<dyn Cache> = Arc::new(refract_storage::cache::MemoryCache::new("browser"));
    let broker = Arc::new(refract_broker::MemoryBroker::new(
        refract_broker::BrokerConfig::default(),
    ));
    let stub = Router::new().fallback(|req: Request| async move {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        axum::Json(json!({"path": req.uri().path(), "forwardedFor": forwarded}))
    });
    let upstreams = refract_gateway::Upstreams {
        workspaces: refract_gateway::Upstream::InProcess(stub.clone()),
        runtime: refract_gateway::Upstream::InProcess(stub.clone()),
        events: refract_gateway::Upstream::InProcess(stub),
    };
    let state =
        refract_gateway::GatewayState::new(config, store, cache, broker, upstreams).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = refract_gateway::router(state);
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    (url, server)
}

/// Rate limits with hour-long windows (a test never straddles a window in practice).
fn limits(tweak: impl FnOnce(&mut RateLimits)) -> refract_gateway::Config {
    let mut limits = RateLimits {
        signup_ip: Limit::per(100, 3600),
        login_ip: Limit::per(100, 3600),
        ..RateLimits::default()
    };
    tweak(&mut limits);
    refract_gateway::Config {
        rate_limits: Some(limits),
        ..refract_gateway::Config::embedded()
    }
}

/// A signed-up user's client on a bare gateway.
async fn user(url: &str, email: &str) -> Client {
    let client = Client {
        http: reqwest::Client::new(),
        url: url.to_string(),
        token: None,
    };
    client.signed_up(email).await.unwrap()
}

/// Issue #20 item 9: once a workspace's webhook budget is spent, writing a character of its id
/// percent-encoded (`%34` for `4`) names the same workspace, so it gets 429 too; an encoded
/// `/` that could move the request to another route is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_id_shares_the_webhook_budget() {
    let (url, server) = gateway(limits(|l| l.webhooks_user = Limit::per(2, 3600))).await;
    let http = reqwest::Client::new();
    let hook = |path: &str| http.post(format!("{url}{path}")).send();
    for _ in 0..2 {
        let res = hook("/v2/workspaces/4ws/webhooks/hook").await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(
        hook("/v2/workspaces/4ws/webhooks/hook")
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    for spelling in [
        "/v2/workspaces/%34ws/webhooks/hook",
        "/v2/workspaces/%34%77%73/webhooks/hook",
        "/v2/workspaces/4ws/webhooks/%68ook",
        "/v2/%77orkspaces/4ws/%77ebhooks/hook",
    ] {
        let res = hook(spelling).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{spelling}");
    }
    // The backend gets the one spelling the limiter counted.
    let res = hook("/v2/workspaces/%35ws/webhooks/hook").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["path"], "/v2/workspaces/5ws/webhooks/hook");
    // An encoded separator is not guessed at.
    let res = hook("/v2/workspaces/4ws%2Fwebhooks%2Fx/webhooks/hook")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "RequestValidationError", "{body}");
    server.abort();
}

/// Issue #20 item 9: the limits of spec §14.1 that were missing (workspace creation, imports,
/// component uploads, client emits, WebSocket upgrades) answer 429 once spent, and one
/// user's spent budget is not another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_of_the_spec_answers_429() {
    let config = limits(|l| {
        l.workspace_create_user = Limit::per(3, 3600);
        l.imports_user = Limit::per(1, 3600);
        l.component_upload_user = Limit::per(1, 3600);
        l.emits_user = Limit::per(1, 3600);
        l.sockets_user = Limit::per(1, 3600);
    });
    let (url, server) = gateway(config).await;
    let ada = user(&url, "ada@example.com").await;
    for i in 0..3 {
        let (status, body) = ada
            .json(Method::POST, "/v2/workspaces", Some(json!({"name": "W"})))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "workspace {i}: {body}");
    }
    let (status, body) = ada
        .json(Method::POST, "/v2/workspaces", Some(json!({"name": "W"})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "TooManyRequests");

    let routes = [
        (Method::POST, "/v2/workspaces/w1/import"),
        (Method::POST, "/v2/workspaces/w1/versions/v1/pull"),
        (Method::PUT, "/v2/workspaces/w1/automations/a/component"),
        (Method::POST, "/v2/workspaces/w1/events"),
        (Method::GET, "/v2/workspaces/w1/events/ws"),
    ];
    for (method, path) in &routes {
        // Imports and pulls share one budget: the pull finds it spent.
        if *path != "/v2/workspaces/w1/versions/v1/pull" {
            let res = ada.request(method.clone(), path).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{method} {path}");
        }
        let res = ada.request(method.clone(), path).send().await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{method} {path}"
        );
    }
    let bob = user(&url, "bob@example.com").await;
    let (status, _) = bob
        .json(Method::POST, "/v2/workspaces", Some(json!({"name": "B"})))
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "another user has a budget of its own"
    );
    server.abort();
}

/// Issue #20 item 9: a client that writes `X-Forwarded-For` itself neither picks its rate-limit
/// key nor its address as the backends see it; behind a trusted proxy, the client is the
/// nearest hop the proxy appended, not what the client wrote before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarded_for_does_not_move_the_client() {
    let anonymous = |l: &mut RateLimits| l.anonymous_ip = Limit::per(2, 3600);
    let http = reqwest::Client::new();

    let (url, server) = gateway(limits(anonymous)).await;
    let login = |xff: &str| {
        http.post(format!("{url}/v2/login/anonymous"))
            .header("x-forwarded-for", xff)
            .send()
    };
    for forged in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(login(forged).await.unwrap().status(), StatusCode::OK);
    }
    let res = login("198.51.100.3").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = http
        .post(format!("{url}/v2/workspaces/w1/webhooks/hook"))
        .header("x-forwarded-for", "198.51.100.4")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["forwardedFor"], "127.0.0.1");
    server.abort();

    // The same gateway behind a load balancer on loopback.
    let config = refract_gateway::Config {
        trusted_proxies: vec!["127.0.0.0/8".into()],
        ..limits(anonymous)
    };
    let (url, server) = gateway(config).await;
    let login = |xff: &str| {
        http.post(format!("{url}/v2/login/anonymous"))
            .header("x-forwarded-for", xff)
            .send()
    };
    // The client forged the first hop; the balancer appended the real one.
    for forged in ["198.51.100.1, 203.0.113.7", "198.51.100.2, 203.0.113.7"] {
        assert_eq!(login(forged).await.unwrap().status(), StatusCode::OK);
    }
    let res = login("198.51.100.3, 203.0.113.7").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = login("203.0.113.8").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "another client behind the balancer"
    );
    let res = http
        .post(format!("{url}/v2/workspaces/w1/webhooks/hook"))
        .header("x-forwarded-for", "198.51.100.4, 203.0.113.9")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["forwardedFor"], "203.0.113.9");
    server.abort();
}

/// Ada's workspace with a DSL webhook `whoami` answering the run's user id; returns
/// `(ada, ada's id, workspace)`.
async fn whoami(platform: &Platform) -> (Client, String, String) {
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let (_, me) = ada.json(Method::GET, "/v2/me", None).await.unwrap();
    let ada_id = me["id"].as_str().unwrap().to_string();
    let ws = ada.workspace("Hooks").await.unwrap();
    let automation = json!({"slug": "whoami", "name": "Who am I", "when": {"endpoint": true},
        "do": [{"set": {"name": "seen", "value": true}}],
        "output": {"user": "{{user.id}}"}});
    ada.create_automation(&ws, automation).await.unwrap();
    (ada, ada_id, ws)
}

/// The `user` a webhook run saw, for a GET with `headers`.
async fn run_as(url: &str, ws: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = reqwest::Client::new().get(format!("{url}/v2/workspaces/{ws}/webhooks/whoami"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["user"].clone()
}

/// Issue #20 item 10: a foreign page that makes the signed-in victim's browser GET a webhook
/// (a link, an image, a fetch) runs it anonymously; the console's own pages keep the user, and
/// credentials sent as headers are not ambient, so they are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_get_runs_a_webhook_anonymously() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let (ada, ada_id, ws) = whoami(&platform).await;
    let cookie = format!("access-token={}", ada.token.clone().unwrap());
    let cookie = cookie.as_str();
    let url = &platform.url;
    let origin = platform.url.as_str();

    let cross_site = [
        vec![("cookie", cookie), ("sec-fetch-site", "cross-site")],
        vec![
            ("cookie", cookie),
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        vec![("cookie", cookie), ("sec-fetch-site", "same-site")],
        // A top-level navigation from a link in a mail or another site.
        vec![("cookie", cookie), ("sec-fetch-site", "none")],
        // An old browser: no Fetch Metadata, a foreign Origin.
        vec![("cookie", cookie), ("origin", "https://evil.example")],
    ];
    for headers in &cross_site {
        let user = run_as(url, &ws, headers).await;
        assert_ne!(user, json!(ada_id), "{headers:?}");
    }
    let same_origin = [
        vec![("cookie", cookie), ("sec-fetch-site", "same-origin")],
        vec![("cookie", cookie), ("origin", origin)],
    ];
    for headers in &same_origin {
        assert_eq!(
            run_as(url, &ws, headers).await,
            json!(ada_id),
            "{headers:?}"
        );
    }
    let bearer = format!("Bearer {}", ada.token.clone().unwrap());
    let headers = [
        ("authorization", bearer.as_str()),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(run_as(url, &ws, &headers).await, json!(ada_id));
    platform.stop().await.unwrap();
}

/// Issue #20 item 1: the console's page forbids inline script, framing and MIME sniffing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_sends_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    for path in ["/", "/workspaces/w1", "/js/main.js"] {
        let res = platform
            .client()
            .request(Method::GET, path)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: {directive} missing in {csp}"
            );
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    platform.stop().await.unwrap();
}

/// Issue #20 item 1: with `webhooks_origin`, webhooks leave the console's host (308 to the same
/// path and query), and the webhooks host serves webhooks only, never with the session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_live_on_their_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let config = refract::Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        webhooks_origin: Some("http://hooks.test".into()),
        ..refract::Config::default()
    };
    let platform = Platform::start_with(config).await.unwrap();
    let (ada, ada_id, ws) = whoami(&platform).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let hook = format!("/v2/workspaces/{ws}/webhooks/whoami?x=1&y=%20");

    for method in [Method::GET, Method::POST] {
        let res = http
            .request(method.clone(), format!("{}{hook}", platform.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT, "{method}");
        assert_eq!(
            res.headers()["location"],
            format!("http://hooks.test{hook}").as_str()
        );
    }

    let on_hooks = |method: Method, path: &str| {
        http.request(method, format!("{}{path}", platform.url))
            .header("host", "hooks.test")
    };
    let cookie = format!("access-token={}", ada.token.clone().unwrap());
    let res = on_hooks(Method::GET, &hook)
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_ne!(
        body["user"],
        json!(ada_id),
        "no cookie identity on the webhooks host"
    );
    let bearer = format!("Bearer {}", ada.token.clone().unwrap());
    let res = on_hooks(Method::GET, &hook)
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["user"],
        json!(ada_id),
        "a bearer token still works there"
    );

    let workspace = format!("/v2/workspaces/{ws}");
    for path in ["/", "/js/main.js", "/v2/me", workspace.as_str()] {
        let res = on_hooks(Method::GET, path)
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "ObjectNotFoundError", "{path}");
    }
    let res = on_hooks(Method::GET, "/sys/healthcheck")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The console and the API stay on the main host.
    let res = http.get(format!("{}/", platform.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = ada.json(Method::GET, "/v2/me", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    platform.stop().await.unwrap();
}
