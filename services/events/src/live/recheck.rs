//! Open sockets lose what their caller lost. Access is decided at the upgrade, then again:
//!
//! - **when the workspace's permissions change**: [`super::run_live`] sees every event; after
//!   a platform event that may change who reads what ([`crate::readers::changes_access`]: roles and
//!   rules, sharing, API keys, deletion) it asks [`Rechecks`] to re-evaluate the workspace.
//!   One task per instance decides again, from the store, for every socket of the workspace:
//!   a socket whose caller is no longer a member is closed (4003, "access revoked"), the
//!   others read by the reloaded rules and topics from then on. Requests for one workspace
//!   that arrive while it waits are merged, so a burst of changes costs one pass.
//! - **when the session ends**: each connection checks on its heartbeat that its login session
//!   still exists ([`session_alive`]); after a logout or expiry it closes (4001, "session
//!   ended").

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use refract_core::{SessionId, WorkspaceId};
use refract_storage::{Cache, CacheKey};
use tokio::sync::mpsc;

use crate::{EventsState, api};

/// Prefix of the session ids of personal access tokens (`x-prismeai-session-id`): they are
/// revoked in the gateway's token store, not in the session cache.
const ACCESS_TOKEN_SESSION: &str = "at_";

/// Workspaces waiting for a re-check, handed to [`run`].
#[derive(Clone)]
pub struct Rechecks {
    queue: mpsc::UnboundedSender<WorkspaceId>,
    /// Workspaces queued and not yet taken: each is queued once however many changes come.
    pending: Arc<Mutex<HashSet<WorkspaceId>>>,
}

impl Rechecks {
    /// Asks for the sockets of `workspace` to be re-evaluated.
    pub fn request(&self, workspace: &WorkspaceId) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.insert(workspace.clone()) {
            let _ = self.queue.send(workspace.clone());
        }
    }
}

/// The re-check queue and the task that serves it (ends when every [`Rechecks`] is dropped).
pub fn start(state: EventsState) -> (Rechecks, tokio::task::JoinHandle<()>) {
    let (queue, mut rx) = mpsc::unbounded_channel::<WorkspaceId>();
    let pending = Arc::new(Mutex::new(HashSet::new()));
    let rechecks = Rechecks {
        queue,
        pending: pending.clone(),
    };
    let task = tokio::spawn(async move {
        while let Some(workspace) = rx.recv().await {
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&workspace);
            recheck(&state, &workspace).await;
        }
    });
    (rechecks, task)
}

/// Decides again what each socket of `workspace` on this instance may read.
pub async fn recheck(state: &EventsState, workspace: &WorkspaceId) {
    for (socket_id, caller) in state.hub.callers(workspace) {
        match api::member(state, &caller, workspace.as_str()).await {
            Ok((_, role, read)) => state
                .hub
                .reauthorize(workspace, &socket_id, Some((role, read))),
            Err(e) if e.status.is_client_error() => {
                tracing::info!(%workspace, %socket_id, "events: socket closed, its caller lost access");
                state.hub.reauthorize(workspace, &socket_id, None);
            }
            // The store is unreachable: keep the socket as it was rather than close everyone.
            Err(e) => {
                tracing::warn!(%workspace, %socket_id, error = %e.message, "events: socket access not re-checked")
            }
        }
    }
}

/// Whether the login session `session` still exists (a logout or expiry removes it). Access
/// tokens' sessions and an unreachable cache count as alive.
pub async fn session_alive(cache: &dyn Cache, session: &SessionId) -> bool {
    if session.as_str().starts_with(ACCESS_TOKEN_SESSION) {
        return true;
    }
    match cache.get(&CacheKey::session_user(session)).await {
        Ok(found) => found.is_some(),
        Err(error) => {
            tracing::warn!(%error, "events: session not re-checked");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use refract_storage::cache::MemoryCache;

    use super::*;

    #[tokio::test]
    async fn a_logged_out_session_is_not_alive() {
        let cache = MemoryCache::new("test");
        let session = SessionId::new("s1").expect("session");
        cache
            .set(&CacheKey::session_user(&session), b"ada", None)
            .await
            .expect("set");
        assert!(session_alive(&cache, &session).await);
        cache
            .delete(&CacheKey::session_user(&session))
            .await
            .expect("delete");
        assert!(!session_alive(&cache, &session).await);
        assert!(
            session_alive(&cache, &SessionId::new("at_k1").expect("pat")).await,
            "access tokens are checked by the gateway"
        );
    }
}
