//! Backends reached directly, forged identity headers, accounts and rate limits (gateway).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use refract::Config;
use refract::admin::{self, AdminCommand};
use refract_tests::cluster::{LocalCluster, Shape, SharedBackends};
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The headers a gateway would set for `user_id` as a superadmin: what an attacker who
/// reaches a backend's port sends.
fn forged(req: reqwest::RequestBuilder, user_id: &str) -> reqwest::RequestBuilder {
    req.header("x-prismeai-user-id", user_id)
        .header("x-prismeai-role", "superadmin")
        .header("x-prismeai-auth-data", r#"{"prismeai":{"id":"x"}}"#)
}

async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn user_id(client: &Client) -> String {
    let (status, me) = client.json(Method::GET, "/v2/me", None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{me}");
    me["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reached_directly_believes_no_forged_identity() {
    let Ok(shared) = SharedBackends::from_env() else {
        eprintln!(
            "skipped: REFRACT_TEST_REDIS_URL and REFRACT_TEST_DATABASE_URL are needed for a cluster"
        );
        return;
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_refract-node"));
    let shape = Shape {
        gateways: 1,
        runtimes: 1,
        events: 1,
    };
    let cluster = LocalCluster::start(bin, &shared, shape).await.unwrap();
    let alice = cluster
        .client()
        .signed_up("alice@example.com")
        .await
        .unwrap();
    let mallory = cluster
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let ws = alice.workspace("Private").await.unwrap();
    let alice_id = user_id(&alice).await;
    let http = reqwest::Client::new();
    let direct = |node: &str, method: Method, path: &str| {
        forged(
            http.request(method, format!("{}{path}", cluster.node_url(node).unwrap())),
            &alice_id,
        )
    };
    let workspace = format!("/v2/workspaces/{ws}");

    // Every backend refuses the forged superadmin without the key (401), and with a wrong
    // one (403), whatever the route.
    for (node, method, path) in [
        ("ws-1", Method::GET, workspace.clone()),
        ("ws-1", Method::DELETE, workspace.clone()),
        ("ws-1", Method::GET, "/v2/workspaces".to_string()),
        ("ws-1", Method::GET, "/no/such/route".to_string()),
        ("rt-1", Method::POST, format!("{workspace}/test/anything")),
        ("ev-1", Method::GET, format!("{workspace}/events")),
    ] {
        let (status, body) = answer(direct(node, method.clone(), &path)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{node} {method} {path}: {body}"
        );
        assert_eq!(body["error"], "AuthenticationError", "{body}");
        let wrong = direct(node, method.clone(), &path)
            .header("x-refract-gateway-key", "0123456789abcdef0123");
        let (status, body) = answer(wrong).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{node} {method} {path}: {body}"
        );
        assert_eq!(body["error"], "ForbiddenError", "{body}");
    }
    // Probes still reach the operational routes.
    let health = http.get(format!(
        "{}/sys/healthcheck",
        cluster.node_url("ws-1").unwrap()
    ));
    assert_eq!(answer(health).await.0, StatusCode::OK);

    // Through the gateway, which sends the key: the owner reads, another tenant does not see
    // it, and forged headers sent to the gateway change nothing.
    let (status, body) = alice.json(Method::GET, &workspace, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = answer(forged(mallory.request(Method::GET, &workspace), &alice_id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = answer(forged(
        mallory.request(Method::DELETE, &workspace),
        &alice_id,
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = alice.json(Method::GET, &workspace, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "the workspace survived");

    // A WebSocket upgrade through the gateway carries the key too.
    let url = format!(
        "{}{workspace}/events/ws",
        cluster.url.replacen("http", "ws", 1)
    );
    let mut req = url.into_client_request().unwrap();
    let bearer = format!("Bearer {}", alice.token.as_deref().unwrap());
    req.headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the upgrade through the gateway");
    let hello = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(hello.to_string().contains("hello"), "{hello}");
}

/// Runs `refract-node workspaces --listen <listen>` with `env`; returns its exit success and
/// what it printed, or fails the test if it is still running after a while (it started).
fn start_backend(listen: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_refract-node"));
    command
        .args(["workspaces", "--listen", listen])
        .env("REFRACT_DATA_DIR", dir.path().join("data"))
        .env_remove("REFRACT_GATEWAY_KEY")
        .env_remove("REFRACT_REQUIRE_GATEWAY_KEY")
        .env_remove("REFRACT_CONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the backend started: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[test]
fn a_backend_off_loopback_refuses_to_start_without_a_gateway_key() {
    let (ok, out) = start_backend("0.0.0.0:0", &[]);
    assert!(
        !ok && out.contains("gateway_key") && out.contains("REFRACT_GATEWAY_KEY"),
        "{out}"
    );
    // Turning the key off is for loopback only.
    let (ok, out) = start_backend("0.0.0.0:0", &[("REFRACT_REQUIRE_GATEWAY_KEY", "false")]);
    assert!(!ok && out.contains("require_gateway_key"), "{out}");
    let (ok, out) = start_backend("127.0.0.1:0", &[]);
    assert!(
        !ok && out.contains("gateway_key"),
        "a key is needed on loopback too unless turned off: {out}"
    );
    let (ok, out) = start_backend("0.0.0.0:0", &[("REFRACT_GATEWAY_KEY", "short")]);
    assert!(!ok && out.contains("at least 16"), "{out}");
}

/// A system secret (`prismeai_*`): writable by platform superadmins only.
async fn write_system_secret(client: &Client, ws: &str) -> (StatusCode, Value) {
    let body = json!({ "prismeai_ratelimit_http_webhooks_user": { "value": "1000/60" } });
    client
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}/security/secrets"),
            Some(body),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_up_with_a_listed_email_makes_no_superadmin_until_an_operator_grants_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        super_admin_emails: vec!["root@example.com".into()],
        ..Config::default()
    };
    let platform = Platform::start_with(config.clone()).await.unwrap();
    let bob = platform
        .client()
        .signed_up("bob@example.com")
        .await
        .unwrap();
    let bobs = bob.workspace("Bob's").await.unwrap();
    // The first to sign up with the listed address: an ordinary account.
    let root = platform
        .client()
        .signed_up("Root@Example.com")
        .await
        .unwrap();
    let own = root.workspace("Root's").await.unwrap();
    let (status, body) = write_system_secret(&root, &own).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "ForbiddenError");
    let (status, _) = root
        .json(Method::GET, &format!("/v2/workspaces/{bobs}"), None)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's workspace stays hidden"
    );

    // An operator grants it against the database: superadmin from the next request on.
    let done = admin::run(&config, AdminCommand::Grant, "root@example.com")
        .await
        .unwrap();
    assert!(done.contains("superadmin"), "{done}");
    let (status, body) = write_system_secret(&root, &own).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = root
        .json(Method::GET, &format!("/v2/workspaces/{bobs}"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // And takes it back.
    admin::run(&config, AdminCommand::Revoke, "root@example.com")
        .await
        .unwrap();
    let (status, _) = write_system_secret(&root, &own).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        admin::run(&config, AdminCommand::Grant, "nobody@example.com")
            .await
            .is_err()
    );
    platform.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_account_is_refused_on_every_route_with_every_credential() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        ..Config::default()
    };
    let platform = Platform::start_with(config.clone()).await.unwrap();
    let ann = platform
        .client()
        .signed_up("ann@example.com")
        .await
        .unwrap();
    let ws = ann.workspace("Ann's").await.unwrap();
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (status, body) = ann
        .json(
            Method::POST,
            "/v2/user/accessTokens",
            Some(json!({ "name": "ci", "expiresAt": expires })),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let pat = Client {
        token: Some(body["token"].as_str().unwrap().to_string()),
        ..platform.client()
    };
    let routes = [
        "/v2/workspaces".to_string(),
        format!("/v2/workspaces/{ws}"),
        format!("/v2/workspaces/{ws}/events"),
        "/v2/me".into(),
    ];
    for client in [&ann, &pat] {
        for path in &routes {
            let (status, body) = client.json(Method::GET, path, None).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
    }

    admin::run(&config, AdminCommand::Deactivate, "ann@example.com")
        .await
        .unwrap();
    for (who, client) in [("session", &ann), ("access token", &pat)] {
        for path in &routes {
            let (status, body) = client.json(Method::GET, path, None).await.unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{who} on {path}: {body}");
            assert_eq!(body["error"], "AuthenticationError");
        }
        let (status, _) = client
            .json(
                Method::POST,
                "/v2/workspaces",
                Some(json!({ "name": "More" })),
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{who} creating a workspace"
        );
    }
    let login = platform
        .client()
        .logged_in("ann@example.com", "correct horse battery")
        .await;
    assert!(login.is_err(), "no new session either");

    admin::run(&config, AdminCommand::Activate, "ann@example.com")
        .await
        .unwrap();
    let (status, _) = pat.json(Method::GET, "/v2/workspaces", None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "reactivated");
    platform.stop().await.unwrap();
}
