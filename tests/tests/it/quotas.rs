//! End-to-end: quotas and usage (issue: production features, 4). A superadmin lowers a
//! workspace's limit through the API and the next run obeys it, with no restart; the owner sees
//! the effective limits and today's usage, narrows the egress allow-list but cannot raise a
//! limit; usage per day adds up.

use refract::Config;
use refract::admin::{self, AdminCommand};
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    client.json(method, path, body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_lowered_live_holds_on_the_next_run_and_usage_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        ..Config::default()
    };
    let platform = Platform::start_with(config.clone()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let root = platform
        .client()
        .signed_up("root@example.com")
        .await
        .unwrap();
    admin::run(&config, AdminCommand::Grant, "root@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Limited").await.unwrap();
    let flood = json!({"slug": "flood", "name": "Flood", "when": {"endpoint": true}, "do": [
        {"emit": {"event": "tick.one"}}, {"emit": {"event": "tick.two"}}, {"emit": {"event": "tick.three"}}
    ], "output": {"emitted": 3}});
    let (status, body) = call(
        &ada,
        Method::POST,
        &format!("/v2/workspaces/{ws}/automations"),
        Some(flood),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hook = format!("/v2/workspaces/{ws}/webhooks/flood");
    let (status, body) = call(&ada, Method::POST, &hook, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let quotas = format!("/v2/workspaces/{ws}/quotas");
    // The owner may not raise (or set) a limit.
    let (status, body) = call(&ada, Method::PUT, &quotas, Some(json!({"maxEmits": 1000}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A superadmin lowers it: the next run is refused its third emit, without a restart.
    let (status, body) = call(&root, Method::PUT, &quotas, Some(json!({"maxEmits": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sandbox"]["maxEmits"], 2, "{body}");
    let (status, body) = call(&ada, Method::POST, &hook, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("limit"), "{body}");
    let (status, body) = call(
        &root,
        Method::PUT,
        &quotas,
        Some(json!({"maxEmits": 0, "cpuMs": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&root, Method::PUT, &quotas, Some(json!({"memory": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The owner narrows the egress allow-list (it can only take hosts away).
    let (status, body) = call(
        &ada,
        Method::PUT,
        &format!("{quotas}/egress"),
        Some(json!({"allowHosts": ["api.example.com"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["egress"]["narrowedTo"],
        json!(["api.example.com"]),
        "{body}"
    );
    assert_eq!(
        body["sandbox"]["maxEmits"], 2,
        "the superadmin's change stays: {body}"
    );

    // What the owner sees: the effective limits, that they were changed, today's usage.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let seen = loop {
        let (status, body) = call(&ada, Method::GET, &quotas, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let counted = body["usage"]["runs"].as_i64() >= Some(2)
            && body["usage"]["storedBytes"].as_i64() > Some(0);
        if counted || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(seen["changedLive"], true, "{seen}");
    assert_eq!(
        seen["history"],
        json!({"retentionDays": 90, "setByWorkspace": false}),
        "{seen}"
    );
    assert!(
        seen["concurrency"]["eventRunsPerInstance"].as_u64() >= Some(1),
        "{seen}"
    );
    assert_eq!(seen["usage"]["runs"], 2, "{seen}");
    // The two runs' records and the events they emitted, as the history stores them.
    assert!(
        seen["usage"]["storedBytes"].as_i64() > Some(1_000),
        "{seen}"
    );
    assert_eq!(
        seen["usage"]["emits"], 5,
        "3 + 2 before the refusal: {seen}"
    );
    assert!(
        seen["throttles"]["runs"]["perSecond"].as_f64().is_some(),
        "{seen}"
    );

    // Back to the configured policy.
    let (status, body) = call(&root, Method::PUT, &quotas, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sandbox"]["maxEmits"], 100, "{body}");
    assert_eq!(
        body["egress"]["narrowedTo"],
        json!(["api.example.com"]),
        "{body}"
    );
    let (status, body) = call(&ada, Method::POST, &hook, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Usage by day.
    let (status, usage) = call(
        &ada,
        Method::GET,
        &format!("/v2/workspaces/{ws}/usage"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["days"].as_array().unwrap().len(), 30, "{usage}");
    assert!(usage["total"]["runs"].as_i64() >= Some(2), "{usage}");
    let (status, body) = call(
        &ada,
        Method::GET,
        &format!("/v2/workspaces/{ws}/usage?from=2026-01-02&to=2026-01-01"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A stranger sees no workspace.
    let eve = platform
        .client()
        .signed_up("eve@example.com")
        .await
        .unwrap();
    let (status, _) = call(&eve, Method::GET, &quotas, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    platform.stop().await.unwrap();
}
