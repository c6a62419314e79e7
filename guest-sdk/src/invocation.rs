//! What a run is given: [`Invocation`] and its [`Trigger`].

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__bindings::refract::automation::types as raw;
use crate::error::{CODE_INVALID_INVOCATION, Error};
use crate::events::Event;

/// Everything a run is given.
///
/// Its `Debug` output omits the config values, which may hold resolved secrets.
#[derive(Clone, PartialEq)]
pub struct Invocation {
    /// What started this run.
    pub trigger: Trigger,
    /// The workspace the automation belongs to.
    pub workspace_id: String,
    /// The automation's slug.
    pub automation_slug: String,
    /// Shared by everything one trigger causes; carried into emitted events and calls.
    pub correlation_id: String,
    /// The user on whose behalf the run happens, when known.
    pub user_id: Option<String>,
    /// The session of the originating interaction, when known.
    pub session_id: Option<String>,
    /// The automation's config with secrets resolved, as a JSON object.
    pub config: Value,
}

/// What started this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// An event matching one of the automation's `when.events`.
    Event(Event),
    /// A request to the automation's webhook.
    Http(HttpRequest),
    /// A tick of one of the automation's `when.schedules`.
    Schedule {
        /// The cron expression that fired.
        expression: String,
        /// When the tick was due, ISO-8601 UTC with milliseconds.
        time: String,
    },
    /// A direct call from another automation (or a test run).
    Call {
        /// The call's arguments, a JSON object.
        arguments: Value,
    },
}

impl Trigger {
    /// The event, for an event trigger.
    pub fn as_event(&self) -> Option<&Event> {
        match self {
            Self::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The request, for a webhook trigger.
    pub fn as_http(&self) -> Option<&HttpRequest> {
        match self {
            Self::Http(r) => Some(r),
            _ => None,
        }
    }

    /// The arguments, for a direct call.
    pub fn call_arguments(&self) -> Option<&Value> {
        match self {
            Self::Call { arguments } => Some(arguments),
            _ => None,
        }
    }

    /// `event`, `http`, `schedule` or `call`: the WIT case name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Event(_) => "event",
            Self::Http(_) => "http",
            Self::Schedule { .. } => "schedule",
            Self::Call { .. } => "call",
        }
    }
}

/// An HTTP request that reached the automation's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Upper-case method: `GET`, `POST`, ...
    pub method: String,
    /// The request path, as received by the gateway.
    pub path: String,
    /// Decoded query parameters, in order; a repeated name appears several times.
    pub query: Vec<(String, String)>,
    /// Request headers with lower-case names, credentials removed by the gateway.
    pub headers: Vec<(String, String)>,
    /// The raw body (at most the webhook body limit).
    pub body: Vec<u8>,
}

/// The host handed the guest data the SDK could not read (a JSON field that does not parse).
///
/// The host promises valid JSON, so this signals a host bug; the SDK reports it as an error
/// instead of panicking. Converts into [`Error`] with code `InvalidInvocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationError {
    /// Which field was unreadable, e.g. `config` or `trigger.event.payload`.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the host sent invalid JSON in `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for InvocationError {}

impl From<InvocationError> for Error {
    fn from(e: InvocationError) -> Self {
        Error::sdk(
            CODE_INVALID_INVOCATION,
            "invalidHostData",
            e.to_string(),
            Some(("field", Value::from(e.field))),
        )
    }
}

/// Parses JSON the host sent in `field`.
pub(crate) fn host_json(field: &'static str, text: &str) -> Result<Value, InvocationError> {
    serde_json::from_str(text).map_err(|e| InvocationError {
        field,
        message: e.to_string(),
    })
}

impl Invocation {
    /// Converts the raw invocation; bad host JSON becomes an [`InvocationError`].
    pub(crate) fn from_raw(raw: raw::Invocation) -> Result<Self, InvocationError> {
        let trigger = match raw.trigger {
            raw::Trigger::Event(e) => Trigger::Event(Event::from_raw(e)?),
            raw::Trigger::Http(r) => Trigger::Http(HttpRequest {
                method: r.method,
                path: r.path,
                query: r.query,
                headers: r.headers,
                body: r.body,
            }),
            raw::Trigger::Schedule(t) => Trigger::Schedule {
                expression: t.expression,
                time: t.time,
            },
            raw::Trigger::Call(args) => Trigger::Call {
                arguments: host_json("trigger.call", &args)?,
            },
        };
        Ok(Self {
            trigger,
            workspace_id: raw.workspace_id,
            automation_slug: raw.automation_slug,
            correlation_id: raw.correlation_id,
            user_id: raw.user_id,
            session_id: raw.session_id,
            config: host_json("config", &raw.config)?,
        })
    }

    /// The config deserialized into `T` (e.g. a `#[derive(Deserialize)]` struct).
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.config)
    }

    /// The config value at `key` as a string, if it is one.
    pub fn config_str(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config holds resolved secrets: show only its keys, so `{:?}` in a log is safe.
        let config_keys: Vec<&str> = self
            .config
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("Invocation")
            .field("trigger", &self.trigger)
            .field("workspace_id", &self.workspace_id)
            .field("automation_slug", &self.automation_slug)
            .field("correlation_id", &self.correlation_id)
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("config_keys (values redacted)", &config_keys)
            .finish()
    }
}

impl HttpRequest {
    /// The first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name, true)
    }

    /// The first query parameter named `name` (exact match).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        find(&self.query, name, false)
    }

    /// The body parsed as JSON into `T` (`serde_json::Value` for any JSON).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }
}

pub(crate) fn find<'a>(
    pairs: &'a [(String, String)],
    name: &str,
    ignore_case: bool,
) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| {
            if ignore_case {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        })
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_invocation(trigger: raw::Trigger, config: &str) -> raw::Invocation {
        raw::Invocation {
            trigger,
            workspace_id: "ws".into(),
            automation_slug: "slug".into(),
            correlation_id: "corr".into(),
            user_id: Some("u1".into()),
            session_id: None,
            config: config.into(),
        }
    }

    #[test]
    fn event_trigger_parses_payload_and_source() {
        let raw = raw_invocation(
            raw::Trigger::Event(raw::Event {
                id: "1-0".into(),
                type_: "orders.created".into(),
                payload: r#"{"n":1}"#.into(),
                source: r#"{"correlationId":"corr"}"#.into(),
            }),
            r#"{"url":"https://x"}"#,
        );
        let inv = Invocation::from_raw(raw).unwrap();
        let Trigger::Event(e) = &inv.trigger else {
            panic!("not an event")
        };
        assert_eq!(e.event_type, "orders.created");
        assert_eq!(e.payload["n"], 1);
        assert_eq!(e.source["correlationId"], "corr");
        assert_eq!(inv.config_str("url"), Some("https://x"));
        assert_eq!(inv.user_id.as_deref(), Some("u1"));
    }

    #[test]
    fn debug_redacts_config_values() {
        let inv = Invocation::from_raw(raw_invocation(
            raw::Trigger::Call("{}".into()),
            r#"{"apiKey":"s3cret"}"#,
        ))
        .unwrap();
        let shown = format!("{inv:?}");
        assert!(shown.contains("apiKey"));
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn bad_host_json_is_an_error_naming_the_field() {
        let raw = raw_invocation(raw::Trigger::Call("{oops".into()), "{}");
        let err = Invocation::from_raw(raw).unwrap_err();
        assert_eq!(err.field, "trigger.call");
        let err =
            Invocation::from_raw(raw_invocation(raw::Trigger::Call("{}".into()), "")).unwrap_err();
        assert_eq!(err.field, "config");
        let err: Error = err.into();
        assert_eq!(err.code, CODE_INVALID_INVOCATION);
        assert_eq!(err.details.unwrap()["field"], "config");
        let raw = raw_invocation(
            raw::Trigger::Event(raw::Event {
                id: "1-0".into(),
                type_: "t".into(),
                payload: "{}".into(),
                source: "[".into(),
            }),
            "{}",
        );
        assert_eq!(Invocation::from_raw(raw).unwrap_err().field, "event.source");
    }

    #[test]
    fn http_trigger_helpers() {
        let raw = raw_invocation(
            raw::Trigger::Http(raw::HttpRequest {
                method: "POST".into(),
                path: "/hook".into(),
                query: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"x":true}"#.to_vec(),
            }),
            "{}",
        );
        let inv = Invocation::from_raw(raw).unwrap();
        let Trigger::Http(req) = &inv.trigger else {
            panic!("not http")
        };
        assert_eq!(req.header("Content-Type"), Some("application/json"));
        assert_eq!(req.query_param("a"), Some("1"));
        assert_eq!(req.json::<Value>().unwrap()["x"], true);
        assert_eq!(req.text().unwrap(), r#"{"x":true}"#);
        let bad = HttpRequest {
            body: vec![0xff],
            ..req.clone()
        };
        assert!(bad.text().is_err());
        assert!(bad.json::<Value>().is_err());
    }

    #[test]
    fn schedule_and_typed_config() {
        #[derive(serde::Deserialize)]
        struct Config {
            limit: u32,
        }
        let raw = raw_invocation(
            raw::Trigger::Schedule(raw::ScheduleTick {
                expression: "* * * * *".into(),
                time: "2026-11-27T00:00:00.000Z".into(),
            }),
            r#"{"limit":3}"#,
        );
        let inv = Invocation::from_raw(raw).unwrap();
        assert!(
            matches!(inv.trigger, Trigger::Schedule { ref expression, .. } if expression == "* * * * *")
        );
        assert_eq!(inv.config_as::<Config>().unwrap().limit, 3);
        assert_eq!(inv.config_str("limit"), None, "not a string");
        assert!(inv.config_as::<Vec<u8>>().is_err());
    }
}
