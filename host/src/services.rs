//! What the runtime gives the host: the implementations of the imports, as trait objects.
//!
//! The host validates everything the guest sends (JSON, event rules, scopes, limits) before a
//! service is called, and turns service errors into the WIT error values. A service never sees
//! guest memory, and knows nothing of wasmtime.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use refract_core::{
    CorrelationId, Event, EventId, EventType, Scope, SessionId, UserId, WorkspaceId,
};
use serde_json::Value;

/// Who and what a run is: the identity every import acts under.
#[derive(Debug, Clone, PartialEq)]
pub struct RunContext {
    /// Unique id of this run (log lines and traces carry it).
    pub run_id: String,
    /// The workspace the run belongs to: every service call is confined to it.
    pub workspace_id: WorkspaceId,
    /// The automation being run.
    pub automation_slug: String,
    /// Shared by a run, the events it emits and the runs they trigger or it calls.
    pub correlation_id: CorrelationId,
    /// The user the run acts for, if any (owner of the `user` scope).
    pub user_id: Option<UserId>,
    /// The session the run acts for, if any (owner of the `session` scope).
    pub session_id: Option<SessionId>,
    /// Depth in the automation chain: 0 for a run started by a user, a schedule or a webhook;
    /// `source.automationDepth` of the triggering event, or the caller's depth plus one.
    pub depth: u32,
    /// `source.socketId` of the triggering event: the run's events carry it, so what they
    /// answer reaches that WebSocket only (http-api §7.4, automation-dsl §3.4).
    pub socket_id: Option<String>,
}

impl RunContext {
    /// Who owns the run's `socket` scope (automation-dsl §5.2): its WebSocket, else its
    /// session, else its user; prefixed by kind, so a session id can never name a socket's
    /// scope. `None` for an anonymous run without a socket: keying it by the correlation id
    /// would give every anonymous webhook call a scope of its own that lives for hours.
    pub fn socket_owner(&self) -> Option<String> {
        match (&self.socket_id, &self.session_id, &self.user_id) {
            (Some(socket), _, _) => Some(format!("socket:{socket}")),
            (None, Some(session), _) => Some(format!("session:{session}")),
            (None, None, Some(user)) => Some(format!("user:{user}")),
            (None, None, None) => None,
        }
    }
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
    /// The type the event must have.
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

/// Context variables (the runtime backs it with the context store). The host has checked that
/// the scope has an owner in this run and that the path is well-formed.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The value at `path` of `scope`, `None` when nothing is there.
    async fn get(
        &self,
        run: &RunContext,
        scope: Scope,
        path: &str,
    ) -> Result<Option<Value>, ServiceError>;
    /// Writes `value` at `path` of `scope`.
    async fn set(
        &self,
        run: &RunContext,
        scope: Scope,
        path: &str,
        value: Value,
    ) -> Result<(), ServiceError>;
    /// Removes what is at `path` of `scope` (nothing there: not an error).
    async fn delete(&self, run: &RunContext, scope: Scope, path: &str) -> Result<(), ServiceError>;
}

/// Cluster-wide coordination of runs (WIT 0.1.1 additions to `state`): rate limits and user
/// topics. Without it, the host refuses those imports.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Takes `consume` points from the workspace's limiter `name`/`consumer` (`rate-limit`;
    /// the host checked `limit` and `window` are not zero).
    async fn rate_limit(
        &self,
        run: &RunContext,
        limiter: &RateLimiter,
    ) -> Result<RateLimitState, ServiceError>;

    /// Adds `topic` to the workspace's user topics and makes `users` members; `true` if the
    /// topic existed (`create-user-topic`).
    async fn create_user_topic(
        &self,
        run: &RunContext,
        topic: &str,
        users: &[UserId],
    ) -> Result<bool, ServiceError>;

    /// Makes `users` members of `topic`, creating it when `create`; `Invalid` for an unknown
    /// topic otherwise (`join-user-topic`).
    async fn join_user_topic(
        &self,
        run: &RunContext,
        topic: &str,
        users: &[UserId],
        create: bool,
    ) -> Result<(), ServiceError>;
}

/// Writes to the workspace's config (WIT 0.1.2 `set-config`). Without it, the host refuses
/// config writes.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// Writes `value` (`None`: removes it) at `path` of the workspace's config (the host
    /// checked the path and the value's size).
    async fn set_config(
        &self,
        run: &RunContext,
        path: &str,
        value: Option<Value>,
    ) -> Result<(), ServiceError>;
}

/// Who is behind a login session (WIT 0.1.2 `switch-identity`). Without it, no session is
/// known: a switch to session S continues as session S and user S.
#[async_trait]
pub trait Identities: Send + Sync {
    /// The user of login session `session`, when the platform knows it and may tell this run.
    async fn session_user(
        &self,
        run: &RunContext,
        session: &SessionId,
    ) -> Result<Option<UserId>, ServiceError>;
}

/// One `rate-limit` call: limiter `name` of the workspace, partitioned by `consumer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimiter {
    /// The limiter's name, per workspace.
    pub name: String,
    /// Who is counted.
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
    /// The points were taken.
    pub ok: bool,
    /// Points left in the window.
    pub remaining: u32,
    /// Whole seconds to the end of the window; 0 when accepted.
    pub retry_after: u32,
}

/// Why a call to another automation returned no output; mirrors the WIT `call-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// No automation of that slug in the workspace.
    #[error("no automation {0}")]
    NotFound(String),
    /// The arguments do not match the callee's declared arguments.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The callee returned its own typed error.
    #[error("{code}: {message}")]
    Failed {
        /// The callee's error code.
        code: String,
        /// The callee's message.
        message: String,
        /// The callee's details, as JSON text.
        details: Option<String>,
    },
    /// The callee trapped or hit a sandbox limit.
    #[error("trapped: {0}")]
    Trapped(String),
    /// The host could not run the callee (not compiled, no free slot, ...).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl CallFailure {
    /// A callee's run as its caller sees it: its output, or why it gave none (its own typed
    /// error, or the sandbox's trap).
    pub fn from_outcome(outcome: crate::RunOutcome) -> Result<crate::Output, CallFailure> {
        match outcome {
            crate::RunOutcome::Ok(output) => Ok(output),
            crate::RunOutcome::Failed(e) => Err(CallFailure::Failed {
                code: e.code,
                message: e.message,
                details: e.details,
            }),
            crate::RunOutcome::Trapped(t) => Err(CallFailure::Trapped(format!(
                "{}: {}",
                t.reason.as_str(),
                t.message
            ))),
        }
    }
}

/// Runs another automation of the workspace (the runtime routes it; the in-memory twin runs it
/// on the same host). `callee` is the context of the new run: same correlation, user, session,
/// one level deeper, with a fresh run id.
#[async_trait]
pub trait AutomationCaller: Send + Sync {
    /// Runs `slug` as `callee` with `arguments`; its output.
    async fn call(
        &self,
        callee: RunContext,
        slug: &str,
        arguments: Value,
    ) -> Result<Value, CallFailure>;
}

/// The services one run uses: the core three every run has, and the capabilities a host may
/// lack. A missing capability is refused here, in one place, for every import that needs it.
#[derive(Clone)]
pub struct Services {
    /// Emitting and awaiting events.
    pub events: Arc<dyn EventBus>,
    /// Context variables.
    pub state: Arc<dyn StateStore>,
    /// Calls of other automations.
    pub automations: Arc<dyn AutomationCaller>,
    coordination: Option<Arc<dyn Coordination>>,
    config: Option<Arc<dyn ConfigStore>>,
    identities: Option<Arc<dyn Identities>>,
}

impl Services {
    /// Events, state and calls; no coordination, config writes or session lookups.
    pub fn new(
        events: Arc<dyn EventBus>,
        state: Arc<dyn StateStore>,
        automations: Arc<dyn AutomationCaller>,
    ) -> Self {
        Services {
            events,
            state,
            automations,
            coordination: None,
            config: None,
            identities: None,
        }
    }

    /// With rate limits and user topics.
    pub fn with_coordination(mut self, coordination: Arc<dyn Coordination>) -> Self {
        self.coordination = Some(coordination);
        self
    }

    /// With config writes.
    pub fn with_config(mut self, config: Arc<dyn ConfigStore>) -> Self {
        self.config = Some(config);
        self
    }

    /// With session lookups for identity switches.
    pub fn with_identities(mut self, identities: Arc<dyn Identities>) -> Self {
        self.identities = Some(identities);
        self
    }

    /// Rate limits and user topics, or their refusal; `what` names the refused feature.
    pub(crate) fn coordination(&self, what: &str) -> Result<Arc<dyn Coordination>, ServiceError> {
        self.coordination.clone().ok_or_else(|| unavailable(what))
    }

    /// Config writes, or their refusal.
    pub(crate) fn config(&self) -> Result<Arc<dyn ConfigStore>, ServiceError> {
        self.config
            .clone()
            .ok_or_else(|| unavailable("config writes are"))
    }

    /// Session lookups; `None`: no session is known.
    pub(crate) fn identities(&self) -> Option<Arc<dyn Identities>> {
        self.identities.clone()
    }
}

/// The refusal of a capability this host lacks.
fn unavailable(what: &str) -> ServiceError {
    ServiceError::Unavailable(format!("{what} not available here"))
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("coordination", &self.coordination.is_some())
            .field("config", &self.config.is_some())
            .field("identities", &self.identities.is_some())
            .finish_non_exhaustive()
    }
}
