//! Calling other automations of the same workspace: [`call`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::refract::automation::automations as host;
use crate::error::{CODE_CALL_FAILED, Error};

/// Why a call did not return an output.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// No automation with this slug in the workspace.
    NotFound(String),
    /// The arguments are not a JSON object, or fail the callee's `arguments` schema (or could
    /// not be serialized by the SDK).
    InvalidArguments(String),
    /// The call would exceed the maximum call depth (the limit, given).
    DepthExceeded(u32),
    /// The callee returned an error.
    Failed(Error),
    /// The callee trapped or hit a sandbox limit; the text says which.
    Trapped(String),
    /// The callee's output is not JSON or does not deserialize into the requested type.
    /// Raised by the SDK.
    Decode(String),
}

impl CallError {
    fn from_raw(e: host::CallError) -> Self {
        match e {
            host::CallError::NotFound(s) => Self::NotFound(s),
            host::CallError::InvalidArguments(s) => Self::InvalidArguments(s),
            host::CallError::DepthExceeded(n) => Self::DepthExceeded(n),
            host::CallError::Failed(e) => Self::Failed(Error::from_raw(e)),
            host::CallError::Trapped(s) => Self::Trapped(s),
        }
    }

    /// A stable camelCase name of the variant (`details.kind` once converted into [`Error`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "notFound",
            Self::InvalidArguments(_) => "invalidArguments",
            Self::DepthExceeded(_) => "depthExceeded",
            Self::Failed(_) => "failed",
            Self::Trapped(_) => "trapped",
            Self::Decode(_) => "decode",
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(s) => write!(f, "no automation `{s}` in the workspace"),
            Self::InvalidArguments(s) => write!(f, "invalid call arguments: {s}"),
            Self::DepthExceeded(n) => write!(f, "maximum call depth reached ({n})"),
            Self::Failed(e) => write!(f, "the callee failed: {e}"),
            Self::Trapped(s) => write!(f, "the callee trapped: {s}"),
            Self::Decode(s) => write!(f, "the callee's output could not be read: {s}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A callee's own error ([`CallError::Failed`]) passes through unchanged, so an error code
/// travels up a chain of calls; every other case becomes `CallFailed`.
impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Failed(inner) => inner,
            other => Error::sdk(CODE_CALL_FAILED, other.kind(), other.to_string(), None),
        }
    }
}

pub(crate) fn call_result<T: DeserializeOwned>(
    result: Result<String, host::CallError>,
) -> Result<T, CallError> {
    let body = result.map_err(CallError::from_raw)?;
    serde_json::from_str(&body).map_err(|e| CallError::Decode(e.to_string()))
}

/// Runs the automation `slug` with `arguments` (serialized to a JSON object) and returns its
/// output body deserialized into `T` (`serde_json::Value` for any JSON).
///
/// The callee shares the run's correlation id, user, session and `run` scope, one level
/// deeper.
pub fn call<T: DeserializeOwned>(slug: &str, arguments: &impl Serialize) -> Result<T, CallError> {
    let arguments =
        serde_json::to_string(arguments).map_err(|e| CallError::InvalidArguments(e.to_string()))?;
    call_result(host::call(slug, &arguments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::__bindings::refract::automation::types as raw;

    #[test]
    fn outputs_decode_or_error() {
        assert_eq!(call_result::<u32>(Ok("7".into())), Ok(7));
        assert!(matches!(
            call_result::<u32>(Ok("nope".into())),
            Err(CallError::Decode(_))
        ));
        assert!(matches!(
            call_result::<u32>(Err(host::CallError::NotFound("x".into()))),
            Err(CallError::NotFound(_))
        ));
    }

    #[test]
    fn a_callee_error_passes_through() {
        let failed = host::CallError::Failed(raw::AutomationError {
            code: "InvalidOrder".into(),
            message: "no items".into(),
            details: Some(r#"{"n":0}"#.into()),
        });
        let err: Error = call_result::<u32>(Err(failed)).unwrap_err().into();
        assert_eq!(err.code, "InvalidOrder");
        assert_eq!(err.details, Some(serde_json::json!({"n": 0})));
        let err: Error = CallError::DepthExceeded(20).into();
        assert_eq!(
            (err.code.as_str(), err.details.unwrap()["kind"].as_str()),
            (CODE_CALL_FAILED, Some("depthExceeded"))
        );
    }
}
