//! App instances in the runtime (`automation-dsl.md` §8).
//!
//! Each installed instance (nested ones included) becomes an [`AppScope`]: its automations,
//! taken from the app version it runs (pinned, or `current`) with the instance's config, sit
//! in the trigger index under their own key ([`scope_key`]), so triggers, schedules and calls
//! of one instance never see another's or the parent's. Runs of an instance share the root
//! workspace's persistent scopes (`global`, `user`, …): the run context keeps the root
//! workspace id, and the [`RunScopes`] registry tells `emit`, `wait` and `call` which instance
//! a run belongs to, so event types get the `<fullSlug>.` prefix on the bus and calls resolve
//! `<instance>.<automation>` against the caller's direct instances.
//!
//! Instances are (re)loaded per workspace from the `app_instances`, `apps` and
//! `app_versions` collections: at start, and on `workspaces.apps.*`, `apps.published` and
//! `apps.deleted`, on every runtime instance (fan-out).

use refract_core::platform::types;
use std::collections::BTreeSet;

use refract_core::WorkspaceId;
use refract_core::apps::{
    App, AppInstance, AppVersion, MAX_APP_DEPTH, app_version_doc_id, full_slug, instance_config,
};
use refract_core::model::Automation;
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{DocumentStore, StorageError, collections};
use serde_json::{Value, json};

/// The constant member of every instance document (written by the workspaces service).
pub(crate) const INSTALLED: &str = "installed";

/// Event types after which a workspace's instances are reloaded.
pub(crate) const APP_EVENTS: &[&str] = &[
    types::APPS_INSTALLED,
    types::APPS_CONFIGURED,
    types::APPS_UNINSTALLED,
    types::APPS_PUBLISHED,
    types::APPS_DELETED,
];

/// One installed app instance, as runs see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppScope {
    /// The root workspace (whose persistent scopes and bus the instance uses).
    pub(crate) workspace: WorkspaceId,
    /// Its key in the trigger index.
    pub(crate) key: String,
    /// Dotted path from the root (`crm.mailer`).
    pub(crate) full_slug: String,
    /// Its own slug (the last segment).
    pub(crate) slug: String,
    pub(crate) app_slug: String,
    /// The version it runs.
    pub(crate) app_version: u32,
    /// Whether it follows `current` (else pinned).
    pub(crate) follows_current: bool,
    /// The app of the instance that installs this one, if nested.
    pub(crate) parent_app_slug: Option<String>,
    /// App levels: 1 for an instance of the workspace itself.
    pub(crate) depth: u32,
    /// The instance's config: the app's default overlaid by the instance's own (§8.2).
    pub(crate) config: Value,
}

/// The index key of instance `full` of workspace `ws` (workspace ids have no `/`).
pub(crate) fn scope_key(ws: &str, full: &str) -> String {
    format!("{ws}/{full}")
}

/// Splits an index key into the workspace and the instance's full slug (`None` for a root).
pub(crate) fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('/') {
        Some((ws, full)) => (ws, Some(full)),
        None => (key, None),
    }
}

/// A loaded instance and the automations it runs (config already applied).
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) scope: AppScope,
    pub(crate) automations: Vec<Automation>,
}

async fn app(store: &dyn DocumentStore, slug: &str) -> Result<Option<App>, StorageError> {
    Ok(match store.get(&collections::APPS, slug).await? {
        Some(doc) => serde_json::from_value(doc.body).ok(),
        None => None,
    })
}

async fn version(
    store: &dyn DocumentStore,
    slug: &str,
    n: u32,
) -> Result<Option<AppVersion>, StorageError> {
    Ok(
        match store
            .get(&collections::APP_VERSIONS, &app_version_doc_id(slug, n))
            .await?
        {
            Some(doc) => serde_json::from_value(doc.body).ok(),
            None => None,
        },
    )
}

/// Every instance of `ws`, nested ones included. Disabled instances, instances of missing
/// apps and recursive imports are skipped with a log (§8.1).
pub(crate) async fn load_workspace(
    store: &dyn DocumentStore,
    ws: &WorkspaceId,
) -> Result<Vec<Loaded>, StorageError> {
    let docs = store
        .find(
            &collections::APP_INSTANCES,
            "workspaceId",
            &json!(ws.as_str()),
            MAX_FIND_LIMIT,
        )
        .await?;
    /// An instance to load, under its parent instance (full slug) and app, if nested.
    struct Pending {
        parent: Option<String>,
        parent_app: Option<String>,
        ancestors: Vec<String>,
        instance: AppInstance,
    }
    let mut stack = Vec::new();
    for doc in docs {
        match serde_json::from_value::<AppInstance>(doc.body) {
            Ok(instance) => stack.push(Pending {
                parent: None,
                parent_app: None,
                ancestors: Vec::new(),
                instance,
            }),
            Err(e) => {
                tracing::warn!(doc_id = %doc.id, error = %e, "unreadable app instance skipped")
            }
        }
    }
    let mut out = Vec::new();
    while let Some(Pending {
        parent,
        parent_app,
        ancestors,
        instance,
    }) = stack.pop()
    {
        let full = full_slug(parent.as_deref(), &instance.slug);
        if instance.disabled {
            continue;
        }
        let depth = u32::try_from(ancestors.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if depth > MAX_APP_DEPTH || ancestors.contains(&instance.app_slug) {
            tracing::warn!(workspace_id = %ws, instance = %full, app = %instance.app_slug, "recursive or too deep app instance skipped");
            continue;
        }
        let Some(app) = app(store, &instance.app_slug).await? else {
            tracing::warn!(workspace_id = %ws, instance = %full, app = %instance.app_slug, "app instance of a missing app skipped");
            continue;
        };
        let n = instance.app_version.unwrap_or(app.current_version);
        let Some(v) = version(store, &app.slug, n).await? else {
            tracing::warn!(workspace_id = %ws, instance = %full, app = %app.slug, version = n, "app instance of a missing version skipped");
            continue;
        };
        let config = instance_config(&v.snapshot.default_config(), &instance.config);
        let scope = AppScope {
            workspace: ws.clone(),
            key: scope_key(ws.as_str(), &full),
            full_slug: full.clone(),
            slug: instance.slug.clone(),
            app_slug: app.slug.clone(),
            app_version: n,
            follows_current: instance.app_version.is_none(),
            parent_app_slug: parent_app.clone(),
            depth,
            config: config.clone(),
        };
        let automations = v
            .snapshot
            .automations
            .into_iter()
            .map(|mut a| {
                a.config = Some(instance_config(
                    a.config.as_ref().unwrap_or(&json!({})),
                    &config,
                ));
                a
            })
            .collect();
        let mut below = ancestors.clone();
        below.push(app.slug.clone());
        for import in v.snapshot.imports {
            stack.push(Pending {
                parent: Some(full.clone()),
                parent_app: Some(app.slug.clone()),
                ancestors: below.clone(),
                instance: import,
            });
        }
        out.push(Loaded { scope, automations });
    }
    Ok(out)
}

/// Every workspace with at least one instance.
pub(crate) async fn workspaces_with_instances(
    store: &dyn DocumentStore,
) -> Result<BTreeSet<String>, StorageError> {
    let docs = store
        .find_all(&collections::APP_INSTANCES, INSTALLED, &json!(true))
        .await?;
    Ok(docs
        .into_iter()
        .filter_map(|d| {
            d.body
                .get("workspaceId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect())
}

/// Workspaces with a direct instance of `app_slug`.
pub(crate) async fn workspaces_installing(
    store: &dyn DocumentStore,
    app_slug: &str,
) -> Result<BTreeSet<String>, StorageError> {
    let docs = store
        .find_all(&collections::APP_INSTANCES, "appSlug", &json!(app_slug))
        .await?;
    Ok(docs
        .into_iter()
        .filter_map(|d| {
            d.body
                .get("workspaceId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect())
}

/// The bus type of an event `local` emitted (or awaited) inside `scope`.
pub(crate) fn bus_type(scope: Option<&AppScope>, local: &str) -> String {
    match scope {
        Some(s) => format!("{}.{local}", s.full_slug),
        None => local.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// A loaded instance `full` of workspace `ws1`, for tests of what runs inside instances.
    pub(crate) fn scope(full: &str) -> Arc<AppScope> {
        Arc::new(AppScope {
            workspace: WorkspaceId::new("ws1").expect("id"),
            key: scope_key("ws1", full),
            full_slug: full.into(),
            slug: full.rsplit('.').next().unwrap_or(full).into(),
            app_slug: "app".into(),
            app_version: 1,
            follows_current: true,
            parent_app_slug: None,
            depth: 1,
            config: json!({}),
        })
    }

    #[test]
    fn instances_have_keys_and_bus_types() {
        assert_eq!(
            bus_type(Some(&scope("crm.mailer")), "done"),
            "crm.mailer.done"
        );
        assert_eq!(split_key("ws1/crm.mailer"), ("ws1", Some("crm.mailer")));
        assert_eq!(split_key("ws1"), ("ws1", None));
    }
}
