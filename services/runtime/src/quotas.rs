//! A workspace's limits changed live through the API (`workspace_quotas`): a superadmin's
//! patch over the policy the operator configured, and the narrower egress allow-list the
//! workspace's owner chose. Read by every runtime instance at start; a change is applied by the
//! instance that took it and announced by `runtime.quotas.updated`, on which every other
//! instance reads the workspace's document again. No restart.

use chrono::Utc;
use refract_storage::{DocumentStore, Expect, StorageError, collections};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sandbox::{LiveQuota, PolicyPatch, Resolved, Sandboxes};
use crate::throttle::Budgets;

/// The stored document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredQuota {
    workspace_id: String,
    /// Always `quota`: what loading every document finds them by.
    kind: String,
    #[serde(default)]
    patch: PolicyPatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    narrowed_hosts: Option<Vec<String>>,
    updated_at: String,
    updated_by: String,
}

const KIND: &str = "quota";

/// Applies every stored change (instance start); a document that does not apply any more is
/// logged and skipped. Returns how many apply.
pub(crate) async fn load_all(
    store: &dyn DocumentStore,
    sandboxes: &Sandboxes,
) -> Result<usize, StorageError> {
    let docs = store
        .find_all(&collections::WORKSPACE_QUOTAS, "kind", &json!(KIND))
        .await?;
    let mut applied = 0;
    for doc in docs {
        let Ok(stored) = serde_json::from_value::<StoredQuota>(doc.body) else {
            tracing::warn!(id = %doc.id, "unreadable quota document skipped");
            continue;
        };
        let quota = LiveQuota {
            patch: stored.patch,
            narrowed_hosts: stored.narrowed_hosts,
        };
        match sandboxes.set_live(&stored.workspace_id, Some(&quota)) {
            Ok(()) => applied += 1,
            Err(e) => {
                tracing::warn!(workspace_id = %stored.workspace_id, error = %e, "stored quota does not apply; the configured policy is used")
            }
        }
    }
    Ok(applied)
}

/// The stored change of `workspace`, if any.
pub(crate) async fn read(
    store: &dyn DocumentStore,
    workspace: &str,
) -> Result<Option<LiveQuota>, StorageError> {
    let Some(doc) = store.get(&collections::WORKSPACE_QUOTAS, workspace).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_value::<StoredQuota>(doc.body)
        .ok()
        .map(|s| LiveQuota {
            patch: s.patch,
            narrowed_hosts: s.narrowed_hosts,
        }))
}

/// Reads `workspace`'s change again and applies it (a `runtime.quotas.updated` heard).
pub(crate) async fn reload(
    store: &dyn DocumentStore,
    sandboxes: &Sandboxes,
    workspace: &str,
) -> Result<(), StorageError> {
    let quota = read(store, workspace).await?;
    if let Err(e) = sandboxes.set_live(workspace, quota.as_ref()) {
        tracing::warn!(workspace_id = workspace, error = %e, "stored quota does not apply; the configured policy is used");
    }
    Ok(())
}

/// Stores `quota` as `workspace`'s change (`None`: back to the configured policy).
pub(crate) async fn write(
    store: &dyn DocumentStore,
    workspace: &str,
    quota: Option<&LiveQuota>,
    by: &str,
) -> Result<(), StorageError> {
    match quota {
        None => {
            store
                .delete(&collections::WORKSPACE_QUOTAS, workspace, Expect::Any)
                .await?;
        }
        Some(q) => {
            let stored = StoredQuota {
                workspace_id: workspace.to_owned(),
                kind: KIND.into(),
                patch: q.patch.clone(),
                narrowed_hosts: q.narrowed_hosts.clone(),
                updated_at: Utc::now().to_rfc3339(),
                updated_by: by.to_owned(),
            };
            let body = serde_json::to_value(&stored).unwrap_or_default();
            store
                .put(
                    &collections::WORKSPACE_QUOTAS,
                    workspace,
                    &body,
                    Expect::Any,
                )
                .await?;
        }
    }
    Ok(())
}

/// The limits of a workspace that are not sandbox policy: the instance's concurrency and the
/// workspace's history retention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Event-triggered runs of one workspace at once on one instance.
    pub(crate) event_share: usize,
    /// Event-triggered runs of every workspace at once on one instance.
    pub(crate) event_runs: usize,
    /// The retention the workspace's config asks for, if it does.
    pub(crate) retention_days: Option<u32>,
}

/// The limits as `GET …/quotas` shows them.
pub(crate) fn view(
    resolved: &Resolved,
    changed: bool,
    budgets: Option<Budgets>,
    limits: &Limits,
) -> Value {
    let p = &resolved.policy;
    let bucket = |b: Option<refract_storage::TokenBucket>| {
        b.map_or(
            Value::Null,
            |b| json!({"perSecond": b.per_second, "burst": b.burst}),
        )
    };
    json!({
        "sandbox": {
            "maxMemoryMiB": p.max_memory_mib, "maxTimeoutMs": p.max_timeout_ms, "cpuMs": p.cpu_ms,
            "maxOutputKiB": p.max_output_kib, "maxStreamKiB": p.max_stream_kib, "maxEmits": p.max_emits, "maxFetches": p.max_fetches, "maxWaits": p.max_waits,
            "maxCallDepth": p.max_call_depth,
        },
        "egress": {"allowHosts": p.allow_hosts, "narrowedTo": resolved.narrowed_hosts},
        "throttles": {
            "runs": bucket(budgets.map(|b| b.executions)),
            "emits": bucket(budgets.map(|b| b.emits)),
        },
        "contexts": {
            "variablesPerScope": crate::contexts::MAX_SCOPE_VARIABLES,
            "runScopeBytes": crate::contexts::MAX_RUN_SCOPE_BYTES,
            "workspaceRunScopesBytes": crate::contexts::MAX_WORKSPACE_RUN_SCOPE_BYTES,
            "persistentScopeBytes": crate::contexts::MAX_PERSISTENT_SCOPE_BYTES,
        },
        "concurrency": {
            "eventRunsPerInstance": limits.event_share,
            "allWorkspacesPerInstance": limits.event_runs,
        },
        "history": {
            "retentionDays": limits.retention_days.unwrap_or(refract_core::retention::DEFAULT_DAYS),
            "setByWorkspace": limits.retention_days.is_some(),
        },
        "changedLive": changed,
    })
}
