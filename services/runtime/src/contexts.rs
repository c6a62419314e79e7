//! The `state` import: context variables by scope (`automation-dsl.md` §5).
//!
//! - `global`: one cache hash per workspace, field = variable name; persistent.
//! - `user`: one hash per workspace and user; persistent.
//! - `session`: one hash per workspace and session; expires [`Config::session_ttl`] after
//!   the last write.
//! - `run`: in this process, keyed by workspace and correlation id, so the automations a run
//!   calls share it; dropped [`Config::run_scope_ttl`] after the last write.
//!
//! A write reads the variable, changes it at its dotted path and writes it back: last writer
//! wins between concurrent runs on the same variable.
//!
//! [`Config::session_ttl`]: crate::Config::session_ttl
//! [`Config::run_scope_ttl`]: crate::Config::run_scope_ttl

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use refract_core::{SessionId, UserId};
use refract_host::{RateLimitState, RateLimiter, RunContext, ServiceError, StateScope, StateStore};
use refract_storage::keys::ContextScope;
use refract_storage::{Cache, CacheKey, DocumentStore};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::coordination;
use crate::paths::{self, Segment};
use crate::user_fields;
use crate::workspace_config::WorkspaceConfig;

/// Run scopes kept in memory.
#[derive(Default)]
struct RunScopes {
    map: HashMap<(String, String), (Map<String, Value>, Instant)>,
    writes: u64,
}

/// The context store behind the `state` import (and its `set-config`).
pub struct ContextStore {
    cache: Arc<dyn Cache>,
    session_ttl: Duration,
    run_ttl: Duration,
    max_variable_bytes: usize,
    runs: Mutex<RunScopes>,
    /// Where `set-config` writes; without it config writes are refused.
    config: Option<Arc<WorkspaceConfig>>,
    /// Accounts and memberships, for `user.email`, `user.authData`, `user.role`.
    store: Option<Arc<dyn DocumentStore>>,
}

impl std::fmt::Debug for ContextStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextStore").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

impl ContextStore {
    pub fn new(
        cache: Arc<dyn Cache>,
        session_ttl: Duration,
        run_ttl: Duration,
        max_variable_bytes: usize,
    ) -> Self {
        Self {
            cache,
            session_ttl,
            run_ttl,
            max_variable_bytes,
            runs: Mutex::default(),
            config: None,
            store: None,
        }
    }

    /// Lets runs read the computed fields of their user from `store` and write their
    /// workspace's config through `config`.
    pub fn with_platform(
        self,
        store: Arc<dyn DocumentStore>,
        config: Arc<WorkspaceConfig>,
    ) -> Self {
        Self {
            config: Some(config),
            store: Some(store),
            ..self
        }
    }

    /// The cache hash of a persistent scope, and its TTL.
    fn key(
        &self,
        run: &RunContext,
        scope: StateScope,
    ) -> Result<(CacheKey, Option<Duration>), ServiceError> {
        let ws = &run.workspace_id;
        let no_owner = || ServiceError::Invalid("the scope has no owner in this run".into());
        Ok(match scope {
            StateScope::Global => (CacheKey::context(ws, ContextScope::Global, ""), None),
            StateScope::User => {
                let user = run.user_id.as_ref().ok_or_else(no_owner)?;
                (
                    CacheKey::context(ws, ContextScope::User, user.as_str()),
                    None,
                )
            }
            StateScope::Session => {
                let session = run.session_id.as_ref().ok_or_else(no_owner)?;
                (
                    CacheKey::context(ws, ContextScope::Session, session.as_str()),
                    Some(self.session_ttl),
                )
            }
            StateScope::Run => (
                CacheKey::context(ws, ContextScope::Run, run.correlation_id.as_str()),
                Some(self.run_ttl),
            ),
        })
    }

    fn run_key(run: &RunContext) -> (String, String) {
        (run.workspace_id.to_string(), run.correlation_id.to_string())
    }

    /// The run scope's variable `name` (expired scopes read as empty).
    fn run_var(&self, run: &RunContext, name: &str) -> Option<Value> {
        let now = Instant::now();
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.map
            .get(&Self::run_key(run))
            .filter(|(_, t)| now.duration_since(*t) < self.run_ttl)
            .and_then(|(vars, _)| vars.get(name).cloned())
    }

    fn put_run_var(&self, run: &RunContext, name: &str, value: Option<Value>) {
        let now = Instant::now();
        let ttl = self.run_ttl;
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.writes += 1;
        if runs.writes.is_multiple_of(256) {
            runs.map.retain(|_, (_, t)| now.duration_since(*t) < ttl);
        }
        let entry = runs
            .map
            .entry(Self::run_key(run))
            .or_insert_with(|| (Map::new(), now));
        if now.duration_since(entry.1) >= ttl {
            entry.0.clear();
        }
        entry.1 = now;
        match value {
            Some(v) => {
                entry.0.insert(name.to_owned(), v);
            }
            None => {
                entry.0.remove(name);
            }
        }
    }

    async fn read_var(
        &self,
        run: &RunContext,
        scope: StateScope,
        name: &str,
    ) -> Result<Option<Value>, ServiceError> {
        if scope == StateScope::Run {
            return Ok(self.run_var(run, name));
        }
        let (key, _) = self.key(run, scope)?;
        let Some(bytes) = self.cache.hget(&key, name).await.map_err(unavailable)? else {
            return Ok(None);
        };
        // A stored variable that no longer parses reads as absent rather than failing every run.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    async fn write_var(
        &self,
        run: &RunContext,
        scope: StateScope,
        name: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError> {
        if let Some(v) = &value {
            let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > self.max_variable_bytes {
                return Err(ServiceError::TooLarge(
                    u32::try_from(self.max_variable_bytes).unwrap_or(u32::MAX),
                ));
            }
        }
        if scope == StateScope::Run {
            self.put_run_var(run, name, value);
            return Ok(());
        }
        let (key, ttl) = self.key(run, scope)?;
        match value {
            Some(v) => {
                let bytes =
                    serde_json::to_vec(&v).map_err(|e| ServiceError::Invalid(e.to_string()))?;
                self.cache
                    .hset(&key, name, &bytes)
                    .await
                    .map_err(unavailable)?;
            }
            None => {
                self.cache.hdel(&key, name).await.map_err(unavailable)?;
            }
        }
        if let Some(ttl) = ttl {
            self.cache.expire(&key, ttl).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

fn split(path: &str) -> Result<(String, Vec<Segment>), ServiceError> {
    let mut segs = paths::parse(path).map_err(ServiceError::Invalid)?;
    match segs.first() {
        Some(Segment::Key(_)) => {}
        _ => {
            return Err(ServiceError::Invalid(format!(
                "path {path:?} must start with a name"
            )));
        }
    }
    let Segment::Key(name) = segs.remove(0) else {
        return Err(ServiceError::Invalid(format!(
            "path {path:?} must start with a name"
        )));
    };
    Ok((name, segs))
}

#[async_trait]
impl StateStore for ContextStore {
    async fn get(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
    ) -> Result<Option<Value>, ServiceError> {
        let (name, rest) = split(path)?;
        if let (StateScope::User, Some(store), Some(user)) = (scope, &self.store, &run.user_id)
            && user_fields::COMPUTED.contains(&name.as_str())
        {
            let value = user_fields::computed(store.as_ref(), run, user, &name)
                .await
                .map_err(unavailable)?;
            return Ok(value.and_then(|v| paths::get(&v, &rest).cloned()));
        }
        let var = self.read_var(run, scope, &name).await?;
        Ok(var
            .and_then(|v| paths::get(&v, &rest).cloned())
            .filter(|v| !v.is_null()))
    }

    async fn set(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
        value: Value,
    ) -> Result<(), ServiceError> {
        let (name, rest) = split(path)?;
        let new = if rest.is_empty() {
            value
        } else {
            let mut var = self
                .read_var(run, scope, &name)
                .await?
                .unwrap_or(Value::Null);
            paths::set(&mut var, &rest, value);
            var
        };
        self.write_var(run, scope, &name, Some(new)).await
    }

    async fn delete(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
    ) -> Result<(), ServiceError> {
        let (name, rest) = split(path)?;
        if rest.is_empty() {
            return self.write_var(run, scope, &name, None).await;
        }
        let Some(mut var) = self.read_var(run, scope, &name).await? else {
            return Ok(());
        };
        if paths::delete(&mut var, &rest) {
            self.write_var(run, scope, &name, Some(var)).await?;
        }
        Ok(())
    }

    async fn set_config(
        &self,
        run: &RunContext,
        path: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError> {
        match &self.config {
            Some(config) => config.write(run, path, value).await,
            None => Err(ServiceError::Unavailable(
                "config writes are not available here".into(),
            )),
        }
    }

    /// The user of login session `session`, only when that user is the run's own or a member of
    /// its workspace: a session of anyone else is unknown here (the run goes on as session S,
    /// user S), so no run can take on, or learn, the identity behind another tenant's session.
    async fn session_user(
        &self,
        run: &RunContext,
        session: &SessionId,
    ) -> Result<Option<UserId>, ServiceError> {
        let bytes = self
            .cache
            .get(&CacheKey::session_user(session))
            .await
            .map_err(unavailable)?;
        let Some(user) = bytes
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|u| UserId::new(u).ok())
        else {
            return Ok(None);
        };
        if run.user_id.as_ref() == Some(&user) {
            return Ok(Some(user));
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let member =
            refract_storage::is_member(store.as_ref(), run.workspace_id.as_str(), user.as_str())
                .await
                .map_err(unavailable)?;
        Ok(member.then_some(user))
    }

    async fn rate_limit(
        &self,
        run: &RunContext,
        limiter: &RateLimiter,
    ) -> Result<RateLimitState, ServiceError> {
        coordination::rate_limit(self.cache.as_ref(), run, limiter).await
    }

    async fn create_user_topic(
        &self,
        run: &RunContext,
        topic: &str,
        users: &[UserId],
    ) -> Result<bool, ServiceError> {
        coordination::create_user_topic(self.cache.as_ref(), run, topic, users).await
    }

    async fn join_user_topic(
        &self,
        run: &RunContext,
        topic: &str,
        users: &[UserId],
        create: bool,
    ) -> Result<(), ServiceError> {
        coordination::join_user_topic(self.cache.as_ref(), run, topic, users, create).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refract_core::{CorrelationId, SessionId, UserId, WorkspaceId};
    use refract_storage::cache::MemoryCache;
    use serde_json::json;

    fn run(user: Option<&str>, correlation: &CorrelationId) -> RunContext {
        RunContext {
            run_id: "r1".into(),
            workspace_id: WorkspaceId::new("ws1").unwrap(),
            automation_slug: "a".into(),
            correlation_id: correlation.clone(),
            user_id: user.map(|u| UserId::new(u).unwrap()),
            session_id: Some(SessionId::new("s1").unwrap()),
            depth: 0,
            socket_id: None,
        }
    }

    fn store() -> ContextStore {
        ContextStore::new(
            Arc::new(MemoryCache::new("t")),
            Duration::from_secs(3600),
            Duration::from_secs(60),
            1024,
        )
    }

    #[tokio::test]
    async fn dotted_writes_persist_per_scope_owner() {
        let s = store();
        let c = CorrelationId::generate();
        let alice = run(Some("alice"), &c);
        let bob = run(Some("bob"), &c);
        s.set(&alice, StateScope::Global, "counter.value", json!(1))
            .await
            .unwrap();
        s.set(&alice, StateScope::Global, "counter.list[1]", json!("x"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&bob, StateScope::Global, "counter").await.unwrap(),
            Some(json!({"value": 1, "list": [null, "x"]}))
        );
        s.set(&alice, StateScope::User, "prefs.lang", json!("fr"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&alice, StateScope::User, "prefs.lang").await.unwrap(),
            Some(json!("fr"))
        );
        assert_eq!(
            s.get(&bob, StateScope::User, "prefs.lang").await.unwrap(),
            None,
            "users are isolated"
        );
        s.delete(&alice, StateScope::Global, "counter.value")
            .await
            .unwrap();
        assert_eq!(
            s.get(&bob, StateScope::Global, "counter.value")
                .await
                .unwrap(),
            None
        );
        s.delete(&alice, StateScope::Global, "counter")
            .await
            .unwrap();
        assert_eq!(
            s.get(&bob, StateScope::Global, "counter").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn oversized_variables_are_refused() {
        let s = store();
        let r = run(None, &CorrelationId::generate());
        let err = s
            .set(&r, StateScope::Global, "big", json!("x".repeat(2000)))
            .await
            .unwrap_err();
        assert_eq!(err, ServiceError::TooLarge(1024));
        assert!(
            s.set(&r, StateScope::User, "x", json!(1)).await.is_err(),
            "no user, no user scope"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_scope_is_shared_by_correlation_and_expires() {
        let s = store();
        let c = CorrelationId::generate();
        let caller = run(Some("alice"), &c);
        let callee = RunContext {
            run_id: "r1.c1".into(),
            depth: 1,
            ..caller.clone()
        };
        s.set(&caller, StateScope::Run, "step", json!(1))
            .await
            .unwrap();
        assert_eq!(
            s.get(&callee, StateScope::Run, "step").await.unwrap(),
            Some(json!(1))
        );
        let other = run(Some("alice"), &CorrelationId::generate());
        assert_eq!(s.get(&other, StateScope::Run, "step").await.unwrap(), None);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            s.get(&caller, StateScope::Run, "step").await.unwrap(),
            None,
            "expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn session_scope_expires_after_its_ttl() {
        let s = store();
        let r = run(Some("alice"), &CorrelationId::generate());
        s.set(&r, StateScope::Session, "cart", json!([1]))
            .await
            .unwrap();
        assert_eq!(
            s.get(&r, StateScope::Session, "cart[0]").await.unwrap(),
            Some(json!(1))
        );
        tokio::time::advance(Duration::from_secs(3601)).await;
        assert_eq!(s.get(&r, StateScope::Session, "cart").await.unwrap(), None);
    }
}
