//! In-memory twins of the services, for tests and local runs: an event bus, a state store, and
//! an automation registry that runs callees on the same [`Host`].
//!
//! The state store keeps one flat map of dotted paths per scope owner: reading a parent of a
//! written path returns nothing (the runtime's context store resolves paths inside documents).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use refract_core::{Event, EventId};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::bindings::types::Trigger;
use crate::cache::ComponentDigest;
use crate::egress::EgressPolicy;
use crate::limits::Limits;
use crate::outcome::RunOutcome;
use crate::run::{Host, RunRequest};
use crate::services::{
    AutomationCaller, CallFailure, EventBus, RunContext, ServiceError, Services, StateScope,
    StateStore, WaitCondition,
};

/// Events kept in memory and broadcast to waiters.
#[derive(Debug)]
pub struct MemoryEventBus {
    events: Mutex<Vec<Event>>,
    tx: broadcast::Sender<Event>,
    seq: AtomicU64,
    /// Keep published events (off in benchmarks).
    keep: bool,
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        Self::new(true)
    }
}

impl MemoryEventBus {
    pub fn new(keep: bool) -> Self {
        let (tx, _) = broadcast::channel(1024);
        MemoryEventBus {
            events: Mutex::new(Vec::new()),
            tx,
            seq: AtomicU64::new(0),
            keep,
        }
    }

    /// Every event published so far.
    pub fn published(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Publishes an event from outside a run (e.g. a test feeding a waiting guest).
    pub fn publish(&self, mut event: Event) -> EventId {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = EventId::from_parts(
            u64::try_from(event.created_at.timestamp_millis()).unwrap_or(0),
            seq,
        );
        event.id = Some(id.clone());
        if self.keep {
            self.events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event.clone());
        }
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(event);
        }
        id
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn emit(&self, _run: &RunContext, event: Event) -> Result<EventId, ServiceError> {
        Ok(self.publish(event))
    }

    async fn emit_host_event(
        &self,
        _run: &RunContext,
        event: Event,
    ) -> Result<EventId, ServiceError> {
        Ok(self.publish(event))
    }

    async fn wait(
        &self,
        _run: &RunContext,
        conditions: &[WaitCondition],
        timeout: Duration,
    ) -> Result<Option<Event>, ServiceError> {
        let mut rx = self.tx.subscribe();
        let found = tokio::time::timeout(timeout, async {
            loop {
                match rx.recv().await {
                    Ok(e) if conditions.iter().any(|c| c.matches(&e)) => return Ok(e),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(ServiceError::Unavailable("event bus closed".into()));
                    }
                }
            }
        })
        .await;
        match found {
            Ok(Ok(e)) => Ok(Some(e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }
}

/// State variables in memory, keyed by scope owner and path.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    map: Mutex<HashMap<(String, String), Value>>,
}

fn owner(run: &RunContext, scope: StateScope) -> String {
    match scope {
        StateScope::Global => format!("g:{}", run.workspace_id),
        StateScope::User => format!(
            "u:{}:{}",
            run.workspace_id,
            run.user_id.as_ref().map_or("", |u| u.as_str())
        ),
        StateScope::Session => {
            format!(
                "s:{}:{}",
                run.workspace_id,
                run.session_id.as_ref().map_or("", |s| s.as_str())
            )
        }
        // A run and the automations it calls share the correlation id.
        StateScope::Run => format!("r:{}:{}", run.workspace_id, run.correlation_id),
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn get(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
    ) -> Result<Option<Value>, ServiceError> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(&(owner(run, scope), path.to_owned())).cloned())
    }

    async fn set(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
        value: Value,
    ) -> Result<(), ServiceError> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((owner(run, scope), path.to_owned()), value);
        Ok(())
    }

    async fn delete(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
    ) -> Result<(), ServiceError> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(owner(run, scope), path.to_owned()));
        Ok(())
    }
}

/// Automations registered by slug, run on the same host when called.
pub struct MemoryAutomations {
    host: Arc<Host>,
    this: Weak<MemoryAutomations>,
    events: Arc<MemoryEventBus>,
    state: Arc<MemoryStateStore>,
    slugs: Mutex<HashMap<String, ComponentDigest>>,
    limits: Arc<Limits>,
    egress: Arc<EgressPolicy>,
}

impl std::fmt::Debug for MemoryAutomations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAutomations").finish_non_exhaustive()
    }
}

impl MemoryAutomations {
    pub fn new(host: Arc<Host>, limits: Arc<Limits>, egress: Arc<EgressPolicy>) -> Arc<Self> {
        Arc::new_cyclic(|this| MemoryAutomations {
            host,
            this: this.clone(),
            events: Arc::new(MemoryEventBus::default()),
            state: Arc::new(MemoryStateStore::default()),
            slugs: Mutex::new(HashMap::new()),
            limits,
            egress,
        })
    }

    pub fn register(&self, slug: &str, digest: ComponentDigest) {
        self.slugs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slug.to_owned(), digest);
    }

    pub fn events(&self) -> &Arc<MemoryEventBus> {
        &self.events
    }

    /// The services of a run: this registry's bus and store, and calls back into it.
    pub fn services(&self) -> Option<Services> {
        let me = self.this.upgrade()?;
        Some(Services {
            events: self.events.clone(),
            state: self.state.clone(),
            automations: me,
        })
    }
}

#[async_trait]
impl AutomationCaller for MemoryAutomations {
    async fn call(
        &self,
        callee: RunContext,
        slug: &str,
        arguments: Value,
    ) -> Result<Value, CallFailure> {
        let digest = self
            .slugs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slug)
            .cloned();
        let digest = digest.ok_or_else(|| CallFailure::NotFound(slug.to_owned()))?;
        let services = self
            .services()
            .ok_or_else(|| CallFailure::Unavailable("registry dropped".into()))?;
        let request = RunRequest {
            context: callee,
            trigger: Trigger::Call(arguments.to_string()),
            config: "{}".into(),
            limits: self.limits.clone(),
            egress: self.egress.clone(),
        };
        // The callee runs as its own task, like a run routed to another worker would.
        let host = self.host.clone();
        let report = tokio::spawn(async move { host.run(&digest, request, services).await })
            .await
            .map_err(|e| CallFailure::Unavailable(e.to_string()))?
            .map_err(|e| CallFailure::Unavailable(e.to_string()))?;
        match report.outcome {
            RunOutcome::Ok(output) => serde_json::from_str(&output.body)
                .map_err(|e| CallFailure::Trapped(format!("callee output is not JSON: {e}"))),
            RunOutcome::Failed(e) => Err(CallFailure::Failed {
                code: e.code,
                message: e.message,
                details: e.details,
            }),
            RunOutcome::Trapped(t) => Err(CallFailure::Trapped(format!(
                "{}: {}",
                t.reason.as_str(),
                t.message
            ))),
        }
    }
}
