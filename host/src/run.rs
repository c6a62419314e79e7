//! The [`Host`]: uploads (validate, compile, store the artifact) and runs (a fresh `Store` from
//! a cached `InstancePre`, limits armed, outcome classified).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use crate::answer::{Answer, AnswerSink};
use crate::bindings::AutomationPre;
use crate::bindings::types::{Invocation, Trigger};
use crate::cache::{
    ArtifactStore, ComponentDigest, DEFAULT_INSTANCE_CACHE, PreCache, artifact_key,
};
use crate::egress::{Egress, EgressConfig, EgressPolicy};
use crate::engine::{EngineConfig, EpochTicker, build_engine, engine_fingerprint};
use crate::error::HostError;
use crate::limits::{Limits, MemoryExceeded};
use crate::outcome::{AutomationError, RunOutcome, RunReport, RunTimings, TrapReason, Trapped};
use refract_secrets::WorkspaceSecrets;

use crate::imports::InFlight;
use crate::runlog::{LogLevel, RunLog};
use crate::services::{RunContext, Services};
use crate::shares::Shares;
use crate::store::{LimitTrap, RunCtx, StoreData, add_minimal_wasi};
use crate::{imports, stdio, validate};

/// A guest runs at most this many epoch ticks before yielding to the async executor, so one busy
/// guest cannot starve the other tasks of its worker thread.
const YIELD_TICKS: u64 = 10;

/// Everything the host needs at start-up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The engine and its instance pool.
    pub engine: EngineConfig,
    /// The outbound HTTP client shared by every run.
    pub egress: EgressConfig,
    /// Entries of the `InstancePre` LRU.
    pub instance_cache: usize,
    /// Called on the compiling thread once a compile is done: the embedding process can ask its
    /// allocator to give back what the compiler freed (Cranelift's working memory, tens of MiB,
    /// would otherwise stay with idle threads).
    pub after_compile: Option<fn()>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            engine: EngineConfig::default(),
            egress: EgressConfig::default(),
            instance_cache: DEFAULT_INSTANCE_CACHE,
            after_compile: None,
        }
    }
}

/// One run to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Who runs what: ids, user, call depth.
    pub context: RunContext,
    /// What started the run; becomes the guest's invocation.
    pub trigger: Trigger,
    /// The automation's config, secrets resolved, as a JSON object.
    pub config: String,
    /// The workspace's limits for this run.
    pub limits: Arc<Limits>,
    /// The workspace's egress allow-list.
    pub egress: Arc<EgressPolicy>,
    /// The workspace's secrets as this run sees them: what the `secrets` import reads, and
    /// what is redacted from the run's emits and log lines.
    pub secrets: Arc<WorkspaceSecrets>,
    /// Where the run's streamed answer goes: only the run a webhook started has one.
    pub answer: Option<AnswerSink>,
}

/// The error the epoch callback raises when the guest-compute budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("guest compute budget of {limit:?} exceeded")]
struct CpuExceeded {
    limit: Duration,
}

/// The wasmtime embedding: one per process.
pub struct Host {
    engine: Engine,
    linker: Linker<StoreData>,
    artifacts: Arc<dyn ArtifactStore>,
    fingerprint: String,
    pres: PreCache,
    egress: Arc<Egress>,
    tick: Duration,
    /// The engine's ceiling on one memory: no workspace limit may exceed it.
    max_memory: usize,
    /// Instance slots held per workspace (runs and nested calls), capped at a fair share.
    shares: Shares,
    /// [`HostConfig::after_compile`].
    after_compile: Option<fn()>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Builds the engine, the linker (our imports plus minimal WASI), the egress client, and
    /// starts the epoch ticker.
    pub fn new(config: HostConfig, artifacts: Arc<dyn ArtifactStore>) -> Result<Self, HostError> {
        let engine = build_engine(&config.engine)?;
        let mut linker = Linker::new(&engine);
        add_minimal_wasi(&mut linker).map_err(|e| HostError::internal("linking WASI", e))?;
        imports::add_to_linker(&mut linker)
            .map_err(|e| HostError::internal("linking imports", e))?;
        let egress = Arc::new(Egress::new(&config.egress)?);
        let ticker = EpochTicker::start(&engine, config.engine.epoch_tick)?;
        Ok(Host {
            fingerprint: engine_fingerprint(&engine),
            engine,
            linker,
            artifacts,
            pres: PreCache::new(config.instance_cache),
            egress,
            tick: config.engine.epoch_tick,
            max_memory: config.engine.max_memory_bytes,
            shares: Shares::new(config.engine.workspace_share()),
            after_compile: config.after_compile,
            _ticker: ticker,
        })
    }

    /// The process's engine (the benchmark compiles and loads components with it directly).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine part of artifact keys.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Number of ready `InstancePre`s.
    pub fn cached_instances(&self) -> usize {
        self.pres.len()
    }

    /// Every check of an upload, keeping nothing (`validateOnly`): a component, compiled by
    /// Cranelift, targeting our world. Blocking for as long as the compile takes: call it on a
    /// blocking thread.
    pub fn check(&self, bytes: &[u8]) -> Result<(), HostError> {
        validate::check_preamble(bytes)?;
        let component = compile(&self.engine, bytes, self.after_compile)?;
        validate::check_world(&self.engine, &component)
    }

    /// Validates an upload, compiles it once (Cranelift, on a blocking thread), checks it targets
    /// our world, and stores the artifact. Uploading the same bytes again is cheap: from the
    /// ready LRU, or from the artifact this engine stored for them (in this process, before a
    /// restart, or on another instance sharing the store), which is what the compile would make.
    pub async fn upload(&self, bytes: &[u8]) -> Result<ComponentDigest, HostError> {
        validate::check_preamble(bytes)?;
        let digest = ComponentDigest::of(bytes);
        if self.pres.get(&digest).is_some() {
            return Ok(digest);
        }
        if let Some(pre) = self.stored_pre(&digest).await? {
            self.pres.put(digest.clone(), pre);
            return Ok(digest);
        }
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let after = self.after_compile;
        let component = tokio::task::spawn_blocking(move || compile(&engine, &owned, after))
            .await
            .map_err(|e| HostError::internal("compile task", e))??;
        validate::check_world(&self.engine, &component)?;
        let pre = self.pre_for(&component)?;
        let artifact = component
            .serialize()
            .map_err(|e| HostError::internal("serializing artifact", e))?;
        let key = artifact_key(&digest, &self.fingerprint);
        self.artifacts
            .put(&key, artifact.into())
            .await
            .map_err(|e| HostError::ArtifactStore {
                message: e.message,
                transient: e.transient,
            })?;
        self.pres.put(digest.clone(), pre);
        Ok(digest)
    }

    /// The `InstancePre` of `digest` from the artifact store, checked against our world like a
    /// fresh compile; `None` when there is no artifact, or one this engine cannot load (the
    /// upload then compiles and replaces it). A store that cannot be read is a miss too: the
    /// compile's own write will say whether it is down.
    async fn stored_pre(
        &self,
        digest: &ComponentDigest,
    ) -> Result<Option<AutomationPre<StoreData>>, HostError> {
        let key = artifact_key(digest, &self.fingerprint);
        let Ok(Some(bytes)) = self.artifacts.get(&key).await else {
            return Ok(None);
        };
        let Ok(component) = load_artifact(&self.engine, &bytes) else {
            return Ok(None);
        };
        validate::check_world(&self.engine, &component)?;
        self.pre_for(&component).map(Some)
    }

    fn pre_for(&self, component: &Component) -> Result<AutomationPre<StoreData>, HostError> {
        let mismatch = |e: wasmtime::Error| HostError::WorldMismatch {
            missing_exports: Vec::new(),
            forbidden_imports: Vec::new(),
            detail: Some(format!("{e:#}")),
        };
        let pre = self.linker.instantiate_pre(component).map_err(mismatch)?;
        AutomationPre::new(pre).map_err(mismatch)
    }

    /// The ready `InstancePre` of `digest`: from the LRU, else loaded from its artifact. Never
    /// compiles.
    pub(crate) async fn prepare(
        &self,
        digest: &ComponentDigest,
    ) -> Result<AutomationPre<StoreData>, HostError> {
        if let Some(pre) = self.pres.get(digest) {
            return Ok(pre);
        }
        let key = artifact_key(digest, &self.fingerprint);
        let bytes = self
            .artifacts
            .get(&key)
            .await
            .map_err(|e| HostError::ArtifactStore {
                message: e.message,
                transient: e.transient,
            })?
            .ok_or_else(|| HostError::NotCompiled {
                digest: digest.to_string(),
            })?;
        let component = load_artifact(&self.engine, &bytes)?;
        let pre = self.pre_for(&component)?;
        self.pres.put(digest.clone(), pre.clone());
        Ok(pre)
    }

    /// Loads `digest` into the LRU ahead of its first run (e.g. at start-up).
    pub async fn warm(&self, digest: &ComponentDigest) -> Result<(), HostError> {
        self.prepare(digest).await.map(|_| ())
    }

    /// Runs the component `digest` once, in a fresh instance, under `request.limits`.
    pub async fn run(
        &self,
        digest: &ComponentDigest,
        request: RunRequest,
        services: Services,
    ) -> Result<RunReport, HostError> {
        if request.limits.memory_bytes > self.max_memory {
            return Err(HostError::Config {
                setting: "limits.memory_bytes",
                message: format!(
                    "{} bytes is over the engine's ceiling of {} (EngineConfig::max_memory_bytes)",
                    request.limits.memory_bytes, self.max_memory
                ),
            });
        }
        let c = &request.context;
        // Held until the run's store (and so its pool slots) is dropped.
        let _slot = self
            .shares
            .take(c.workspace_id.as_str())
            .ok_or_else(|| HostError::Busy {
                message: format!(
                    "workspace {} already runs {} instances, its share of the pool",
                    c.workspace_id,
                    self.shares.cap()
                ),
            })?;
        let pre = self.prepare(digest).await?;
        let span = tracing::info_span!("run", run_id = %c.run_id, workspace_id = %c.workspace_id,
            automation = %c.automation_slug, correlation_id = %c.correlation_id, depth = c.depth);
        self.run_pre(&pre, request, services).instrument(span).await
    }

    async fn run_pre(
        &self,
        pre: &AutomationPre<StoreData>,
        request: RunRequest,
        services: Services,
    ) -> Result<RunReport, HostError> {
        let RunRequest {
            context,
            trigger,
            config,
            limits,
            egress,
            secrets,
            answer,
        } = request;
        let info = Arc::new(context);
        let invocation = Invocation {
            trigger,
            workspace_id: info.workspace_id.to_string(),
            automation_slug: info.automation_slug.clone(),
            correlation_id: info.correlation_id.to_string(),
            user_id: info.user_id.as_ref().map(ToString::to_string),
            session_id: info.session_id.as_ref().map(ToString::to_string),
            config,
        };
        let started = Instant::now();
        let log = RunLog::new(
            info.clone(),
            secrets.redactor().clone(),
            started,
            limits.max_log_lines,
            limits.max_log_bytes,
            limits.max_log_line,
        );
        let ctx = RunCtx {
            info: info.clone(),
            services,
            limits: limits.clone(),
            egress: self.egress.clone(),
            policy: egress,
            started,
            io_time: Duration::ZERO,
            emits: 0,
            fetches: 0,
            waits: 0,
            calls: 0,
            refused: Vec::new(),
            log,
            secrets,
            in_flight: InFlight::default(),
            answer: answer.map(Answer::new),
        };
        let mut store = Store::new(&self.engine, StoreData::new(ctx));
        store.limiter(|d| &mut d.limiter);
        let tick = self.tick;
        let cpu = limits.cpu_time;
        let cpu_ticks = ticks(cpu, tick);
        store.set_epoch_deadline(cpu_ticks.min(YIELD_TICKS));
        store.epoch_deadline_callback(move |cx| {
            let run = &cx.data().run;
            let used = run.started.elapsed().saturating_sub(run.io_time);
            if used >= cpu {
                return Err(wasmtime::Error::new(CpuExceeded { limit: cpu }));
            }
            Ok(UpdateDeadline::Yield(
                ticks(cpu - used, tick).min(YIELD_TICKS),
            ))
        });

        let mut timings = RunTimings {
            setup: started.elapsed(),
            ..RunTimings::default()
        };
        let call = async {
            let t = Instant::now();
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .map_err(Phase::Instantiate)?;
            timings.instantiate = t.elapsed();
            let t = Instant::now();
            let out = instance
                .call_run(&mut store, &invocation)
                .await
                .map_err(Phase::Call);
            timings.call = t.elapsed();
            out
        };
        let result = tokio::time::timeout(limits.wall_time, call).await;

        let data = store.data();
        let (stderr, dropped_stdio) = data.finish_stdio();
        let outcome = match result {
            Err(_elapsed) => trapped(
                TrapReason::Timeout,
                format!("wall-clock limit of {:?} exceeded", limits.wall_time),
            ),
            Ok(Ok(Ok(output))) => check_output(output, limits.output_bytes),
            Ok(Ok(Err(error))) => RunOutcome::Failed(error),
            Ok(Err(Phase::Instantiate(e))) if is_pool_exhausted(&e) => {
                return Err(HostError::Busy {
                    message: format!("{e}"),
                });
            }
            Ok(Err(Phase::Instantiate(e) | Phase::Call(e))) => {
                classify(&e, data.limiter.exceeded, &stderr)
            }
        };
        if let RunOutcome::Trapped(t) = &outcome {
            data.run.host_log(
                LogLevel::Error,
                &format!(
                    "stopped by the sandbox ({}): {}",
                    t.reason.as_str(),
                    t.message
                ),
            );
        }
        let (logs, dropped_lines) = data.run.log.take();
        let logs_dropped = dropped_stdio + dropped_lines;
        if logs_dropped > 0 {
            tracing::warn!(run_id = %info.run_id, workspace_id = %info.workspace_id, logs_dropped, "run logged over its budget");
        }
        let (emits, fetches) = (data.run.emits, data.run.fetches);
        // Dropping the store returns the instance's pool slots (memory reset or decommit).
        let t = Instant::now();
        drop(store);
        timings.teardown = t.elapsed();
        let report = RunReport {
            outcome,
            emits,
            fetches,
            elapsed: started.elapsed(),
            logs,
            logs_dropped,
            timings,
        };
        if let RunOutcome::Trapped(t) = &report.outcome {
            tracing::info!(run_id = %info.run_id, workspace_id = %info.workspace_id, automation = %info.automation_slug,
                reason = t.reason.as_str(), message = %t.message, "run trapped");
        }
        Ok(report)
    }
}

enum Phase {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// Compiles `bytes` with Cranelift on this thread, then tells the embedder
/// ([`HostConfig::after_compile`]), whether the compile succeeded or not.
fn compile(engine: &Engine, bytes: &[u8], after: Option<fn()>) -> Result<Component, HostError> {
    let component = Component::new(engine, bytes);
    if let Some(after) = after {
        after();
    }
    component.map_err(|e| HostError::Compile {
        message: format!("{e:#}"),
    })
}

/// SAFETY: `Component::deserialize` maps the bytes as native code. Artifacts are produced by
/// `Component::serialize` of this host and read back only from the [`ArtifactStore`] under the
/// key (digest + engine fingerprint) they were written with; only trusted writers (the
/// workspaces service and the runtime) may write that store. Wasmtime also checks the header and
/// the engine compatibility before loading.
#[allow(unsafe_code)]
fn load_artifact(engine: &Engine, bytes: &[u8]) -> Result<Component, HostError> {
    unsafe { Component::deserialize(engine, bytes) }
        .map_err(|e| HostError::internal("loading a precompiled artifact", e))
}

fn ticks(d: Duration, tick: Duration) -> u64 {
    let n = d.as_nanos().div_ceil(tick.as_nanos().max(1));
    u64::try_from(n).unwrap_or(u64::MAX).max(1)
}

fn trapped(reason: TrapReason, message: impl Into<String>) -> RunOutcome {
    RunOutcome::Trapped(Trapped {
        reason,
        message: message.into(),
    })
}

fn is_pool_exhausted(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>())
}

fn check_output(output: crate::outcome::Output, limit: usize) -> RunOutcome {
    let headers: usize = output.http.as_ref().map_or(0, |h| {
        h.headers.iter().map(|(k, v)| k.len() + v.len()).sum()
    });
    let size = output.body.len() + headers;
    if size > limit {
        return trapped(
            TrapReason::Output,
            format!("output is {size} bytes, over the limit of {limit}"),
        );
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(&output.body).is_err() {
        return RunOutcome::Failed(AutomationError {
            code: "InvalidOutput".into(),
            message: "the automation returned a body that is not JSON".into(),
            details: None,
        });
    }
    if let Some(http) = &output.http
        && !(100..=599).contains(&http.status)
    {
        return RunOutcome::Failed(AutomationError {
            code: "InvalidOutput".into(),
            message: format!("HTTP status {} is not between 100 and 599", http.status),
            details: None,
        });
    }
    RunOutcome::Ok(output)
}

/// Turns a wasmtime error into the reason the API reports.
fn classify(e: &wasmtime::Error, memory_exceeded: bool, stderr: &str) -> RunOutcome {
    if memory_exceeded || e.chain().any(|c| c.is::<MemoryExceeded>()) {
        let msg = e
            .chain()
            .find_map(|c| c.downcast_ref::<MemoryExceeded>().map(ToString::to_string));
        return trapped(
            TrapReason::Memory,
            msg.unwrap_or_else(|| "linear memory limit exceeded".into()),
        );
    }
    if let Some(c) = e.chain().find_map(|c| c.downcast_ref::<CpuExceeded>()) {
        return trapped(TrapReason::Cpu, c.to_string());
    }
    if let Some(l) = e.chain().find_map(|c| c.downcast_ref::<LimitTrap>()) {
        return trapped(TrapReason::Limit, l.to_string());
    }
    if let Some(exit) = e
        .chain()
        .find_map(|c| c.downcast_ref::<wasmtime_wasi::I32Exit>())
    {
        return trapped(
            TrapReason::Trap,
            format!("the guest exited with code {}", exit.0),
        );
    }
    let trap = e.chain().find_map(|c| c.downcast_ref::<Trap>()).copied();
    match trap {
        Some(Trap::StackOverflow) => return trapped(TrapReason::Stack, "stack overflow"),
        Some(Trap::Interrupt | Trap::OutOfFuel) => {
            return trapped(TrapReason::Cpu, "guest compute budget exceeded");
        }
        _ => {}
    }
    if let Some(message) = stdio::panic_message(stderr) {
        return trapped(TrapReason::Panic, message);
    }
    let message = match trap {
        Some(t) => t.to_string(),
        None => format!("{e:#}"),
    };
    trapped(TrapReason::Trap, message)
}
