//! DSL benchmark (release): per-run time of representative DSL automations, run by the embedded
//! interpreter component in the sandbox (the host as the runtime drives it: a fresh instance per
//! run, the compiled program in the invocation, in-memory services, mimalloc as in `refract`),
//! and for comparison by the interpreter natively (no sandbox).
//!
//! `cargo bench -p refract-runtime --bench dsl`. `REFRACT_BENCH_RUNS` sets the runs per case.
//!
//! Cases: a webhook-style automation of 20 instructions (set / conditions / emit); a `repeat`
//! over 1,000 items; an expression-heavy one (arithmetic, comparisons, functions, templates).

use std::sync::Arc;
use std::time::{Duration, Instant};

use refract_core::{CorrelationId, UserId, WorkspaceId};
use refract_dsl::interpreter::{FetchRequest, FetchResponse, Outside, RunInput, Scope, WaitFor};
use refract_dsl::{DslError, Program, Setup, SetupTrigger};
use refract_host::memory::{MemoryAutomations, MemoryEventBus, MemoryStateStore};
use refract_host::{
    EgressPolicy, Host, HostConfig, HttpRequest, Limits, MemoryArtifactStore, RunContext,
    RunOutcome, RunRequest, Services, Trigger,
};
use refract_runtime::INTERPRETER;
use serde_json::{Value, json};

/// The allocator of the `refract` binary, so the host side of a run costs what it costs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn twenty_instructions() -> Value {
    let mut steps = vec![
        json!({"set": {"name": "order", "value": {"id": "{{body.id}}", "qty": "{{body.qty}}", "lines": []}}}),
        json!({"set": {"name": "total", "value": 0}}),
    ];
    for i in 0..6 {
        steps.push(
            json!({"set": {"name": "order.lines[]", "value": {"n": i, "sku": "SKU-{{body.id}}"}}}),
        );
    }
    steps.push(json!({"conditions": {
        "{{body.qty}} > 10 and {{body.country}} == FR": [{"set": {"name": "tier", "value": "bulk"}}],
        "{{body.qty}} > 0": [{"set": {"name": "tier", "value": "normal"}}],
        "default": [{"set": {"name": "tier", "value": "none"}}]
    }}));
    for i in 0..6 {
        steps.push(json!({"set": {"name": format!("f{i}"), "value": format!("{{% {{{{body.qty}}}} * {{{{body.price}}}} + {i} %}}")}}));
    }
    steps.push(json!({"set": {"name": "total", "value": "{% {{f5}} - 5 %}"}}));
    steps.push(
        json!({"set": {"name": "summary", "value": "order {{order.id}}: {{total}} ({{tier}})"}}),
    );
    steps.push(json!({"emit": {"event": "orders.received", "payload": {"id": "{{order.id}}", "total": "{{total}}"}}}));
    steps.push(json!({"set": {"name": "done", "value": true}}));
    steps.push(json!({"set": {"name": "$http", "value": {"status": 201}}}));
    Value::Array(steps)
}

fn repeat_1000() -> Value {
    json!([
        {"set": {"name": "sum", "value": 0}},
        {"repeat": {"until": 1000, "do": [
            {"set": {"name": "sum", "value": "{% {{sum}} + {{item}} %}"}}
        ]}}
    ])
}

fn expression_heavy() -> Value {
    let mut steps = Vec::new();
    for i in 0..10 {
        steps.push(json!({"set": {"name": format!("e{i}"), "value":
            format!("{{% round(({{{{body.qty}}}} * {{{{body.price}}}} + {i}) / 3, 2) > 5 and {{{{body.country}}}} in \"FR,DE,IT\" or {{{{body.tags}}}} matches \"^a\" %}}")}}));
        steps.push(json!({"set": {"name": format!("s{i}"), "value":
            format!("{{% join(split(\"a,b,c,{i}\", \",\"), \"-\") %}} {{{{body.id}}}} {{% date(\"2024-03-05T14:30:00Z\").hour + {i} %}}")}}));
    }
    Value::Array(steps)
}

/// Native twin of the sandbox's outside world: everything succeeds at once.
struct Quiet;

impl Outside for Quiet {
    fn emit(&mut self, _: &str, _: &Value, _: Option<&Value>, _: bool) -> Result<String, DslError> {
        Ok("1-0".into())
    }
    fn wait(&mut self, _: &[WaitFor], _: u32) -> Result<Option<Value>, DslError> {
        Ok(None)
    }
    fn fetch(&mut self, _: FetchRequest) -> Result<FetchResponse, DslError> {
        Err(DslError::new("FetchError", "no network in the benchmark"))
    }
    fn get(&mut self, _: Scope, _: &str) -> Result<Option<Value>, DslError> {
        Ok(None)
    }
    fn set(&mut self, _: Scope, _: &str, _: &Value) -> Result<(), DslError> {
        Ok(())
    }
    fn delete(&mut self, _: Scope, _: &str) -> Result<(), DslError> {
        Ok(())
    }
    fn call(&mut self, _: &str, _: &Value) -> Result<Value, DslError> {
        Ok(json!({}))
    }
    fn random(&mut self) -> f64 {
        0.5
    }
}

fn body() -> Value {
    json!({"id": "A-17", "qty": 12, "price": 3.5, "country": "FR", "tags": "alpha"})
}

/// A webhook run as the runtime starts it: the initial locals in the config, the request bare.
fn request(program: &str) -> RunRequest {
    RunRequest {
        context: RunContext {
            run_id: "bench".into(),
            workspace_id: WorkspaceId::new("ws-bench").expect("workspace id"),
            automation_slug: "bench".into(),
            correlation_id: CorrelationId::generate(),
            user_id: UserId::new("user-1").ok(),
            session_id: None,
            depth: 0,
            socket_id: None,
        },
        trigger: Trigger::Http(HttpRequest {
            method: "POST".into(),
            path: "/v2/workspaces/ws-bench/webhooks/bench".into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }),
        config: Setup {
            program: program.to_owned(),
            config: json!({}),
            depth: 0,
            socket_id: None,
            trigger: SetupTrigger {
                kind: "endpoint".into(),
                value: "bench".into(),
                id: None,
            },
            locals: json!({"method": "POST", "headers": {"content-type": "application/json"}, "query": {}, "body": body(),
                "workspaceId": "ws-bench", "automationSlug": "bench"})
            .as_object()
            .cloned(),
            workspace: None,
        }
        .to_config(),
        limits: Arc::new(Limits {
            max_emits: 10_000,
            ..Limits::default()
        }),
        egress: Arc::new(EgressPolicy::default()),
        secrets: Arc::default(),
        answer: None,
    }
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let total: Duration = times.iter().sum();
    let n = times.len().max(1);
    let mean = total / u32::try_from(n).unwrap_or(u32::MAX);
    let p = |q: f64| times[((n as f64 - 1.0) * q) as usize];
    println!(
        "{name:<52} {:>10.1} µs/run  p50 {:>8.1} µs  p99 {:>8.1} µs  {:>10.0} runs/s",
        mean.as_secs_f64() * 1e6,
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6,
        1.0 / mean.as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("REFRACT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let host = Arc::new(Host::new(
        HostConfig::default(),
        Arc::new(MemoryArtifactStore::new()),
    )?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let digest = rt.block_on(host.upload(INTERPRETER))?;
    let registry = MemoryAutomations::new(
        host.clone(),
        Arc::new(Limits::default()),
        Arc::new(EgressPolicy::default()),
    );
    let services = Services::new(
        Arc::new(MemoryEventBus::new(false)),
        Arc::new(MemoryStateStore::default()),
        registry,
    );
    println!(
        "DSL benchmark: {runs} runs per case (1,000-item repeat: {} runs), one thread",
        runs / 10
    );
    let cases: [(&str, Value, usize); 3] = [
        (
            "20 instructions (set/conditions/emit), webhook",
            twenty_instructions(),
            runs,
        ),
        ("repeat over 1,000 items", repeat_1000(), runs / 10),
        (
            "expression-heavy (20 sets, 40 expressions)",
            expression_heavy(),
            runs,
        ),
    ];
    for (name, steps, n) in cases {
        let program: Program = refract_dsl::compile(&steps, Some(&json!({"ok": true})))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let text = program.encode();
        // Native: the interpreter alone.
        let mut native = Vec::with_capacity(n);
        for _ in 0..n {
            let input = RunInput {
                locals: serde_json::from_value(json!({"body": body(), "method": "POST"}))?,
                ..RunInput::default()
            };
            let t = Instant::now();
            let r = refract_dsl::run(&program, input, &mut Quiet);
            native.push(t.elapsed());
            if let Err(e) = r {
                anyhow::bail!("{name}: native run failed: {e}");
            }
        }
        report(&format!("native   {name}"), native);
        // What the interpreter does before its first instruction: read the program.
        let mut decode = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let p = Program::decode(&text).map_err(anyhow::Error::msg)?;
            decode.push(t.elapsed());
            drop(p);
        }
        report(
            &format!(
                "native   decode the program ({} bytes, JSON form {} bytes)",
                text.len(),
                serde_json::to_string(&program)?.len()
            ),
            decode,
        );
        // Sandbox: the interpreter component through the host, fresh instance per run.
        let mut sandboxed = Vec::with_capacity(n);
        let mut phases = [Duration::ZERO; 4];
        for i in 0..n + 20 {
            let req = request(&text);
            let t = Instant::now();
            let r = rt.block_on(host.run(&digest, req, services.clone()))?;
            if i >= 20 {
                sandboxed.push(t.elapsed());
                let tm = &r.timings;
                for (sum, d) in
                    phases
                        .iter_mut()
                        .zip([tm.setup, tm.instantiate, tm.call, tm.teardown])
                {
                    *sum += d;
                }
            }
            if !matches!(r.outcome, RunOutcome::Ok(_)) {
                anyhow::bail!("{name}: sandboxed run failed: {:?}", r.outcome);
            }
        }
        report(&format!("sandbox  {name}"), sandboxed);
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
        println!(
            "         phases (mean µs): setup {:.1}, instantiate {:.1}, call {:.1}, teardown {:.1}",
            us(phases[0]),
            us(phases[1]),
            us(phases[2]),
            us(phases[3])
        );
    }
    Ok(())
}
