//! What the JavaScript and Python guest tests share: their platform (a file storage the caller
//! keeps across runs, so precompiled artifacts of cached components are loaded, not compiled
//! again), a webhook call, and the check that the platform still answers after a hostile run.

use std::path::Path;

use anyhow::ensure;
use refract::Config;
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A platform on `dir` with the file storage at `files` (kept across runs by the caller); `cpu_ms` per run if given, loopback
/// reachable by `fetch` if asked.
pub(crate) async fn platform(
    files: &Path,
    dir: &Path,
    cpu_ms: Option<u64>,
    loopback: bool,
) -> anyhow::Result<Platform> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        disable_rate_limit: true,
        files_url: Some(format!("file://{}", files.display())),
        allow_loopback_fetch: loopback,
        ..Config::default()
    };
    if loopback {
        config.sandbox.allow_hosts = vec!["127.0.0.1".into()];
    }
    if let Some(cpu_ms) = cpu_ms {
        config.sandbox.cpu_ms = cpu_ms;
    }
    Platform::start_with(config).await
}

pub(crate) async fn webhook(
    client: &Client,
    ws: &str,
    endpoint: &str,
    body: Option<Value>,
) -> anyhow::Result<reqwest::Response> {
    let mut req = client.request(
        Method::POST,
        &format!("/v2/workspaces/{ws}/webhooks/{endpoint}"),
    );
    if let Some(body) = body {
        req = req.json(&body);
    }
    Ok(req.send().await?)
}

/// The platform still answers: the healthcheck, and a normal run of the same guest.
pub(crate) async fn still_answers(
    platform: &Platform,
    ws: &str,
    endpoint: &str,
) -> anyhow::Result<()> {
    let (status, _) = platform
        .client()
        .json(Method::GET, "/sys/healthcheck", None)
        .await?;
    ensure!(status == StatusCode::OK, "healthcheck: {status}");
    let res = webhook(&platform.client(), ws, endpoint, None).await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(
        status == StatusCode::OK && body == json!({"ok": true}),
        "{status} {body}"
    );
    Ok(())
}
