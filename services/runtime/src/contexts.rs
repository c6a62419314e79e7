//! The `state` import: context variables by scope (`automation-dsl.md` §5).
//!
//! - `global`: one cache hash per workspace, field = variable name; persistent.
//! - `user`: one hash per workspace and user; persistent.
//! - `session`: one hash per workspace and session; expires [`Config::session_ttl`] after
//!   the last write.
//! - `run`: in this process, keyed by workspace and correlation id, so the automations a run
//!   calls share it; dropped [`Config::run_scope_ttl`] after the last write.
//!
//! Every scope owner holds at most [`MAX_SCOPE_VARIABLES`]; run scopes are capped in bytes per
//! run and per workspace, persistent ones in bytes when a variable is created. A write past a
//! cap is an error the run sees, never a crash.
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
use refract_core::{Scope, SessionId, UserId};
use refract_host::{
    Coordination, Identities, RateLimitState, RateLimiter, RunContext, ServiceError, StateStore,
};
use refract_storage::{Cache, CacheKey, DocumentStore};
use serde_json::Value;
use tokio::time::Instant;

use crate::coordination;
use crate::paths::{self, Segment};
use crate::user_fields;

/// Variables one scope owner (a run scope, a workspace's global scope, a user's or a session's)
/// may hold: protects the runtime's memory and the cache from a run writing endless names.
pub const MAX_SCOPE_VARIABLES: usize = 1_000;
/// Serialized bytes of one run scope, all its variables together.
pub const MAX_RUN_SCOPE_BYTES: usize = 8 << 20;
/// Serialized bytes of every run scope of one workspace in this instance: many concurrent
/// correlations of one tenant cannot fill the process.
pub const MAX_WORKSPACE_RUN_SCOPE_BYTES: usize = 64 << 20;
/// Serialized bytes of one persistent scope (global, user, session), checked when a variable is
/// created: protects the shared cache from one tenant's state.
pub const MAX_PERSISTENT_SCOPE_BYTES: usize = 16 << 20;

/// One run scope: its variables with their serialized sizes.
struct RunScope {
    vars: HashMap<String, (Value, usize)>,
    bytes: usize,
    touched: Instant,
}

/// Run scopes kept in memory, and the bytes each workspace holds in them.
#[derive(Default)]
struct RunScopes {
    map: HashMap<(String, String), RunScope>,
    bytes_of: HashMap<String, usize>,
    writes: u64,
}

impl RunScopes {
    fn release(bytes_of: &mut HashMap<String, usize>, workspace: &str, bytes: usize) {
        if let Some(n) = bytes_of.get_mut(workspace) {
            *n = n.saturating_sub(bytes);
            if *n == 0 {
                bytes_of.remove(workspace);
            }
        }
    }

    /// Drops the scopes not written for `ttl`.
    fn sweep(&mut self, now: Instant, ttl: Duration) {
        let bytes_of = &mut self.bytes_of;
        self.map.retain(|(ws, _), scope| {
            let live = now.duration_since(scope.touched) < ttl;
            if !live {
                Self::release(bytes_of, ws, scope.bytes);
            }
            live
        });
    }
}

/// The context store behind the `state` import, and the cache-backed capabilities the host
/// lends runs beside it: coordination (rate limits, user topics) and session identities.
pub struct ContextStore {
    cache: Arc<dyn Cache>,
    session_ttl: Duration,
    run_ttl: Duration,
    max_variable_bytes: usize,
    runs: Mutex<RunScopes>,
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
            store: None,
        }
    }

    /// Lets runs read the computed fields of their user from `store`, and learn the users of
    /// sessions of their workspace's members.
    pub fn with_platform(self, store: Arc<dyn DocumentStore>) -> Self {
        Self {
            store: Some(store),
            ..self
        }
    }

    /// The cache hash of a persistent scope, and its TTL.
    fn key(
        &self,
        run: &RunContext,
        scope: Scope,
    ) -> Result<(CacheKey, Option<Duration>), ServiceError> {
        let ws = &run.workspace_id;
        let no_owner = || ServiceError::Invalid("the scope has no owner in this run".into());
        Ok(match scope {
            Scope::Global => (CacheKey::context(ws, Scope::Global, ""), None),
            Scope::User => {
                let user = run.user_id.as_ref().ok_or_else(no_owner)?;
                (CacheKey::context(ws, Scope::User, user.as_str()), None)
            }
            Scope::Session => {
                let session = run.session_id.as_ref().ok_or_else(no_owner)?;
                (
                    CacheKey::context(ws, Scope::Session, session.as_str()),
                    Some(self.session_ttl),
                )
            }
            Scope::Run => (
                CacheKey::context(ws, Scope::Run, run.correlation_id.as_str()),
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
            .filter(|scope| now.duration_since(scope.touched) < self.run_ttl)
            .and_then(|scope| scope.vars.get(name).map(|(v, _)| v.clone()))
    }

    /// Writes (or deletes) a run-scope variable of `size` serialized bytes, within the caps.
    fn put_run_var(
        &self,
        run: &RunContext,
        name: &str,
        value: Option<(Value, usize)>,
    ) -> Result<(), ServiceError> {
        let now = Instant::now();
        let ttl = self.run_ttl;
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let runs = &mut *runs;
        runs.writes += 1;
        if runs.writes.is_multiple_of(256) {
            runs.sweep(now, ttl);
        }
        let key = Self::run_key(run);
        let scope = runs.map.entry(key.clone()).or_insert_with(|| RunScope {
            vars: HashMap::new(),
            bytes: 0,
            touched: now,
        });
        if now.duration_since(scope.touched) >= ttl {
            RunScopes::release(&mut runs.bytes_of, &key.0, scope.bytes);
            scope.vars.clear();
            scope.bytes = 0;
        }
        scope.touched = now;
        let old = scope.vars.get(name).map_or(0, |(_, size)| *size);
        match value {
            Some((v, size)) => {
                if old == 0
                    && !scope.vars.contains_key(name)
                    && scope.vars.len() >= MAX_SCOPE_VARIABLES
                {
                    return Err(ServiceError::Invalid(format!(
                        "the run scope holds at most {MAX_SCOPE_VARIABLES} variables"
                    )));
                }
                let grows = size.saturating_sub(old);
                if scope.bytes + grows > MAX_RUN_SCOPE_BYTES {
                    return Err(ServiceError::TooLarge(
                        u32::try_from(MAX_RUN_SCOPE_BYTES).unwrap_or(u32::MAX),
                    ));
                }
                let workspace = runs.bytes_of.get(&key.0).copied().unwrap_or(0);
                if workspace + grows > MAX_WORKSPACE_RUN_SCOPE_BYTES {
                    return Err(ServiceError::TooLarge(
                        u32::try_from(MAX_WORKSPACE_RUN_SCOPE_BYTES).unwrap_or(u32::MAX),
                    ));
                }
                scope.vars.insert(name.to_owned(), (v, size));
                scope.bytes = scope.bytes - old + size;
                *runs.bytes_of.entry(key.0.clone()).or_insert(0) += size;
                RunScopes::release(&mut runs.bytes_of, &key.0, old);
            }
            None => {
                if scope.vars.remove(name).is_some() {
                    scope.bytes -= old;
                    RunScopes::release(&mut runs.bytes_of, &key.0, old);
                }
            }
        }
        Ok(())
    }

    /// Refuses to create one more variable in a persistent scope past its caps (a variable
    /// that exists may be rewritten: the per-variable cap bounds it).
    async fn check_new_variable(
        &self,
        key: &CacheKey,
        name: &str,
        size: usize,
    ) -> Result<(), ServiceError> {
        if self
            .cache
            .hget(key, name)
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Ok(());
        }
        let all = self.cache.hgetall(key).await.map_err(unavailable)?;
        if all.len() >= MAX_SCOPE_VARIABLES {
            return Err(ServiceError::Invalid(format!(
                "a context scope holds at most {MAX_SCOPE_VARIABLES} variables"
            )));
        }
        let bytes: usize = all.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes + name.len() + size > MAX_PERSISTENT_SCOPE_BYTES {
            return Err(ServiceError::TooLarge(
                u32::try_from(MAX_PERSISTENT_SCOPE_BYTES).unwrap_or(u32::MAX),
            ));
        }
        Ok(())
    }

    async fn read_var(
        &self,
        run: &RunContext,
        scope: Scope,
        name: &str,
    ) -> Result<Option<Value>, ServiceError> {
        if scope == Scope::Run {
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
        scope: Scope,
        name: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError> {
        let value = match value {
            Some(v) => {
                let bytes =
                    serde_json::to_vec(&v).map_err(|e| ServiceError::Invalid(e.to_string()))?;
                if bytes.len() > self.max_variable_bytes {
                    return Err(ServiceError::TooLarge(
                        u32::try_from(self.max_variable_bytes).unwrap_or(u32::MAX),
                    ));
                }
                Some((v, bytes))
            }
            None => None,
        };
        if scope == Scope::Run {
            return self.put_run_var(run, name, value.map(|(v, bytes)| (v, bytes.len())));
        }
        let (key, ttl) = self.key(run, scope)?;
        match value {
            Some((_, bytes)) => {
                self.check_new_variable(&key, name, bytes.len()).await?;
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
        scope: Scope,
        path: &str,
    ) -> Result<Option<Value>, ServiceError> {
        let (name, rest) = split(path)?;
        if let (Scope::User, Some(store), Some(user)) = (scope, &self.store, &run.user_id)
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
        scope: Scope,
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

    async fn delete(&self, run: &RunContext, scope: Scope, path: &str) -> Result<(), ServiceError> {
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
}

#[async_trait]
impl Identities for ContextStore {
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
}

#[async_trait]
impl Coordination for ContextStore {
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
        s.set(&alice, Scope::Global, "counter.value", json!(1))
            .await
            .unwrap();
        s.set(&alice, Scope::Global, "counter.list[1]", json!("x"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&bob, Scope::Global, "counter").await.unwrap(),
            Some(json!({"value": 1, "list": [null, "x"]}))
        );
        s.set(&alice, Scope::User, "prefs.lang", json!("fr"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&alice, Scope::User, "prefs.lang").await.unwrap(),
            Some(json!("fr"))
        );
        assert_eq!(
            s.get(&bob, Scope::User, "prefs.lang").await.unwrap(),
            None,
            "users are isolated"
        );
        s.delete(&alice, Scope::Global, "counter.value")
            .await
            .unwrap();
        assert_eq!(
            s.get(&bob, Scope::Global, "counter.value").await.unwrap(),
            None
        );
        s.delete(&alice, Scope::Global, "counter").await.unwrap();
        assert_eq!(s.get(&bob, Scope::Global, "counter").await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_variables_are_refused() {
        let s = store();
        let r = run(None, &CorrelationId::generate());
        let err = s
            .set(&r, Scope::Global, "big", json!("x".repeat(2000)))
            .await
            .unwrap_err();
        assert_eq!(err, ServiceError::TooLarge(1024));
        assert!(
            s.set(&r, Scope::User, "x", json!(1)).await.is_err(),
            "no user, no user scope"
        );
    }

    #[tokio::test]
    async fn scopes_hold_a_bounded_number_of_variables() {
        let s = store();
        let r = run(Some("alice"), &CorrelationId::generate());
        for scope in [Scope::Run, Scope::Global] {
            for i in 0..MAX_SCOPE_VARIABLES {
                s.set(&r, scope, &format!("v{i}"), json!(i)).await.unwrap();
            }
            let err = s.set(&r, scope, "one_more", json!(1)).await.unwrap_err();
            assert!(
                matches!(err, ServiceError::Invalid(ref m) if m.contains("at most")),
                "{scope:?}: {err:?}"
            );
            s.set(&r, scope, "v0", json!("rewritten"))
                .await
                .expect("an existing variable may be rewritten");
            s.delete(&r, scope, "v1").await.unwrap();
            s.set(&r, scope, "one_more", json!(1))
                .await
                .expect("a deleted variable frees its place");
        }
    }

    #[tokio::test]
    async fn run_scopes_are_capped_in_bytes_per_run_and_per_workspace() {
        let s = ContextStore::new(
            Arc::new(MemoryCache::new("t")),
            Duration::from_secs(3600),
            Duration::from_secs(60),
            1 << 20,
        );
        let big = json!("x".repeat((1 << 20) - 100));
        let r = run(None, &CorrelationId::generate());
        let mut refused = None;
        for i in 0..16 {
            if let Err(e) = s.set(&r, Scope::Run, &format!("big{i}"), big.clone()).await {
                refused = Some((i, e));
                break;
            }
        }
        let (i, err) = refused.expect("one run scope cannot grow forever");
        assert_eq!(i, MAX_RUN_SCOPE_BYTES >> 20, "{err:?}");
        assert!(matches!(err, ServiceError::TooLarge(_)));
        // Many correlations of one workspace together stop at the workspace's cap.
        let mut written = MAX_RUN_SCOPE_BYTES >> 20;
        let mut refused = false;
        for _ in 0..200 {
            let other = run(None, &CorrelationId::generate());
            if s.set(&other, Scope::Run, "big", big.clone()).await.is_err() {
                refused = true;
                break;
            }
            written += 1;
        }
        assert!(
            refused && written <= MAX_WORKSPACE_RUN_SCOPE_BYTES >> 20,
            "{written} MiB written"
        );
        let elsewhere = RunContext {
            workspace_id: WorkspaceId::new("ws2").unwrap(),
            ..run(None, &CorrelationId::generate())
        };
        s.set(&elsewhere, Scope::Run, "big", big)
            .await
            .expect("another workspace has its own budget");
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
        s.set(&caller, Scope::Run, "step", json!(1)).await.unwrap();
        assert_eq!(
            s.get(&callee, Scope::Run, "step").await.unwrap(),
            Some(json!(1))
        );
        let other = run(Some("alice"), &CorrelationId::generate());
        assert_eq!(s.get(&other, Scope::Run, "step").await.unwrap(), None);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            s.get(&caller, Scope::Run, "step").await.unwrap(),
            None,
            "expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn session_scope_expires_after_its_ttl() {
        let s = store();
        let r = run(Some("alice"), &CorrelationId::generate());
        s.set(&r, Scope::Session, "cart", json!([1])).await.unwrap();
        assert_eq!(
            s.get(&r, Scope::Session, "cart[0]").await.unwrap(),
            Some(json!(1))
        );
        tokio::time::advance(Duration::from_secs(3601)).await;
        assert_eq!(s.get(&r, Scope::Session, "cart").await.unwrap(), None);
    }

    /// The host's conformance suites against the context store over `cache`.
    async fn conforms(cache: Arc<dyn refract_storage::Cache>) {
        use refract_host::conformance;
        let s = ContextStore::new(
            cache.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(60),
            1024,
        );
        conformance::state_store(&s).await;
        conformance::coordination(&s).await;
        conformance::identities(&s, |session, user| {
            let cache = cache.clone();
            async move {
                cache
                    .set(
                        &CacheKey::session_user(&session),
                        user.as_str().as_bytes(),
                        None,
                    )
                    .await
                    .expect("session written");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn the_context_store_conforms_over_the_memory_cache() {
        conforms(Arc::new(MemoryCache::new("t"))).await;
    }

    #[tokio::test]
    async fn the_context_store_conforms_over_redis() {
        let Ok(url) = std::env::var("REFRACT_TEST_REDIS_URL") else {
            eprintln!("skipped: context store over redis: REFRACT_TEST_REDIS_URL not set");
            return;
        };
        let ns = format!("refract-contexts-{}", CorrelationId::generate());
        let cache = refract_storage::open_cache(&url, &ns)
            .await
            .expect("redis cache");
        conforms(cache).await;
    }
}
