//! The broker's error type.

use refract_core::{ErrorKind, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The event breaks the envelope rules or is over the size limit.
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    /// The broker could not be reached at startup.
    #[error("cannot reach the broker at {url}: {source}")]
    Connect {
        url: String,
        source: ::redis::RedisError,
    },
    /// A broker command failed.
    #[error("broker command {command} failed: {source}")]
    Command {
        command: &'static str,
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
