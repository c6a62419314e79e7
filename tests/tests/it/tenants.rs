//! End-to-end: the runtime holds every tenant's triggers, however many (issue: production
//! features, 5). 2,500 automations over 50 workspaces, more than the 1,000 a single store read
//! returns, are created through the API; after a restart every one of them still runs on its
//! event.

use futures::StreamExt;
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

const WORKSPACES: usize = 50;
const PER_WORKSPACE: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_of_many_tenants_fires_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let mut workspaces = Vec::new();
    for i in 0..WORKSPACES {
        workspaces.push(ada.workspace(&format!("Tenant {i}")).await.unwrap());
    }
    let creates = workspaces.iter().flat_map(|ws| {
        let ada = ada.clone();
        (0..PER_WORKSPACE).map(move |n| {
            let ada = ada.clone();
            let body = json!({"slug": format!("on-tick-{n}"), "name": format!("On tick {n}"),
                "when": {"events": ["tick"]}, "do": [{"set": {"name": "seen", "value": true}}], "output": {"n": n}});
            async move {
                ada.json(
                    Method::POST,
                    &format!("/v2/workspaces/{ws}/automations"),
                    Some(body),
                )
                .await
            }
        })
    });
    let created: Vec<_> = futures::stream::iter(creates)
        .buffer_unordered(8)
        .collect()
        .await;
    for result in created {
        let (status, body) = result.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    platform.stop().await.unwrap();

    // A new process on the same data: its index is read from the store alone.
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = Client {
        url: platform.url.clone(),
        ..ada
    };
    for ws in &workspaces {
        let (status, body) = ada
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/events"),
                Some(json!({"events": [{"type": "tick", "payload": {}}]})),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    for ws in &workspaces {
        loop {
            let (status, body) = ada
                .json(
                    Method::GET,
                    &format!(
                        "/v2/workspaces/{ws}/events?types=runtime.automations.executed&limit=100"
                    ),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            let mut slugs: Vec<String> = body["result"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["payload"]["status"] == "success")
                .filter_map(|e| e["payload"]["slug"].as_str().map(str::to_owned))
                .collect();
            slugs.sort();
            slugs.dedup();
            if slugs.len() == PER_WORKSPACE {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "workspace {ws}: {} of {PER_WORKSPACE} automations ran: {slugs:?}",
                slugs.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    platform.stop().await.unwrap();
}
