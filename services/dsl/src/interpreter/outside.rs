//! What a run exchanges with the world: the [`Outside`] trait and its optional capabilities
//! ([`Coordination`], [`ConfigWriter`], [`IdentitySwitch`]), and the plain types of a run's
//! input and result. Nothing here runs anything.

use serde_json::{Map, Value};

use crate::error::DslError;

/// A persistent scope of the state import (§5.2): the platform's one scope vocabulary.
pub use refract_core::Scope;

/// One entry of a `wait`: an event type and equality filters on envelope paths.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitFor {
    /// The event type to wait for.
    pub event_type: String,
    /// Dotted envelope paths (`payload.id`) and the value each must equal.
    pub filters: Vec<(String, Value)>,
}

/// An outbound request of `fetch`.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchRequest {
    /// Upper-case HTTP method.
    pub method: String,
    /// The URL with its query string.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The encoded body; never sent with `GET`.
    pub body: Option<Vec<u8>>,
}

/// The answer to a `fetch`.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body (a streamed one read to its end by the host).
    pub body: Vec<u8>,
}

/// A slow host call the interpreter can start without waiting for it, so that the branches of
/// an `all` wait for theirs together (§3.10).
#[derive(Debug, Clone, PartialEq)]
pub enum HostCall {
    /// [`Outside::fetch`].
    Fetch(FetchRequest),
    /// [`Outside::wait`].
    Wait {
        /// The entries, any of which ends the wait.
        on: Vec<WaitFor>,
        /// Milliseconds before it ends with nothing.
        timeout_ms: u32,
    },
    /// [`Outside::call`].
    Call {
        /// The automation called.
        slug: String,
        /// Its arguments (a mapping).
        arguments: Value,
    },
}

/// What a [`HostCall`] came back with, as its blocking method returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum HostReply {
    /// Of a [`HostCall::Fetch`].
    Fetch(Result<FetchResponse, DslError>),
    /// Of a [`HostCall::Wait`].
    Wait(Result<Option<Value>, DslError>),
    /// Of a [`HostCall::Call`].
    Call(Result<Value, DslError>),
}

/// The number a started [`HostCall`] is reported under by [`Outside::next_done`].
pub type Ticket = u64;

/// The outside world of a run. Errors are DSL errors (their class is what `try` sees).
///
/// The core effects every outside has are methods; the capabilities an outside may lack
/// (rate limits and user topics, config writes, identity switches) are traits of their own,
/// which an outside hands out through [`coordination`](Self::coordination),
/// [`config`](Self::config) and [`identity`](Self::identity). The interpreter refuses an
/// instruction whose capability is missing, in one place.
pub trait Outside {
    /// Publishes a custom event; returns its id.
    fn emit(
        &mut self,
        event_type: &str,
        payload: &Value,
        target: Option<&Value>,
        persist: bool,
    ) -> Result<String, DslError>;
    /// Waits for the first event matching one entry; `None` on timeout. Returns the envelope
    /// (`{id, type, payload, source}`).
    fn wait(&mut self, on: &[WaitFor], timeout_ms: u32) -> Result<Option<Value>, DslError>;
    /// Sends an HTTP request under the host's egress policy.
    fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, DslError>;
    /// The variable `name` of a persistent scope.
    fn get(&mut self, scope: Scope, name: &str) -> Result<Option<Value>, DslError>;
    /// Stores the variable `name` of a persistent scope, whole.
    fn set(&mut self, scope: Scope, name: &str, value: &Value) -> Result<(), DslError>;
    /// Removes the variable `name` of a persistent scope.
    fn delete(&mut self, scope: Scope, name: &str) -> Result<(), DslError>;
    /// Runs another automation with `arguments`; returns its output.
    fn call(&mut self, slug: &str, arguments: &Value) -> Result<Value, DslError>;
    /// A float in [0, 1).
    fn random(&mut self) -> f64;
    /// Starts `call` and returns at once with its ticket, or gives the call back when this
    /// outside cannot run it alongside others (the default; also when too many are in flight):
    /// the interpreter then makes it with the blocking method and waits.
    fn start(&mut self, call: HostCall) -> Result<Ticket, HostCall> {
        Err(call)
    }
    /// Blocks until at least one started call has ended, and returns every one that has; empty
    /// when none is in flight.
    fn next_done(&mut self) -> Vec<(Ticket, HostReply)> {
        Vec::new()
    }
    /// Starts the webhook's answer as a stream of server-sent events with `head`'s status,
    /// headers and keep-alive (`$http` `chunk` or `sseKeepAlive`, §6.2). Does nothing where the
    /// run has no client to answer (the default; a run not started by a webhook, a callee).
    fn start_answer(&mut self, head: &HttpOut) -> Result<(), DslError> {
        let _ = head;
        Ok(())
    }
    /// Sends `chunk` as the next event of the answer [`start_answer`](Self::start_answer)
    /// started, at once.
    fn send_chunk(&mut self, chunk: &Value) -> Result<(), DslError> {
        let _ = chunk;
        Ok(())
    }
    /// Pauses the run for `ms` milliseconds without spending its CPU (`repeat.batch.interval`);
    /// an error when the pause cannot be made (the default: this outside cannot pause).
    fn sleep(&mut self, ms: u32) -> Result<(), DslError> {
        let _ = ms;
        Err(DslError::new(
            "PrismeError",
            "pausing is not available here",
        ))
    }
    /// The workspace secret `name` (the `secret` scope, §5.2); `None` when there is no such
    /// secret or this outside has none.
    fn secret(&mut self, name: &str) -> Result<Option<Value>, DslError> {
        let _ = name;
        Ok(None)
    }
    /// Rate limits and user topics, if this outside has them (`None`: refused).
    fn coordination(&mut self) -> Option<&mut dyn Coordination> {
        None
    }
    /// Config writes, if this outside has them (`None`: refused).
    fn config(&mut self) -> Option<&mut dyn ConfigWriter> {
        None
    }
    /// Identity switches, if this outside has them (`None`: refused).
    fn identity(&mut self) -> Option<&mut dyn IdentitySwitch> {
        None
    }
}

/// Cluster-wide coordination of runs: rate limits (§3.13) and user topics (§3.14).
pub trait Coordination {
    /// Takes `consume` points from the cluster-wide limiter `name`/`consumer` (§3.13).
    fn rate_limit(&mut self, limiter: &RateLimitCall) -> Result<RateLimitState, DslError>;
    /// Creates a user topic with `user_ids` as members: `None` if it existed, else the
    /// `events.userTopics.created` event (§3.14).
    fn create_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
    ) -> Result<Option<Value>, DslError>;
    /// Joins `user_ids` (empty: the run's user) to `topic`; the `events.userTopics.joined`
    /// events, one per user (§3.14).
    fn join_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
        create: bool,
    ) -> Result<Vec<Value>, DslError>;
}

/// Writes to the workspace's config (§5.2).
pub trait ConfigWriter {
    /// Writes the workspace config's member `name` (`None`: removes it), for every later run.
    fn set_config(&mut self, name: &str, value: Option<&Value>) -> Result<(), DslError>;
}

/// Identity switches (§5.5).
pub trait IdentitySwitch {
    /// Continues the run as user `user_id` or as login session `session_id` (one of them);
    /// returns the user and session ids now in effect.
    fn switch_identity(
        &mut self,
        user_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), DslError>;
}

/// One `rateLimit` call, its numbers already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitCall {
    /// The limiter's name, per workspace.
    pub name: String,
    /// Who is counted (`global` when the instruction names no one).
    pub consumer: String,
    /// Points per window (> 0).
    pub limit: u32,
    /// Window length in seconds (> 0).
    pub window_secs: u32,
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

/// What a run starts from.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    /// Initial locals (§2.7).
    pub locals: Map<String, Value>,
    /// Computed `run` fields: `depth`, `correlationId`, `date`, `trigger`, `automationSlug`.
    pub run: Map<String, Value>,
    /// Computed `global` fields: `workspaceId`.
    pub global: Map<String, Value>,
    /// The run's user (`user.id`).
    pub user_id: Option<String>,
    /// The run's session (`session.id`; the user's id when absent).
    pub session_id: Option<String>,
    /// The `config` scope.
    pub config: Value,
    /// The `$workspace` scope (read-only): the running workspace's document, when the
    /// program reads it.
    pub workspace: Option<Value>,
}

/// The HTTP response channel (`$http`, §6.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpOut {
    /// The status a webhook answers with, when the run set one.
    pub status: Option<u16>,
    /// Lower-case header names and their values, as the run set them.
    pub headers: Vec<(String, String)>,
    /// `sseKeepAlive`: milliseconds of silence after which a streamed answer gets a
    /// keep-alive event.
    pub keep_alive_ms: Option<u32>,
    /// The answer started streaming (a `chunk` or `sseKeepAlive`): status and headers went out
    /// with its first event, and later writes of them do nothing.
    pub streamed: bool,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The rendered `output` (`{}` without one).
    pub output: Value,
    /// What the run wrote to `$http`.
    pub http: HttpOut,
    /// A `break` ended the automation.
    pub broke: bool,
    /// It was a `break: {scope: all}`: a called automation stops its callers too (§3.11), by
    /// failing its call with [`BREAK_ALL`](crate::BREAK_ALL) and its output as the details.
    pub stops_callers: bool,
}
