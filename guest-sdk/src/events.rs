//! Publishing and awaiting events of the workspace: [`emit`] / [`Emit`] and [`wait`] /
//! [`Condition`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::__bindings::refract::automation::events as host;
use crate::__bindings::refract::automation::types as raw;
use crate::error::{CODE_EMIT_FAILED, CODE_WAIT_FAILED, Error};
use crate::invocation::{InvocationError, host_json};

/// An event of the workspace, as delivered to automations.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id (`<milliseconds>-<sequence>`), unique within the workspace.
    pub id: String,
    /// The event type, e.g. `orders.created`.
    pub event_type: String,
    /// The payload: a JSON object.
    pub payload: Value,
    /// The envelope's `source` object (workspace, user, correlation id, ...).
    pub source: Value,
}

impl Event {
    pub(crate) fn from_raw(e: raw::Event) -> Result<Self, InvocationError> {
        Ok(Self {
            payload: host_json("event.payload", &e.payload)?,
            source: host_json("event.source", &e.source)?,
            id: e.id,
            event_type: e.type_,
        })
    }

    /// The event's correlation id (`source.correlationId`), if present.
    pub fn correlation_id(&self) -> Option<&str> {
        self.source.get("correlationId").and_then(Value::as_str)
    }
}

/// Why `emit` refused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The payload or target could not be serialized to JSON (raised by the SDK before
    /// reaching the host); the text says why.
    Serialize(String),
    /// The type or payload breaks the event rules (type charset, payload not an object,
    /// a reserved system type); the text says which.
    Invalid(String),
    /// The serialized event is over the size limit (bytes, given).
    TooLarge(u32),
    /// The run already emitted as many events as its limit allows (the limit, given).
    LimitExceeded(u32),
    /// Emitting would exceed the maximum call depth (the limit, given).
    DepthExceeded(u32),
    /// The broker cannot be reached; the event was not published.
    Unavailable(String),
}

impl EmitError {
    fn from_raw(e: host::EmitError) -> Self {
        match e {
            host::EmitError::Invalid(s) => Self::Invalid(s),
            host::EmitError::TooLarge(n) => Self::TooLarge(n),
            host::EmitError::LimitExceeded(n) => Self::LimitExceeded(n),
            host::EmitError::DepthExceeded(n) => Self::DepthExceeded(n),
            host::EmitError::Unavailable(s) => Self::Unavailable(s),
        }
    }

    /// A stable camelCase name of the variant (`details.kind` once converted into [`Error`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Serialize(_) => "serialize",
            Self::Invalid(_) => "invalid",
            Self::TooLarge(_) => "tooLarge",
            Self::LimitExceeded(_) => "limitExceeded",
            Self::DepthExceeded(_) => "depthExceeded",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serialize(s) => write!(f, "event could not be serialized: {s}"),
            Self::Invalid(s) => write!(f, "invalid event: {s}"),
            Self::TooLarge(n) => write!(f, "event is over the size limit ({n} bytes)"),
            Self::LimitExceeded(n) => write!(f, "emit limit reached ({n} per run)"),
            Self::DepthExceeded(n) => write!(f, "maximum call depth reached ({n})"),
            Self::Unavailable(s) => write!(f, "broker unavailable: {s}"),
        }
    }
}

impl std::error::Error for EmitError {}

impl From<EmitError> for Error {
    fn from(e: EmitError) -> Self {
        Error::sdk(CODE_EMIT_FAILED, e.kind(), e.to_string(), None)
    }
}

/// Optional delivery restriction of an emitted event (`{"userId"?, "sessionId"?,
/// "userTopic"?}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Deliver only to this user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Deliver only to this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Deliver only to subscribers of this user topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_topic: Option<String>,
}

/// A builder for an event to publish; [`Emit::send`] publishes it.
///
/// ```no_run
/// use refract_sdk::{Emit, Target};
/// # fn f() -> Result<(), refract_sdk::EmitError> {
/// let id = Emit::new("orders.shipped", &serde_json::json!({"order": 42}))
///     .target(Target { user_id: Some("u1".into()), ..Target::default() })
///     .persist(false)
///     .send()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "an Emit does nothing until `send` is called"]
pub struct Emit {
    event_type: String,
    payload: Result<String, String>,
    target: Option<Target>,
    persist: bool,
}

impl Emit {
    /// An event of `event_type` with `payload` (which must serialize to a JSON object),
    /// persisted in history, with no target.
    pub fn new(event_type: impl Into<String>, payload: &impl Serialize) -> Self {
        Self {
            event_type: event_type.into(),
            payload: serde_json::to_string(payload).map_err(|e| e.to_string()),
            target: None,
            persist: true,
        }
    }

    /// Restricts delivery to `target`.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// `false` keeps the event out of history (default `true`).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// The arguments of the host's `emit`: type, payload, target, persist.
    fn to_host_args(&self) -> Result<(&str, &str, Option<String>, bool), EmitError> {
        let payload = self
            .payload
            .as_deref()
            .map_err(|e| EmitError::Serialize(e.clone()))?;
        let target = match &self.target {
            Some(t) => {
                Some(serde_json::to_string(t).map_err(|e| EmitError::Serialize(e.to_string()))?)
            }
            None => None,
        };
        Ok((&self.event_type, payload, target, self.persist))
    }

    /// Publishes the event in the run's workspace and returns its id.
    ///
    /// The event carries the run's correlation id, its automation slug, and its depth plus one.
    pub fn send(self) -> Result<String, EmitError> {
        let (event_type, payload, target, persist) = self.to_host_args()?;
        host::emit(event_type, payload, target.as_deref(), persist).map_err(EmitError::from_raw)
    }
}

/// Publishes an event of `event_type` with `payload` (a JSON object) in the run's workspace,
/// persisted and untargeted; returns the event id. Use [`Emit`] for a target or `persist =
/// false`.
pub fn emit(event_type: &str, payload: &impl Serialize) -> Result<String, EmitError> {
    Emit::new(event_type, payload).send()
}

/// One condition an awaited event must meet: its type, and equality filters.
///
/// ```
/// use refract_sdk::Condition;
/// let c = Condition::new("payment.done")
///     .correlation_id("corr-1")
///     .filter("payload.order.id", &42);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Condition {
    event_type: String,
    filters: Vec<(String, Result<String, String>)>,
}

impl Condition {
    /// Matches events of `event_type` (exact match).
    pub fn new(event_type: impl Into<String>) -> Self {
        Self {
            event_type: event_type.into(),
            filters: Vec::new(),
        }
    }

    /// Also requires the value at the dotted `path` into the event (`payload.order.id`,
    /// `source.correlationId`) to equal `value`.
    pub fn filter(mut self, path: impl Into<String>, value: &impl Serialize) -> Self {
        self.filters.push((
            path.into(),
            serde_json::to_string(value).map_err(|e| e.to_string()),
        ));
        self
    }

    /// Also requires `source.correlationId` to equal `id`.
    pub fn correlation_id(self, id: &str) -> Self {
        self.filter("source.correlationId", &id)
    }

    fn to_raw(&self) -> Result<host::Condition, WaitError> {
        let mut filters = Vec::with_capacity(self.filters.len());
        for (path, value) in &self.filters {
            let value = value.as_ref().map_err(|e| {
                WaitError::Invalid(format!("filter `{path}` could not be serialized: {e}"))
            })?;
            filters.push((path.clone(), value.clone()));
        }
        Ok(host::Condition {
            type_: self.event_type.clone(),
            filters,
        })
    }
}

/// Why `wait` could not wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    /// No condition, a malformed path or filter value; the text says which.
    Invalid(String),
    /// The broker cannot be reached.
    Unavailable(String),
    /// The host returned an event whose payload or source is not JSON.
    InvalidEvent(InvocationError),
}

impl WaitError {
    /// A stable camelCase name of the variant (`details.kind` once converted into [`Error`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Unavailable(_) => "unavailable",
            Self::InvalidEvent(_) => "invalidHostData",
        }
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(s) => write!(f, "invalid wait: {s}"),
            Self::Unavailable(s) => write!(f, "broker unavailable: {s}"),
            Self::InvalidEvent(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WaitError {}

impl From<WaitError> for Error {
    fn from(e: WaitError) -> Self {
        Error::sdk(CODE_WAIT_FAILED, e.kind(), e.to_string(), None)
    }
}

/// `timeout` in whole milliseconds, saturating at `u32::MAX` (about 49 days; the host caps the
/// wait by the run's remaining wall-clock budget anyway).
pub(crate) fn timeout_ms(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)
}

pub(crate) fn conditions_to_raw(
    conditions: &[Condition],
) -> Result<Vec<host::Condition>, WaitError> {
    if conditions.is_empty() {
        return Err(WaitError::Invalid("no condition".to_owned()));
    }
    conditions.iter().map(Condition::to_raw).collect()
}

pub(crate) fn wait_result(
    result: Result<Option<raw::Event>, host::WaitError>,
) -> Result<Option<Event>, WaitError> {
    match result {
        Ok(Some(e)) => Event::from_raw(e)
            .map(Some)
            .map_err(WaitError::InvalidEvent),
        Ok(None) => Ok(None),
        Err(host::WaitError::Invalid(s)) => Err(WaitError::Invalid(s)),
        Err(host::WaitError::Unavailable(s)) => Err(WaitError::Unavailable(s)),
    }
}

/// Waits until an event of the workspace meets one of `conditions`, or `timeout` passes
/// (capped by the run's remaining wall-clock budget). Returns the first matching event, or
/// `None` on timeout. Only events published after the call started are considered.
pub fn wait(conditions: &[Condition], timeout: Duration) -> Result<Option<Event>, WaitError> {
    let raw = conditions_to_raw(conditions)?;
    wait_result(host::wait(&raw, timeout_ms(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_builder_serializes_payload_and_target() {
        let e = Emit::new("a.b", &serde_json::json!({"x": 1}))
            .target(Target {
                session_id: Some("s".into()),
                ..Target::default()
            })
            .persist(false);
        let (t, payload, target, persist) = e.to_host_args().unwrap();
        assert_eq!((t, payload, persist), ("a.b", r#"{"x":1}"#, false));
        assert_eq!(target.as_deref(), Some(r#"{"sessionId":"s"}"#));
        let plain = Emit::new("a.b", &serde_json::json!({}));
        let (_, _, target, persist) = plain.to_host_args().unwrap();
        assert_eq!((target, persist), (None, true));
    }

    #[test]
    fn unserializable_payload_is_an_error_not_a_panic() {
        // A map with non-string keys cannot be JSON.
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), 3);
        let err = Emit::new("a.b", &m).to_host_args().unwrap_err();
        assert_eq!(err.kind(), "serialize");
        let err: Error = err.into();
        assert_eq!(err.code, CODE_EMIT_FAILED);
    }

    #[test]
    fn conditions_build_json_filters() {
        let c = Condition::new("reply")
            .correlation_id("c1")
            .filter("payload.n", &3);
        let raw = conditions_to_raw(&[c]).unwrap();
        assert_eq!(raw[0].type_, "reply");
        assert_eq!(
            raw[0].filters,
            vec![
                ("source.correlationId".to_owned(), "\"c1\"".to_owned()),
                ("payload.n".to_owned(), "3".to_owned())
            ]
        );
        assert!(matches!(conditions_to_raw(&[]), Err(WaitError::Invalid(_))));
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), 3);
        let bad = Condition::new("x").filter("payload", &m);
        assert!(matches!(
            conditions_to_raw(&[bad]),
            Err(WaitError::Invalid(_))
        ));
    }

    #[test]
    fn wait_results_convert() {
        assert_eq!(wait_result(Ok(None)), Ok(None));
        let ok = wait_result(Ok(Some(raw::Event {
            id: "1-0".into(),
            type_: "reply".into(),
            payload: r#"{"ok":true}"#.into(),
            source: r#"{"correlationId":"c"}"#.into(),
        })))
        .unwrap()
        .unwrap();
        assert_eq!(ok.correlation_id(), Some("c"));
        let bad = wait_result(Ok(Some(raw::Event {
            id: "1-0".into(),
            type_: "reply".into(),
            payload: "nope".into(),
            source: "{}".into(),
        })));
        assert!(matches!(bad, Err(WaitError::InvalidEvent(ref e)) if e.field == "event.payload"));
        assert_eq!(
            wait_result(Err(host::WaitError::Unavailable("down".into()))),
            Err(WaitError::Unavailable("down".into()))
        );
        let err: Error = WaitError::Unavailable("down".into()).into();
        assert_eq!(
            (err.code.as_str(), err.details.unwrap()["kind"].as_str()),
            (CODE_WAIT_FAILED, Some("unavailable"))
        );
    }

    #[test]
    fn timeouts_saturate() {
        assert_eq!(timeout_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn host_emit_errors_map_one_to_one() {
        assert_eq!(
            EmitError::from_raw(host::EmitError::LimitExceeded(5)),
            EmitError::LimitExceeded(5)
        );
        assert_eq!(
            EmitError::from_raw(host::EmitError::TooLarge(9)).kind(),
            "tooLarge"
        );
    }
}
