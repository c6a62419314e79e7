//! The `state` import: context variables by scope (`automation-dsl.md` §5).
//!
//! - `global`: one cache hash per workspace, field = variable name; persistent.
//! - `user`: one hash per workspace and user; persistent.
//! - `session`: one hash per workspace and session; expires [`Config::session_ttl`] after
//!   the last write.
//! - `run`: one hash per workspace and correlation id, so every run of a chain (calls, the
//!   automations its events trigger) shares it on whichever runtime instance it runs; expires
//!   [`Config::run_scope_ttl`] after the last write.
//!
//! Every scope owner holds at most [`MAX_SCOPE_VARIABLES`] and a bounded number of bytes,
//! checked when a variable is created; what a workspace writes into run scopes is also bounded
//! per minute, so many correlations of one tenant cannot fill the cache. A write past a cap is
//! an error the run sees, never a crash.
//!
//! A write reads the variable, changes it at its dotted path and writes it back: last writer
//! wins between concurrent runs on the same variable.
//!
//! [`Config::session_ttl`]: crate::Config::session_ttl
//! [`Config::run_scope_ttl`]: crate::Config::run_scope_ttl

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refract_core::{Scope, SessionId, UserId};
use refract_host::{
    Coordination, Identities, RateLimitState, RateLimiter, RunContext, ServiceError, StateStore,
};
use refract_storage::{Cache, CacheKey, DocumentStore};
use serde_json::Value;

use crate::coordination::{self, now_ms};
use crate::paths::{self, Segment};
use crate::user_fields;

/// Variables one scope owner (a run scope, a workspace's global scope, a user's or a session's)
/// may hold: protects the runtime's memory and the cache from a run writing endless names.
pub const MAX_SCOPE_VARIABLES: usize = 1_000;
/// Serialized bytes of one run or socket scope, all its variables together (checked when a
/// variable is created).
pub const MAX_RUN_SCOPE_BYTES: usize = 8 << 20;
/// Serialized bytes a workspace may write into its short-lived scopes (`run`, `socket`) per
/// [`RUN_SCOPE_WINDOW`], all its correlations and sockets together: with their expiry, this
/// bounds what one tenant's short-lived scopes hold in the shared cache.
pub const MAX_WORKSPACE_RUN_SCOPE_BYTES: usize = 64 << 20;
/// The window of [`MAX_WORKSPACE_RUN_SCOPE_BYTES`].
const RUN_SCOPE_WINDOW: Duration = Duration::from_secs(60);
/// How long a `socket` scope lives after its last write (automation-dsl §5.2: 21,600 s).
pub const SOCKET_SCOPE_TTL: Duration = Duration::from_secs(6 * 3600);
/// Serialized bytes of one persistent scope (global, user, session), checked when a variable is
/// created: protects the shared cache from one tenant's state.
pub const MAX_PERSISTENT_SCOPE_BYTES: usize = 16 << 20;

/// The context store behind the `state` import, and the cache-backed capabilities the host
/// lends runs beside it: coordination (rate limits, user topics) and session identities.
pub struct ContextStore {
    cache: Arc<dyn Cache>,
    session_ttl: Duration,
    run_ttl: Duration,
    max_variable_bytes: usize,
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
            Scope::Socket => (
                CacheKey::context(ws, Scope::Socket, &run.socket_owner().ok_or_else(no_owner)?),
                Some(SOCKET_SCOPE_TTL),
            ),
        })
    }

    /// A `wait` of `timeout` starts: the run's `run` scope lives at least its TTL plus
    /// `timeout` from now (§5.2), so what the chain wrote is still there when the wait ends.
    /// Best effort: a cache that cannot be reached only shortens the scope's life.
    pub(crate) async fn hold_run_scope(&self, run: &RunContext, timeout: Duration) {
        let Ok((key, _)) = self.key(run, Scope::Run) else {
            return;
        };
        let hold = self.run_ttl + timeout;
        let until = now_ms().saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
        let hold_key = CacheKey::run_hold(&run.workspace_id, run.correlation_id.as_str());
        // A later hold (a longer wait of the chain) stays.
        let held = self.held_until(run).await.unwrap_or(0);
        let result = async {
            if until > held {
                self.cache
                    .set(&hold_key, until.to_string().as_bytes(), Some(hold))
                    .await?;
            }
            self.cache.expire(&key, hold).await.map(drop)
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(workspace_id = %run.workspace_id, error = %e, "could not extend a run scope for a wait");
        }
    }

    /// Until when (epoch ms) a wait holds the run's `run` scope, if one does.
    async fn held_until(&self, run: &RunContext) -> Option<i64> {
        let key = CacheKey::run_hold(&run.workspace_id, run.correlation_id.as_str());
        let bytes = self.cache.get(&key).await.ok()??;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    /// How long a scope written now lives: its TTL, and for a `run` scope at least what a
    /// wait of its chain still holds.
    async fn ttl_after_write(&self, run: &RunContext, scope: Scope, ttl: Duration) -> Duration {
        if scope != Scope::Run {
            return ttl;
        }
        match self.held_until(run).await {
            Some(until) => {
                let left = u64::try_from(until.saturating_sub(now_ms())).unwrap_or(0);
                ttl.max(Duration::from_millis(left))
            }
            None => ttl,
        }
    }

    /// Counts `bytes` written into a `run` or `socket` scope of the workspace against its
    /// budget for this minute; refuses (and uncounts) a write past it.
    async fn charge_short_lived(&self, run: &RunContext, bytes: usize) -> Result<(), ServiceError> {
        let window = i64::try_from(RUN_SCOPE_WINDOW.as_secs()).unwrap_or(i64::MAX);
        let now = now_ms() / 1000;
        let key = CacheKey::rate_limit(
            "run-scope-bytes",
            run.workspace_id.as_str(),
            now - now.rem_euclid(window),
        );
        let by = i64::try_from(bytes).unwrap_or(i64::MAX);
        let total = self
            .cache
            .incr(&key, by, RUN_SCOPE_WINDOW * 2)
            .await
            .map_err(unavailable)?;
        if total > i64::try_from(MAX_WORKSPACE_RUN_SCOPE_BYTES).unwrap_or(i64::MAX) {
            // Best effort: a refused write should not use the budget up.
            let _ = self.cache.incr(&key, -by, RUN_SCOPE_WINDOW * 2).await;
            return Err(ServiceError::TooLarge(
                u32::try_from(MAX_WORKSPACE_RUN_SCOPE_BYTES).unwrap_or(u32::MAX),
            ));
        }
        Ok(())
    }

    /// Refuses to create one more variable in a scope past its caps (a variable that exists
    /// may be rewritten: the per-variable cap bounds it).
    async fn check_new_variable(
        &self,
        key: &CacheKey,
        scope: Scope,
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
        let cap = if short_lived(scope) {
            MAX_RUN_SCOPE_BYTES
        } else {
            MAX_PERSISTENT_SCOPE_BYTES
        };
        let bytes: usize = all.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes + name.len() + size > cap {
            return Err(ServiceError::TooLarge(
                u32::try_from(cap).unwrap_or(u32::MAX),
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
                Some(bytes)
            }
            None => None,
        };
        let (key, ttl) = self.key(run, scope)?;
        match value {
            Some(bytes) => {
                self.check_new_variable(&key, scope, name, bytes.len())
                    .await?;
                if short_lived(scope) {
                    self.charge_short_lived(run, name.len() + bytes.len())
                        .await?;
                }
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
            let ttl = self.ttl_after_write(run, scope, ttl).await;
            self.cache.expire(&key, ttl).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

/// The scopes that expire minutes or hours after their last write (`run`, `socket`): capped
/// per owner at [`MAX_RUN_SCOPE_BYTES`] and counted in the workspace's per-minute budget.
fn short_lived(scope: Scope) -> bool {
    matches!(scope, Scope::Run | Scope::Socket)
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
    async fn the_socket_scope_belongs_to_the_socket_else_the_session_and_expires() {
        let s = store();
        let on = |socket: Option<&str>| RunContext {
            socket_id: socket.map(str::to_owned),
            ..run(Some("alice"), &CorrelationId::generate())
        };
        s.set(&on(Some("k1")), Scope::Socket, "draft", json!("hi"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&on(Some("k1")), Scope::Socket, "draft")
                .await
                .unwrap(),
            Some(json!("hi")),
            "another run from the same socket reads it"
        );
        assert_eq!(
            s.get(&on(Some("k2")), Scope::Socket, "draft")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.get(&on(None), Scope::Socket, "draft").await.unwrap(),
            None,
            "a run without a socket has the session's"
        );
        s.set(&on(None), Scope::Socket, "draft", json!("session"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&on(None), Scope::Socket, "draft").await.unwrap(),
            Some(json!("session"))
        );
        let anonymous = RunContext {
            user_id: None,
            session_id: None,
            ..on(None)
        };
        assert!(
            s.set(&anonymous, Scope::Socket, "draft", json!(1))
                .await
                .is_err(),
            "an anonymous run without a socket has no socket scope to fill"
        );
        tokio::time::advance(SOCKET_SCOPE_TTL + Duration::from_secs(1)).await;
        assert_eq!(
            s.get(&on(Some("k1")), Scope::Socket, "draft")
                .await
                .unwrap(),
            None,
            "expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_keeps_the_run_scope_for_its_timeout() {
        let s = store();
        let r = run(Some("alice"), &CorrelationId::generate());
        s.set(&r, Scope::Run, "step", json!(1)).await.unwrap();
        s.hold_run_scope(&r, Duration::from_secs(120)).await;
        tokio::time::advance(Duration::from_secs(150)).await;
        assert_eq!(
            s.get(&r, Scope::Run, "step").await.unwrap(),
            Some(json!(1)),
            "60 s plus the wait's 120 s"
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(s.get(&r, Scope::Run, "step").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_write_during_a_wait_does_not_cut_its_hold_short() {
        let s = store();
        let r = run(Some("alice"), &CorrelationId::generate());
        s.hold_run_scope(&r, Duration::from_secs(600)).await;
        s.set(&r, Scope::Run, "step", json!(2)).await.unwrap();
        let held = s
            .ttl_after_write(&r, Scope::Run, Duration::from_secs(60))
            .await;
        assert!(
            held > Duration::from_secs(600),
            "a write keeps the wait's hold: {held:?}"
        );
        let other = run(Some("alice"), &CorrelationId::generate());
        assert_eq!(
            s.ttl_after_write(&other, Scope::Run, Duration::from_secs(60))
                .await,
            Duration::from_secs(60)
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
    async fn a_run_scope_is_shared_by_instances_over_redis() {
        let Ok(url) = std::env::var("REFRACT_TEST_REDIS_URL") else {
            eprintln!("skipped: run scope over redis: REFRACT_TEST_REDIS_URL not set");
            return;
        };
        let ns = format!("refract-runscope-{}", CorrelationId::generate());
        let instance = || async {
            let cache = refract_storage::open_cache(&url, &ns)
                .await
                .expect("redis cache");
            ContextStore::new(
                cache,
                Duration::from_secs(3600),
                Duration::from_secs(60),
                1024,
            )
        };
        let (one, two) = (instance().await, instance().await);
        let c = CorrelationId::generate();
        let first = run(Some("alice"), &c);
        let next = RunContext {
            run_id: "r2".into(),
            depth: 1,
            ..first.clone()
        };
        one.set(&first, Scope::Run, "order.id", json!(42))
            .await
            .unwrap();
        assert_eq!(
            two.get(&next, Scope::Run, "order").await.unwrap(),
            Some(json!({"id": 42})),
            "a run of the same correlation on another instance reads it"
        );
        let other = run(Some("alice"), &CorrelationId::generate());
        assert_eq!(two.get(&other, Scope::Run, "order").await.unwrap(), None);
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
