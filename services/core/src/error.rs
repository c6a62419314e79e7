//! Error kinds shared by every crate, and the validation error of this one.

use std::fmt;

/// An error and its sources on one line, `outer: inner: root` (HTTP and TLS crates put the
/// useful part in `source`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What kind of failure an error is: retry policies and the HTTP layer read this, never the
/// error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The thing asked for does not exist (or is invisible to the caller).
    NotFound,
    /// The request conflicts with the current state (a slug taken, a stale version).
    Conflict,
    /// The input is malformed or breaks a rule; retrying the same input fails again.
    Invalid,
    /// A dependency (database, broker, cache) cannot be reached; retrying may succeed.
    Unavailable,
    /// A deadline passed; retrying may succeed.
    Timeout,
    /// The caller may not do this.
    Forbidden,
    /// A size, rate or resource limit was hit.
    Limit,
    /// A bug or an unexpected fault on our side.
    Internal,
}

impl ErrorKind {
    /// Whether trying the same operation again later can succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Input that breaks one of the model's rules. `field` names what is wrong, as a JSON path
/// into the input (`type`, `source.workspaceId`, `payload`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A value breaks a format or content rule.
    #[error("{field}: {reason}")]
    Invalid {
        /// The JSON path of the wrong value.
        field: &'static str,
        /// What is wrong with it, for the client.
        reason: String,
    },
    /// An event is over the size limit.
    #[error("event is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The event's serialized size, in bytes.
        size: usize,
        /// The limit it broke, in bytes.
        limit: usize,
    },
}

impl ValidationError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ValidationError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// [`ErrorKind::Invalid`] for a bad value, [`ErrorKind::Limit`] for an oversized event.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ValidationError::Invalid { .. } => ErrorKind::Invalid,
            ValidationError::TooLarge { .. } => ErrorKind::Limit,
        }
    }
}
