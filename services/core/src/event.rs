//! The event envelope (`spec/http-api.md` §13.1): what the broker carries, the datalake stores,
//! WebSocket clients receive and automations emit.
//!
//! The serde shape is the spec's JSON exactly (camelCase, absent optionals omitted), so an
//! event read from the broker, history or a client serializes back to the same document.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::ids::{CorrelationId, EventId, SessionId, UserId, WorkspaceId};

/// Default cap on a serialized event, in bytes (`EVENT_MAX_SIZE`). Events are copied to every
/// consumer group, every live subscriber and the datalake: a cap keeps one producer from
/// flooding them all.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 100_000;

/// Longest event type, in bytes. Types are indexed and matched on every delivery.
pub const MAX_TYPE_LEN: usize = 128;

/// Limits applied when an event enters the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Largest serialized event accepted, in bytes.
    pub max_size: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_EVENT_SIZE,
        }
    }
}

/// An event type: `^[A-Za-z0-9 ._-]{1,128}$`, dotted by convention (`workspaces.created`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    /// Checks `value` against the event type rules.
    pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if value.is_empty() || value.len() > MAX_TYPE_LEN {
            return Err(ValidationError::invalid(
                "type",
                format!("must be 1 to {MAX_TYPE_LEN} characters"),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-')))
        {
            return Err(ValidationError::invalid(
                "type",
                format!("{bad:?} is not allowed; use A-Z, a-z, 0-9, space, '.', '_' or '-'"),
            ));
        }
        Ok(Self(value))
    }

    /// The type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this type is `prefix` itself or lies under it (`workspaces` matches
    /// `workspaces.created`; `work` does not).
    pub fn is_under(&self, prefix: &str) -> bool {
        type_is_under(&self.0, prefix)
    }
}

/// [`EventType::is_under`] for a type read as text (a broker entry's, not yet decoded).
pub fn type_is_under(event_type: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('.');
    event_type == prefix
        || (event_type.len() > prefix.len()
            && event_type.starts_with(prefix)
            && event_type.as_bytes()[prefix.len()] == b'.')
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The service instance that produced an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventSourceHost))]
pub struct SourceHost {
    /// The service name (`runtime`, `workspaces`, …).
    pub service: String,
    /// The instance of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// The HTTP request an event was born from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventSourceHttp))]
#[serde(rename_all = "camelCase")]
pub struct SourceHttp {
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The URL as the client sent it, when it differs from `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_url: Option<String>,
    /// The `Host` the client called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Where an event came from. The correlation id is generated when a producer leaves it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventSource))]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The workspace the event belongs to; `None` for platform-wide events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub workspace_id: Option<WorkspaceId>,
    /// The user whose action caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub user_id: Option<UserId>,
    /// The session it came from; routes events targeted at that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub session_id: Option<SessionId>,
    /// Ties together every event, log and run one trigger caused.
    #[serde(default = "CorrelationId::generate")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
    pub correlation_id: CorrelationId,
    /// The automation whose run emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_slug: Option<String>,
    /// The emitting run's call depth: a run the event triggers starts from it (`automation-dsl.md`, call depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_depth: Option<u32>,
    /// The app the emitting automation belongs to, inside an app instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_slug: Option<String>,
    /// The emitting app instance's full slug (nested instances joined by dots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_full_slug: Option<String>,
    /// How deep in nested app instances the emitter runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_depth: Option<u32>,
    /// The WebSocket the event came from: it is delivered back to that socket only, unless
    /// `target.currentSocket` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// The client's IP address, for events born from a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The service instance that produced the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<SourceHost>,
    /// The internal topic a platform service published the event on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_topic: Option<String>,
    /// The HTTP request the event was born from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<SourceHttp>,
    /// W3C trace context (`00-<trace id>-<span id>-<flags>`) of the span that published the
    /// event, set by the broker when traces are on: the consumer's span continues that trace,
    /// so one trace follows a request across instances. Absent when traces are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Default for Source {
    fn default() -> Self {
        Self {
            workspace_id: None,
            user_id: None,
            session_id: None,
            correlation_id: CorrelationId::generate(),
            automation_slug: None,
            automation_depth: None,
            app_slug: None,
            app_instance_full_slug: None,
            app_instance_depth: None,
            socket_id: None,
            ip: None,
            host: None,
            service_topic: None,
            http: None,
            traceparent: None,
        }
    }
}

/// Restricts delivery to a user, session or user topic (and grants them read).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventTarget))]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// A user the event is delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub user_id: Option<UserId>,
    /// A session the event is delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub session_id: Option<SessionId>,
    /// A user topic whose members the event is delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_topic: Option<String>,
    /// For an event from a socket: `true` (the default) delivers it to that socket only, `false`
    /// to every reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_socket: Option<bool>,
}

/// Per-event options.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventOptions {
    /// `false` keeps the event out of history (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<bool>,
}

/// How bad an error event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventErrorLevel))]
#[serde(rename_all = "lowercase")]
pub enum ErrorLevel {
    /// Something went wrong but the run went on.
    Warning,
    /// The operation failed.
    Error,
    /// The run or service cannot go on.
    Fatal,
}

/// The `error` member of error events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventError {
    /// The stable error code (`ComponentTrap`, …).
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// How bad it is.
    pub level: ErrorLevel,
}

/// The event envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Assigned by the broker at first publish; `None` before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub id: Option<EventId>,
    /// The event type.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Za-z0-9 ._-]{1,128}$"))]
    pub event_type: EventType,
    /// Where the event came from.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub source: Source,
    /// The event's data: always a JSON object.
    #[serde(default, deserialize_with = "payload_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object, required = true))]
    pub payload: Map<String, Value>,
    /// Restricts who receives the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Per-event options (history persistence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<EventOptions>,
    /// Set on error events: what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
    /// When the event was created (milliseconds since the epoch on the wire).
    #[serde(default = "Utc::now", with = "millis")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub created_at: DateTime<Utc>,
    /// Bytes of the serialized event, set by [`Event::seal`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
}

impl Event {
    /// A new event of `event_type` in `workspace`, created now, with a fresh correlation id.
    pub fn new(
        event_type: EventType,
        workspace: Option<WorkspaceId>,
        payload: Map<String, Value>,
    ) -> Self {
        Self {
            id: None,
            event_type,
            source: Source {
                workspace_id: workspace,
                ..Source::default()
            },
            payload,
            target: None,
            options: None,
            error: None,
            created_at: Utc::now(),
            size: None,
        }
    }

    /// Parses an event from JSON, with the spec's validation (type charset, payload object).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ValidationError> {
        serde_json::from_slice(bytes).map_err(|e| ValidationError::invalid("event", e.to_string()))
    }

    /// Serializes the envelope.
    pub fn to_json(&self) -> Vec<u8> {
        // Every member is a string, number, bool, map or `Value`: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether the event goes to history (`options.persist`, default true).
    pub fn persist(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|o| o.persist)
            .unwrap_or(true)
    }

    /// Measures the event and records its size; fails when it is over `limits.max_size`.
    /// The size counts the envelope as stored, without `id` and `size`, which the broker adds.
    pub fn seal(&mut self, limits: &EventLimits) -> Result<usize, ValidationError> {
        let (id, _) = (self.id.take(), self.size.take());
        let size = json_size(self);
        self.id = id;
        if size > limits.max_size {
            return Err(ValidationError::TooLarge {
                size,
                limit: limits.max_size,
            });
        }
        self.size = Some(size);
        Ok(size)
    }
}

/// The length of `value`'s JSON text, counted as it is written: nothing is allocated
/// (`usize::MAX` if it cannot be serialized).
pub fn json_size<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

fn payload_object<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(serde::de::Error::custom(format!(
            "payload must be a JSON object, not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "this",
            }
        ))),
    }
}

/// ISO-8601 UTC with milliseconds (`2026-11-27T10:00:00.000Z`), as every time in the API.
mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("createdAt: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_event() -> Value {
        json!({
            "id": "1764237600000-0",
            "type": "orders.created",
            "source": {
                "workspaceId": "ws1",
                "userId": "u1",
                "sessionId": "s1",
                "correlationId": "0123456789abcdef0123456789abcdef",
                "automationSlug": "onOrder",
                "automationDepth": 2,
                "appInstanceFullSlug": "crm.sub",
                "ip": "203.0.113.9",
                "host": {"service": "runtime", "replica": "r-1"},
                "http": {"method": "POST", "path": "/v2/x", "originalUrl": "/v2/x?a=1", "hostname": "example.org"}
            },
            "payload": {"order": {"id": 42, "lines": [1, 2]}},
            "target": {"userId": "u2", "currentSocket": false},
            "options": {"persist": false},
            "error": {"error": "Boom", "message": "it broke", "details": {"n": 1}, "level": "fatal"},
            "createdAt": "2026-11-27T10:00:00.123Z",
            "size": 512
        })
    }

    #[test]
    fn the_spec_shape_round_trips_exactly() {
        let doc = full_event();
        let event: Event = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(event.source.automation_depth, Some(2));
        assert!(!event.persist());
        assert_eq!(serde_json::to_value(&event).unwrap(), doc);
    }

    #[test]
    fn a_minimal_event_gets_defaults_and_a_correlation_id() {
        let event =
            Event::from_json(br#"{"type":"hello","createdAt":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert!(event.payload.is_empty());
        assert!(event.persist());
        assert_eq!(event.source.correlation_id.as_str().len(), 32);
        let out = serde_json::to_value(&event).unwrap();
        assert_eq!(out["createdAt"], "2026-01-01T00:00:00.000Z");
        assert!(out.get("target").is_none() && out.get("id").is_none());
    }

    #[test]
    fn bad_types_and_payloads_are_rejected_with_the_reason() {
        let err = Event::from_json(br#"{"type":"a/b"}"#).unwrap_err();
        assert!(err.to_string().contains("'/' is not allowed"), "{err}");
        let err = Event::from_json(br#"{"type":"ok","payload":[1]}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("payload must be a JSON object, not an array"),
            "{err}"
        );
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(129));
        assert!(Event::from_json(long.as_bytes()).is_err());
        assert!(Event::from_json(b"not json").is_err());
    }

    #[test]
    fn seal_measures_and_caps_the_size() {
        let mut payload = Map::new();
        payload.insert("blob".into(), Value::String("x".repeat(1000)));
        let mut event = Event::new(EventType::new("big").unwrap(), None, payload);
        let size = event.seal(&EventLimits::default()).unwrap();
        assert!(size > 1000 && size < 1400, "{size}");
        assert_eq!(event.size, Some(size));
        let err = event.seal(&EventLimits { max_size: 500 }).unwrap_err();
        assert_eq!(err, ValidationError::TooLarge { size, limit: 500 });
    }

    #[test]
    fn type_prefixes_match_on_dot_boundaries() {
        let t = EventType::new("workspaces.automations.created").unwrap();
        assert!(t.is_under("workspaces"));
        assert!(t.is_under("workspaces.automations."));
        assert!(t.is_under("workspaces.automations.created"));
        assert!(!t.is_under("work"));
        assert!(!t.is_under("workspaces.automations.created.x"));
    }

    #[test]
    fn json_size_is_the_length_of_the_json_text() {
        for v in [
            serde_json::json!({"a": [1, "é\"x", null], "b": {"c": 1.5}}),
            serde_json::json!("x"),
            serde_json::json!({}),
        ] {
            assert_eq!(json_size(&v), serde_json::to_vec(&v).unwrap().len());
        }
    }
}
