//! A workspace's `config.value` as runs read and write it (`automation-dsl.md` §5.2, §5.7):
//! read through the index, which keeps it until the workspace changes; written into the
//! workspace document (optimistic concurrency, retried) and announced by
//! `workspaces.configured`, whose fan-out makes every runtime instance read it afresh.

use refract_core::platform::types;
use std::sync::Arc;

use async_trait::async_trait;
use refract_host::{ConfigStore, RunContext, ServiceError};
use refract_storage::{DocumentStore, Expect, StorageError, collections};
use serde_json::{Value, json};

use crate::bus::{BrokerBus, run_event};
use crate::index::TriggerIndex;
use crate::paths;

/// The `config.value` of a workspace document (`null` when it has none).
pub(crate) fn config_value(document: &Value) -> &Value {
    document
        .get("config")
        .and_then(|c| c.get("value"))
        .unwrap_or(&Value::Null)
}

/// Attempts at a config write that keeps meeting concurrent writes.
const WRITE_ATTEMPTS: usize = 5;

/// Reads (cached in the index) and writes the workspaces' `config.value`.
pub(crate) struct WorkspaceConfig {
    store: Arc<dyn DocumentStore>,
    index: Arc<TriggerIndex>,
    bus: Arc<BrokerBus>,
}

impl WorkspaceConfig {
    /// Over the `workspaces` collection, caching in `index`, announcing writes on `bus`.
    pub(crate) fn new(
        store: Arc<dyn DocumentStore>,
        index: Arc<TriggerIndex>,
        bus: Arc<BrokerBus>,
    ) -> Self {
        Self { store, index, bus }
    }

    /// The workspace's document (`null` when it has none): what `$workspace` reads, and
    /// where [`config_value`] finds the config.
    pub(crate) async fn document(&self, workspace: &str) -> Result<Arc<Value>, StorageError> {
        match self.index.config(workspace) {
            Ok(document) => Ok(document),
            Err(generation) => {
                let doc = self.store.get(&collections::WORKSPACES, workspace).await?;
                let document = Arc::new(doc.map_or(Value::Null, |d| d.body));
                self.index
                    .keep_config(workspace, document.clone(), generation);
                Ok(document)
            }
        }
    }

    /// Writes `value` at `path` of `run`'s workspace config (`None`: removes it), then
    /// publishes `workspaces.configured` under the run's identity.
    pub(crate) async fn write(
        &self,
        run: &RunContext,
        path: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError> {
        if self.bus.live_runs().of(&run.run_id).is_some() {
            return Err(ServiceError::Invalid(
                "an app instance's config belongs to the workspace that installed it".into(),
            ));
        }
        let segments = paths::parse(path).map_err(ServiceError::Invalid)?;
        let unavailable = |e: StorageError| ServiceError::Unavailable(e.to_string());
        let workspace = run.workspace_id.as_str();
        for _ in 0..WRITE_ATTEMPTS {
            let doc = self
                .store
                .get(&collections::WORKSPACES, workspace)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| ServiceError::Invalid("the workspace no longer exists".into()))?;
            let mut body = doc.body;
            let old = body.get("config").cloned().unwrap_or(Value::Null);
            if !body["config"].is_object() {
                body["config"] = json!({});
            }
            let config = &mut body["config"]["value"];
            match &value {
                Some(v) => paths::set(config, &segments, v.clone()),
                None => {
                    paths::delete(config, &segments);
                }
            }
            let new = body["config"].clone();
            match self
                .store
                .put(
                    &collections::WORKSPACES,
                    workspace,
                    &body,
                    Expect::Version(doc.version),
                )
                .await
            {
                Ok(_) => {
                    // This instance reads it afresh at once; the others on the event.
                    self.index.forget_config(workspace);
                    self.announce(run, json!({"config": new, "oldConfig": old}))
                        .await;
                    return Ok(());
                }
                Err(e) if e.kind() == refract_core::ErrorKind::Conflict => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(ServiceError::Unavailable(
            "the workspace kept changing; the config write was not applied".into(),
        ))
    }

    /// `workspaces.configured`, one level deeper than the run (it may trigger automations).
    async fn announce(&self, run: &RunContext, payload: Value) {
        let Some(event) = run_event(
            run,
            types::WORKSPACES_CONFIGURED,
            payload,
            run.depth.saturating_add(1),
        ) else {
            return;
        };
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(workspace_id = %run.workspace_id, error = %e, "config written, but workspaces.configured was not published");
        }
    }
}

/// Config writes of runs (`set-config`).
#[async_trait]
impl ConfigStore for WorkspaceConfig {
    async fn set_config(
        &self,
        run: &RunContext,
        path: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError> {
        self.write(run, path, value).await
    }
}
