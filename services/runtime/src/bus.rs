//! The `emit` and `wait` imports over the broker, and the system events of a run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refract_broker::{Broker, BrokerError};
use refract_core::{Event, EventId, SourceHost};
use refract_host::{EventBus, RunContext, ServiceError, WaitCondition};

use crate::waiters::Waiters;

/// `source.host.service` of the events the runtime publishes.
pub const SERVICE: &str = "runtime";

/// The [`EventBus`] of runs: publishes to the broker, waits on this instance's waiters.
pub struct BrokerBus {
    broker: Arc<dyn Broker>,
    waiters: Arc<Waiters>,
    instance: String,
}

impl BrokerBus {
    pub fn new(broker: Arc<dyn Broker>, waiters: Arc<Waiters>, instance: String) -> Self {
        Self { broker, waiters, instance }
    }

    /// Publishes an event of the runtime itself (stamped with this instance).
    pub async fn publish(&self, mut event: Event) -> Result<EventId, BrokerError> {
        event.source.host = Some(SourceHost { service: SERVICE.into(), replica: Some(self.instance.clone()) });
        self.broker.publish(event).await
    }
}

#[async_trait]
impl EventBus for BrokerBus {
    async fn emit(&self, _run: &RunContext, event: Event) -> Result<EventId, ServiceError> {
        // The host built the source (workspace, correlation, automation, depth + 1).
        self.publish(event).await.map_err(|e| match e {
            BrokerError::Invalid(v) => ServiceError::Invalid(v.to_string()),
            other => ServiceError::Unavailable(other.to_string()),
        })
    }

    async fn wait(&self, run: &RunContext, conditions: &[WaitCondition], timeout: Duration) -> Result<Option<Event>, ServiceError> {
        let mut handle = self.waiters.register(run.workspace_id.as_str(), conditions.to_vec());
        match tokio::time::timeout(timeout, &mut handle.rx).await {
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(_)) => Err(ServiceError::Unavailable("the wait was dropped".into())),
            Err(_) => Ok(None),
        }
    }
}
