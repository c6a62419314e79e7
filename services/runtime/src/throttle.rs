//! Per-workspace throttles of executions and emits (`spec/http-api.md` §14.3): token buckets in
//! the shared cache, so one budget for the whole cluster. Throttling delays work instead of
//! failing it; a delay longer than [`MAX_THROTTLE_DELAY`] fails with a [`ThrottledError`]. The
//! delays of a run are added up and reported as `throttled` in `runtime.automations.executed`.
//!
//! A workspace's budgets can be changed by its system secrets (written by superadmins only):
//! `prismeai_ratelimit_automations`, `prismeai_ratelimit_emits` (per second),
//! `prismeai_ratelimit_automations_burst`, `prismeai_ratelimit_emits_burst`, and
//! `prismeai_ratelimit_disabled` (`true` turns both off).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use refract_core::{Event, EventId, WorkspaceId};
use refract_host::{EventBus, RunContext, ServiceError, WaitCondition};
use refract_storage::{Cache, CacheKey, DocumentStore, TokenBucket, collections};
use tokio::time::Instant;

/// Executions per second of one workspace, and its burst: protects the runtime's workers and
/// pool from one tenant's flood of triggers.
pub(crate) const DEFAULT_EXECUTIONS: TokenBucket = TokenBucket {
    per_second: 100.0,
    burst: 400,
};
/// Emits per second of one workspace, and its burst: protects the broker and the automations
/// the events trigger.
pub(crate) const DEFAULT_EMITS: TokenBucket = TokenBucket {
    per_second: 30.0,
    burst: 100,
};
/// Longest delay a throttle imposes before it fails the work instead: a throttled run keeps its
/// caller (a webhook client, an instance slot) waiting no longer than this.
pub(crate) const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(10);
/// How long a workspace's rate-limit secrets are used before they are read again.
const OVERRIDES_TTL: Duration = Duration::from_secs(10);
/// Workspaces whose overrides are kept in memory; past it the map starts over.
const MAX_CACHED_OVERRIDES: usize = 10_000;
/// Runs whose delays are being added up at once; past it the oldest tallies are dropped.
const MAX_TALLIES: usize = 100_000;

/// What a throttle counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    Executions,
    Emits,
}

impl Throttle {
    /// The name in the secrets and the cache key.
    fn name(self) -> &'static str {
        match self {
            Throttle::Executions => "automations",
            Throttle::Emits => "emits",
        }
    }
}

/// The work was throttled longer than [`MAX_THROTTLE_DELAY`]; it did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the {kind} of workspace {workspace} are over their rate ({per_second}/s, burst {burst}); waiting would take over {max_ms} ms"
)]
pub(crate) struct ThrottledError {
    pub(crate) workspace: String,
    pub(crate) kind: &'static str,
    pub(crate) per_second: f64,
    pub(crate) burst: u32,
    pub(crate) max_ms: u128,
}

/// A workspace's budgets (`None`: throttles off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Budgets {
    pub(crate) executions: TokenBucket,
    pub(crate) emits: TokenBucket,
}

/// The throttles of one runtime instance.
pub(crate) struct Throttles {
    cache: Arc<dyn Cache>,
    store: Arc<dyn DocumentStore>,
    overrides: Mutex<HashMap<String, (Option<Budgets>, Instant)>>,
    /// Delay so far of each run being throttled, by run id.
    tallies: Mutex<HashMap<String, Duration>>,
}

impl std::fmt::Debug for Throttles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttles").finish_non_exhaustive()
    }
}

impl Throttles {
    /// Throttles with their buckets in `cache`, each workspace's rates read from `store`.
    pub(crate) fn new(cache: Arc<dyn Cache>, store: Arc<dyn DocumentStore>) -> Self {
        Self {
            cache,
            store,
            overrides: Mutex::default(),
            tallies: Mutex::default(),
        }
    }

    /// Waits for `throttle`'s token of `workspace`, adding the delay to `run_id`'s tally.
    /// A cache that does not answer lets the work through (logged): throttles protect the
    /// platform, they must not stop it.
    pub(crate) async fn wait(
        &self,
        workspace: &WorkspaceId,
        run_id: &str,
        throttle: Throttle,
    ) -> Result<(), ThrottledError> {
        let Some(budgets) = self.budgets(workspace).await else {
            return Ok(());
        };
        let bucket = match throttle {
            Throttle::Executions => budgets.executions,
            Throttle::Emits => budgets.emits,
        };
        let key = CacheKey::throttle(workspace, throttle.name());
        let delay = match self
            .cache
            .take_tokens(&key, bucket, 1, MAX_THROTTLE_DELAY)
            .await
        {
            Ok(Some(delay)) => delay,
            Ok(None) => {
                return Err(ThrottledError {
                    workspace: workspace.to_string(),
                    kind: throttle.name(),
                    per_second: bucket.per_second,
                    burst: bucket.burst,
                    max_ms: MAX_THROTTLE_DELAY.as_millis(),
                });
            }
            Err(e) => {
                tracing::warn!(workspace_id = %workspace, throttle = throttle.name(), error = %e, "throttle unavailable; not throttled");
                return Ok(());
            }
        };
        if !delay.is_zero() {
            self.add(run_id, delay);
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    fn add(&self, run_id: &str, delay: Duration) {
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        if tallies.len() >= MAX_TALLIES && !tallies.contains_key(run_id) {
            tallies.clear();
        }
        *tallies.entry(run_id.to_owned()).or_default() += delay;
    }

    /// The delay `run_id` was throttled for, forgotten from now on.
    pub(crate) fn take_tally(&self, run_id: &str) -> Duration {
        self.tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(run_id)
            .unwrap_or_default()
    }

    /// The budgets of `workspace`: the defaults, or what its secrets say (cached a while).
    pub(crate) async fn budgets(&self, workspace: &WorkspaceId) -> Option<Budgets> {
        let now = Instant::now();
        {
            let map = self
                .overrides
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((budgets, at)) = map.get(workspace.as_str())
                && now.duration_since(*at) < OVERRIDES_TTL
            {
                return *budgets;
            }
        }
        let budgets = self.read_secrets(workspace).await;
        let mut map = self
            .overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CACHED_OVERRIDES {
            map.clear();
        }
        map.insert(workspace.to_string(), (budgets, now));
        budgets
    }

    async fn read_secrets(&self, workspace: &WorkspaceId) -> Option<Budgets> {
        let mut values = HashMap::new();
        for name in SECRETS {
            let id = format!("{workspace}:{name}");
            match self.store.get(&collections::SECRETS, &id).await {
                Ok(Some(doc)) => {
                    if let Some(value) = doc.body.get("value").and_then(|v| v.as_str()) {
                        values.insert(*name, value.trim().to_owned());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(workspace_id = %workspace, error = %e, "rate-limit secrets unreadable; defaults used")
                }
            }
        }
        budgets_from(&values)
    }
}

/// The system secrets the throttles read.
const SECRETS: &[&str] = &[
    "prismeai_ratelimit_disabled",
    "prismeai_ratelimit_automations",
    "prismeai_ratelimit_automations_burst",
    "prismeai_ratelimit_emits",
    "prismeai_ratelimit_emits_burst",
];

/// The budgets the secrets `values` (by name) set over the defaults; a value that does not
/// parse (or is not positive) is ignored.
fn budgets_from(values: &HashMap<&str, String>) -> Option<Budgets> {
    if values
        .get("prismeai_ratelimit_disabled")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    {
        return None;
    }
    let rate = |name: &str, default: f64| {
        values
            .get(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(default)
    };
    let burst = |name: &str, default: u32| {
        values
            .get(name)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|b| *b > 0)
            .unwrap_or(default)
    };
    Some(Budgets {
        executions: TokenBucket {
            per_second: rate(
                "prismeai_ratelimit_automations",
                DEFAULT_EXECUTIONS.per_second,
            ),
            burst: burst(
                "prismeai_ratelimit_automations_burst",
                DEFAULT_EXECUTIONS.burst,
            ),
        },
        emits: TokenBucket {
            per_second: rate("prismeai_ratelimit_emits", DEFAULT_EMITS.per_second),
            burst: burst("prismeai_ratelimit_emits_burst", DEFAULT_EMITS.burst),
        },
    })
}

/// The event bus of runs: every emit first waits for its workspace's emit token, and a wait
/// keeps the run's `run` scope alive for as long as it may last.
pub(crate) struct ThrottledBus {
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) throttles: Arc<Throttles>,
    pub(crate) contexts: Arc<crate::contexts::ContextStore>,
}

impl ThrottledBus {
    /// Waits for the workspace's emit token (guest and host-built events alike).
    async fn emit_token(&self, run: &RunContext) -> Result<(), ServiceError> {
        self.throttles
            .wait(&run.workspace_id, &run.run_id, Throttle::Emits)
            .await
            .map(drop)
            .map_err(|e| ServiceError::Unavailable(format!("ThrottledError: {e}")))
    }
}

#[async_trait]
impl EventBus for ThrottledBus {
    async fn emit(&self, run: &RunContext, event: Event) -> Result<EventId, ServiceError> {
        self.emit_token(run).await?;
        self.bus.emit(run, event).await
    }

    async fn emit_host_event(
        &self,
        run: &RunContext,
        event: Event,
    ) -> Result<EventId, ServiceError> {
        self.emit_token(run).await?;
        self.bus.emit_host_event(run, event).await
    }

    async fn wait(
        &self,
        run: &RunContext,
        conditions: &[WaitCondition],
        timeout: Duration,
    ) -> Result<Option<Event>, ServiceError> {
        // Both at once: the wait registers its conditions on its first poll, before the hold's
        // round trip to the cache, so a wait started alongside others (`all`) misses nothing
        // published right after it started.
        let (_, waited) = tokio::join!(
            self.contexts.hold_run_scope(run, timeout),
            self.bus.wait(run, conditions, timeout)
        );
        waited
    }
}

#[cfg(test)]
mod tests {
    use refract_storage::MemoryStore;
    use refract_storage::cache::MemoryCache;

    use super::*;

    #[test]
    fn secrets_override_the_defaults_and_bad_values_are_ignored() {
        let none = HashMap::new();
        assert_eq!(
            budgets_from(&none),
            Some(Budgets {
                executions: DEFAULT_EXECUTIONS,
                emits: DEFAULT_EMITS
            })
        );
        let set = HashMap::from([
            ("prismeai_ratelimit_emits", "5".to_owned()),
            ("prismeai_ratelimit_emits_burst", "7".to_owned()),
            ("prismeai_ratelimit_automations", "-3".to_owned()),
            ("prismeai_ratelimit_automations_burst", "lots".to_owned()),
        ]);
        let budgets = budgets_from(&set).unwrap();
        assert_eq!(
            budgets.emits,
            TokenBucket {
                per_second: 5.0,
                burst: 7
            }
        );
        assert_eq!(budgets.executions, DEFAULT_EXECUTIONS);
        let off = HashMap::from([("prismeai_ratelimit_disabled", "true".to_owned())]);
        assert_eq!(budgets_from(&off), None);
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_burst_is_delayed_then_refused() {
        let throttles = Throttles::new(
            Arc::new(MemoryCache::new("t")),
            Arc::new(MemoryStore::new()),
        );
        let ws = WorkspaceId::new("ws1").unwrap();
        for _ in 0..DEFAULT_EMITS.burst {
            throttles.wait(&ws, "r1", Throttle::Emits).await.unwrap();
        }
        assert_eq!(
            throttles.take_tally("r1"),
            Duration::ZERO,
            "the burst goes through at once"
        );
        throttles.wait(&ws, "r1", Throttle::Emits).await.unwrap();
        let tally = throttles.take_tally("r1");
        assert!(tally > Duration::ZERO, "the next emit waits for its token");
        // Tokens reserved ahead past the longest delay: refused, not queued forever.
        let mut refused = None;
        for _ in 0..1_000 {
            let cache = throttles.cache.clone();
            let key = CacheKey::throttle(&ws, "emits");
            // Reserve without sleeping, as many concurrent runs would.
            if cache
                .take_tokens(&key, DEFAULT_EMITS, 1, MAX_THROTTLE_DELAY)
                .await
                .unwrap()
                .is_none()
            {
                refused = Some(throttles.wait(&ws, "r2", Throttle::Emits).await);
                break;
            }
        }
        assert!(
            matches!(refused, Some(Err(ThrottledError { kind: "emits", .. }))),
            "{refused:?}"
        );
        let other = WorkspaceId::new("ws2").unwrap();
        throttles.wait(&other, "r3", Throttle::Emits).await.unwrap();
        assert_eq!(
            throttles.take_tally("r3"),
            Duration::ZERO,
            "another workspace has its own bucket"
        );
    }
}
