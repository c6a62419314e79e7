//! Host benchmark (release): per-run overhead, one host import call, Cranelift compile, artifact
//! load. Run with `cargo bench -p refract-tests --bench run`. Figures go to stdout for a person.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use refract_host::{
    ComponentDigest, EgressPolicy, EngineConfig, Host, HostConfig, Limits, MemoryArtifactStore,
    RunOutcome, RunRequest, Services,
};
use refract_tests::fixtures::fixture;
use refract_tests::sandbox::{call, services};
use serde_json::json;
use wasmtime::component::Component;

const RUNS: u64 = 10_000;
const IMPORT_CALLS: u32 = 200_000;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_BACKTRACE").is_some()
        && std::env::var_os("RUST_LIB_BACKTRACE").is_none()
    {
        // wasmtime builds an error while dropping every component store; with library
        // backtraces on, each drop captures a backtrace (~4 us here).
        println!(
            "note: RUST_BACKTRACE is set without RUST_LIB_BACKTRACE=0: every store drop captures a backtrace"
        );
    }
    // The per-run guest: no std, no WASI imports (`minimal`); `trivial` is the same with std.
    let trivial = fixture("minimal")?;
    let trivial_std = fixture("trivial")?;
    let hostile = fixture("hostile")?;
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryArtifactStore::new()),
    )?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let digest = rt.block_on(host.upload(&trivial))?;

    if std::env::var_os("REFRACT_BENCH_PROFILE").is_some() {
        // Only the per-run loop, long enough for a profiler.
        let (hist, rate, detail) = rt.block_on(runs(&host, &digest, 200_000, "null"))?;
        print_runs("minimal guest, profile mode", &hist, rate, &detail);
        return Ok(());
    }
    compile_and_load(
        &host,
        &[
            ("minimal", &trivial),
            ("trivial (std)", &trivial_std),
            ("hostile", &hostile),
        ],
    )?;

    // Per-run overhead, one thread: the default engine, then variants for comparison.
    let (hist, rate, detail) = rt.block_on(runs(&host, &digest, RUNS, "null"))?;
    print_runs(
        "minimal guest, default engine (pooling, keep-resident 1 MiB, pagemap scan)",
        &hist,
        rate,
        &detail,
    );
    let std_digest = rt.block_on(host.upload(&trivial_std))?;
    let (hist, rate, detail) = rt.block_on(runs(&host, &std_digest, RUNS, "null"))?;
    print_runs("std guest (trivial), default engine", &hist, rate, &detail);
    let variants: [(&str, EngineConfig); 5] = [
        (
            "minimal guest, pooling, keep-resident 1 MiB, no pagemap scan",
            EngineConfig {
                pagemap_scan: false,
                ..EngineConfig::default()
            },
        ),
        (
            "minimal guest, pooling, keep-resident 0",
            EngineConfig {
                keep_resident_bytes: 0,
                ..EngineConfig::default()
            },
        ),
        (
            "minimal guest, pooling, keep-resident 64 KiB",
            EngineConfig {
                keep_resident_bytes: 64 << 10,
                ..EngineConfig::default()
            },
        ),
        (
            "minimal guest, pooling, decommit batch 32",
            EngineConfig {
                decommit_batch_size: 32,
                ..EngineConfig::default()
            },
        ),
        (
            "minimal guest, on-demand allocator",
            EngineConfig {
                pooling: false,
                ..EngineConfig::default()
            },
        ),
    ];
    for (name, engine) in variants {
        let config = HostConfig {
            engine,
            ..HostConfig::default()
        };
        let h = Arc::new(Host::new(config, Arc::new(MemoryArtifactStore::new()))?);
        let d = rt.block_on(h.upload(&trivial))?;
        let (hist, rate, detail) = rt.block_on(runs(&h, &d, RUNS, "null"))?;
        print_runs(name, &hist, rate, &detail);
    }

    // Two threads, one runtime each, sharing the host.
    let start = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (host, digest) = (host.clone(), digest.clone());
            std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(runs(&host, &digest, RUNS, "null"))?.0)
            })
        })
        .collect();
    let mut p50s = Vec::new();
    for h in handles {
        let hist = h
            .join()
            .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
        p50s.push(format!("{:.1}", hist.value_at_quantile(0.5) as f64 / 1e3));
    }
    let total = start.elapsed();
    println!(
        "per-run (2 threads, 2x{RUNS} runs): {:.0} runs/s aggregate, p50 per thread {} us",
        (2 * RUNS) as f64 / total.as_secs_f64(),
        p50s.join(" / ")
    );

    // One host import call: a run making N calls minus an empty run, over N.
    for what in ["log", "get", "emit"] {
        let base = rt.block_on(one(&host, &digest, "null"))?;
        let cfg = format!("\"{what}:{IMPORT_CALLS}\"");
        let full = rt.block_on(one(&host, &digest, &cfg))?;
        let per = full.saturating_sub(base).as_nanos() as f64 / f64::from(IMPORT_CALLS);
        let target = if what == "log" {
            "   [target <= 150 ns]"
        } else {
            ""
        };
        println!(
            "import call `{what}`: {per:.0} ns per call ({IMPORT_CALLS} calls in one run){target}"
        );
    }
    Ok(())
}

fn print_runs(name: &str, hist: &Histogram<u64>, rate: f64, detail: &str) {
    println!(
        "per-run, 1 thread, {RUNS} runs, {name}: p50 {:.1} us, p99 {:.1} us, mean {:.1} us, {:.0} runs/s   [target p50 <= 20 us]",
        hist.value_at_quantile(0.5) as f64 / 1e3,
        hist.value_at_quantile(0.99) as f64 / 1e3,
        hist.mean() / 1e3,
        rate
    );
    println!("{detail}");
}

fn request(config: &str) -> RunRequest {
    let mut r = call("bench", json!({}), unlimited(), EgressPolicy::default());
    r.config = config.to_owned();
    r
}

fn unlimited() -> Limits {
    Limits {
        max_emits: u32::MAX,
        max_log_bytes: usize::MAX,
        ..Limits::default()
    }
}

async fn runs(
    host: &Arc<Host>,
    digest: &ComponentDigest,
    n: u64,
    config: &str,
) -> anyhow::Result<(Histogram<u64>, f64, String)> {
    let (services, _) = quiet_services(host);
    let req = request(config);
    // Warm-up: fault in code, fill the pool slots.
    for _ in 0..200 {
        check(
            host.run(digest, req.clone(), services.clone())
                .await?
                .outcome,
        )?;
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut phases: Vec<Histogram<u64>> = (0..4)
        .map(|_| Histogram::new(3))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let report = host.run(digest, req.clone(), services.clone()).await?;
        hist.record(t.elapsed().as_nanos() as u64)?;
        let tm = report.timings;
        for (h, d) in phases
            .iter_mut()
            .zip([tm.setup, tm.instantiate, tm.call, tm.teardown])
        {
            h.record(d.as_nanos() as u64)?;
        }
        check(report.outcome)?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let us = |v: u64| v as f64 / 1e3;
    let line: Vec<String> = ["setup", "instantiate", "call", "drop"]
        .iter()
        .zip(&phases)
        .map(|(name, h)| {
            format!(
                "{name} p50 {:.1} / p99 {:.1} / max {:.0} / mean {:.1}",
                us(h.value_at_quantile(0.5)),
                us(h.value_at_quantile(0.99)),
                us(h.max()),
                h.mean() / 1e3
            )
        })
        .collect();
    let detail = format!(
        "    split (us): {}\n    runs over 200 us: {}, slowest {:.0} us",
        line.join("; "),
        n - hist.count_between(0, 200_000),
        us(hist.max())
    );
    Ok((hist, rate, detail))
}

async fn one(host: &Arc<Host>, digest: &ComponentDigest, config: &str) -> anyhow::Result<Duration> {
    let (services, _) = quiet_services(host);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        check(
            host.run(digest, request(config), services.clone())
                .await?
                .outcome,
        )?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn quiet_services(host: &Arc<Host>) -> (Services, ()) {
    let (mut s, _) = services(host);
    // Don't keep a million emitted events in memory.
    s.events = Arc::new(refract_host::memory::MemoryEventBus::new(false));
    (s, ())
}

fn check(outcome: RunOutcome) -> anyhow::Result<()> {
    match outcome {
        RunOutcome::Ok(_) => Ok(()),
        other => anyhow::bail!("benchmark run failed: {other:?}"),
    }
}

fn compile_and_load(host: &Host, fixtures: &[(&str, &[u8])]) -> anyhow::Result<()> {
    for (name, bytes) in fixtures {
        let mut compile = Vec::new();
        let mut artifact = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let c = Component::new(host.engine(), bytes)?;
            compile.push(t.elapsed());
            artifact = c.serialize()?;
        }
        let mut load = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let _c = load_artifact(host, &artifact)?;
            load.push(t.elapsed());
        }
        compile.sort();
        load.sort();
        println!(
            "{name} ({} KB): Cranelift compile median {:.1} ms; artifact {} KB, load (deserialize) median {:.0} us",
            bytes.len() / 1024,
            compile[compile.len() / 2].as_secs_f64() * 1e3,
            artifact.len() / 1024,
            load[load.len() / 2].as_secs_f64() * 1e6
        );
    }
    Ok(())
}

// SAFETY: the artifact was produced by `serialize` just above, by this engine, in this process.
#[allow(unsafe_code)]
fn load_artifact(host: &Host, artifact: &[u8]) -> anyhow::Result<Component> {
    Ok(unsafe { Component::deserialize(host.engine(), artifact) }?)
}
