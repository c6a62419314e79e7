//! Python guests (`guest-sdk/python`): the SDK's examples built with `refract-build`
//! (componentize-py) once per test binary, deployed on the in-process platform through the API
//! and driven through their webhooks and events; a hostile Python guest against the sandbox
//! limits (CPU, memory, network, files); `refract deploy` of a `pyproject.toml` folder.
//!
//! Needs Python 3.10+ with componentize-py: `$REFRACT_PYTHON`, else the interpreter of the venv
//! `.ci/run` makes (`~/.cache/refract-python-venv`, `pip install componentize-py==0.25.1`);
//! without it the tests fail and say what to run. The SDK is the checkout's
//! (`PYTHONPATH=guest-sdk/python/src`). Components are cached under the guest target folder by a
//! hash of their sources, the SDK and the WIT, so a warm run does not componentize again.
//!
//! A Python component carries CPython (about 18 MB): each upload's compile takes the cores for
//! seconds, so the tests run one at a time and deploy few components (one hostile guest with
//! modes, on one platform).

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

/// The componentize-py the SDK pins (guest-sdk/python/pyproject.toml, `.ci/run`).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// The guests this module builds: folder (under `guest-sdk/python`) and component name.
const GUESTS: &[(&str, &str)] = &[
    ("examples/webhook-echo", "webhook-echo"),
    ("examples/counter", "counter"),
    ("examples/event-emitter", "event-emitter"),
    ("examples/fetch-then-wait", "fetch-then-wait"),
    ("test-guests/hostile", "hostile"),
];

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// One Python test at a time: each compiles an 18 MB component (CPython) at upload, which takes
/// the cores for seconds; in parallel they could pass the compile timeout.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python")
}

/// The interpreter that builds: `$REFRACT_PYTHON`, else the CI venv's.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("REFRACT_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/refract-python-venv/bin/python")
}

/// The bytes of the Python guest `name`, built once per test binary.
fn py_guest(name: &str) -> anyhow::Result<Vec<u8>> {
    let dir = BUILT
        .get_or_init(|| build_guests().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Python and componentize-py are there, or an error saying what to run.
fn check_python() -> anyhow::Result<PathBuf> {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import componentize_py"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(_) => bail!(
            "componentize-py not installed for {}: {} -m pip install {COMPONENTIZE_PY} (CI does it)",
            python.display(),
            python.display()
        ),
        Err(_) => bail!(
            "no Python at {}: python3 -m venv ~/.cache/refract-python-venv && \
             ~/.cache/refract-python-venv/bin/pip install {COMPONENTIZE_PY} (or set REFRACT_PYTHON)",
            python.display()
        ),
    }
}

/// A hash of everything a guest's component depends on: its sources, the SDK, the WIT and the
/// componentize-py version.
fn fingerprint(sdk: &Path, guest: &Path) -> anyhow::Result<u64> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "dist" | "__pycache__" | "build" | "wit") {
                    files(&path, out)?;
                }
            } else if name.ends_with(".py") || name.ends_with(".toml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut inputs = Vec::new();
    files(guest, &mut inputs)?;
    files(&sdk.join("src"), &mut inputs)?;
    inputs.push(sdk.join("../../wit/automation.wit"));
    inputs.sort();
    let mut hasher = DefaultHasher::new();
    COMPONENTIZE_PY.hash(&mut hasher);
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

/// Builds the guests that are not cached yet, two at a time.
fn build_guests() -> anyhow::Result<PathBuf> {
    let sdk = sdk_dir().canonicalize().context("guest-sdk/python")?;
    let out = refract_tests::fixtures::guest_target_dir().with_file_name("python-guests");
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
    let python = check_python()?;
    let started = Instant::now();
    for batch in pending.chunks(2) {
        let mut children = Vec::new();
        for (guest, target, _, _) in batch {
            let child = Command::new(&python)
                .args(["-m", "refract.build", "--quiet", "-o"])
                .arg(target)
                .current_dir(guest)
                .env("PYTHONPATH", sdk.join("src"))
                .spawn()
                .with_context(|| format!("running {} for {}", python.display(), guest.display()))?;
            children.push((guest, child));
        }
        for (guest, mut child) in children {
            let status = child.wait()?;
            ensure!(
                status.success(),
                "building {} failed ({status}): cd {} && PYTHONPATH={} {} -m refract.build",
                guest.display(),
                guest.display(),
                sdk.join("src").display(),
                python.display()
            );
        }
        for (_, _, stamp, hash) in batch {
            std::fs::write(stamp, hash)?;
        }
    }
    eprintln!(
        "python guests: built {} in {:.1} s",
        pending.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// The file storage the Python tests' platforms share, kept across runs beside the cached
/// components: component blobs by digest and their precompiled artifacts (keyed by digest and
/// engine fingerprint, as on any platform), so a component compiled by an earlier run is loaded,
/// not compiled again (the upload's artifact path; `refract_new_python…` still compiles a fresh
/// build every run). Emptied whenever a guest is rebuilt.
fn shared_files() -> PathBuf {
    refract_tests::fixtures::guest_target_dir()
        .with_file_name("python-guests")
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
    let ws = ada.workspace("Python").await?;
    Ok((ada, ws))
}

/// Deploys `wasm` as `automation`, timing the upload (validate + compile + store).
async fn deploy_timed(
    client: &Client,
    ws: &str,
    automation: Value,
    wasm: &[u8],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let uploaded = client.deploy(ws, automation, wasm).await?;
    ensure!(uploaded["component"]["status"] == "ready", "{uploaded}");
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_webhook_echo_answers_like_the_rust_one() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = py_guest("webhook-echo")?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, false).await?;
    let (ada, ws) = workspace(&platform).await?;
    let py_upload = deploy_timed(
        &ada,
        &ws,
        json!({"slug": "echo-py", "name": "Webhook echo (Python)", "when": {"endpoint": true}, "component": {}}),
        &wasm,
    )
    .await?;

    let anonymous = platform.client();
    let res = anonymous
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo-py?x=1&x=2"),
        )
        .json(&json!({"hello": "world", "n": 1.5, "unicode": "é"}))
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
    ensure!(
        body["body"] == json!({"hello": "world", "n": 1.5, "unicode": "é"}),
        "{body}"
    );
    ensure!(body["query"] == json!([["x", "1"], ["x", "2"]]), "{body}");
    ensure!(
        body["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/webhooks/echo-py")),
        "{body}"
    );

    // An empty body echoes as null; a body that is not JSON is the handler's `InvalidJson`.
    let res = webhook(&anonymous, &ws, "echo-py", None).await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let body: Value = res.json().await?;
    ensure!(body["body"].is_null(), "{body}");
    let res = anonymous
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo-py"),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
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
    // `cargo test -p refract-tests --test it -- python_guests::the_python_webhook --nocapture`.
    let rust = example("webhook-echo")?;
    let rust_upload = deploy_timed(
        &ada,
        &ws,
        json!({"slug": "echo-rs", "name": "Webhook echo (Rust)", "when": {"endpoint": true}, "component": {}}),
        &rust,
    )
    .await?;
    let mut table = Vec::new();
    for (language, slug, size, upload) in [
        ("rust", "echo-rs", rust.len(), rust_upload),
        ("python", "echo-py", wasm.len(), py_upload),
    ] {
        let runs = 30;
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
        "| webhook-echo | component | upload (validate + compile, or load of the artifact an earlier run compiled) | run (webhook round trip, mean of 30) |\n|---|---|---|---|\n{}",
        table.join("\n")
    );
    platform.stop().await
}

/// The count lives in the workspace's state: every run is a fresh instance, and the count goes
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_counter_keeps_its_count_in_state_across_runs() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = py_guest("counter")?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, false).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "counter-py", "name": "Counter", "when": {"endpoint": true},
               "config": {"key": "counter.py"}, "component": {}}),
        &wasm,
    )
    .await?;
    for expected in 1..=3 {
        let res = webhook(&platform.client(), &ws, "counter-py", None).await?;
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
async fn the_python_event_emitter_emits_the_derived_event() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = py_guest("event-emitter")?;
    let dir = tempfile::tempdir()?;
    let platform = platform(dir.path(), None, false).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "on-order-py", "name": "Order processor",
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
    ensure!(
        processed["source"]["automationSlug"] == "on-order-py",
        "{processed}"
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_fetch_then_wait_fetches_emits_and_waits_for_the_reply() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = py_guest("fetch-then-wait")?;
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
        json!({"slug": "fetch-then-wait-py", "name": "Fetch then wait", "when": {"endpoint": true},
               "config": {"url": format!("http://{api}/answer"), "timeoutMs": 300},
               "component": {}}),
        &wasm,
    )
    .await?;

    // Nobody replies: the wait times out.
    let res = webhook(&platform.client(), &ws, "fetch-then-wait-py", None).await?;
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

    // A reply with the run's correlation id ends the wait: a DSL automation answers the
    // request event in the same correlation.
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/automations"),
            Some(json!({"slug": "replier", "name": "Replier",
                "when": {"events": ["fetch-then-wait.requested"]},
                "do": [{"emit": {"event": "fetch-then-wait.replied", "payload": {"ok": "{{payload.status}}"}}}]})),
        )
        .await?;
    ensure!(status.is_success(), "{status} {body}");
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}/automations/fetch-then-wait-py"),
            Some(json!({"config": {"url": format!("http://{api}/answer"), "timeoutMs": 10_000}})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = webhook(&platform.client(), &ws, "fetch-then-wait-py", None).await?;
        let status = res.status();
        let body: Value = res.json().await?;
        ensure!(status == StatusCode::OK, "{status} {body}");
        if !body["reply"].is_null() {
            let ok = &body["reply"]["payload"]["ok"];
            ensure!(ok == 200 || ok == "200", "{body}");
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no reply reached the wait: {body}"
        );
    }
    platform.stop().await
}

async fn hostile(
    platform: &Platform,
    ws: &str,
    query: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let res = platform
        .client()
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/hostile?{query}"),
        )
        .send()
        .await?;
    let status = res.status();
    Ok((status, res.json().await?))
}

/// A Python infinite loop is stopped by the CPU limit, a Python memory bomb by the memory
/// limit, and the platform answers after each; CPython's sockets reach no address (not even
/// a listener on loopback) and its files no file; an uncaught exception is the run's
/// `Uncaught` error. One platform: one compile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_python_guests_are_stopped_by_the_sandbox_limits() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let wasm = py_guest("hostile")?;
    let dir = tempfile::tempdir()?;
    // Runs get one second of CPU.
    let platform = platform(dir.path(), Some(1_000), false).await?;
    let (ada, ws) = workspace(&platform).await?;
    ada.deploy(
        &ws,
        json!({"slug": "hostile", "name": "Hostile", "when": {"endpoint": true},
               "component": {"limits": {"memoryMiB": 64, "timeoutMs": 10_000}}}),
        &wasm,
    )
    .await?;
    for (mode, reason) in [("loop", "cpu"), ("memory", "memory")] {
        let started = Instant::now();
        let (status, body) = hostile(&platform, &ws, &format!("mode={mode}")).await?;
        ensure!(
            status.is_server_error() && body["details"]["reason"] == reason,
            "{mode}: {status} {body}"
        );
        eprintln!(
            "python {mode}: stopped ({reason}) after {:?}",
            started.elapsed()
        );
        still_answers(&platform, &ws, "hostile").await?;
    }

    // A listener on loopback that the guest tries to reach through CPython's sockets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
    let (status, body) = hostile(&platform, &ws, &format!("mode=net&port={port}")).await?;
    ensure!(
        status == StatusCode::OK && body["tried"] == 6 && body["reached"] == json!([]),
        "{status} {body}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    ensure!(!accepted.is_finished(), "the guest connected to loopback");
    accepted.abort();

    let (status, body) = hostile(&platform, &ws, "mode=files").await?;
    ensure!(
        status == StatusCode::OK && body["tried"] == 4 && body["reached"] == json!([]),
        "{status} {body}"
    );

    let (status, body) = hostile(&platform, &ws, "mode=raise").await?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && body["details"]["error"] == "Uncaught"
            && body["details"]["message"] == "ValueError: a plain exception",
        "{status} {body}"
    );
    still_answers(&platform, &ws, "hostile").await?;
    platform.stop().await
}

/// `refract new python NAME` makes a folder that `refract deploy` builds (`python -m
/// refract.build` with the interpreter `REFRACT_PYTHON` names) and uploads as a Python
/// component, which then answers its webhook like the echo it was made from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refract_new_python_then_deploy_builds_uploads_and_answers() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let python = check_python()?;
    let dir = tempfile::tempdir()?;
    let platform = Platform::start(dir.path()).await?;
    let (ada, ws) = workspace(&platform).await?;
    let sdk = sdk_dir().canonicalize()?;
    let folder = refract::scaffold::new(&refract::scaffold::New {
        language: refract::scaffold::Language::Python,
        name: "order-hook".into(),
        parent: dir.path().to_path_buf(),
        sdk_path: Some(sdk.clone()),
        sdk_git: None,
    })?;
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
            ("REFRACT_PYTHON", python.display().to_string()),
            // The checkout's SDK, as `pip install -e <folder>` would bring it.
            ("PYTHONPATH", sdk.join("src").display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        stdin: &mut input,
        stdout: &mut output,
        stdin_is_terminal: false,
        progress: false,
    };
    let started = Instant::now();
    refract::run_api_command(
        ["deploy", folder.to_str().context("path")?, "--json"]
            .into_iter()
            .map(str::to_owned),
        &mut console,
    )
    .await?;
    eprintln!(
        "refract deploy (python: componentize-py, upload): {:?}",
        started.elapsed()
    );
    let uploaded: Value = serde_json::from_slice(&output)?;
    ensure!(
        uploaded["slug"] == "order-hook" && uploaded["component"]["status"] == "ready",
        "{uploaded}"
    );
    ensure!(
        uploaded["component"]["language"] == "python",
        "the upload names its language: {uploaded}"
    );
    ensure!(folder.join("dist/component.wasm").is_file());
    let res = webhook(&platform.client(), &ws, "order-hook", Some(json!({"n": 1}))).await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(
        status == StatusCode::CREATED && body["body"] == json!({"n": 1}),
        "{status} {body}"
    );
    platform.stop().await
}
