//! In-memory twins of the services, for tests and local runs: an event bus, a state store,
//! coordination (rate limits, user topics), a config store, session identities, and an
//! automation registry that runs callees on the same [`Host`]. The registry's services are the
//! core three only: the optional capabilities are added with [`Services`]' `with_*` methods.
//!
//! The state store keeps one flat map of dotted paths per scope owner: reading a parent of a
//! written path returns nothing (the runtime's context store resolves paths inside documents).

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use refract_core::{Event, EventId, Scope, SessionId, UserId};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::bindings::types::Trigger;
use crate::cache::ComponentDigest;
use crate::egress::EgressPolicy;
use crate::limits::Limits;
use crate::run::{Host, RunRequest};
use crate::services::{
    AutomationCaller, CallFailure, ConfigStore, Coordination, EventBus, Identities, RateLimitState,
    RateLimiter, RunContext, ServiceError, Services, StateStore, WaitCondition,
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
    /// A bus that keeps what is published when `keep` (off in benchmarks).
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

fn owner(run: &RunContext, scope: Scope) -> String {
    match scope {
        Scope::Global => format!("g:{}", run.workspace_id),
        Scope::User => format!(
            "u:{}:{}",
            run.workspace_id,
            run.user_id.as_ref().map_or("", |u| u.as_str())
        ),
        Scope::Session => {
            format!(
                "s:{}:{}",
                run.workspace_id,
                run.session_id.as_ref().map_or("", |s| s.as_str())
            )
        }
        // A run and the automations it calls share the correlation id.
        Scope::Run => format!("r:{}:{}", run.workspace_id, run.correlation_id),
        Scope::Socket => format!(
            "k:{}:{}",
            run.workspace_id,
            run.socket_owner().unwrap_or_default()
        ),
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn get(
        &self,
        run: &RunContext,
        scope: Scope,
        path: &str,
    ) -> Result<Option<Value>, ServiceError> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(&(owner(run, scope), path.to_owned())).cloned())
    }

    async fn set(
        &self,
        run: &RunContext,
        scope: Scope,
        path: &str,
        value: Value,
    ) -> Result<(), ServiceError> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((owner(run, scope), path.to_owned()), value);
        Ok(())
    }

    async fn delete(&self, run: &RunContext, scope: Scope, path: &str) -> Result<(), ServiceError> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(owner(run, scope), path.to_owned()));
        Ok(())
    }
}

/// A limiter of one workspace and consumer: (workspace, limiter, consumer).
type LimiterKey = (String, String, String);

/// Rate limits and user topics in memory (one process: nothing is shared across a cluster).
#[derive(Debug, Default)]
pub struct MemoryCoordination {
    /// Each limiter's window start and points used in it.
    limiters: Mutex<HashMap<LimiterKey, (Instant, u32)>>,
    /// (workspace, topic) → member ids.
    topics: Mutex<HashMap<(String, String), HashSet<String>>>,
}

impl MemoryCoordination {
    /// The members of `topic` in `workspace` (`None`: no such topic).
    pub fn members(&self, workspace: &str, topic: &str) -> Option<HashSet<String>> {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(workspace.to_owned(), topic.to_owned()))
            .cloned()
    }
}

#[async_trait]
impl Coordination for MemoryCoordination {
    async fn rate_limit(
        &self,
        run: &RunContext,
        limiter: &RateLimiter,
    ) -> Result<RateLimitState, ServiceError> {
        let now = Instant::now();
        let key = (
            run.workspace_id.to_string(),
            limiter.name.clone(),
            limiter.consumer.clone(),
        );
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, used) = limiters.entry(key).or_insert((now, 0));
        if now.duration_since(*start) >= limiter.window {
            (*start, *used) = (now, 0);
        }
        if used.saturating_add(limiter.consume) <= limiter.limit {
            *used += limiter.consume;
            return Ok(RateLimitState {
                ok: true,
                remaining: limiter.limit - *used,
                retry_after: 0,
            });
        }
        let left = limiter.window.saturating_sub(now.duration_since(*start));
        Ok(RateLimitState {
            ok: false,
            remaining: limiter.limit.saturating_sub(*used),
            retry_after: u32::try_from(left.as_millis().div_ceil(1000)).unwrap_or(u32::MAX),
        })
    }

    async fn create_user_topic(
        &self,
        run: &RunContext,
        topic: &str,
        users: &[UserId],
    ) -> Result<bool, ServiceError> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (run.workspace_id.to_string(), topic.to_owned());
        let existed = topics.contains_key(&key);
        topics
            .entry(key)
            .or_default()
            .extend(users.iter().map(|u| u.as_str().to_owned()));
        Ok(existed)
    }

    async fn join_user_topic(
        &self,
        run: &RunContext,
        topic: &str,
        users: &[UserId],
        create: bool,
    ) -> Result<(), ServiceError> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (run.workspace_id.to_string(), topic.to_owned());
        if !create && !topics.contains_key(&key) {
            return Err(ServiceError::Invalid(format!(
                "no user topic {topic:?} in this workspace"
            )));
        }
        topics
            .entry(key)
            .or_default()
            .extend(users.iter().map(|u| u.as_str().to_owned()));
        Ok(())
    }
}

/// Workspace configs in memory: one flat map of dotted paths per workspace, like
/// [`MemoryStateStore`].
#[derive(Debug, Default)]
pub struct MemoryConfigStore {
    map: Mutex<HashMap<(String, String), Value>>,
}

impl MemoryConfigStore {
    /// What was written at `path` of `workspace`'s config.
    pub fn get(&self, workspace: &str, path: &str) -> Option<Value> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(workspace.to_owned(), path.to_owned()))
            .cloned()
    }
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    async fn set_config(
        &self,
        run: &RunContext,
        path: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (run.workspace_id.to_string(), path.to_owned());
        match value {
            Some(v) => map.insert(key, v),
            None => map.remove(&key),
        };
        Ok(())
    }
}

/// Login sessions and workspace members in memory, with the runtime's rule: a session's user is
/// told to a run only when it is the run's own user or a member of the run's workspace.
#[derive(Debug, Default)]
pub struct MemoryIdentities {
    sessions: Mutex<HashMap<SessionId, UserId>>,
    members: Mutex<HashSet<(String, UserId)>>,
}

impl MemoryIdentities {
    /// Makes `session` a login session of `user`.
    pub fn add_session(&self, session: SessionId, user: UserId) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session, user);
    }

    /// Makes `user` a member of `workspace`.
    pub fn add_member(&self, workspace: &str, user: UserId) {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((workspace.to_owned(), user));
    }
}

#[async_trait]
impl Identities for MemoryIdentities {
    async fn session_user(
        &self,
        run: &RunContext,
        session: &SessionId,
    ) -> Result<Option<UserId>, ServiceError> {
        let user = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
            .cloned();
        let Some(user) = user else {
            return Ok(None);
        };
        let member = self
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(run.workspace_id.to_string(), user.clone()));
        Ok((run.user_id.as_ref() == Some(&user) || member).then_some(user))
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
    /// A registry whose callees run on `host` under `limits` and `egress`.
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

    /// Makes `digest` callable as `slug`.
    pub fn register(&self, slug: &str, digest: ComponentDigest) {
        self.slugs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slug.to_owned(), digest);
    }

    /// The registry's event bus.
    pub fn events(&self) -> &Arc<MemoryEventBus> {
        &self.events
    }

    /// The services of a run: this registry's bus and store, and calls back into it.
    pub fn services(&self) -> Option<Services> {
        let me = self.this.upgrade()?;
        Some(Services::new(self.events.clone(), self.state.clone(), me))
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
            secrets: Arc::default(),
            answer: None,
        };
        // The callee runs as its own task, like a run routed to another worker would.
        let host = self.host.clone();
        let report = tokio::spawn(async move { host.run(&digest, request, services).await })
            .await
            .map_err(|e| CallFailure::Unavailable(e.to_string()))?
            .map_err(|e| CallFailure::Unavailable(e.to_string()))?;
        let output = CallFailure::from_outcome(report.outcome)?;
        serde_json::from_str(&output.body)
            .map_err(|e| CallFailure::Trapped(format!("callee output is not JSON: {e}")))
    }
}
