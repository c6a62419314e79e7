//! What a guest's language costs the host: the webhook-echo example in Rust, JavaScript and
//! Python, each through the same host as the `run` benchmark: component size, Cranelift compile,
//! precompiled (artifact) load, and per-run overhead (a fresh instance per run, as every run
//! gets). Run with `cargo bench -p refract-tests --bench guests`.
//!
//! The Rust echo is built here (guest-sdk/examples); the JavaScript and Python components are
//! the ones the e2e tests build and cache (`js_guests`, `python_guests`): run those first. A
//! missing one is reported and skipped. `REFRACT_BENCH_GUESTS=python,rust` measures only those.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use refract_host::{
    ComponentDigest, EgressPolicy, Host, HostConfig, HttpRequest, Limits, MemoryArtifactStore,
    RunOutcome, RunRequest, Trigger,
};
use refract_tests::fixtures::guest_target_dir;
use refract_tests::platform::example;
use refract_tests::sandbox::{call, services};
use serde_json::json;
use wasmtime::component::Component;

fn main() -> anyhow::Result<()> {
    let cached = |folder: &str, test: &str| -> anyhow::Result<Option<Vec<u8>>> {
        let path: PathBuf = guest_target_dir()
            .with_file_name(folder)
            .join("webhook-echo.wasm");
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!(
                    "skipped: no {} (run `cargo test -p refract-tests --test it -- {test}` first)",
                    path.display()
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    };
    let mut guests = vec![("rust", example("webhook-echo")?, 2_000u64)];
    if let Some(js) = cached("js-guests", "js_guests::")? {
        guests.push(("javascript", js, 300));
    }
    if let Some(py) = cached("python-guests", "python_guests::")? {
        guests.push(("python", py, 300));
    }

    if let Ok(only) = std::env::var("REFRACT_BENCH_GUESTS") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        guests.retain(|(language, _, _)| only.contains(language));
    }
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryArtifactStore::new()),
    )?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for (language, bytes, runs) in &guests {
        let compiles = if bytes.len() > 1 << 20 { 2 } else { 5 };
        let mut compile = Vec::new();
        let mut artifact = Vec::new();
        for _ in 0..compiles {
            let t = Instant::now();
            let c = Component::new(host.engine(), bytes)?;
            compile.push(t.elapsed());
            artifact = c.serialize()?;
        }
        let mut load = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let _c = load_artifact(&host, &artifact)?;
            load.push(t.elapsed());
        }
        let digest = rt.block_on(host.upload(bytes))?;
        let (p50, p99, mean, split) = rt.block_on(per_run(&host, &digest, *runs))?;
        rows.push(format!(
            "| {language} | {} KiB | {:.2} s | {} KiB | {:.1} ms | {p50:.2} ms | {p99:.2} ms | {mean:.2} ms | {split} |",
            bytes.len() / 1024,
            median(&mut compile).as_secs_f64(),
            artifact.len() / 1024,
            median(&mut load).as_secs_f64() * 1e3,
        ));
    }
    println!(
        "| webhook-echo | component | compile (Cranelift, median) | artifact | load (deserialize, median) | run p50 | run p99 | run mean | p50 of instantiate / call / drop |\n|---|---|---|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A webhook request to the echo.
fn request() -> RunRequest {
    let mut r = call(
        "echo",
        json!({}),
        Limits::default(),
        EgressPolicy::default(),
    );
    r.trigger = Trigger::Http(HttpRequest {
        method: "POST".into(),
        path: "/v2/workspaces/ws-test/webhooks/echo".into(),
        query: vec![("x".into(), "1".into())],
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"hello":"world"}"#.to_vec(),
    });
    r
}

/// Runs `n` times (after a warm-up), each in a fresh instance; p50, p99 and mean in ms, and the
/// p50 of the run's phases.
async fn per_run(
    host: &Arc<Host>,
    digest: &ComponentDigest,
    n: u64,
) -> anyhow::Result<(f64, f64, f64, String)> {
    let (services, _) = services(host);
    for _ in 0..20 {
        check(host.run(digest, request(), services.clone()).await?.outcome)?;
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut phases: Vec<Histogram<u64>> = (0..3)
        .map(|_| Histogram::new(3))
        .collect::<Result<_, _>>()?;
    for _ in 0..n {
        let t = Instant::now();
        let report = host.run(digest, request(), services.clone()).await?;
        hist.record(t.elapsed().as_nanos() as u64)?;
        let tm = report.timings;
        for (h, d) in phases
            .iter_mut()
            .zip([tm.instantiate, tm.call, tm.teardown])
        {
            h.record(d.as_nanos() as u64)?;
        }
        check(report.outcome)?;
    }
    let ms = |v: f64| v / 1e6;
    let split: Vec<String> = phases
        .iter()
        .map(|h| format!("{:.2}", ms(h.value_at_quantile(0.5) as f64)))
        .collect();
    Ok((
        ms(hist.value_at_quantile(0.5) as f64),
        ms(hist.value_at_quantile(0.99) as f64),
        ms(hist.mean()),
        format!("{} ms", split.join(" / ")),
    ))
}

fn check(outcome: RunOutcome) -> anyhow::Result<()> {
    match outcome {
        RunOutcome::Ok(_) => Ok(()),
        other => anyhow::bail!("benchmark run failed: {other:?}"),
    }
}

// SAFETY: the artifact was produced by `serialize` just above, by this engine, in this process.
#[allow(unsafe_code)]
fn load_artifact(host: &Host, artifact: &[u8]) -> anyhow::Result<Component> {
    Ok(unsafe { Component::deserialize(host.engine(), artifact) }?)
}
