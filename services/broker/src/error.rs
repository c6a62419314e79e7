//! The broker's error type.

use refract_core::{ErrorKind, ValidationError};

/// Why a broker operation failed; [`BrokerError::kind`] maps it onto the platform's error kinds.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The event breaks the envelope rules or is over the size limit.
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    /// The broker could not be reached at startup.
    #[error("cannot reach the broker at {url}: {source}")]
    Connect {
        /// The broker URL that was tried.
        url: String,
        /// The Redis client's error.
        source: ::redis::RedisError,
    },
    /// A broker command failed.
    #[error("broker command {command} failed: {source}")]
    Command {
        /// The Redis command that failed (e.g. `XADD`).
        command: &'static str,
        /// The Redis client's error.
        source: ::redis::RedisError,
    },
    /// The broker was shut down.
    #[error("the broker is closed")]
    Closed,
    /// A setting is invalid.
    #[error("invalid broker configuration: {0}")]
    Config(String),
}

impl BrokerError {
    /// The platform error kind: an invalid event or setting is the caller's fault, anything
    /// else means the broker is unavailable (retry later).
    pub fn kind(&self) -> ErrorKind {
        match self {
            BrokerError::Invalid(e) => e.kind(),
            BrokerError::Connect { .. } | BrokerError::Command { .. } | BrokerError::Closed => {
                ErrorKind::Unavailable
            }
            BrokerError::Config(_) => ErrorKind::Invalid,
        }
    }

    pub(crate) fn command(command: &'static str) -> impl FnOnce(::redis::RedisError) -> Self {
        move |source| BrokerError::Command { command, source }
    }
}
