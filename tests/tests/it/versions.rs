//! Automation versions through the gateway: every save keeps the automation as it was, a
//! restore brings an old one back to the webhook, versions follow a rename, the newest
//! `automation_versions` are kept, and another tenant sees none of them.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use refract::Config;
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Calls the webhook `endpoint` until it answers `want` (a save reaches the runtime through
/// its fan-out), 10 s at most.
async fn answers(client: &Client, ws: &str, endpoint: &str, want: Value) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = client
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/{endpoint}"),
                Some(json!({})),
            )
            .await?;
        if status == StatusCode::OK && body == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{endpoint} answers {status} {body}, not {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn save_output(client: &Client, path: &str, n: u64) -> anyhow::Result<Value> {
    let (status, body) = client
        .json(
            Method::PATCH,
            path,
            Some(json!({"output": {"n": n}, "description": format!("output {n}")})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "save {n}: {status} {body}");
    Ok(body)
}

fn numbers(listing: &Value) -> Vec<u64> {
    listing["versions"]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x["version"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_keep_versions_that_restore_follow_renames_and_stay_bounded() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let platform = Platform::start_with(Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        automation_versions: 3,
        ..Config::default()
    })
    .await?;
    let ada = platform.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("Versions").await?;
    ada.create_automation(
        &ws,
        json!({"slug": "hello", "name": "Hello", "when": {"endpoint": true}, "do": [],
            "output": {"n": 1}}),
    )
    .await?;
    let path = format!("/v2/workspaces/{ws}/automations/hello");
    let (status, listing) = ada
        .json(Method::GET, &format!("{path}/versions"), None)
        .await?;
    ensure!(status == StatusCode::OK, "{status} {listing}");
    ensure!(
        numbers(&listing).is_empty(),
        "a new automation has no versions: {listing}"
    );

    save_output(&ada, &path, 2).await?;
    // The same save again changes nothing, and keeps nothing.
    save_output(&ada, &path, 2).await?;
    answers(&ada, &ws, "hello", json!({"n": 2})).await?;
    let (_, listing) = ada
        .json(Method::GET, &format!("{path}/versions"), None)
        .await?;
    ensure!(numbers(&listing) == [1], "{listing}");
    ensure!(listing["next"] == 2, "{listing}");
    // A listing leaves the program out; one version has it whole.
    ensure!(listing["versions"][0].get("output").is_none(), "{listing}");
    let (status, first) = ada
        .json(Method::GET, &format!("{path}/versions/1"), None)
        .await?;
    ensure!(status == StatusCode::OK, "{status} {first}");
    ensure!(first["automation"]["output"] == json!({"n": 1}), "{first}");

    // Restoring version 1 brings its program back to the webhook, and keeps what it replaced.
    let (status, restored) = ada
        .json(Method::POST, &format!("{path}/versions/1/restore"), None)
        .await?;
    ensure!(status == StatusCode::OK, "{status} {restored}");
    ensure!(restored["output"] == json!({"n": 1}), "{restored}");
    answers(&ada, &ws, "hello", json!({"n": 1})).await?;
    let (_, listing) = ada
        .json(Method::GET, &format!("{path}/versions"), None)
        .await?;
    ensure!(numbers(&listing) == [2, 1], "newest first: {listing}");
    let (_, second) = ada
        .json(Method::GET, &format!("{path}/versions/2"), None)
        .await?;
    ensure!(
        second["automation"]["output"] == json!({"n": 2}),
        "{second}"
    );

    // A rename takes the versions along; the old slug has none left.
    let (status, renamed) = ada
        .json(Method::PATCH, &path, Some(json!({"slug": "greet"})))
        .await?;
    ensure!(status == StatusCode::OK, "{status} {renamed}");
    let new_path = format!("/v2/workspaces/{ws}/automations/greet");
    let (_, listing) = ada
        .json(Method::GET, &format!("{new_path}/versions"), None)
        .await?;
    ensure!(numbers(&listing) == [3, 2, 1], "{listing}");
    ensure!(listing["next"] == 4, "{listing}");
    for bad in ["0", "9", "-1", "1x", "99999999999999999999999"] {
        let (status, _) = ada
            .json(Method::GET, &format!("{new_path}/versions/{bad}"), None)
            .await?;
        ensure!(status == StatusCode::NOT_FOUND, "version {bad}: {status}");
    }
    let (_, moved) = ada
        .json(Method::GET, &format!("{new_path}/versions/1"), None)
        .await?;
    ensure!(moved["automation"]["slug"] == "greet", "{moved}");
    let (status, _) = ada
        .json(Method::GET, &format!("{path}/versions"), None)
        .await?;
    ensure!(status == StatusCode::NOT_FOUND, "the old slug: {status}");

    // Only the newest 3 are kept: two more saves drop 1 and 2.
    save_output(&ada, &new_path, 5).await?;
    save_output(&ada, &new_path, 6).await?;
    answers(&ada, &ws, "greet", json!({"n": 6})).await?;
    let (_, listing) = ada
        .json(Method::GET, &format!("{new_path}/versions"), None)
        .await?;
    ensure!(numbers(&listing) == [5, 4, 3], "{listing}");
    let (status, gone) = ada
        .json(Method::GET, &format!("{new_path}/versions/1"), None)
        .await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status} {gone}");
    ensure!(gone["error"] == "ObjectNotFoundError", "{gone}");

    // Another tenant sees no workspace, no automation, no version, and restores nothing.
    let eve = platform.client().signed_up("eve@example.com").await?;
    for (method, url) in [
        (Method::GET, format!("{new_path}/versions")),
        (Method::GET, format!("{new_path}/versions/3")),
        (Method::POST, format!("{new_path}/versions/3/restore")),
    ] {
        let (status, body) = eve.json(method, &url, None).await?;
        ensure!(status == StatusCode::NOT_FOUND, "{url}: {status} {body}");
    }
    answers(&ada, &ws, "greet", json!({"n": 6})).await?;

    // Deleting the automation deletes its versions: a new one of the same slug starts afresh.
    let (status, _) = ada.json(Method::DELETE, &new_path, None).await?;
    ensure!(status == StatusCode::OK);
    ada.create_automation(
        &ws,
        json!({"slug": "greet", "name": "Greet", "when": {"endpoint": true}, "do": [],
            "output": {"n": 7}}),
    )
    .await?;
    let (_, listing) = ada
        .json(Method::GET, &format!("{new_path}/versions"), None)
        .await
        .context("listing after re-creation")?;
    ensure!(numbers(&listing).is_empty(), "{listing}");
    ensure!(listing["next"] == 1, "{listing}");
    platform.stop().await
}
