//! The trigger index of one instance: which automation answers which event type, endpoint and
//! schedule, per workspace. Loaded from the `automations` collection at start, then kept
//! current from `workspaces.automations.*` events that every instance reads (fan-out).

use refract_core::platform::types;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use refract_core::Event;
use refract_core::model::{Automation, AutomationKind};
use refract_core::platform::service;
use serde_json::Value;

use crate::apps::{AppScope, Loaded, split_key};
use crate::dsl::{Compiled, Programs};

/// The event types that keep the index current.
pub(crate) const INDEX_EVENTS: &[&str] = &[
    types::AUTOMATIONS_CREATED,
    types::AUTOMATIONS_UPDATED,
    types::AUTOMATIONS_DELETED,
    types::WORKSPACES_DELETED,
];

/// Automations by workspace and slug. Reads take a std lock briefly, never across an await.
#[derive(Debug, Default)]
pub struct TriggerIndex {
    workspaces: RwLock<HashMap<String, BTreeMap<String, Arc<Automation>>>>,
    /// Bumped on every change, so the scheduler knows when to rebuild its plan.
    version: AtomicU64,
    /// Compiled programs of the DSL automations, compiled on their first run.
    programs: Programs,
    /// App instances by root workspace and full slug; their automations are in `workspaces`
    /// under [`AppScope::key`].
    apps: RwLock<HashMap<String, HashMap<String, Arc<AppScope>>>>,
    /// Workspaces' `config.value` as last read, forgotten when a workspace changes.
    configs: RwLock<HashMap<String, Arc<Value>>>,
    /// Bumped whenever a config is forgotten, so a read that raced a change is not kept.
    config_generation: AtomicU64,
}

impl TriggerIndex {
    /// An empty index, filled by [`crate::RuntimeState::new`].
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Changes since creation.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Adds or replaces an automation of `workspace`.
    pub(crate) fn upsert(&self, workspace: &str, automation: Automation) {
        if automation.kind == AutomationKind::Dsl {
            self.programs.remove(workspace, &automation.slug);
        }
        let mut map = self
            .workspaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(workspace.to_owned())
            .or_default()
            .insert(automation.slug.clone(), Arc::new(automation));
        drop(map);
        self.changed();
    }

    /// Removes an automation; `false` when it was not there.
    pub(crate) fn remove(&self, workspace: &str, slug: &str) -> bool {
        let mut map = self
            .workspaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let removed = map
            .get_mut(workspace)
            .and_then(|w| w.remove(slug))
            .is_some();
        self.programs.remove(workspace, slug);
        if map.get(workspace).is_some_and(BTreeMap::is_empty) {
            map.remove(workspace);
        }
        drop(map);
        if removed {
            self.changed();
        }
        removed
    }

    /// Forgets a whole workspace, its app instances included.
    pub(crate) fn remove_workspace(&self, workspace: &str) {
        let had_apps = !self.set_apps(workspace, Vec::new());
        let removed = self
            .workspaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(workspace);
        self.programs.remove_workspace(workspace);
        if removed.is_some() || had_apps {
            self.changed();
        }
    }

    /// Replaces the app instances of `workspace` (and their automations); returns whether it
    /// had none before and gets none now.
    pub(crate) fn set_apps(&self, workspace: &str, loaded: Vec<Loaded>) -> bool {
        let mut apps = self.apps.write().unwrap_or_else(PoisonError::into_inner);
        let old = apps.remove(workspace).unwrap_or_default();
        if old.is_empty() && loaded.is_empty() {
            return true;
        }
        let mut map = self
            .workspaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for scope in old.values() {
            map.remove(&scope.key);
            self.programs.remove_workspace(&scope.key);
        }
        let mut scopes = HashMap::new();
        for Loaded { scope, automations } in loaded {
            let entry = map.entry(scope.key.clone()).or_default();
            for a in automations {
                entry.insert(a.slug.clone(), Arc::new(a));
            }
            scopes.insert(scope.full_slug.clone(), Arc::new(scope));
        }
        if !scopes.is_empty() {
            apps.insert(workspace.to_owned(), scopes);
        }
        drop(map);
        drop(apps);
        self.changed();
        false
    }

    /// Instance `full_slug` of `workspace`.
    pub(crate) fn scope(&self, workspace: &str, full_slug: &str) -> Option<Arc<AppScope>> {
        self.apps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(workspace)?
            .get(full_slug)
            .cloned()
    }

    /// The instance an index key names (`None` for a workspace's own key).
    pub(crate) fn scope_of_key(&self, key: &str) -> Option<Arc<AppScope>> {
        match split_key(key) {
            (ws, Some(full)) => self.scope(ws, full),
            (_, None) => None,
        }
    }

    /// Every loaded instance of app `app_slug`, in any workspace, at any depth.
    pub(crate) fn scopes_of_app(&self, app_slug: &str) -> Vec<Arc<AppScope>> {
        let apps = self.apps.read().unwrap_or_else(PoisonError::into_inner);
        apps.values()
            .flat_map(|m| m.values())
            .filter(|s| s.app_slug == app_slug)
            .cloned()
            .collect()
    }

    /// The instances of `workspace` that a dotted name reaches, each with the rest of the name
    /// (`crm.mailer.done` → `(crm, "mailer.done")`, `(crm.mailer, "done")`): where an event
    /// of that type or an endpoint of that name goes inside apps (§8.3).
    pub(crate) fn route(&self, workspace: &str, name: &str) -> Vec<(Arc<AppScope>, String)> {
        let apps = self.apps.read().unwrap_or_else(PoisonError::into_inner);
        let Some(scopes) = apps.get(workspace) else {
            return Vec::new();
        };
        let segments: Vec<&str> = name.split('.').collect();
        (1..segments.len())
            .filter_map(|k| {
                let full = segments[..k].join(".");
                scopes
                    .get(&full)
                    .map(|s| (s.clone(), segments[k..].join(".")))
            })
            .collect()
    }

    /// Number of automations indexed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.workspaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(BTreeMap::len)
            .sum()
    }

    /// Whether no automation is indexed.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The compiled program of the DSL automation `automation` of `workspace`.
    pub(crate) fn program(&self, workspace: &str, automation: &Arc<Automation>) -> Arc<Compiled> {
        self.programs.get(workspace, automation)
    }

    /// The automation `slug` of `workspace`, if present and enabled.
    pub fn get(&self, workspace: &str, slug: &str) -> Option<Arc<Automation>> {
        let map = self
            .workspaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(workspace)?
            .get(slug)
            .filter(|a| !a.disabled)
            .cloned()
    }

    fn select(&self, workspace: &str, keep: impl Fn(&Automation) -> bool) -> Vec<Arc<Automation>> {
        let map = self
            .workspaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(workspace)
            .map(|w| {
                w.values()
                    .filter(|a| !a.disabled && keep(a))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Enabled automations of `workspace` listening to `event_type`, in slug order.
    pub(crate) fn by_event(&self, workspace: &str, event_type: &str) -> Vec<Arc<Automation>> {
        self.select(workspace, |a| {
            a.when
                .as_ref()
                .is_some_and(|w| w.events.iter().any(|t| t == event_type))
        })
    }

    /// Enabled automations of `workspace` answering the webhook `endpoint`, in slug order.
    pub(crate) fn by_endpoint(&self, workspace: &str, endpoint: &str) -> Vec<Arc<Automation>> {
        self.select(workspace, |a| {
            a.when.as_ref().and_then(|w| w.endpoint_name(&a.slug)) == Some(endpoint)
        })
    }

    /// Every enabled automation with schedules: `(workspace, automation)`.
    pub(crate) fn scheduled(&self) -> Vec<(String, Arc<Automation>)> {
        let map = self
            .workspaces
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .flat_map(|(ws, autos)| {
                autos
                    .values()
                    .filter(|a| {
                        !a.disabled && a.when.as_ref().is_some_and(|w| !w.schedules.is_empty())
                    })
                    .map(move |a| (ws.clone(), a.clone()))
            })
            .collect()
    }

    /// The document of `workspace` (its config, name, …) if this index has it; else the
    /// generation to hand [`keep_config`](Self::keep_config) with the document read from the
    /// store.
    pub(crate) fn config(&self, workspace: &str) -> Result<Arc<Value>, u64> {
        let generation = self.config_generation.load(Ordering::Acquire);
        self.configs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(workspace)
            .cloned()
            .ok_or(generation)
    }

    /// Keeps `value` as the document of `workspace` until the workspace changes, unless a
    /// change came after `generation` (the value may predate it).
    pub(crate) fn keep_config(&self, workspace: &str, value: Arc<Value>, generation: u64) {
        let mut map = self.configs.write().unwrap_or_else(PoisonError::into_inner);
        if self.config_generation.load(Ordering::Acquire) == generation {
            map.insert(workspace.to_owned(), value);
        }
    }

    /// Drops the kept config of `workspace`: the next run reads it from the store.
    pub(crate) fn forget_config(&self, workspace: &str) {
        let mut map = self.configs.write().unwrap_or_else(PoisonError::into_inner);
        self.config_generation.fetch_add(1, Ordering::AcqRel);
        map.remove(workspace);
    }

    /// Applies a `workspaces.*` event; returns whether it was one the index reads. A payload
    /// that does not parse is logged and skipped (it cannot be fixed by reading it again).
    /// Only the workspaces service's own events change automations (it validated them); a
    /// config is forgotten on any `workspaces.updated`/`configured`, the runtime's own for a
    /// run's config write included (forgetting only makes the next run read the store).
    pub(crate) fn apply(&self, event: &Event) -> bool {
        let Some(workspace) = event
            .source
            .workspace_id
            .as_ref()
            .map(|w| w.as_str().to_owned())
        else {
            return false;
        };
        let payload = &event.payload;
        let ty = event.event_type.as_str();
        if INDEX_EVENTS.contains(&ty) && !event.published_by(service::WORKSPACES) {
            tracing::warn!(%workspace, event_type = ty, source = ?event.source.host, automation = ?event.source.automation_slug,
                "platform event not published by the workspaces service; ignored");
            return false;
        }
        match ty {
            "workspaces.automations.created" | "workspaces.automations.updated" => {
                let Some(body) = payload.get("automation") else {
                    tracing::warn!(%workspace, event_type = %event.event_type, "automation event without an automation");
                    return true;
                };
                match serde_json::from_value::<Automation>(body.clone()) {
                    Ok(automation) => {
                        if let Some(old) = payload.get("oldSlug").and_then(Value::as_str)
                            && old != automation.slug
                        {
                            self.remove(&workspace, old);
                        }
                        self.upsert(&workspace, automation);
                    }
                    Err(e) => {
                        tracing::warn!(%workspace, error = %e, "automation event with an unreadable automation")
                    }
                }
                true
            }
            "workspaces.automations.deleted" => {
                let slug = payload.get("slug").and_then(Value::as_str).or_else(|| {
                    payload
                        .get("automation")
                        .and_then(|a| a.get("slug"))
                        .and_then(Value::as_str)
                });
                if let Some(slug) = slug {
                    self.remove(&workspace, slug);
                }
                true
            }
            "workspaces.deleted" => {
                self.remove_workspace(&workspace);
                self.forget_config(&workspace);
                true
            }
            "workspaces.updated" | "workspaces.configured" => {
                self.forget_config(&workspace);
                true
            }
            _ => false,
        }
    }
}

/// Splits an `automations` document id (`<workspaceId>:<slug>`, workspace ids have no `:`).
pub(crate) fn split_doc_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use refract_core::{EventType, SourceHost, WorkspaceId};
    use serde_json::json;

    fn automation(slug: &str, when: Value) -> Value {
        json!({"slug": slug, "name": slug, "kind": "component", "when": when,
            "component": {"status": "ready", "digest": format!("sha256:{}", "a".repeat(64))},
            "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": "u1",
            "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": "u1"})
    }

    /// An event as the workspaces service publishes it.
    fn event(ty: &str, ws: &str, payload: Value) -> Event {
        let Value::Object(map) = payload else {
            panic!("object")
        };
        let mut event = Event::new(
            EventType::new(ty).unwrap(),
            Some(WorkspaceId::new(ws).unwrap()),
            map,
        );
        event.source.host = Some(SourceHost {
            service: service::WORKSPACES.into(),
            replica: None,
        });
        event
    }

    #[test]
    fn created_updated_renamed_and_deleted_automations_keep_the_index_current() {
        let index = TriggerIndex::new();
        let v0 = index.version();
        assert!(index.apply(&event("workspaces.automations.created", "ws1",
            json!({"slug": "a", "automation": automation("a", json!({"events": ["x"], "endpoint": true}))}))));
        assert!(index.version() > v0);
        assert_eq!(index.by_event("ws1", "x").len(), 1);
        assert_eq!(index.by_endpoint("ws1", "a").len(), 1);
        assert!(
            index.by_event("ws2", "x").is_empty(),
            "workspaces are isolated"
        );

        // Rename a → b with a named endpoint and another event.
        index.apply(&event("workspaces.automations.updated", "ws1",
            json!({"slug": "b", "oldSlug": "a", "automation": automation("b", json!({"events": ["y"], "endpoint": "hook"}))})));
        assert!(index.get("ws1", "a").is_none());
        assert!(index.by_event("ws1", "x").is_empty());
        assert_eq!(index.by_event("ws1", "y")[0].slug, "b");
        assert_eq!(index.by_endpoint("ws1", "hook")[0].slug, "b");
        assert!(index.by_endpoint("ws1", "b").is_empty());

        index.apply(&event(
            "workspaces.automations.deleted",
            "ws1",
            json!({"slug": "b"}),
        ));
        assert!(index.is_empty());
        assert!(!index.apply(&event("orders.created", "ws1", json!({}))));
    }

    #[test]
    fn disabled_automations_have_no_triggers_and_schedules_are_listed() {
        let index = TriggerIndex::new();
        let mut a = automation("a", json!({"events": ["x"], "schedules": ["* * * * * *"]}));
        index.apply(&event(
            "workspaces.automations.created",
            "ws1",
            json!({"automation": a.clone()}),
        ));
        assert_eq!(index.scheduled().len(), 1);
        a["disabled"] = json!(true);
        index.apply(&event(
            "workspaces.automations.updated",
            "ws1",
            json!({"automation": a}),
        ));
        assert!(index.by_event("ws1", "x").is_empty());
        assert!(index.scheduled().is_empty());
        assert!(index.get("ws1", "a").is_none());
        index.apply(&event("workspaces.deleted", "ws1", json!({})));
        assert!(index.is_empty());
    }

    #[test]
    fn a_bad_payload_is_skipped() {
        let index = TriggerIndex::new();
        assert!(index.apply(&event(
            "workspaces.automations.created",
            "ws1",
            json!({"automation": {"slug": 1}})
        )));
        assert!(index.is_empty());
        assert_eq!(split_doc_id("ws1:my slug"), Some(("ws1", "my slug")));
    }

    #[test]
    fn automation_events_not_published_by_the_workspaces_service_change_nothing() {
        let index = TriggerIndex::new();
        let saved = json!({"automation": automation("a", json!({"events": ["x"]}))});
        assert!(index.apply(&event(
            "workspaces.automations.created",
            "ws1",
            saved.clone()
        )));
        let forged =
            json!({"automation": automation("evil", json!({"events": ["x"], "endpoint": true}))});
        // A client emit (no host) and a run's emit (the runtime's host, an automation).
        let mut from_client = event("workspaces.automations.updated", "ws1", forged.clone());
        from_client.source.host = None;
        let mut from_run = event("workspaces.automations.updated", "ws1", forged);
        from_run.source.host = Some(SourceHost {
            service: service::RUNTIME.into(),
            replica: None,
        });
        from_run.source.automation_slug = Some("a".into());
        let mut deleted = event("workspaces.deleted", "ws1", json!({}));
        deleted.source.automation_slug = Some("a".into());
        for e in [from_client, from_run, deleted] {
            assert!(!index.apply(&e), "{:?}", e.source);
        }
        assert_eq!(index.len(), 1);
        assert!(index.get("ws1", "evil").is_none());
        assert!(index.by_endpoint("ws1", "evil").is_empty());
    }
}
