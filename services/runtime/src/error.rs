//! The runtime's error type.

use refract_broker::BrokerError;
use refract_core::ErrorKind;
use refract_host::HostError;
use refract_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A setting is invalid; the text names it.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The automation cannot run yet: no component uploaded, or a DSL automation (not
    /// supported by this runtime yet).
    #[error("automation {slug} is not ready: {reason}")]
    NotReady { slug: String, reason: String },
    /// No such automation (or disabled).
    #[error("no automation {0}")]
    NotFound(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Host(#[from] HostError),
}

impl RuntimeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Config(_) => ErrorKind::Invalid,
            RuntimeError::NotReady { .. } => ErrorKind::Conflict,
            RuntimeError::NotFound(_) => ErrorKind::NotFound,
            RuntimeError::Broker(e) => e.kind(),
            RuntimeError::Storage(e) => e.kind(),
            RuntimeError::Host(e) => e.kind(),
        }
    }

    /// Whether the failure is the platform's and trying again later may succeed (an event
    /// delivery is then not acknowledged).
    pub fn is_transient(&self) -> bool {
        self.kind().is_transient()
    }
}
