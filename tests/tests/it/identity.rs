//! Identity and access through the gateway (issue 7): no tenant reaches another's workspace,
//! spoofed trusted headers are ignored, a workspace API key can do only what its rules say,
//! custom roles and public shares work end to end, and rate limits hold across two gateways
//! sharing Redis.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use refract_gateway::ratelimit::{Limit, RateLimits};
use refract_storage::{Cache, Collections, DocumentStore, Expect, MemoryStore, collections};
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every [core] workspace route a tenant could aim at another tenant's workspace, with a body
/// that would succeed on its own workspace.
fn core_routes(ws: &str) -> Vec<(Method, String, Option<Value>)> {
    let p = |s: &str| format!("/v2/workspaces/{ws}{s}");
    vec![
        (Method::GET, p(""), None),
        (Method::PATCH, p(""), Some(json!({"name": "taken"}))),
        (Method::DELETE, p(""), None),
        (Method::GET, p("/automations"), None),
        (
            Method::POST,
            p("/automations"),
            Some(json!({"slug": "x", "name": "X", "component": {}})),
        ),
        (Method::GET, p("/automations/echo"), None),
        (
            Method::PATCH,
            p("/automations/echo"),
            Some(json!({"name": "taken"})),
        ),
        (Method::DELETE, p("/automations/echo"), None),
        (Method::GET, p("/automations/echo/component"), None),
        (Method::GET, p("/security"), None),
        (
            Method::PUT,
            p("/security"),
            Some(json!({"authorizations": {"rules": []}})),
        ),
        (Method::GET, p("/security/roles"), None),
        (Method::GET, p("/security/apikeys"), None),
        (
            Method::POST,
            p("/security/apikeys"),
            Some(json!({"name": "k", "rules": []})),
        ),
        (Method::GET, p("/security/secrets"), None),
        (
            Method::PATCH,
            p("/security/secrets"),
            Some(json!({"TOKEN": {"value": "stolen"}})),
        ),
        (Method::DELETE, p("/security/secrets/TOKEN"), None),
        (Method::GET, p("/permissions"), None),
        (
            Method::POST,
            p("/permissions"),
            Some(json!({"target": {"public": true}, "permissions": {"role": "viewer"}})),
        ),
        (Method::GET, p("/events"), None),
        (
            Method::POST,
            p("/events"),
            Some(json!({"events": [{"type": "custom.ping", "payload": {}}]})),
        ),
        (Method::POST, p("/test/echo"), Some(json!({"payload": {}}))),
    ]
}

/// A workspace of `owner` with an automation `echo` and a secret `TOKEN`.
async fn furnished(owner: &Client, name: &str) -> String {
    let ws = owner.workspace(name).await.expect("a workspace");
    let automation =
        json!({"slug": "echo", "name": "Echo", "when": {"endpoint": true}, "component": {}});
    owner
        .deploy(
            &ws,
            automation,
            &refract_tests::platform::example("webhook-echo").expect("the echo example"),
        )
        .await
        .expect("deployed");
    let (status, body) = owner
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}/security/secrets"),
            Some(json!({"TOKEN": {"value": "s3cret"}})),
        )
        .await
        .expect("secrets written");
    assert_eq!(status, StatusCode::OK, "{body}");
    ws
}

async fn api_key(owner: &Client, ws: &str, rules: Value) -> String {
    let (status, body) = owner
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/security/apikeys"),
            Some(json!({"name": "ci", "rules": rules})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["apiKey"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reaches_another_tenants_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let alice = platform
        .client()
        .signed_up("alice@example.com")
        .await
        .unwrap();
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let victim = furnished(&alice, "Victim").await;
    let own = mallory.workspace("Mallory").await.unwrap();
    // Mallory's own API key, with every right on her own workspace.
    let key = api_key(&mallory, &own, json!([{"action": "manage", "subject": ["workspaces", "automations", "events", "secrets"]}])).await;

    let guessed = "0123456789abcdef0123456789abcdef";
    for (method, path, body) in core_routes(&victim).into_iter().chain(core_routes(guessed)) {
        // As Mallory's user, and as her workspace's API key: no answer tells a stranger's
        // workspace from one that does not exist.
        let (status, answer) = mallory
            .json(method.clone(), &path, body.clone())
            .await
            .unwrap();
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {path} as mallory: {answer}"
        );
        let mut req = platform
            .client()
            .request(method.clone(), &path)
            .header("x-prismeai-api-key", &key);
        if let Some(body) = &body {
            req = req.json(body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED,
            "{method} {path} with mallory's key: {status} {}",
            res.text().await.unwrap_or_default()
        );
    }
    // Alice's things are intact.
    let (status, body) = alice
        .json(
            Method::GET,
            &format!("/v2/workspaces/{victim}/automations/echo"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Echo");
    let (_, secrets) = alice
        .json(
            Method::GET,
            &format!("/v2/workspaces/{victim}/security/secrets"),
            None,
        )
        .await
        .unwrap();
    assert!(secrets.get("TOKEN").is_some(), "{secrets}");
    let (_, shares) = alice
        .json(
            Method::GET,
            &format!("/v2/workspaces/{victim}/permissions"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        shares["result"].as_array().map(Vec::len),
        Some(1),
        "{shares}"
    );
    platform.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_trusted_headers_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let alice = platform
        .client()
        .signed_up("alice@example.com")
        .await
        .unwrap();
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let ws = alice.workspace("Private").await.unwrap();
    let (_, me) = alice.json(Method::GET, "/v2/me", None).await.unwrap();
    let alice_id = me["id"].as_str().unwrap().to_string();
    let path = format!("/v2/workspaces/{ws}");
    let spoof = |req: reqwest::RequestBuilder| {
        req.header("x-prismeai-user-id", &alice_id)
            .header("x-prismeai-role", "superadmin")
            .header("x-prismeai-auth-data", r#"{"prismeai":{"id":"x"}}"#)
            .header("x-refract-gateway-key", "0123456789abcdef0123")
    };
    let res = spoof(platform.client().request(Method::GET, &path))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = spoof(mallory.request(Method::GET, &path))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = spoof(mallory.request(Method::DELETE, &path))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (status, _) = alice.json(Method::GET, &path, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "the workspace survived");
    platform.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_does_only_what_its_rules_say() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let alice = platform
        .client()
        .signed_up("alice@example.com")
        .await
        .unwrap();
    let ws = furnished(&alice, "Keys").await;
    let events_only = api_key(
        &alice,
        &ws,
        json!([{"action": "read", "subject": "events"}]),
    )
    .await;
    let reader = api_key(
        &alice,
        &ws,
        json!([{"action": "read", "subject": ["workspaces", "automations"]}]),
    )
    .await;
    let keyed = |key: &str, method: Method, path: &str| {
        platform
            .client()
            .request(method, format!("/v2/workspaces/{ws}{path}").as_str())
            .header("x-prismeai-api-key", key.to_string())
    };

    // The events-only key cannot deploy a component, change an automation or read secrets.
    let wasm = refract_tests::platform::example("webhook-echo").unwrap();
    let res = keyed(&events_only, Method::PUT, "/automations/echo/component")
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let res = keyed(&events_only, Method::PATCH, "/automations/echo")
        .json(&json!({"name": "pwned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = keyed(&events_only, Method::GET, "/security/secrets")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = keyed(&events_only, Method::POST, "/security/apikeys")
        .json(&json!({"name": "more", "rules": []}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());

    // The reader key, alone, reads what its rules allow.
    let res = keyed(&reader, Method::GET, "/automations/echo")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Echo");

    // Test runs follow the rules too: reading is not testing; a key allowed to test may.
    let res = keyed(&reader, Method::POST, "/test/echo")
        .json(&json!({"payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let tester = api_key(
        &alice,
        &ws,
        json!([{"action": "test", "subject": "automations"}]),
    )
    .await;
    let res = keyed(&tester, Method::POST, "/test/echo")
        .json(&json!({"payload": {"hello": "key"}}))
        .send()
        .await
        .unwrap();
    // The run happened: webhook-echo itself refuses a call that is not a webhook.
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["details"]["error"], "NotAWebhook", "{body}");

    // Listed without values, revoked at once.
    let (status, keys) = alice
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/security/apikeys"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let keys = keys.as_array().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .all(|k| k.get("apiKey").is_none()
                && k["keyHint"].as_str().is_some_and(|h| h.len() == 4))
    );
    let reader_id = keys
        .iter()
        .find(|k| reader.ends_with(k["keyHint"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = alice
        .json(
            Method::DELETE,
            &format!("/v2/workspaces/{ws}/security/apikeys/{reader_id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let res = keyed(&reader, Method::GET, "/automations/echo")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    platform.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_roles_and_public_shares_grant_exactly_their_rules() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let alice = platform
        .client()
        .signed_up("alice@example.com")
        .await
        .unwrap();
    let bob = platform
        .client()
        .signed_up("bob@example.com")
        .await
        .unwrap();
    let carl = platform
        .client()
        .signed_up("carl@example.com")
        .await
        .unwrap();
    let ws = furnished(&alice, "Roles").await;
    let (_, me) = bob.json(Method::GET, "/v2/me", None).await.unwrap();
    let bob_id = me["id"].as_str().unwrap().to_string();
    let security = json!({"authorizations": {
        "roles": {"auditor": {"description": "reads automations"}},
        "rules": [{"role": "auditor", "action": "read", "subject": ["workspaces", "automations"]}]
    }});
    let (status, body) = alice
        .json(
            Method::PUT,
            &format!("/v2/workspaces/{ws}/security"),
            Some(security),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let share = json!({"target": {"id": bob_id}, "permissions": {"role": "auditor"}});
    let (status, body) = alice
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(share),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = alice
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(json!({"target": {"id": bob_id}, "permissions": {"role": "ghost"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Bob reads what the rule allows and nothing else; Carl, a stranger, sees nothing.
    let automation = format!("/v2/workspaces/{ws}/automations/echo");
    assert_eq!(
        bob.json(Method::GET, &automation, None).await.unwrap().0,
        StatusCode::OK
    );
    assert_eq!(
        bob.json(Method::PATCH, &automation, Some(json!({"name": "x"})))
            .await
            .unwrap()
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/security/secrets"),
            None
        )
        .await
        .unwrap()
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        carl.json(Method::GET, &automation, None).await.unwrap().0,
        StatusCode::NOT_FOUND
    );

    // Shared with the public as viewer: Carl reads, still cannot write.
    let public = json!({"target": {"public": true}, "permissions": {"role": "viewer"}});
    let (status, body) = alice
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(public),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        carl.json(Method::GET, &automation, None).await.unwrap().0,
        StatusCode::OK
    );
    assert_eq!(
        carl.json(Method::DELETE, &automation, None)
            .await
            .unwrap()
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = alice
        .json(
            Method::DELETE,
            &format!("/v2/workspaces/{ws}/permissions/*"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        carl.json(Method::GET, &automation, None).await.unwrap().0,
        StatusCode::NOT_FOUND
    );
    platform.stop().await.unwrap();
}

/// A gateway on the shared store and its own connection to the shared Redis, in front of a
/// stub backend that answers every webhook with 200.
async fn gateway(
    store: Arc<MemoryStore>,
    redis: &str,
    namespace: &str,
    limits: RateLimits,
) -> (String, tokio::task::JoinHandle<()>) {
    let cache: Arc<dyn Cache> = refract_storage::open_cache(redis, namespace).await.unwrap();
    let broker = Arc::new(refract_broker::MemoryBroker::new(
        refract_broker::BrokerConfig::default(),
    ));
    let stub = Router::new().fallback(|| async { axum::Json(json!({"ran": true})) });
    let upstreams = refract_gateway::Upstreams {
        workspaces: refract_gateway::Upstream::InProcess(stub.clone()),
        runtime: refract_gateway::Upstream::InProcess(stub.clone()),
        events: refract_gateway::Upstream::InProcess(stub),
    };
    let config = refract_gateway::Config {
        rate_limits: Some(limits),
        ..refract_gateway::Config::embedded()
    };
    let store: Arc<dyn DocumentStore> = store;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_two_gateways_sharing_redis() {
    let Ok(redis) = std::env::var("REFRACT_TEST_REDIS_URL") else {
        eprintln!("skipped: REFRACT_TEST_REDIS_URL is needed for two gateways sharing Redis");
        return;
    };
    let namespace = format!("ratelimit-{}-{}", std::process::id(), rand_suffix());
    // Hour-long windows, so the test never straddles a window boundary in practice.
    let limits = RateLimits {
        login_email: Limit::per(3, 3600),
        signup_ip: Limit::per(10, 3600),
        webhooks_workspace: Limit::per(1000, 3600),
        ..RateLimits::default()
    };
    let store = Arc::new(MemoryStore::new());
    let (a, server_a) = gateway(store.clone(), &redis, &namespace, limits).await;
    let (b, server_b) = gateway(store.clone(), &redis, &namespace, limits).await;
    let http = reqwest::Client::new();

    // Login attempts on one account, alternating gateways: the fourth is refused on either.
    let signup = json!({"email": "ann@example.com", "password": "correct horse battery", "firstName": "Ann"});
    assert_eq!(
        http.post(format!("{a}/v2/signup"))
            .json(&signup)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let wrong = json!({"email": "ann@example.com", "password": "wrong password!"});
    for (i, url) in [&a, &b, &a].into_iter().enumerate() {
        let res = http
            .post(format!("{url}/v2/login"))
            .json(&wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(
            res.headers()["x-ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
    }
    let res = http
        .post(format!("{b}/v2/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "TooManyRequests");
    assert_eq!(body["details"]["retryAfter"], retry);
    // Even the right password waits: the budget protects the account, not the guess.
    let right = json!({"email": "ann@example.com", "password": "correct horse battery"});
    assert_eq!(
        http.post(format!("{a}/v2/login"))
            .json(&right)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // A workspace's own webhook limit (a system secret) holds across both gateways too.
    let secret = json!({"workspaceId": "w1", "name": "prismeai_ratelimit_http_webhooks_workspace", "value": "4/3600"});
    store
        .put(
            &collections::SECRETS,
            "w1:prismeai_ratelimit_http_webhooks_workspace",
            &secret,
            Expect::Any,
        )
        .await
        .unwrap();
    for url in [&a, &b, &a, &b] {
        let res = http
            .post(format!("{url}/v2/workspaces/w1/webhooks/hook"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-ratelimit-limit"], "4");
    }
    let res = http
        .post(format!("{a}/v2/workspaces/w1/webhooks/hook"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another workspace keeps its own budget.
    let res = http
        .post(format!("{b}/v2/workspaces/w2/webhooks/hook"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server_a.abort();
    server_b.abort();
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}
