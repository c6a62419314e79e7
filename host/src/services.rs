//! What the runtime gives the host: the implementations of the imports, as trait objects.
//!
//! The host validates everything the guest sends (JSON, event rules, scopes, limits) before a
//! service is called, and turns service errors into the WIT error values. A service never sees
//! guest memory, and knows nothing of wasmtime.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refract_core::{CorrelationId, Event, EventId, EventType, SessionId, UserId, WorkspaceId};
use serde_json::Value;

/// Who and what a run is: the identity every import acts under.
#[derive(Debug, Clone, PartialEq)]
pub struct RunContext {
    /// Unique id of this run (log lines and traces carry it).
    pub run_id: String,
    pub workspace_id: WorkspaceId,
    pub automation_slug: String,
    pub correlation_id: CorrelationId,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    /// Depth in the automation chain: 0 for a run started by a user, a schedule or a webhook;
    /// `source.automationDepth` of the triggering event, or the caller's depth plus one.
    pub depth: u32,
    /// `source.socketId` of the triggering event: the run's events carry it, so what they
    /// answer reaches that WebSocket only (http-api §7.4, automation-dsl §3.4).
    pub socket_id: Option<String>,
}

/// A failure of a backend service, as the guest will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request breaks a rule the service checks (the text says which).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The value is over the service's size limit (bytes, given).
    #[error("too large: {0} bytes")]
    TooLarge(u32),
    /// The backend cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// One condition an awaited event must meet (validated by the host).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitCondition {
    pub event_type: EventType,
    /// Dotted paths into the event (`payload.order.id`) and the value each must equal.
    pub filters: Vec<(String, Value)>,
}

impl WaitCondition {
    /// Does `event` meet this condition?
    pub fn matches(&self, event: &Event) -> bool {
        if event.event_type != self.event_type {
            return false;
        }
        let Ok(doc) = serde_json::to_value(event) else {
            return false;
        };
        self.filters.iter().all(|(path, want)| {
            let mut cur = &doc;
            for part in path.split('.') {
                match cur.get(part) {
                    Some(next) => cur = next,
                    None => return false,
                }
            }
            cur == want
        })
    }
}

/// Publishing and awaiting events (the runtime backs it with the broker).
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes `event` (validated, sealed, source filled in by the host); returns its id.
    /// The guest chose its type: a bus refuses the platform's own types here
    /// (`refract_core::platform::check_emittable`), as an `Invalid` value for the guest.
    async fn emit(&self, run: &RunContext, event: Event) -> Result<EventId, ServiceError>;
    /// Publishes an event the host itself built for the run, of a platform type the guest
    /// did not choose (`events.userTopics.*`), like [`emit`](Self::emit) otherwise. No default:
    /// a bus that wraps another must forward this one too, not send it through the guest's
    /// checked `emit`.
    async fn emit_host_event(
        &self,
        run: &RunContext,
        event: Event,
    ) -> Result<EventId, ServiceError>;
    /// The first event published after the call that meets one of `conditions`, or `None` after
    /// `timeout`.
    async fn wait(
        &self,
        run: &RunContext,
        conditions: &[WaitCondition],
        timeout: Duration,
    ) -> Result<Option<Event>, ServiceError>;
}

/// Where a state variable lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateScope {
    Global,
    User,
    Session,
    Run,
}

/// Context variables (the runtime backs it with the context store). The host has checked that
/// the scope has an owner in this run and that the path is well-formed.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn get(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
    ) -> Result<Option<Value>, ServiceError>;
    async fn set(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
        value: Value,
    ) -> Result<(), ServiceError>;
    async fn delete(
        &self,
        run: &RunContext,
        scope: StateScope,
        path: &str,
    ) -> Result<(), ServiceError>;

    /// Takes `consume` points from the workspace's limiter `name`/`consumer` (WIT 0.1.1
    /// `rate-limit`; the host checked `limit` and `window` are not zero). Cluster-wide in the
    /// runtime. The default refuses: a store without counters.
    async fn rate_limit(
        &self,
        _run: &RunContext,
        _limiter: &RateLimiter,
    ) -> Result<RateLimitState, ServiceError> {
        Err(ServiceError::Unavailable(
            "rate limits are not available here".into(),
        ))
    }

    /// Adds `topic` to the workspace's user topics and makes `users` members; `true` if the
    /// topic existed (WIT 0.1.1 `create-user-topic`). The default refuses.
    async fn create_user_topic(
        &self,
        _run: &RunContext,
        _topic: &str,
        _users: &[UserId],
    ) -> Result<bool, ServiceError> {
        Err(ServiceError::Unavailable(
            "user topics are not available here".into(),
        ))
    }

    /// Writes `value` (`None`: removes it) at `path` of the workspace's config (WIT 0.1.2
    /// `set-config`; the host checked the path and the value's size). The default refuses.
    async fn set_config(
        &self,
        _run: &RunContext,
        _path: &str,
        _value: Option<Value>,
    ) -> Result<(), ServiceError> {
        Err(ServiceError::Unavailable(
            "config writes are not available here".into(),
        ))
    }

    /// The user of login session `session`, when the platform knows the session (WIT 0.1.2
    /// `switch-identity`). The default knows none.
    async fn session_user(
        &self,
        _run: &RunContext,
        _session: &SessionId,
    ) -> Result<Option<UserId>, ServiceError> {
        Ok(None)
    }

    /// Makes `users` members of `topic`, creating it when `create`; `Invalid` for an unknown
    /// topic otherwise (WIT 0.1.1 `join-user-topic`). The default refuses.
    async fn join_user_topic(
        &self,
        _run: &RunContext,
        _topic: &str,
        _users: &[UserId],
        _create: bool,
    ) -> Result<(), ServiceError> {
        Err(ServiceError::Unavailable(
            "user topics are not available here".into(),
        ))
    }
}

/// One `rate-limit` call: limiter `name` of the workspace, partitioned by `consumer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimiter {
    pub name: String,
    pub consumer: String,
    /// Points per window (> 0).
    pub limit: u32,
    /// Window length (> 0).
    pub window: Duration,
    /// Points this call takes.
    pub consume: u32,
}

/// A limiter after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    pub ok: bool,
    pub remaining: u32,
    /// Whole seconds to the end of the window; 0 when accepted.
    pub retry_after: u32,
}

/// Why a call to another automation returned no output; mirrors the WIT `call-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("no automation {0}")]
    NotFound(String),
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The callee returned its own typed error.
    #[error("{code}: {message}")]
    Failed {
        code: String,
        message: String,
        details: Option<String>,
    },
    /// The callee trapped or hit a sandbox limit.
    #[error("trapped: {0}")]
    Trapped(String),
    /// The host could not run the callee (not compiled, no free slot, ...).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Runs another automation of the workspace (the runtime routes it; the in-memory twin runs it
/// on the same host). `callee` is the context of the new run: same correlation, user, session,
/// one level deeper, with a fresh run id.
#[async_trait]
pub trait AutomationCaller: Send + Sync {
    async fn call(
        &self,
        callee: RunContext,
        slug: &str,
        arguments: Value,
    ) -> Result<Value, CallFailure>;
}

/// The services one run uses.
#[derive(Clone)]
pub struct Services {
    pub events: Arc<dyn EventBus>,
    pub state: Arc<dyn StateStore>,
    pub automations: Arc<dyn AutomationCaller>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Services { .. }")
    }
}
