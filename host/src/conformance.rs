//! One conformance suite per host capability, run against the in-memory twins ([`memory`]) and
//! the runtime's implementations (over a real cache when one is configured), so every backend
//! of a capability behaves the same for a guest. Each function panics on the first difference.
//!
//! Built with the `testing` feature (and for this crate's own tests).
//!
//! [`memory`]: crate::memory

use std::future::Future;
use std::time::Duration;

use refract_core::{CorrelationId, Scope, SessionId, UserId, WorkspaceId};
use serde_json::json;

use crate::services::{
    ConfigStore, Coordination, Identities, RateLimiter, RunContext, ServiceError, StateStore,
};

/// A run of `user` in workspace `ws` with a fresh correlation id; its session is `s-<user>`.
pub fn run_of(ws: &str, user: Option<&str>) -> RunContext {
    let id = |v: &str| WorkspaceId::new(v).expect("a valid workspace id");
    RunContext {
        run_id: format!("conformance-{}", CorrelationId::generate()),
        workspace_id: id(ws),
        automation_slug: "conformance".into(),
        correlation_id: CorrelationId::generate(),
        user_id: user.map(|u| UserId::new(u).expect("a valid user id")),
        session_id: user.map(|u| SessionId::new(format!("s-{u}")).expect("a valid session id")),
        depth: 0,
        socket_id: None,
    }
}

/// A workspace id no other suite run uses, for backends shared between runs (a real cache).
pub fn unique_workspace() -> String {
    format!(
        "conf{}",
        CorrelationId::generate().as_str().replace('-', "")
    )
    .chars()
    .take(32)
    .collect()
}

/// [`StateStore`]: values round-trip per scope, scope owners are isolated, the run scope is
/// shared by a correlation, deletes remove.
pub async fn state_store(store: &dyn StateStore) {
    let ws = unique_workspace();
    let alice = run_of(&ws, Some("alice"));
    let bob = run_of(&ws, Some("bob"));
    for scope in [Scope::Global, Scope::User, Scope::Session, Scope::Run] {
        assert_eq!(
            store.get(&alice, scope, "absent").await.expect("get"),
            None,
            "{scope:?}: nothing there"
        );
        store
            .set(&alice, scope, "v", json!({"n": 1, "l": [1, "x"]}))
            .await
            .expect("set");
        assert_eq!(
            store.get(&alice, scope, "v").await.expect("get"),
            Some(json!({"n": 1, "l": [1, "x"]})),
            "{scope:?}: reads back"
        );
        let shared = scope == Scope::Global;
        assert_eq!(
            store.get(&bob, scope, "v").await.expect("get").is_some(),
            shared,
            "{scope:?}: another user's run sees it only in the global scope"
        );
        store.delete(&alice, scope, "v").await.expect("delete");
        assert_eq!(store.get(&alice, scope, "v").await.expect("get"), None);
        store
            .delete(&alice, scope, "v")
            .await
            .expect("deleting what is gone is no error");
    }
    let callee = RunContext {
        run_id: format!("{}.c1", alice.run_id),
        depth: 1,
        ..alice.clone()
    };
    store
        .set(&alice, Scope::Run, "step", json!(1))
        .await
        .expect("set");
    assert_eq!(
        store.get(&callee, Scope::Run, "step").await.expect("get"),
        Some(json!(1)),
        "a callee shares its caller's run scope"
    );
    let elsewhere = run_of(&unique_workspace(), Some("alice"));
    assert_eq!(
        store
            .get(&elsewhere, Scope::User, "step")
            .await
            .expect("get"),
        None,
        "workspaces are isolated"
    );
}

/// [`Coordination`]: a limiter takes points up to its limit per window and per consumer, then
/// refuses with a wait; topics report whether they existed; joining an unknown topic needs
/// `create`.
pub async fn coordination(c: &dyn Coordination) {
    let ws = unique_workspace();
    let run = run_of(&ws, Some("alice"));
    let limiter = |consumer: &str, consume: u32| RateLimiter {
        name: "api".into(),
        consumer: consumer.into(),
        limit: 2,
        window: Duration::from_secs(60),
        consume,
    };
    let a = c.rate_limit(&run, &limiter("u1", 1)).await.expect("limit");
    assert!(a.ok && a.remaining == 1 && a.retry_after == 0, "{a:?}");
    let b = c.rate_limit(&run, &limiter("u1", 1)).await.expect("limit");
    assert!(b.ok && b.remaining == 0, "{b:?}");
    let refused = c.rate_limit(&run, &limiter("u1", 1)).await.expect("limit");
    assert!(
        !refused.ok && refused.remaining == 0 && (1..=60).contains(&refused.retry_after),
        "{refused:?}"
    );
    let other = c.rate_limit(&run, &limiter("u2", 2)).await.expect("limit");
    assert!(other.ok, "consumers are counted apart: {other:?}");
    let elsewhere = run_of(&unique_workspace(), Some("alice"));
    assert!(
        c.rate_limit(&elsewhere, &limiter("u1", 1))
            .await
            .expect("limit")
            .ok,
        "workspaces are counted apart"
    );

    let users = [UserId::new("alice").expect("user id")];
    assert!(
        !c.create_user_topic(&run, "team", &users)
            .await
            .expect("create"),
        "a new topic did not exist"
    );
    assert!(
        c.create_user_topic(&run, "team", &[])
            .await
            .expect("create"),
        "it exists now"
    );
    c.join_user_topic(&run, "team", &users, false)
        .await
        .expect("joining an existing topic");
    let unknown = c.join_user_topic(&run, "nope", &users, false).await;
    assert!(
        matches!(unknown, Err(ServiceError::Invalid(_))),
        "{unknown:?}"
    );
    c.join_user_topic(&run, "nope", &users, true)
        .await
        .expect("create on join");
    assert!(
        c.create_user_topic(&run, "nope", &[])
            .await
            .expect("create"),
        "joining with create made the topic"
    );
}

/// [`ConfigStore`]: a written member reads back through `read` (the backend's own view of the
/// workspace config member), a removed one is gone.
pub async fn config_store<F, Fut>(store: &dyn ConfigStore, read: F)
where
    F: Fn(RunContext, &'static str) -> Fut,
    Fut: Future<Output = Option<serde_json::Value>>,
{
    let run = run_of(&unique_workspace(), Some("alice"));
    store
        .set_config(&run, "apiBase", Some(json!("https://api.example")))
        .await
        .expect("write");
    assert_eq!(
        read(run.clone(), "apiBase").await,
        Some(json!("https://api.example"))
    );
    store
        .set_config(&run, "apiBase", None)
        .await
        .expect("remove");
    assert_eq!(read(run.clone(), "apiBase").await, None);
}

/// [`Identities`]: an unknown session has no user; a session is told to a run when its user is
/// the run's own, and not when the user is a stranger to the run's workspace. `login` makes a
/// session known to the backend (as the gateway does at login).
pub async fn identities<F, Fut>(ids: &dyn Identities, login: F)
where
    F: Fn(SessionId, UserId) -> Fut,
    Fut: Future<Output = ()>,
{
    let ws = unique_workspace();
    let run = run_of(&ws, Some("alice"));
    let session = |s: &str| SessionId::new(format!("{s}-{ws}")).expect("session id");
    assert_eq!(
        ids.session_user(&run, &session("unknown"))
            .await
            .expect("lookup"),
        None
    );
    let alice = run.user_id.clone().expect("a user");
    login(session("own"), alice.clone()).await;
    assert_eq!(
        ids.session_user(&run, &session("own"))
            .await
            .expect("lookup"),
        Some(alice)
    );
    let stranger = UserId::new(format!("stranger{ws}")).expect("user id");
    login(session("stranger"), stranger).await;
    assert_eq!(
        ids.session_user(&run, &session("stranger"))
            .await
            .expect("lookup"),
        None,
        "another tenant's session is not told"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{
        MemoryConfigStore, MemoryCoordination, MemoryIdentities, MemoryStateStore,
    };

    #[tokio::test]
    async fn the_memory_twins_conform() {
        state_store(&MemoryStateStore::default()).await;
        coordination(&MemoryCoordination::default()).await;
        let config = MemoryConfigStore::default();
        config_store(&config, |run, path| {
            let v = config.get(run.workspace_id.as_str(), path);
            async move { v }
        })
        .await;
        let ids = MemoryIdentities::default();
        identities(&ids, |session, user| {
            ids.add_session(session, user);
            async {}
        })
        .await;
    }
}
