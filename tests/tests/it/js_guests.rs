//! JavaScript and TypeScript guests (`guest-sdk/js`): the SDK's examples built with
//! `refract-build` (esbuild, then ComponentizeJS) once per test binary, deployed on the
//! in-process platform through the API and driven through their webhooks and events; a hostile
//! JavaScript guest against the sandbox limits; `refract deploy` of a `package.json` folder.
//!
//! Needs Node.js 20+ and `npm ci --prefix guest-sdk/js` (`.ci/run` does it); without them the
//! tests fail and say so. Components are cached under the guest target folder by a hash of
//! their sources, the SDK and its lockfile, so a warm run does not componentize again, and so
//! are their compiled artifacts (a file storage the platforms share), so it does not compile
//! them again either.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::interpreted::{still_answers, webhook};
use anyhow::{Context, bail, ensure};
use axum::routing::get;
use refract_tests::platform::{Client, Platform, example, serve_on_loopback};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The guests this module builds: folder (under `guest-sdk/js`) and component name.
const GUESTS: &[(&str, &str)] = &[
    ("examples/webhook-echo", "webhook-echo"),
    ("examples/counter", "counter"),
    ("examples/event-emitter", "event-emitter"),
    ("examples/fetch-then-wait", "fetch-then-wait"),
    ("test-guests/hostile", "hostile"),
];

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// One JavaScript test at a time: each compiles a 12 MB component (SpiderMonkey) at upload,
/// which takes the cores for seconds; in parallel they could pass the compile timeout.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/js")
}

/// The bytes of the JavaScript guest `name`, built once per test binary.
fn js_guest(name: &str) -> anyhow::Result<Vec<u8>> {
    let dir = BUILT
        .get_or_init(|| build_guests().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Node and the SDK's packages are there, or an error saying what to run.
fn check_node(sdk: &Path) -> anyhow::Result<()> {
    let version = Command::new("node").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        _ => bail!(
            "node not found: the JavaScript guest tests need Node.js 20+ on PATH (CI installs it)"
        ),
    }
    let componentize = sdk.join("node_modules/@bytecodealliance/componentize-js");
    ensure!(
        componentize.exists() && sdk.join("node_modules/esbuild").exists(),
        "the JavaScript SDK's packages are missing: run `npm ci --prefix {}`",
        sdk.display()
    );
    Ok(())
}

/// A hash of everything a guest's component depends on: its sources, the SDK, the lockfile and
/// the WIT.
fn fingerprint(sdk: &Path, guest: &Path) -> anyhow::Result<u64> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                files(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut inputs = Vec::new();
    files(&guest.join("src"), &mut inputs)?;
    files(&sdk.join("src"), &mut inputs)?;
    files(&sdk.join("bin"), &mut inputs)?;
    files(&sdk.join("../../wit"), &mut inputs)?;
    inputs.push(sdk.join("package-lock.json"));
    inputs.sort();
    let mut hasher = DefaultHasher::new();
    for path in inputs {
        path.strip_prefix(sdk)
            .unwrap_or(&path)
            .to_string_lossy()
            .hash(&mut hasher);
        std::fs::read(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// Builds the guests that are not cached yet, two at a time (ComponentizeJS keeps one core
/// busy for about ten seconds per component).
fn build_guests() -> anyhow::Result<PathBuf> {
    let sdk = sdk_dir().canonicalize().context("guest-sdk/js")?;
    let out = refract_tests::fixtures::guest_target_dir().with_file_name("js-guests");
    std::fs::create_dir_all(&out)?;
    let mut pending = Vec::new();
    for (folder, name) in GUESTS {
        let guest = sdk.join(folder);
        let target = out.join(format!("{name}.wasm"));
        let stamp = out.join(format!("{name}.hash"));
        let hash = fingerprint(&sdk, &guest)?.to_string();
        if target.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&hash) {
            continue;
        }
        pending.push((guest, target, stamp, hash));
    }
    if pending.is_empty() {
        return Ok(out);
    }
    // Artifacts of the components replaced would only pile up.
    match std::fs::remove_dir_all(shared_files()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    check_node(&sdk)?;
    let started = Instant::now();
    for batch in pending.chunks(2) {
        let mut children = Vec::new();
        for (guest, target, _, _) in batch {
            let child = Command::new("node")
                .arg(sdk.join("bin/refract-build.js"))
                .arg("-o")
                .arg(target)
                .current_dir(guest)
                .spawn()
                .with_context(|| format!("running node for {}", guest.display()))?;
            children.push((guest, child));
        }
        for (guest, mut child) in children {
            let status = child.wait()?;
            ensure!(
                status.success(),
                "building {} failed ({status}): cd {} && npm run build",
                guest.display(),
                guest.display()
            );
        }
        for (_, _, stamp, hash) in batch {
            std::fs::write(stamp, hash)?;
        }
    }
    eprintln!(
        "js guests: built {} in {:.1} s",
        pending.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// The file storage the JavaScript tests' platforms share, kept across runs beside the cached
/// components: component blobs by digest and their precompiled artifacts (keyed by digest and
/// engine fingerprint), so a component an earlier run compiled is loaded, not compiled again
/// (each compile of a 12 MB component takes the cores for seconds). Emptied whenever a guest is
/// rebuilt. `refract deploy` below keeps its own storage and compiles.
fn shared_files() -> PathBuf {
    refract_tests::fixtures::guest_target_dir()
        .with_file_name("js-guests")
        .join("files")
}

/// A platform on `dir` with the shared file storage; `cpu_ms` per run if given, loopback
/// reachable by `fetch` if asked.
async fn platform(dir: &Path, cpu_ms: Option<u64>, loopback: bool) -> anyhow::Result<Platform> {
    crate::interpreted::platform(&shared_files(), dir, cpu_ms, loopback).await
}

/// A platform, a signed-up owner and a workspace.
async fn workspace(platform: &Platform) -> anyhow::Result<(Client, String)> {
    let ada = platform.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("JavaScript").await?;
    Ok((ada, ws))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_webhook_echo_answers_like_the_rust_one() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = js_guest("webhook-echo")?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, false).await?;
    let (ada, ws) = workspace(&platform).await?;
    let started = Instant::now();
    let uploaded = ada
        .deploy(
            &ws,
            json!({"slug": "echo-js", "name": "Webhook echo (JavaScript)", "when": {"endpoint": true}, "component": {}}),
            &wasm,
        )
        .await?;
    ensure!(uploaded["component"]["status"] == "ready", "{uploaded}");
    let js_upload = started.elapsed();

    let anonymous = platform.client();
    let res = anonymous
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo-js?x=1&x=2"),
        )
        .json(&json!({"hello": "world"}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let correlation = res.headers()["x-correlation-id"].to_str()?.to_owned();
    ensure!(
        res.headers()["x-refract-echo"].to_str()? == correlation,
        "the run saw the request's correlation id"
    );
    let body: Value = res.json().await?;
    ensure!(body["method"] == "POST", "{body}");
    ensure!(body["body"] == json!({"hello": "world"}), "{body}");
    ensure!(body["query"] == json!([["x", "1"], ["x", "2"]]), "{body}");
    ensure!(
        body["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/webhooks/echo-js")),
        "{body}"
    );

    // An empty body echoes as null; a body that is not JSON is the handler's `InvalidJson`.
    let res = webhook(&anonymous, &ws, "echo-js", None).await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let body: Value = res.json().await?;
    ensure!(body["body"].is_null(), "{body}");
    let res = anonymous
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo-js"),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    // The handler's error, as every failed webhook run answers it.
    ensure!(
        status == StatusCode::BAD_REQUEST && body["details"]["error"] == "InvalidJson",
        "{status} {body}"
    );
    ensure!(body["details"]["details"]["kind"] == "json", "{body}");

    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["source"]["correlationId"] == correlation.as_str()
        })
        .await?;
    ensure!(executed["payload"]["status"] == "success", "{executed}");

    // What it costs next to the Rust echo, printed (no wall-clock assertion):
    // `cargo test -p refract-tests --test it -- js_guests::the_js_webhook --nocapture`.
    let rust = example("webhook-echo")?;
    let started = Instant::now();
    ada.deploy(
        &ws,
        json!({"slug": "echo-rs", "name": "Webhook echo (Rust)", "when": {"endpoint": true}, "component": {}}),
        &rust,
    )
    .await?;
    let rust_upload = started.elapsed();
    let mut table = Vec::new();
    for (language, slug, size, upload) in [
        ("rust", "echo-rs", rust.len(), rust_upload),
        ("js", "echo-js", wasm.len(), js_upload),
    ] {
        let runs = 50;
        let started = Instant::now();
        for n in 0..runs {
            let res = webhook(&anonymous, &ws, slug, Some(json!({ "n": n }))).await?;
            ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
        }
        let per_run = started.elapsed() / runs;
        table.push(format!(
            "| {language} | {} KiB | {upload:.1?} | {per_run:.1?} |",
            size / 1024
        ));
    }
    eprintln!(
        "| webhook-echo | component | upload (validate + compile, or load of the artifact an earlier run compiled) | run (webhook round trip, mean of 50) |\n|---|---|---|---|\n{}",
        table.join("\n")
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_counter_keeps_its_count_in_state_across_runs() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = js_guest("counter")?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, false).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "counter-js", "name": "Counter", "when": {"endpoint": true},
               "config": {"key": "counter.js"}, "component": {}}),
        &wasm,
    )
    .await?;
    for expected in 1..=3 {
        let res = webhook(&platform.client(), &ws, "counter-js", None).await?;
        let status = res.status();
        let body: Value = res.json().await?;
        ensure!(
            status == StatusCode::OK && body == json!({"count": expected}),
            "{status} {body}"
        );
    }
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_event_emitter_emits_the_derived_event() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = js_guest("event-emitter")?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, false).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "on-order-js", "name": "Order processor",
               "when": {"events": ["orders.created"]}, "component": {}}),
        &wasm,
    )
    .await?;
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({"events": [{"type": "orders.created", "payload": {"order": 42}}]})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    let processed = ada
        .wait_for_event(&ws, "orders.created.processed", |_| true)
        .await?;
    ensure!(
        processed["payload"]["original"] == json!({"order": 42}),
        "{processed}"
    );
    ensure!(
        processed["payload"]["sourceEventId"].is_string(),
        "{processed}"
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ts_fetch_then_wait_fetches_emits_and_times_out_waiting() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = js_guest("fetch-then-wait")?;
    let api = serve_on_loopback(axum::Router::new().route(
        "/answer",
        get(|| async { axum::Json(json!({"answer": 42})) }),
    ))
    .await?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, true).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "fetch-then-wait-js", "name": "Fetch then wait", "when": {"endpoint": true},
               "config": {"url": format!("http://{api}/answer"), "timeoutMs": 300},
               "component": {}}),
        &wasm,
    )
    .await?;
    let res = webhook(&platform.client(), &ws, "fetch-then-wait-js", None).await?;
    let status = res.status();
    let correlation = res.headers()["x-correlation-id"].to_str()?.to_owned();
    let body: Value = res.json().await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    ensure!(
        body["fetch"] == json!({"status": 200, "body": {"answer": 42}}),
        "{body}"
    );
    ensure!(
        body["reply"].is_null(),
        "nobody replied within 300 ms: {body}"
    );
    let requested = ada
        .wait_for_event(&ws, "fetch-then-wait.requested", |e| {
            e["payload"]["correlationId"] == correlation.as_str()
        })
        .await?;
    ensure!(requested["id"] == body["requestEventId"], "{requested}");
    platform.stop().await
}

/// A JavaScript infinite loop is stopped by the CPU limit, a JavaScript memory bomb by the
/// memory limit, and the platform answers after each (one platform: one compile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_js_guests_are_stopped_by_the_sandbox_limits() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = js_guest("hostile")?;
    let dir = tempfile::tempdir()?;
    // Runs get one second of CPU.
    let platform = platform(dir.path(), Some(1_000), false).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "hostile", "name": "Hostile", "when": {"endpoint": true},
               "component": {"limits": {"memoryMiB": 48, "timeoutMs": 10_000}}}),
        &wasm,
    )
    .await?;
    for (mode, reason) in [("loop", "cpu"), ("memory", "memory")] {
        let started = Instant::now();
        let res = platform
            .client()
            .request(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/hostile?mode={mode}"),
            )
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        ensure!(
            status.is_server_error() && body["details"]["reason"] == reason,
            "{mode}: {status} {body}"
        );
        eprintln!(
            "js {mode}: stopped ({reason}) after {:?}",
            started.elapsed()
        );
        still_answers(&platform, &ws, "hostile").await?;
    }
    platform.stop().await
}

/// `refract deploy <folder with package.json>` runs the folder's `npm run build` and uploads
/// the component it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refract_deploy_builds_and_uploads_a_js_folder() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    check_node(&sdk_dir())?;
    let dir = tempfile::tempdir()?;
    let platform = Platform::start(dir.path()).await?;
    let (ada, ws) = workspace(&platform).await?;
    let folder = sdk_dir().join("examples/counter");
    let mut output = Vec::new();
    let mut input = std::io::Cursor::new(Vec::new());
    let mut console = refract::Console {
        env: [
            ("REFRACT_URL", platform.url.clone()),
            ("REFRACT_TOKEN", ada.token.clone().context("no token")?),
            ("REFRACT_WORKSPACE", ws.clone()),
            (
                "REFRACT_CLI_CONFIG",
                dir.path().join("cli.toml").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        stdin: &mut input,
        stdout: &mut output,
        stdin_is_terminal: false,
        progress: false,
    };
    refract::run_api_command(
        ["deploy", folder.to_str().context("path")?, "--json"]
            .into_iter()
            .map(str::to_owned),
        &mut console,
    )
    .await?;
    let uploaded: Value = serde_json::from_slice(&output)?;
    ensure!(
        uploaded["slug"] == "counter-js" && uploaded["component"]["status"] == "ready",
        "{uploaded}"
    );
    ensure!(
        uploaded["component"]["language"] == "js",
        "the upload names its language: {uploaded}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = webhook(&platform.client(), &ws, "counter-js", None).await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if status == StatusCode::OK && body["count"].is_u64() {
            break;
        }
        ensure!(Instant::now() < deadline, "counter answers {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    platform.stop().await
}
