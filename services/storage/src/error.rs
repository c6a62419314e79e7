//! The one error type of this crate. Callers read [`StorageError::kind`], never the text.

use refract_core::ErrorKind;

/// A boxed backend error kept as the source of a [`StorageError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of every storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What went wrong in a storage operation. Every variant that involves a server names it by
/// backend and URL with the password removed (see `location::redact`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL's scheme is not one this abstraction has a backend for.
    #[error(
        "unsupported {abstraction} URL scheme {scheme:?} in {url}; supported schemes: {supported}"
    )]
    UnsupportedScheme {
        /// Which kind of storage the URL was for (`document store`, `cache`, `file store`).
        abstraction: &'static str,
        /// The scheme as given.
        scheme: String,
        /// The URL without its password.
        url: String,
        /// The schemes that abstraction accepts.
        supported: &'static str,
    },
    /// The URL (or one of its options) is malformed.
    #[error("invalid {abstraction} URL {url}: {reason}")]
    InvalidUrl {
        /// Which kind of storage the URL was for (`document store`, `cache`, `file store`).
        abstraction: &'static str,
        /// The URL without its password.
        url: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// The backend could not be reached or refused the connection.
    #[error("{backend} at {url} is unavailable: {source}")]
    Unavailable {
        /// The backend's name (`sqlite`, `postgres`, `redis`, …).
        backend: &'static str,
        /// The URL without its password.
        url: String,
        #[source]
        /// The backend's own error.
        source: BoxError,
    },
    /// The backend did not answer in time.
    #[error("{backend} at {url} did not answer within {seconds} s")]
    Timeout {
        /// The backend's name (`sqlite`, `postgres`, `redis`, …).
        backend: &'static str,
        /// The URL without its password.
        url: String,
        /// How long the call waited.
        seconds: u64,
    },
    /// The thing asked for does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// A write lost an optimistic-version race or broke a unique key.
    #[error("conflict: {reason}")]
    Conflict {
        /// Which version or key clashed.
        reason: String,
    },
    /// The request itself is malformed (a bad path, an event without id, a limit too large).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored row or document could not be decoded.
    #[error("corrupt {what} in {backend}: {reason}")]
    Corrupt {
        /// The backend's name (`sqlite`, `postgres`, `redis`, …).
        backend: &'static str,
        /// What was asked for or read.
        what: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// Any other failure reported by the backend during an operation.
    #[error("{backend} failed during {operation}: {source}")]
    Backend {
        /// The backend's name (`sqlite`, `postgres`, `redis`, …).
        backend: &'static str,
        /// What was being done (`append`, `put document`, …).
        operation: &'static str,
        #[source]
        /// The backend's own error.
        source: BoxError,
    },
}

impl StorageError {
    /// The platform-wide kind, which decides the HTTP status and whether a retry may help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::UnsupportedScheme { .. }
            | StorageError::InvalidUrl { .. }
            | StorageError::Invalid { .. } => ErrorKind::Invalid,
            StorageError::Unavailable { .. } => ErrorKind::Unavailable,
            StorageError::Timeout { .. } => ErrorKind::Timeout,
            StorageError::NotFound { .. } => ErrorKind::NotFound,
            StorageError::Conflict { .. } => ErrorKind::Conflict,
            StorageError::Corrupt { .. } | StorageError::Backend { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StorageError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(reason: impl Into<String>) -> Self {
        StorageError::Conflict {
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(
        backend: &'static str,
        what: impl Into<String>,
        reason: impl ToString,
    ) -> Self {
        StorageError::Corrupt {
            backend,
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        StorageError::Backend {
            backend,
            operation,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_variant() {
        assert_eq!(StorageError::conflict("x").kind(), ErrorKind::Conflict);
        assert_eq!(
            StorageError::invalid("path", "x").kind(),
            ErrorKind::Invalid
        );
        let e = StorageError::Timeout {
            backend: "redis",
            url: "redis://h".into(),
            seconds: 5,
        };
        assert!(e.kind().is_transient());
        assert_eq!(
            StorageError::corrupt("sqlite", "event", "bad json").kind(),
            ErrorKind::Internal
        );
    }
}
