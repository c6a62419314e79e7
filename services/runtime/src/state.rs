//! [`RuntimeState`]: everything one runtime instance holds, shared by its router and workers.

use std::sync::{Arc, Mutex, PoisonError};

use refract_broker::{Broker, Subscriber, Subscription, TypeFilter};
use refract_core::WorkspaceId;
use refract_core::model::Automation;
use refract_host::Host;
use refract_storage::{Cache, DocumentStore, FileStore, collections};
use serde_json::json;

use crate::bus::BrokerBus;
use crate::config::Config;
use crate::contexts::ContextStore;
use crate::error::RuntimeError;
use crate::executor::Executor;
use crate::index::{TriggerIndex, split_doc_id};
use crate::retries::Retries;
use crate::secrets::Secrets;
use crate::throttle::Throttles;
use crate::triggering::{GROUP, NOT_CONSUMED};
use crate::usage::Usage;
use crate::waiters::Waiters;
use crate::workspace_config::WorkspaceConfig;

/// The subscriptions opened at start, handed to [`crate::run_workers`].
pub(crate) struct Subscriptions {
    /// Group `runtime`: the events this instance runs automations for.
    pub(crate) group: Box<dyn Subscriber>,
    /// Every event: index updates, waits, uploaded components.
    pub(crate) fan_out: Box<dyn Subscriber>,
}

/// What a [`RuntimeState`] shares between its clones.
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) index: Arc<TriggerIndex>,
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) executor: Arc<Executor>,
    /// Taken once by [`crate::run_workers`].
    pub(crate) subscriptions: Mutex<Option<Subscriptions>>,
}

/// A runtime instance. Cheap to clone.
#[derive(Clone)]
pub struct RuntimeState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RuntimeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeState")
            .field("instance_id", &self.inner.config.instance_id)
            .finish_non_exhaustive()
    }
}

impl RuntimeState {
    /// Validates `config`, subscribes to the broker (group `runtime` and fan-out, so nothing
    /// published from now on is missed) and loads the trigger index from the `automations`
    /// collection. `host` should be built with an artifact store the workspaces service also
    /// writes (`refract_workspaces::FileArtifactStore` over the same file storage; the composition root builds it).
    pub async fn new(
        broker: Arc<dyn Broker>,
        store: Arc<dyn DocumentStore>,
        cache: Arc<dyn Cache>,
        files: FileStore,
        host: Arc<Host>,
        config: Config,
    ) -> Result<Self, RuntimeError> {
        config.validate()?;
        let sandboxes = config.sandboxes()?;
        let fan_out = broker
            .subscribe(Subscription::fan_out(TypeFilter::all()))
            .await?;
        let consumed = TypeFilter::except(NOT_CONSUMED);
        let group = broker
            .subscribe(Subscription::group(
                GROUP,
                config.instance_id.clone(),
                consumed,
            ))
            .await?;
        let index = Arc::new(TriggerIndex::new());
        let waiters = Arc::new(Waiters::new());
        let bus = Arc::new(BrokerBus::new(
            broker,
            waiters.clone(),
            config.instance_id.clone(),
        ));
        let configs = Arc::new(WorkspaceConfig::new(
            store.clone(),
            index.clone(),
            bus.clone(),
        ));
        let contexts = ContextStore::new(
            cache.clone(),
            config.session_ttl,
            config.run_scope_ttl,
            config.max_variable_bytes,
        );
        let contexts = Arc::new(contexts.with_platform(store.clone()));
        let throttles = Arc::new(Throttles::new(cache.clone(), store.clone()));
        let secrets = Arc::new(Secrets::new(store.clone(), config.keyring.clone()));
        let retries = Arc::new(Retries::new(
            store.clone(),
            bus.clone(),
            config.instance_id.clone(),
        ));
        let executor = Executor::new(
            host,
            files,
            store.clone(),
            index.clone(),
            bus,
            contexts,
            sandboxes,
            configs,
            throttles,
            secrets,
            retries,
            Usage::new(cache.clone()),
            config.executed_preview_bytes,
        );
        let state = RuntimeState {
            inner: Arc::new(Inner {
                config,
                store,
                cache,
                index,
                waiters,
                executor,
                subscriptions: Mutex::new(Some(Subscriptions { group, fan_out })),
            }),
        };
        let quotas =
            crate::quotas::load_all(state.inner.store.as_ref(), state.executor().sandboxes())
                .await?;
        let loaded = state.load_index().await?;
        let apps = state.load_apps().await?;
        tracing::info!(instance_id = %state.inner.config.instance_id, automations = loaded, workspaces_with_apps = apps, quotas, "runtime index loaded");
        Ok(state)
    }

    /// Reads every automation from the `automations` collection into the index, whatever the
    /// number of tenants: by `kind`, page after page.
    pub(crate) async fn load_index(&self) -> Result<usize, RuntimeError> {
        let mut loaded = 0;
        for kind in ["component", "dsl"] {
            let docs = self
                .inner
                .store
                .find_all(&collections::AUTOMATIONS, "kind", &json!(kind))
                .await?;
            loaded += self.index_documents(docs);
        }
        Ok(loaded)
    }

    /// Puts stored automation documents into the index; returns how many it could read.
    fn index_documents(&self, docs: Vec<refract_storage::Document>) -> usize {
        let mut loaded = 0;
        for doc in docs {
            // Workspaces stores `workspaceId` beside the automation; the id also holds it.
            let from_body = doc
                .body
                .get("workspaceId")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let Some(workspace) =
                from_body.or_else(|| split_doc_id(&doc.id).map(|(w, _)| w.to_owned()))
            else {
                continue;
            };
            match serde_json::from_value::<Automation>(doc.body) {
                Ok(a) => {
                    self.inner.index.upsert(&workspace, a);
                    loaded += 1;
                }
                Err(e) => {
                    tracing::warn!(doc_id = %doc.id, error = %e, "unreadable automation skipped")
                }
            }
        }
        loaded
    }

    /// Loads the app instances of every workspace that has some; returns how many workspaces.
    pub(crate) async fn load_apps(&self) -> Result<usize, RuntimeError> {
        let workspaces = crate::apps::workspaces_with_instances(self.inner.store.as_ref()).await?;
        for ws in &workspaces {
            self.reload_apps(ws).await?;
        }
        Ok(workspaces.len())
    }

    /// Re-reads the app instances of `workspace` (nested ones included) into the index.
    pub(crate) async fn reload_apps(&self, workspace: &str) -> Result<(), RuntimeError> {
        let Ok(ws) = WorkspaceId::new(workspace) else {
            return Ok(());
        };
        let loaded = crate::apps::load_workspace(self.inner.store.as_ref(), &ws).await?;
        self.inner.index.set_apps(workspace, loaded);
        Ok(())
    }

    /// Reloads the workspaces an app event concerns: the event's own for `workspaces.apps.*`;
    /// for `apps.published`/`apps.deleted`, every workspace running an instance of the app
    /// (nested ones included) or installing it directly. Only events the workspaces service
    /// published itself: a tenant's forgery would make every runtime reload every installer.
    pub(crate) async fn reload_for(&self, event: &refract_core::Event) -> Result<(), RuntimeError> {
        if !event.published_by(refract_core::platform::service::WORKSPACES) {
            return Ok(());
        }
        let ty = event.event_type.as_str();
        if ty.starts_with("workspaces.apps.") {
            if let Some(ws) = &event.source.workspace_id {
                self.reload_apps(ws.as_str()).await?;
            }
            return Ok(());
        }
        let Some(app) = event.payload.get("appSlug").and_then(|v| v.as_str()) else {
            return Ok(());
        };
        let mut workspaces =
            crate::apps::workspaces_installing(self.inner.store.as_ref(), app).await?;
        workspaces.extend(
            self.inner
                .index
                .scopes_of_app(app)
                .iter()
                .map(|s| s.workspace.as_str().to_owned()),
        );
        for ws in workspaces {
            self.reload_apps(&ws).await?;
        }
        Ok(())
    }

    /// Re-reads automation `slug` of `workspace` from the collection into the index (or drops
    /// it when deleted). For requests that arrive before the fan-out delivered a change (a
    /// webhook right after a create or an upload); the index stays the fast path.
    pub(crate) async fn refresh_automation(
        &self,
        workspace: &str,
        slug: &str,
    ) -> Result<Option<Arc<Automation>>, RuntimeError> {
        if refract_core::model::check_automation_slug(slug).is_err() {
            return Ok(None);
        }
        let id = refract_core::model::automation_doc_id(workspace, slug);
        match self.inner.store.get(&collections::AUTOMATIONS, &id).await? {
            None => {
                self.inner.index.remove(workspace, slug);
                Ok(None)
            }
            Some(doc) => match serde_json::from_value::<Automation>(doc.body) {
                Ok(a) => {
                    self.inner.index.upsert(workspace, a);
                    Ok(self.inner.index.get(workspace, slug))
                }
                Err(e) => {
                    tracing::warn!(doc_id = %id, error = %e, "unreadable automation skipped");
                    Ok(None)
                }
            },
        }
    }

    /// The settings this instance was built with.
    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The automations this instance knows, by trigger (kept current by the fan-out).
    pub fn index(&self) -> &Arc<TriggerIndex> {
        &self.inner.index
    }

    /// The executor every trigger hands its runs to.
    pub(crate) fn executor(&self) -> &Arc<Executor> {
        &self.inner.executor
    }

    /// Runs of this instance blocked in `wait` (readiness, metrics, tests).
    pub fn waiting(&self) -> usize {
        self.inner.waiters.len()
    }

    /// The subscriptions opened at start, once: `None` after the first call.
    pub(crate) fn take_subscriptions(&self) -> Option<Subscriptions> {
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
