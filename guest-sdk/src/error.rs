//! [`Error`]: a failure the automation reports on purpose (as opposed to a trap).
//!
//! Every error type of the SDK converts into [`Error`], so `?` works in a handler. Those
//! conversions use the stable codes below and put the error's kind in `details.kind`.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::__bindings::refract::automation::types as raw;

/// Code of an error converted from [`EmitError`](crate::EmitError).
pub const CODE_EMIT_FAILED: &str = "EmitFailed";
/// Code of an error converted from [`WaitError`](crate::WaitError).
pub const CODE_WAIT_FAILED: &str = "WaitFailed";
/// Code of an error converted from [`FetchError`](crate::FetchError).
pub const CODE_FETCH_FAILED: &str = "FetchFailed";
/// Code of an error converted from [`StateError`](crate::StateError).
pub const CODE_STATE_FAILED: &str = "StateFailed";
/// [`StreamError`](crate::response::StreamError) converted by `?`.
pub const CODE_STREAM_FAILED: &str = "StreamFailed";
/// Code of an error converted from a [`CallError`](crate::CallError) other than `Failed`
/// (a callee's own error is passed on unchanged).
pub const CODE_CALL_FAILED: &str = "CallFailed";
/// Code of an error converted from [`InvocationError`](crate::InvocationError): the host handed
/// the guest data it could not read.
pub const CODE_INVALID_INVOCATION: &str = "InvalidInvocation";
/// Code of an error converted from a `serde_json::Error` (JSON that does not parse or does not
/// fit the expected type).
pub const CODE_INVALID_JSON: &str = "InvalidJson";
/// Code of an error converted from a UTF-8 decoding error.
pub const CODE_INVALID_UTF8: &str = "InvalidUtf8";
/// Code of the error returned when the handler's [`Output`](crate::Output) cannot be sent (its
/// value failed to serialize, or its status is outside 100 to 599).
pub const CODE_INVALID_OUTPUT: &str = "InvalidOutput";

/// A failure the automation reports on purpose (as opposed to a trap).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// A stable, machine-readable code, e.g. `InvalidOrder`.
    pub code: String,
    /// A message for humans.
    pub message: String,
    /// Optional structured details, as JSON.
    pub details: Option<Value>,
}

impl Error {
    /// An error with `code` and `message` and no details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    /// Sets the structured details. A value that fails to serialize is recorded as
    /// `{"serializationError": "<why>"}` rather than lost.
    #[must_use]
    pub fn with_details(mut self, details: &impl Serialize) -> Self {
        self.details = Some(
            serde_json::to_value(details)
                .unwrap_or_else(|e| serde_json::json!({ "serializationError": e.to_string() })),
        );
        self
    }

    /// An SDK error with `details = {"kind": kind, ...extra}`.
    pub(crate) fn sdk(
        code: &str,
        kind: &str,
        message: String,
        extra: Option<(&str, Value)>,
    ) -> Self {
        let mut details = serde_json::Map::new();
        details.insert("kind".to_owned(), Value::from(kind));
        if let Some((key, value)) = extra {
            details.insert(key.to_owned(), value);
        }
        Self {
            code: code.to_owned(),
            message,
            details: Some(Value::Object(details)),
        }
    }

    pub(crate) fn into_raw(self) -> raw::AutomationError {
        raw::AutomationError {
            code: self.code,
            message: self.message,
            details: self.details.map(|d| d.to_string()),
        }
    }

    pub(crate) fn from_raw(raw: raw::AutomationError) -> Self {
        let details = raw.details.map(|d| {
            // A callee's details that are not JSON are kept as a JSON string, not dropped.
            serde_json::from_str(&d).unwrap_or(Value::String(d))
        });
        Self {
            code: raw.code,
            message: raw.message,
            details,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::sdk(CODE_INVALID_JSON, "json", e.to_string(), None)
    }
}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Self {
        Self::sdk(CODE_INVALID_UTF8, "utf8", e.to_string(), None)
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Self {
        Self::sdk(CODE_INVALID_UTF8, "utf8", e.to_string(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_keeps_details_as_json() {
        let e = Error::new("InvalidOrder", "no items").with_details(&serde_json::json!({"n": 0}));
        let raw = e.clone().into_raw();
        assert_eq!(raw.details.as_deref(), Some(r#"{"n":0}"#));
        assert_eq!(Error::from_raw(raw), e);
    }

    #[test]
    fn callee_details_that_are_not_json_become_a_string() {
        let raw = raw::AutomationError {
            code: "X".into(),
            message: "m".into(),
            details: Some("not json".into()),
        };
        assert_eq!(Error::from_raw(raw).details, Some(Value::from("not json")));
    }

    #[test]
    fn serde_json_errors_convert_with_a_stable_code() {
        let e: Error = serde_json::from_str::<u32>("{").unwrap_err().into();
        assert_eq!(e.code, CODE_INVALID_JSON);
        assert_eq!(e.details, Some(serde_json::json!({"kind": "json"})));
    }

    #[test]
    fn utf8_errors_convert() {
        let e: Error = String::from_utf8(vec![0xff]).unwrap_err().into();
        assert_eq!(e.code, CODE_INVALID_UTF8);
        assert_eq!(e.to_string().split(':').next(), Some(CODE_INVALID_UTF8));
    }
}
