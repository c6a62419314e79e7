//! The workspaces' secrets as runs read them: opened with the platform keyring from the
//! `secrets` collection, kept per workspace until `workspaces.secrets.updated` (or the
//! workspace's deletion) reaches this instance through the fan-out. Each run takes one
//! snapshot ([`WorkspaceSecrets`]) at its start: the values it may read and the redactor of
//! everything it leaves behind.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use refract_host::RunOutcome;
use refract_secrets::{Keyring, Redactor, Sealed, WorkspaceSecrets, open_secret};
use refract_storage::{DocumentStore, StorageError, collections};
use serde::Deserialize;
use serde_json::Value;

/// Most secrets a workspace holds (the workspaces service refuses more), with room to spare.
const MAX_SECRETS: u32 = 256;

/// Workspaces kept at once; past it the cache starts over (a run then reads its workspace's
/// secrets again), so many tenants cannot grow it without bound.
const MAX_CACHED: usize = 10_000;

/// What the runtime reads of a stored secret.
#[derive(Deserialize)]
struct Stored {
    name: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    sealed: Option<Sealed>,
}

/// Secrets by workspace, opened, read once and kept until they change.
pub(crate) struct Secrets {
    store: Arc<dyn DocumentStore>,
    keyring: Keyring,
    cache: RwLock<HashMap<String, Arc<WorkspaceSecrets>>>,
    /// Bumped whenever a workspace is forgotten, so a read that raced a change is not kept.
    generation: AtomicU64,
}

impl Secrets {
    /// Over the `secrets` collection of `store`, opening with `keyring`.
    pub(crate) fn new(store: Arc<dyn DocumentStore>, keyring: Keyring) -> Self {
        Self {
            store,
            keyring,
            cache: RwLock::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// The secrets of `workspace`, as a run starting now sees them.
    pub(crate) async fn of(&self, workspace: &str) -> Result<Arc<WorkspaceSecrets>, StorageError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(kept) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(workspace)
        {
            return Ok(kept.clone());
        }
        let read = Arc::new(self.read(workspace).await?);
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) == generation {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(workspace.to_owned(), read.clone());
        }
        Ok(read)
    }

    /// Drops what is kept of `workspace`: its next run reads the store.
    pub(crate) fn forget(&self, workspace: &str) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(workspace);
    }

    async fn read(&self, workspace: &str) -> Result<WorkspaceSecrets, StorageError> {
        let docs = self
            .store
            .find(
                &collections::SECRETS,
                "workspaceId",
                &Value::from(workspace),
                MAX_SECRETS,
            )
            .await?;
        let mut values = BTreeMap::new();
        for doc in docs {
            let Ok(stored) = serde_json::from_value::<Stored>(doc.body) else {
                tracing::warn!(workspace_id = workspace, doc_id = %doc.id, "unreadable secret document skipped");
                continue;
            };
            let value = match (stored.sealed, stored.value) {
                (Some(sealed), _) => {
                    match open_secret(&self.keyring, workspace, &stored.name, &sealed) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::error!(workspace_id = workspace, secret = %stored.name, error = %e,
                                "secret does not open with the configured keyring; runs will not see it");
                            continue;
                        }
                    }
                }
                (None, Some(value)) => value,
                (None, None) => continue,
            };
            values.insert(stored.name, value);
        }
        Ok(WorkspaceSecrets::new(values))
    }
}

/// A run's `config` with its templates resolved at load time (`automation-dsl.md` §5.8):
/// `{{secret.name}}` from the run's secrets, `{{config.key}}` from the config itself, nothing
/// else. A config without any `{{` is handed over as it is; one whose templates do not render
/// is too, with a warning (the run then sees the templates as text).
pub(crate) fn resolve_config(config: Value, secrets: &WorkspaceSecrets) -> Value {
    if !has_template(&config) {
        return config;
    }
    let secret: serde_json::Map<String, Value> = secrets
        .values()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let vars = serde_json::json!({"config": config, "secret": secret});
    match refract_dsl::template::render_with(&vars["config"], &vars) {
        Ok(resolved) => resolved.unwrap_or(Value::Null),
        Err(e) => {
            tracing::warn!(error = %e, "config templates do not render; passed as text");
            vars["config"].clone()
        }
    }
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(m) => m.values().any(has_template),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A failed run's error with the run's secrets redacted: its code, message and details reach
/// the reports, the HTTP caller and a calling automation as the platform's rendering of the
/// run, not as its chosen output. An output is left as the run made it (the webhook answer is
/// the automation's to choose; its report redacts it).
pub(crate) fn redact_failure(outcome: &mut RunOutcome, redactor: &Redactor) {
    if redactor.is_empty() {
        return;
    }
    match outcome {
        RunOutcome::Ok(_) => {}
        RunOutcome::Failed(e) => {
            e.code = redactor.redact_text(std::mem::take(&mut e.code));
            e.message = redactor.redact_text(std::mem::take(&mut e.message));
            e.details = e.details.take().map(|d| redactor.redact_text(d));
        }
        RunOutcome::Trapped(t) => {
            t.message = redactor.redact_text(std::mem::take(&mut t.message));
        }
    }
}

#[cfg(test)]
mod tests {
    use refract_secrets::seal_secret;
    use refract_storage::{Expect, MemoryStore};
    use serde_json::json;

    use super::*;

    #[test]
    fn config_templates_read_secrets_and_config_only() {
        let secrets = WorkspaceSecrets::new(BTreeMap::from([("apiKey".into(), json!("k-1"))]));
        let config = json!({"url": "https://x.test", "auth": "Bearer {{secret.apiKey}}",
            "full": "{{config.url}}/v1", "user": "{{user.id}}", "n": 3});
        assert_eq!(
            resolve_config(config, &secrets),
            json!({"url": "https://x.test", "auth": "Bearer k-1", "full": "https://x.test/v1", "n": 3})
        );
        let plain = json!({"a": "no template"});
        assert_eq!(resolve_config(plain.clone(), &secrets), plain);
    }

    #[tokio::test]
    async fn sealed_and_clear_values_are_read_and_kept_until_forgotten() {
        let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
        let ring = Keyring::ephemeral();
        let sealed = seal_secret(&ring, "ws1", "apiKey", &json!("k-1")).unwrap();
        let put = |id: &'static str, body: Value| {
            let store = store.clone();
            async move {
                store
                    .put(&collections::SECRETS, id, &body, Expect::Any)
                    .await
                    .unwrap()
            }
        };
        put(
            "ws1:apiKey",
            json!({"workspaceId": "ws1", "name": "apiKey", "sealed": sealed}),
        )
        .await;
        put(
            "ws1:prismeai_x",
            json!({"workspaceId": "ws1", "name": "prismeai_x", "value": "1/1"}),
        )
        .await;
        // Sealed for another workspace, copied here: does not open, so runs never see it.
        let foreign = seal_secret(&ring, "ws2", "stolen", &json!("v")).unwrap();
        put(
            "ws1:stolen",
            json!({"workspaceId": "ws1", "name": "stolen", "sealed": foreign}),
        )
        .await;
        let secrets = Secrets::new(store.clone(), ring);
        let got = secrets.of("ws1").await.unwrap();
        assert_eq!(got.get("apiKey"), Some(&json!("k-1")));
        assert_eq!(got.get("prismeai_x"), Some(&json!("1/1")));
        assert_eq!(got.get("stolen"), None);
        let sealed2 = seal_secret(&secrets.keyring, "ws1", "apiKey", &json!("k-2")).unwrap();
        put(
            "ws1:apiKey",
            json!({"workspaceId": "ws1", "name": "apiKey", "sealed": sealed2}),
        )
        .await;
        assert_eq!(
            secrets.of("ws1").await.unwrap().get("apiKey"),
            Some(&json!("k-1"))
        );
        secrets.forget("ws1");
        assert_eq!(
            secrets.of("ws1").await.unwrap().get("apiKey"),
            Some(&json!("k-2"))
        );
        assert!(secrets.of("ws3").await.unwrap().values().is_empty());
    }
}
