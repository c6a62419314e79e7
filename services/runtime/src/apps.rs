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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use refract_core::WorkspaceId;
use refract_core::apps::{
    App, AppInstance, AppVersion, MAX_APP_DEPTH, app_version_doc_id, full_slug, instance_config,
};
use refract_core::model::Automation;
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{DocumentStore, StorageError, collections};
use serde_json::{Value, json};

use crate::executor::Credentials;

/// The constant member of every instance document (written by the workspaces service).
pub const INSTALLED: &str = "installed";

/// Event types after which a workspace's instances are reloaded.
pub const APP_EVENTS: &[&str] = &[
    "workspaces.apps.installed",
    "workspaces.apps.configured",
    "workspaces.apps.uninstalled",
    "apps.published",
    "apps.deleted",
];

/// One installed app instance, as runs see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppScope {
    /// The root workspace (whose persistent scopes and bus the instance uses).
    pub workspace: WorkspaceId,
    /// Its key in the trigger index.
    pub key: String,
    /// Dotted path from the root (`crm.mailer`).
    pub full_slug: String,
    /// Its own slug (the last segment).
    pub slug: String,
    pub app_slug: String,
    /// The version it runs.
    pub app_version: u32,
    /// Whether it follows `current` (else pinned).
    pub follows_current: bool,
    /// The app of the instance that installs this one, if nested.
    pub parent_app_slug: Option<String>,
    /// App levels: 1 for an instance of the workspace itself.
    pub depth: u32,
    /// The instance's config: the app's default overlaid by the instance's own (§8.2).
    pub config: Value,
}

/// The index key of instance `full` of workspace `ws` (workspace ids have no `/`).
pub fn scope_key(ws: &str, full: &str) -> String {
    format!("{ws}/{full}")
}

/// Splits an index key into the workspace and the instance's full slug (`None` for a root).
pub fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('/') {
        Some((ws, full)) => (ws, Some(full)),
        None => (key, None),
    }
}

/// A loaded instance and the automations it runs (config already applied).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub scope: AppScope,
    pub automations: Vec<Automation>,
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
pub async fn load_workspace(
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
pub async fn workspaces_with_instances(
    store: &dyn DocumentStore,
) -> Result<BTreeSet<String>, StorageError> {
    let docs = store
        .find(
            &collections::APP_INSTANCES,
            INSTALLED,
            &json!(true),
            MAX_FIND_LIMIT,
        )
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
pub async fn workspaces_installing(
    store: &dyn DocumentStore,
    app_slug: &str,
) -> Result<BTreeSet<String>, StorageError> {
    let docs = store
        .find(
            &collections::APP_INSTANCES,
            "appSlug",
            &json!(app_slug),
            MAX_FIND_LIMIT,
        )
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

/// Which instance each live run belongs to, and the credentials its HTTP caller presented, by
/// run id (runs of the root workspace started without credentials are absent). `emit`, `wait`
/// and `call` receive only the run's context; this is how they find its app, and how a call
/// runs with its caller's credentials.
#[derive(Debug, Default)]
pub struct RunScopes {
    runs: Mutex<HashMap<String, LiveRun>>,
}

/// What the registry keeps of a live run: its app instance and its caller's credentials.
#[derive(Debug)]
struct LiveRun {
    scope: Option<Arc<AppScope>>,
    credentials: Option<Arc<Credentials>>,
}

impl RunScopes {
    /// Records `run_id` as a run of `scope`, started with `credentials`, until the guard is
    /// dropped (runs with neither are not recorded).
    pub fn enter(
        self: &Arc<Self>,
        run_id: &str,
        scope: Option<Arc<AppScope>>,
        credentials: Option<Arc<Credentials>>,
    ) -> RunGuard {
        if scope.is_some() || credentials.is_some() {
            let live = LiveRun { scope, credentials };
            self.runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(run_id.to_owned(), live);
        }
        RunGuard {
            scopes: self.clone(),
            run_id: run_id.to_owned(),
        }
    }

    /// The instance of run `run_id`, if it runs inside one.
    pub fn of(&self, run_id: &str) -> Option<Arc<AppScope>> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .and_then(|r| r.scope.clone())
    }

    /// The instance of the run that made call `callee_run_id` (`<caller>.c<n>`).
    pub fn of_caller(&self, callee_run_id: &str) -> Option<Arc<AppScope>> {
        caller_of(callee_run_id).and_then(|caller| self.of(caller))
    }

    /// The credentials of the run that made call `callee_run_id`: a call runs as its caller.
    pub fn credentials_of_caller(&self, callee_run_id: &str) -> Option<Arc<Credentials>> {
        let caller = caller_of(callee_run_id)?;
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(caller)
            .and_then(|r| r.credentials.clone())
    }
}

fn caller_of(callee_run_id: &str) -> Option<&str> {
    callee_run_id.rsplit_once('.').map(|(caller, _)| caller)
}

/// Removes a run from [`RunScopes`] when it ends.
#[derive(Debug)]
pub struct RunGuard {
    scopes: Arc<RunScopes>,
    run_id: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.scopes
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.run_id);
    }
}

/// The bus type of an event `local` emitted (or awaited) inside `scope`.
pub fn bus_type(scope: Option<&AppScope>, local: &str) -> String {
    match scope {
        Some(s) => format!("{}.{local}", s.full_slug),
        None => local.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(full: &str) -> Arc<AppScope> {
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
    fn runs_know_their_instance_and_calls_find_their_caller() {
        let scopes = Arc::new(RunScopes::default());
        let guard = scopes.enter("r1", Some(scope("crm")), None);
        assert_eq!(
            scopes.of("r1").map(|s| s.full_slug.clone()),
            Some("crm".into())
        );
        assert_eq!(
            scopes.of_caller("r1.c2").map(|s| s.full_slug.clone()),
            Some("crm".into())
        );
        assert!(scopes.of_caller("r2.c1").is_none());
        drop(guard);
        assert!(scopes.of("r1").is_none());
        // A call runs with its caller's credentials; a run without scope keeps them too.
        let key = Arc::new(Credentials {
            api_key: Some("rfk_k".into()),
            ..Credentials::default()
        });
        let guard = scopes.enter("r3", None, Some(key.clone()));
        assert_eq!(scopes.credentials_of_caller("r3.c1"), Some(key));
        assert!(scopes.of_caller("r3.c1").is_none());
        drop(guard);
        assert!(scopes.credentials_of_caller("r3.c1").is_none());
        assert_eq!(
            bus_type(Some(&scope("crm.mailer")), "done"),
            "crm.mailer.done"
        );
        assert_eq!(split_key("ws1/crm.mailer"), ("ws1", Some("crm.mailer")));
        assert_eq!(split_key("ws1"), ("ws1", None));
    }
}
