//! Shared hosts and request builders for the sandbox tests and the benchmark.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use refract_core::{CorrelationId, UserId, WorkspaceId};
use refract_host::memory::{MemoryAutomations, MemoryEventBus, MemoryStateStore};
use refract_host::{
    ComponentDigest, EgressConfig, EgressPolicy, Host, HostConfig, Limits, MemoryArtifactStore,
    RunContext, RunRequest, Services, Trigger,
};
use serde_json::Value;

use crate::fixtures::fixture;

/// Two hosts over one artifact store: `strict` (default egress: loopback refused) compiled
/// every fixture; `loopback` (loopback allowed, for local HTTP servers) loaded the artifacts.
pub struct Sandbox {
    /// Default egress: what production does (loopback refused).
    pub strict: Arc<Host>,
    /// Loopback allowed, for tests against local HTTP servers.
    pub loopback: Arc<Host>,
    /// The artifact store both hosts share.
    pub artifacts: Arc<MemoryArtifactStore>,
    /// The `hostile` fixture: one mode per behaviour a sandbox test checks, misbehaviours first.
    pub hostile: ComponentDigest,
    /// The `trivial` fixture: the benchmark guest, which does as little as possible.
    pub trivial: ComponentDigest,
}

static SANDBOX: OnceLock<Result<Sandbox, String>> = OnceLock::new();

/// The shared sandbox: fixtures built and compiled once per test binary.
pub fn sandbox() -> anyhow::Result<&'static Sandbox> {
    SANDBOX
        .get_or_init(|| {
            // Compile on a thread of our own: callers may already be inside a runtime.
            std::thread::spawn(|| setup().map_err(|e| format!("{e:#}")))
                .join()
                .unwrap_or_else(|_| Err("sandbox setup panicked".into()))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn setup() -> anyhow::Result<Sandbox> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let artifacts = Arc::new(MemoryArtifactStore::new());
        let strict = Arc::new(Host::new(HostConfig::default(), artifacts.clone())?);
        let hostile = strict
            .upload(&fixture("hostile")?)
            .await
            .context("uploading hostile")?;
        let trivial = strict
            .upload(&fixture("trivial")?)
            .await
            .context("uploading trivial")?;
        let loopback_config = HostConfig {
            egress: EgressConfig {
                allow_loopback: true,
                ..EgressConfig::default()
            },
            ..HostConfig::default()
        };
        let loopback = Arc::new(Host::new(loopback_config, artifacts.clone())?);
        loopback
            .warm(&hostile)
            .await
            .context("loading hostile from its artifact")?;
        loopback
            .warm(&trivial)
            .await
            .context("loading trivial from its artifact")?;
        Ok(Sandbox {
            strict,
            loopback,
            artifacts,
            hostile,
            trivial,
        })
    })
}

/// A run context for `slug` in a test workspace.
pub fn context(slug: &str) -> RunContext {
    RunContext {
        run_id: format!("run-{}", CorrelationId::generate()),
        workspace_id: WorkspaceId::new("ws-test").expect("a valid workspace id"),
        automation_slug: slug.to_owned(),
        correlation_id: CorrelationId::generate(),
        user_id: UserId::new("user-1").ok(),
        session_id: None,
        depth: 0,
        socket_id: None,
    }
}

/// A direct-call run of `slug` with `args`.
pub fn call(slug: &str, args: Value, limits: Limits, egress: EgressPolicy) -> RunRequest {
    RunRequest {
        context: context(slug),
        trigger: Trigger::Call(args.to_string()),
        config: "{}".into(),
        limits: Arc::new(limits),
        egress: Arc::new(egress),
        secrets: Arc::default(),
        answer: None,
    }
}

/// The services of `registry` (alive while the caller holds it).
pub fn registry_services(registry: &Arc<MemoryAutomations>) -> Services {
    registry.services().unwrap_or_else(|| {
        Services::new(
            registry.events().clone(),
            Arc::new(MemoryStateStore::default()),
            registry.clone(),
        )
    })
}

/// An empty registry of callable automations on `host`, run with default limits and egress.
pub fn registry(host: &Arc<Host>) -> Arc<MemoryAutomations> {
    MemoryAutomations::new(
        host.clone(),
        Arc::new(Limits::default()),
        Arc::new(EgressPolicy::default()),
    )
}

/// Fresh in-memory services (no callable automations).
pub fn services(host: &Arc<Host>) -> (Services, Arc<MemoryEventBus>) {
    let registry = registry(host);
    let events = registry.events().clone();
    (registry_services(&registry), events)
}
