//! The `emit` and `wait` imports over the broker, and the system events of a run.

use refract_core::platform::types;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use refract_broker::{Broker, BrokerError};
use refract_core::platform;
use refract_core::{Event, EventId, EventType, Source, SourceHost};
use refract_host::{EventBus, RunContext, ServiceError, WaitCondition};
use serde_json::{Value, json};

use crate::apps::{AppScope, bus_type};
use crate::run::{Credentials, LiveGuard, LiveRuns};
use crate::waiters::Waiters;

/// `source.host.service` of the events the runtime publishes.
pub(crate) const SERVICE: &str = platform::service::RUNTIME;

/// Forgets a run in [`LiveRuns`] and [`Waiters`] when it ends.
pub(crate) struct RunGuard {
    _live: LiveGuard,
    waiters: Arc<Waiters>,
    run_id: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.waiters.forget(&self.run_id);
    }
}

/// The [`EventBus`] of runs: publishes to the broker, waits on this instance's waiters.
pub(crate) struct BrokerBus {
    broker: Arc<dyn Broker>,
    waiters: Arc<Waiters>,
    instance: String,
    /// The app instance of each live run, so `emit` and `wait` namespace event types.
    live: Arc<LiveRuns>,
}

impl BrokerBus {
    /// Publishing to `broker` as runtime instance `instance`, waiting on `waiters`.
    pub(crate) fn new(broker: Arc<dyn Broker>, waiters: Arc<Waiters>, instance: String) -> Self {
        Self {
            broker,
            waiters,
            instance,
            live: Arc::default(),
        }
    }

    /// Which app instance each live run belongs to, and its caller's credentials.
    pub(crate) fn live_runs(&self) -> &Arc<LiveRuns> {
        &self.live
    }

    /// Records run `run_id` (of app instance `scope`, started with `credentials`, if any) until
    /// the guard is dropped.
    pub(crate) fn enter(
        &self,
        run_id: &str,
        scope: Option<Arc<AppScope>>,
        credentials: Option<Arc<Credentials>>,
    ) -> RunGuard {
        RunGuard {
            _live: self.live.enter(run_id, scope, credentials),
            waiters: self.waiters.clone(),
            run_id: run_id.to_owned(),
        }
    }

    /// Publishes a system event about `run` (a wait starting or fulfilled); a failure is logged,
    /// the wait goes on.
    async fn announce(&self, run: &RunContext, ty: &str, payload: Value) {
        let Some(event) = run_event(run, ty, payload, run.depth) else {
            return;
        };
        if let Err(e) = self.publish(event).await {
            tracing::warn!(workspace_id = %run.workspace_id, event_type = ty, error = %e, "could not publish a wait event");
        }
    }

    /// A run's event as it goes on the bus. The host built the source (workspace, correlation,
    /// automation, depth + 1); inside an app instance the type gets the instance's prefix and
    /// the source its app (§8.3).
    fn scoped(&self, run: &RunContext, mut event: Event) -> Result<Event, ServiceError> {
        self.waiters
            .asked(&run.run_id, event.created_at.timestamp_millis());
        if let Some(scope) = self.live.of(&run.run_id) {
            let ty = bus_type(Some(&scope), event.event_type.as_str());
            event.event_type =
                EventType::new(&ty).map_err(|e| ServiceError::Invalid(e.to_string()))?;
            event.source.app_slug = Some(scope.app_slug.clone());
            event.source.app_instance_full_slug = Some(scope.full_slug.clone());
            event.source.app_instance_depth = Some(scope.depth);
        }
        Ok(event)
    }

    /// Publishes a run's event, with the broker's refusals as the guest sees them.
    async fn send(&self, event: Event) -> Result<EventId, ServiceError> {
        self.publish(event).await.map_err(|e| match e {
            BrokerError::Invalid(v) => ServiceError::Invalid(v.to_string()),
            other => ServiceError::Unavailable(other.to_string()),
        })
    }

    /// The broker's newest `limit` dead letters, every group's and workspace's.
    pub(crate) async fn broker_dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<refract_broker::DeadLetter>, BrokerError> {
        self.broker.dead_letters(limit).await
    }

    /// Publishes an event of the runtime itself (stamped with this instance).
    pub(crate) async fn publish(&self, mut event: Event) -> Result<EventId, BrokerError> {
        event.source.host = Some(SourceHost {
            service: SERVICE.into(),
            replica: Some(self.instance.clone()),
        });
        self.broker.publish(event).await
    }
}

/// An event of the platform about `run`, under its identity, at automation depth `depth`
/// (`None` for a bad type or a payload that is not an object).
pub(crate) fn run_event(run: &RunContext, ty: &str, payload: Value, depth: u32) -> Option<Event> {
    let (Ok(event_type), Value::Object(payload)) = (EventType::new(ty), payload) else {
        return None;
    };
    let mut event = Event::new(event_type, Some(run.workspace_id.clone()), payload);
    event.source = Source {
        workspace_id: Some(run.workspace_id.clone()),
        user_id: run.user_id.clone(),
        session_id: run.session_id.clone(),
        correlation_id: run.correlation_id.clone(),
        automation_slug: Some(run.automation_slug.clone()),
        automation_depth: Some(depth),
        ..Source::default()
    };
    Some(event)
}

#[async_trait]
impl EventBus for BrokerBus {
    async fn emit(&self, run: &RunContext, event: Event) -> Result<EventId, ServiceError> {
        let event = self.scoped(run, event)?;
        // Every guest emit passes here with its final type: the platform's own types are
        // refused as they are to clients (a value for the guest, `InvalidEventError` in DSL).
        platform::check_emittable(&event.event_type, platform::Emitter::Automation)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.send(event).await
    }

    async fn emit_host_event(
        &self,
        run: &RunContext,
        event: Event,
    ) -> Result<EventId, ServiceError> {
        let event = self.scoped(run, event)?;
        self.send(event).await
    }

    async fn wait(
        &self,
        run: &RunContext,
        conditions: &[WaitCondition],
        timeout: Duration,
    ) -> Result<Option<Event>, ServiceError> {
        let scope = self.live.of(&run.run_id);
        let mut conditions = conditions.to_vec();
        if let Some(scope) = &scope {
            for c in &mut conditions {
                let ty = bus_type(Some(scope), c.event_type.as_str());
                c.event_type =
                    EventType::new(&ty).map_err(|e| ServiceError::Invalid(e.to_string()))?;
            }
        }
        let conditions = conditions.as_slice();
        let mut handle =
            self.waiters
                .register(&run.run_id, run.workspace_id.as_str(), conditions.to_vec());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = Utc::now()
            .timestamp_millis()
            .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
        let one_of: Vec<&str> = conditions.iter().map(|c| c.event_type.as_str()).collect();
        let pending = json!({"id": id, "expiresAt": expires_at, "wait": {"oneOf": one_of, "timeout": timeout.as_millis() as u64}});
        self.announce(run, types::WAITS_PENDING, pending).await;
        match tokio::time::timeout(timeout, &mut handle.rx).await {
            Ok(Ok(event)) => {
                self.announce(
                    run,
                    types::WAITS_FULFILLED,
                    json!({"id": id, "event": event}),
                )
                .await;
                Ok(Some(event))
            }
            Ok(Err(_)) => Err(ServiceError::Unavailable("the wait was dropped".into())),
            Err(_) => Ok(None),
        }
    }
}
