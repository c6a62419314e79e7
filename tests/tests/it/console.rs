//! The console in a real browser: the embedded platform serves it, and
//! `tests/console/console.test.mjs` drives Debian's Chromium through playwright-core (sign up,
//! workspace, component upload, test panel, live events, run history, secrets, sign out).
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`) and `npm ci --prefix tests/console`; without them
//! the test fails and says what to install, because a skipped browser test would hide a broken
//! console. Screenshots of each main screen land in `tests/console/artifacts/` (or `ARTIFACTS`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use refract_tests::platform::{Platform, example};

/// The whole browser script, a dozen steps with their waits, on a loaded 2-core machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

fn console_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("console")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is missing at {chromium}: `apt-get install -y chromium` (or set CHROMIUM)"
    );
    let dir = console_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix {}`",
        dir.display()
    );

    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(data.path()).await.unwrap();
    let wasm = data.path().join("webhook_echo.wasm");
    std::fs::write(&wasm, example("webhook-echo").unwrap()).unwrap();
    let artifacts =
        std::env::var("ARTIFACTS").map_or_else(|_| dir.join("artifacts"), PathBuf::from);

    let child = tokio::process::Command::new("node")
        .arg(dir.join("console.test.mjs"))
        .current_dir(&dir)
        .env("CONSOLE_URL", &platform.url)
        .env("WASM_PATH", &wasm)
        .env("CHROMIUM", &chromium)
        .env("ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the browser test");
    let out = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .expect("the browser test did not finish in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    platform.stop().await.unwrap();
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
