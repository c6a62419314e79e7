//! [`LiveRuns`]: the registry of the runs going on in this instance, for the imports that
//! receive only a run's context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::Credentials;
use crate::apps::AppScope;

/// Which instance each live run belongs to, and the credentials its HTTP caller presented, by
/// run id (runs of the root workspace started without credentials are absent). `emit`, `wait`
/// and `call` receive only the run's context; this is how they find its app, and how a call
/// runs with its caller's credentials.
#[derive(Debug, Default)]
pub(crate) struct LiveRuns {
    runs: Mutex<HashMap<String, LiveRun>>,
}

/// What the registry keeps of a live run: its app instance and its caller's credentials.
#[derive(Debug)]
struct LiveRun {
    scope: Option<Arc<AppScope>>,
    credentials: Option<Arc<Credentials>>,
}

impl LiveRuns {
    /// Records `run_id` as a run of `scope`, started with `credentials`, until the guard is
    /// dropped (runs with neither are not recorded).
    pub(crate) fn enter(
        self: &Arc<Self>,
        run_id: &str,
        scope: Option<Arc<AppScope>>,
        credentials: Option<Arc<Credentials>>,
    ) -> LiveGuard {
        if scope.is_some() || credentials.is_some() {
            let live = LiveRun { scope, credentials };
            self.runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(run_id.to_owned(), live);
        }
        LiveGuard {
            scopes: self.clone(),
            run_id: run_id.to_owned(),
        }
    }

    /// The instance of run `run_id`, if it runs inside one.
    pub(crate) fn of(&self, run_id: &str) -> Option<Arc<AppScope>> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .and_then(|r| r.scope.clone())
    }

    /// The instance of the run that made call `callee_run_id` (`<caller>.c<n>`).
    pub(crate) fn of_caller(&self, callee_run_id: &str) -> Option<Arc<AppScope>> {
        caller_of(callee_run_id).and_then(|caller| self.of(caller))
    }

    /// The credentials of the run that made call `callee_run_id`: a call runs as its caller.
    pub(crate) fn credentials_of_caller(&self, callee_run_id: &str) -> Option<Arc<Credentials>> {
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

/// Removes a run from [`LiveRuns`] when it ends.
#[derive(Debug)]
pub(crate) struct LiveGuard {
    scopes: Arc<LiveRuns>,
    run_id: String,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.scopes
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::tests::scope;

    #[test]
    fn runs_know_their_instance_and_calls_find_their_caller() {
        let scopes = Arc::new(LiveRuns::default());
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
    }
}
