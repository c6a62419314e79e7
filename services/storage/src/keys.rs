//! Every cache key Refract uses, built here and nowhere else, so two services never disagree on
//! a name and a key's lifetime class (durable or not) is decided once.
//!
//! A key is `kind:part:part`. Parts are ids (validated newtypes) or caller strings; a caller
//! string has `:` and control characters replaced, so one key can never impersonate another
//! by embedding the separator. The cache adds its namespace prefix in front.

use refract_core::{Scope, SessionId, UserId, WorkspaceId};

/// A cache key, and whether its value must outlive a restart of the embedded mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    name: String,
    durable: bool,
}

/// A caller-supplied part with the separator and control characters replaced.
fn part(s: &str) -> String {
    s.chars()
        .map(|c| if c == ':' || c.is_control() { '_' } else { c })
        .collect()
}

/// What is counted of a workspace's use, per UTC day ([`CacheKey::usage`]): the runtime counts
/// runs, their time, emits and fetches; the events service the bytes its history stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageMetric {
    /// Runs that happened.
    Runs,
    /// Their wall time, in milliseconds.
    RunMs,
    /// Events their guests emitted.
    Emits,
    /// Fetches their guests made.
    Fetches,
    /// Bytes the workspace's events added to the history (each event's stored JSON).
    StoredBytes,
}

impl UsageMetric {
    /// Every metric, in the order the API lists them.
    pub const ALL: [UsageMetric; 5] = [
        UsageMetric::Runs,
        UsageMetric::RunMs,
        UsageMetric::Emits,
        UsageMetric::Fetches,
        UsageMetric::StoredBytes,
    ];

    /// How long a day's counters are kept.
    pub const KEPT: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

    /// Its name in keys and in the API.
    pub fn name(self) -> &'static str {
        match self {
            UsageMetric::Runs => "runs",
            UsageMetric::RunMs => "runMs",
            UsageMetric::Emits => "emits",
            UsageMetric::Fetches => "fetches",
            UsageMetric::StoredBytes => "storedBytes",
        }
    }
}

impl CacheKey {
    fn new(name: String, durable: bool) -> Self {
        Self { name, durable }
    }

    /// The key without the cache's namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the embedded cache persists this key in its database.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// A login session (durable: a restart must not log everyone out).
    pub fn session(session: &SessionId) -> Self {
        Self::new(format!("session:{session}"), true)
    }

    /// The user of a login session, by the session's id (durable like the session): what a
    /// DSL run's `set session.id` switches to.
    pub fn session_user(session: &SessionId) -> Self {
        Self::new(format!("session-user:{session}"), true)
    }

    /// An OIDC login in flight (state → PKCE verifier, nonce), minutes long.
    pub fn oidc_state(state: &str) -> Self {
        Self::new(format!("oidc:{}", part(state)), false)
    }

    /// A fixed-window rate-limit counter: `rule` (e.g. `events.emit`), the subject it counts
    /// (a user, a workspace, an IP) and the window's start in seconds.
    pub fn rate_limit(rule: &str, subject: &str, window_start_secs: i64) -> Self {
        Self::new(
            format!(
                "ratelimit:{}:{}:{window_start_secs}",
                part(rule),
                part(subject)
            ),
            false,
        )
    }

    /// A workspace's token bucket of `kind` (`automations`, `emits`: the runtime throttles).
    pub fn throttle(workspace: &WorkspaceId, kind: &str) -> Self {
        Self::new(format!("throttle:{workspace}:{}", part(kind)), false)
    }

    /// A cluster-wide lock (e.g. `cron:<workspace>:<automation>:<tick>`: one tick, one run).
    pub fn lock(name: &str) -> Self {
        Self::new(format!("lock:{}", part(name)), false)
    }

    /// A context hash: field = variable name. Global and user contexts are durable.
    pub fn context(workspace: &WorkspaceId, scope: Scope, owner: &str) -> Self {
        Self::new(
            format!("context:{workspace}:{}:{}", scope.as_str(), part(owner)),
            scope.is_persistent(),
        )
    }

    /// Until when (epoch ms) a `wait` holds the `run` scope of a correlation: its writes keep
    /// the scope at least that long.
    pub fn run_hold(workspace: &WorkspaceId, correlation: &str) -> Self {
        Self::new(format!("runhold:{workspace}:{}", part(correlation)), false)
    }

    /// The user topics a user joined in a workspace.
    pub fn user_topics(workspace: &WorkspaceId, user: &UserId) -> Self {
        Self::new(format!("usertopics:{workspace}:{user}"), false)
    }

    /// The user topics created in a workspace, field = topic (the DSL's `createUserTopic`).
    pub fn user_topic_set(workspace: &WorkspaceId) -> Self {
        Self::new(format!("topics:{workspace}"), false)
    }

    /// A WebSocket's record (workspace, owner, filters, last position), read by whichever
    /// events instance the socket reconnects to.
    pub fn socket(socket_id: &str) -> Self {
        Self::new(format!("socket:{}", part(socket_id)), false)
    }

    /// A workspace's usage counter `metric` of one UTC day (`YYYY-MM-DD` in the key), kept
    /// across restarts.
    pub fn usage(workspace: &WorkspaceId, day: chrono::NaiveDate, metric: UsageMetric) -> Self {
        Self::new(
            format!(
                "usage:{workspace}:{}:{}",
                day.format("%Y-%m-%d"),
                metric.name()
            ),
            true,
        )
    }

    /// Live subscriptions (WebSocket filters) of a workspace, field = socket id.
    pub fn subscriptions(workspace: &WorkspaceId) -> Self {
        Self::new(format!("subscriptions:{workspace}"), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_separators_cannot_be_injected() {
        let ws = WorkspaceId::new("ws1").unwrap();
        assert_eq!(
            CacheKey::context(&ws, Scope::Global, "").name(),
            "context:ws1:global:"
        );
        assert!(CacheKey::context(&ws, Scope::User, "u1").is_durable());
        assert!(!CacheKey::context(&ws, Scope::Run, "r1").is_durable());
        assert_eq!(CacheKey::lock("a:b\n").name(), "lock:a_b_");
        assert_eq!(
            CacheKey::rate_limit("emit", "u:1", 60).name(),
            "ratelimit:emit:u_1:60"
        );
        assert!(CacheKey::session(&SessionId::new("s1").unwrap()).is_durable());
    }
}
