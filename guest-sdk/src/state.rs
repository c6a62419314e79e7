//! Context variables (`spec/automation-dsl.md` §5): [`get`], [`set`] and [`delete`] a dotted
//! path in a [`Scope`], with values (de)serialized by serde; cluster-wide [`rate_limit`]s and
//! user topics ([`create_user_topic`], [`join_user_topic`]).
//!
//! ```no_run
//! use refract_sdk::state::{self, Scope};
//! # fn f() -> Result<(), refract_sdk::Error> {
//! let n: u64 = state::get(Scope::Global, "counter.value")?.unwrap_or(0);
//! state::set(Scope::Global, "counter.value", &(n + 1))?;
//! # Ok(()) }
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::refract::automation::state as host;
use crate::error::{CODE_STATE_FAILED, Error};

/// Where a variable lives and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Shared by every run of the workspace; persistent.
    Global,
    /// Per user; persistent. Unavailable when the run has no user.
    User,
    /// Per session; expires with the session. Unavailable when the run has no session.
    Session,
    /// This run only (and the automations it calls).
    Run,
    /// Per WebSocket connection (the socket the triggering event came from; else the session,
    /// else the user; unavailable without any); expires 6 hours after the last write. World 0.1.4.
    Socket,
}

impl Scope {
    /// The scope of the `get`/`set`/`delete` imports; `None` for the socket scope, which has
    /// functions of its own.
    fn to_raw(self) -> Option<host::Scope> {
        match self {
            Self::Global => Some(host::Scope::Global),
            Self::User => Some(host::Scope::User),
            Self::Session => Some(host::Scope::Session),
            Self::Run => Some(host::Scope::Run),
            Self::Socket => None,
        }
    }
}

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The path is empty or malformed (dotted names, `[n]` indexes), or the value is not
    /// JSON; the text says which.
    Invalid(String),
    /// The scope has no owner in this run (no user, no session).
    NoSuchScope,
    /// The value, or the scope after the change, is over its size limit (bytes, given).
    TooLarge(u32),
    /// The context store cannot be reached.
    Unavailable(String),
    /// The value to write could not be serialized, or the stored value is not JSON or does not
    /// deserialize into the requested type; the text says why. Raised by the SDK.
    Decode(String),
}

impl StateError {
    fn from_raw(e: host::StateError) -> Self {
        match e {
            host::StateError::Invalid(s) => Self::Invalid(s),
            host::StateError::NoSuchScope => Self::NoSuchScope,
            host::StateError::TooLarge(n) => Self::TooLarge(n),
            host::StateError::Unavailable(s) => Self::Unavailable(s),
        }
    }

    /// A stable camelCase name of the variant (`details.kind` once converted into [`Error`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::NoSuchScope => "noSuchScope",
            Self::TooLarge(_) => "tooLarge",
            Self::Unavailable(_) => "unavailable",
            Self::Decode(_) => "decode",
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(s) => write!(f, "invalid state operation: {s}"),
            Self::NoSuchScope => write!(f, "the scope has no owner in this run"),
            Self::TooLarge(n) => write!(f, "over the state size limit ({n} bytes)"),
            Self::Unavailable(s) => write!(f, "context store unavailable: {s}"),
            Self::Decode(s) => write!(f, "state value could not be converted: {s}"),
        }
    }
}

impl std::error::Error for StateError {}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        Error::sdk(CODE_STATE_FAILED, e.kind(), e.to_string(), None)
    }
}

fn decode<T: DeserializeOwned>(path: &str, value: Option<String>) -> Result<Option<T>, StateError> {
    value
        .map(|v| serde_json::from_str(&v).map_err(|e| StateError::Decode(format!("`{path}`: {e}"))))
        .transpose()
}

fn encode(value: &impl Serialize) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| StateError::Decode(e.to_string()))
}

/// Reads the value at a dotted `path` in `scope` as `T` (`serde_json::Value` for any JSON);
/// `None` when nothing is there.
pub fn get<T: DeserializeOwned>(scope: Scope, path: &str) -> Result<Option<T>, StateError> {
    let value = match scope.to_raw() {
        Some(raw) => host::get(raw, path),
        None => host::socket_get(path),
    }
    .map_err(StateError::from_raw)?;
    decode(path, value)
}

/// Writes `value` (serialized to JSON) at `path` in `scope`, creating parents as needed.
pub fn set(scope: Scope, path: &str, value: &impl Serialize) -> Result<(), StateError> {
    let value = encode(value)?;
    match scope.to_raw() {
        Some(raw) => host::set(raw, path, &value),
        None => host::socket_set(path, &value),
    }
    .map_err(StateError::from_raw)
}

/// Removes the value at `path` in `scope`; removing nothing is not an error.
pub fn delete(scope: Scope, path: &str) -> Result<(), StateError> {
    match scope.to_raw() {
        Some(raw) => host::delete(raw, path),
        None => host::socket_delete(path),
    }
    .map_err(StateError::from_raw)
}

/// A rate limiter after [`rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// This call was accepted: its points were taken.
    pub ok: bool,
    /// Points left in the current window.
    pub remaining: u32,
    /// Whole seconds until the current window ends; 0 when accepted.
    pub retry_after: u32,
}

/// Takes `consume` points from the workspace's limiter `name` for `consumer`, which allows
/// `limit` points per fixed window of `window_secs` seconds, counted across every runtime
/// instance. A refused call takes nothing. (World 0.1.1.)
///
/// ```no_run
/// # fn f() -> Result<(), refract_sdk::Error> {
/// let state = refract_sdk::state::rate_limit("partner-api", "global", 10, 60, 1)?;
/// if !state.ok {
///     return Err(refract_sdk::Error::new("Throttled", format!("retry in {} s", state.retry_after)));
/// }
/// # Ok(()) }
/// ```
pub fn rate_limit(
    name: &str,
    consumer: &str,
    limit: u32,
    window_secs: u32,
    consume: u32,
) -> Result<RateLimit, StateError> {
    let s = host::rate_limit(name, consumer, limit, window_secs, consume)
        .map_err(StateError::from_raw)?;
    Ok(RateLimit {
        ok: s.ok,
        remaining: s.remaining,
        retry_after: s.retry_after,
    })
}

/// Creates the user topic `topic` in the workspace, with `user_ids` as members. `None` if it
/// existed; otherwise the `events.userTopics.created` event the host published (its envelope).
/// Events emitted with `target.userTopic = topic` reach the topic's members. (World 0.1.1.)
pub fn create_user_topic(
    topic: &str,
    user_ids: &[String],
) -> Result<Option<serde_json::Value>, StateError> {
    let event = host::create_user_topic(topic, user_ids).map_err(StateError::from_raw)?;
    decode(topic, event)
}

/// Makes `user_ids` (empty: the run's user) members of `topic`, creating it if `create`.
/// Returns the `events.userTopics.joined` events the host published, one per user.
/// (World 0.1.1.)
pub fn join_user_topic(
    topic: &str,
    user_ids: &[String],
    create: bool,
) -> Result<Vec<serde_json::Value>, StateError> {
    let events = host::join_user_topic(topic, user_ids, create).map_err(StateError::from_raw)?;
    events
        .into_iter()
        .map(|e| serde_json::from_str(&e).map_err(|err| StateError::Decode(err.to_string())))
        .collect()
}

/// Writes `value` (`None`: removes it) at the dotted `path` of the workspace's config; every
/// later run sees it, and `workspaces.configured` is published. Refused inside an app
/// instance. (World 0.1.2.)
pub fn set_config(path: &str, value: Option<&impl Serialize>) -> Result<(), StateError> {
    let json = value.map(encode).transpose()?;
    host::set_config(path, json.as_deref()).map_err(StateError::from_raw)
}

/// Who a run acts as after [`switch_identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user the run now acts as.
    pub user_id: Option<String>,
    /// The session the run now acts in.
    pub session_id: Option<String>,
}

/// Continues the run as another identity: as user `user_id` (with the session keyed by it),
/// or as login session `session_id` and its user (a session and user of that id if the
/// platform does not know it). Give exactly one. Later state, emits, waits and calls of this
/// run use it; a caller keeps its own identity. (World 0.1.2.)
pub fn switch_identity(
    user_id: Option<&str>,
    session_id: Option<&str>,
) -> Result<Identity, StateError> {
    let now = host::switch_identity(user_id, session_id).map_err(StateError::from_raw)?;
    Ok(Identity {
        user_id: now.user_id,
        session_id: now.session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_handles_missing_typed_and_bad_values() {
        assert_eq!(decode::<u64>("p", None), Ok(None));
        assert_eq!(decode::<u64>("p", Some("41".into())), Ok(Some(41)));
        assert!(matches!(
            decode::<u64>("p", Some("\"x\"".into())),
            Err(StateError::Decode(_))
        ));
        assert!(
            matches!(decode::<serde_json::Value>("p", Some("{bad".into())), Err(StateError::Decode(ref m)) if m.contains("`p`"))
        );
    }

    #[test]
    fn encode_serializes_or_errors() {
        assert_eq!(
            encode(&serde_json::json!({"a": 1})),
            Ok(r#"{"a":1}"#.to_owned())
        );
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), 3);
        assert_eq!(encode(&m).unwrap_err().kind(), "decode");
    }

    #[test]
    fn scopes_and_errors_map() {
        assert_eq!(Scope::Session.to_raw(), Some(host::Scope::Session));
        assert_eq!(
            Scope::Socket.to_raw(),
            None,
            "the socket scope has its own functions"
        );
        assert_eq!(
            StateError::from_raw(host::StateError::NoSuchScope),
            StateError::NoSuchScope
        );
        let e: Error = StateError::TooLarge(10).into();
        assert_eq!(e.code, CODE_STATE_FAILED);
        assert_eq!(e.details.unwrap()["kind"], "tooLarge");
    }
}
