//! One workspace's load must not starve another's: pool slots, memory, concurrency, throttles.

use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Requests the flooding workspace sends at once: more than the whole instance pool (100).
const FLOOD: usize = 110;

/// Saves the DSL automation `doc` in `ws`.
async fn save(client: &Client, ws: &str, doc: Value) {
    client.create_automation(ws, doc).await.unwrap();
}

/// Emits one event of `ty` in `ws`.
async fn emit(client: &Client, ws: &str, ty: &str) {
    let body = json!({"events": [{"type": ty, "payload": {}}]});
    let (status, answer) = client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(body),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// A workspace whose webhook runs wait (each holding an instance slot) until `release` is emitted.
async fn flooding_workspace(platform: &Platform) -> (Client, String) {
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let ws = mallory.workspace("Flood").await.unwrap();
    let hold = json!({"wait": {"oneOf": [{"event": "flood.release"}], "timeout": 600}});
    save(&mallory, &ws, json!({"slug": "slow", "name": "Slow", "when": {"endpoint": true}, "do": [hold], "output": {"done": true}})).await;
    (mallory, ws)
}

/// A quiet tenant's webhook keeps answering while another workspace holds every instance it can:
/// the flooding workspace gets `Busy` past its share of the pool, the quiet one never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_runs_leaves_pool_slots_for_other_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let (mallory, flood) = flooding_workspace(&platform).await;
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let quiet = ada.workspace("Quiet").await.unwrap();
    save(&ada, &quiet, json!({"slug": "ping", "name": "Ping", "when": {"endpoint": true}, "do": [], "output": {"pong": true}})).await;

    let (answered, mut answers) = tokio::sync::mpsc::channel(FLOOD);
    let mut flood_requests = Vec::new();
    for _ in 0..FLOOD {
        let req = platform
            .client()
            .request(
                Method::POST,
                &format!("/v2/workspaces/{flood}/webhooks/slow"),
            )
            .json(&json!({}));
        let answered = answered.clone();
        flood_requests.push(tokio::spawn(async move {
            let status = req.send().await.map(|r| r.status()).ok();
            let _ = answered.send(status).await;
            status
        }));
    }
    // The first answer comes while every other run waits: the flood holds all it may hold.
    let first = answers.recv().await.unwrap();
    assert_eq!(
        first,
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "the flood is refused past its share"
    );

    for _ in 0..3 {
        let (status, body) = ada
            .json(
                Method::POST,
                &format!("/v2/workspaces/{quiet}/webhooks/ping"),
                Some(json!({})),
            )
            .await
            .unwrap();
        assert_eq!(
            status,
            StatusCode::OK,
            "the quiet workspace still finds a slot: {body}"
        );
        assert_eq!(body, json!({"pong": true}));
    }

    emit(&mallory, &flood, "flood.release").await;
    for request in flood_requests {
        let status = request.await.unwrap();
        assert!(
            matches!(
                status,
                Some(
                    StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                )
            ),
            "{status:?}"
        );
    }
    platform.stop().await.unwrap();
}

/// Emits past a workspace's burst (100 at once, then 30/s: `spec/http-api.md` §14.3) are delayed,
/// not refused, and the delay is reported as `throttled` of the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emits_past_the_workspace_burst_are_delayed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let ws = mallory.workspace("Chatty").await.unwrap();
    // 100 emits a run: the most one run may emit, and the whole burst of the workspace.
    let chatter = json!({"repeat": {"until": 100, "do": [{"emit": {"event": "chatty.tick", "payload": {"i": "{{$index}}"}}}]}});
    save(&mallory, &ws, json!({"slug": "chatter", "name": "Chatter", "when": {"endpoint": true}, "do": [chatter], "output": {"done": true}})).await;
    let mut correlations = Vec::new();
    for _ in 0..2 {
        let res = mallory
            .request(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/chatter"),
            )
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "throttled emits are delayed, not failed"
        );
        correlations.push(
            res.headers()["x-correlation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    let executed = |correlation: String| {
        let mallory = mallory.clone();
        let ws = ws.clone();
        async move {
            mallory
                .wait_for_event(&ws, "runtime.automations.executed", move |e| {
                    e["source"]["correlationId"] == correlation.as_str()
                })
                .await
                .unwrap()
        }
    };
    let second = executed(correlations[1].clone()).await;
    assert_eq!(second["payload"]["status"], "success", "{second}");
    let throttled = second["payload"]["throttled"].as_u64().unwrap_or(0);
    assert!(
        throttled > 0,
        "the second hundred waited for tokens: {second}"
    );
    platform.stop().await.unwrap();
}
