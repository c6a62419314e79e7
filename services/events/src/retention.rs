//! Retention: deletes history older than each workspace's age limit.
//!
//! A workspace sets its limit in its config, `config.value.eventsRetentionDays` (the rule is
//! [`refract_core::retention`]'s); others keep events [`Config::default_retention_days`].
//! Every events instance runs the pass; deleting what is already deleted costs one indexed
//! query.

use std::future::Future;

use chrono::{Duration, Utc};
use refract_core::WorkspaceId;
use refract_core::retention::configured_days;
use refract_storage::StorageError;
use refract_storage::collections::WORKSPACES;

use crate::EventsState;

/// Runs a retention pass every [`Config::retention_interval`] until `shutdown`.
pub async fn run_retention(state: EventsState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(state.config.retention_interval) => {}
        }
        match retention_pass(&state).await {
            Ok(removed) => tracing::info!(removed, "events: retention pass done"),
            Err(error) => {
                tracing::warn!(%error, "events: retention pass failed; next pass retries")
            }
        }
    }
}

/// Deletes every workspace's events past its retention; returns how many.
pub async fn retention_pass(state: &EventsState) -> Result<u64, StorageError> {
    let now = Utc::now();
    let mut removed = 0;
    for workspace in state.store.workspaces().await? {
        let days = retention_days(state, &workspace).await?;
        let cutoff = now - Duration::days(i64::from(days));
        removed += state
            .store
            .delete_workspace_before(&workspace, cutoff)
            .await?;
    }
    Ok(removed)
}

/// The workspace's retention in days: its config's `eventsRetentionDays`, else the default.
async fn retention_days(state: &EventsState, workspace: &WorkspaceId) -> Result<u32, StorageError> {
    let doc = state.store.get(&WORKSPACES, workspace.as_str()).await?;
    let configured = doc
        .as_ref()
        .and_then(|d| d.body.pointer("/config/value"))
        .and_then(configured_days);
    Ok(configured.unwrap_or(state.config.default_retention_days))
}
