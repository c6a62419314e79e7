//! The runtime's error type.

use refract_broker::BrokerError;
use refract_core::ErrorKind;
use refract_host::HostError;
use refract_storage::StorageError;

use crate::config::ConfigError;

/// Why the runtime could not start, or a run could not happen. A guest's own failure is not
/// one: it is the run's outcome.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A setting is invalid; the text names it.
    #[error("invalid runtime configuration: {0}")]
    Config(#[from] ConfigError),
    /// [`crate::run_workers`] was called twice for one state (its subscriptions are taken).
    #[error("invalid runtime configuration: run_workers was already called for this state")]
    WorkersStarted,
    /// A call arrived while the executor is being dropped.
    #[error("invalid runtime configuration: the executor is shutting down")]
    ShuttingDown,
    /// The automation cannot run yet: no component uploaded, or a DSL automation (not
    /// supported by this runtime yet).
    #[error("automation {slug} is not ready: {reason}")]
    NotReady {
        /// The automation.
        slug: String,
        /// What is missing.
        reason: String,
    },
    /// No such automation (or disabled).
    #[error("no automation {0}")]
    NotFound(String),
    /// The broker refused or failed (subscribing, publishing).
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The document store, cache or file storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The host could not run, compile or load a component.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl RuntimeError {
    /// The platform-wide class of the error (HTTP status, retry decisions).
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Config(_) | RuntimeError::WorkersStarted | RuntimeError::ShuttingDown => {
                ErrorKind::Invalid
            }
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
