//! The crate's one error type. Errors a guest causes *during a run* are not here: they are values
//! inside [`crate::RunOutcome`]. This type covers upload validation, the compile cache and faults
//! of the host itself.

use refract_core::ErrorKind;

/// Why the bytes of an upload are not a component at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAComponent {
    /// Not WebAssembly (no `\0asm` preamble, or malformed).
    NotWasm,
    /// A core module, not a component.
    CoreModule,
    /// A component encoding this engine does not support.
    UnsupportedVersion,
}

impl NotAComponent {
    /// The `reason` of the API's `InvalidComponent` error.
    pub fn as_str(self) -> &'static str {
        match self {
            NotAComponent::NotWasm => "not-wasm",
            NotAComponent::CoreModule => "core-module",
            NotAComponent::UnsupportedVersion => "unsupported-version",
        }
    }
}

/// What went wrong outside a run: an upload, the compile cache, the configuration or the host
/// itself. [`HostError::kind`] is what callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The upload is not a component (`InvalidComponent`).
    #[error("invalid component: {}", reason.as_str())]
    InvalidComponent {
        /// What the bytes are instead.
        reason: NotAComponent,
    },
    /// Cranelift (or the validator inside it) rejected the component (`ComponentCompileError`).
    #[error("component does not compile: {message}")]
    Compile {
        /// Cranelift's or the validator's message.
        message: String,
    },
    /// The component does not target the Refract world (`ComponentWorldMismatch`).
    #[error(
        "component does not target refract:automation@0.1.x: missing exports {missing_exports:?}, \
         forbidden imports {forbidden_imports:?}{}",
        detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    WorldMismatch {
        /// Exports of the world the component lacks (`run`).
        missing_exports: Vec<String>,
        /// Imports outside the allow-list (our interfaces and minimal WASI).
        forbidden_imports: Vec<String>,
        /// Set when names match but types do not (e.g. `run` with another signature).
        detail: Option<String>,
    },
    /// No precompiled artifact for this digest: the component was never uploaded to this
    /// engine configuration (`ComponentNotReady`). The run path never compiles.
    #[error("no compiled artifact for component {digest}")]
    NotCompiled {
        /// The component's digest (`sha256:<hex>`).
        digest: String,
    },
    /// The artifact store failed.
    #[error("artifact store: {message}")]
    ArtifactStore {
        /// The store's error.
        message: String,
        /// Whether trying again later may succeed.
        transient: bool,
    },
    /// Every instance slot of the pool is in use.
    #[error("no free instance slot: {message}")]
    Busy {
        /// wasmtime's refusal.
        message: String,
    },
    /// A configuration value is out of range; `setting` names it.
    #[error("invalid host configuration: {setting}: {message}")]
    Config {
        /// The setting's field name.
        setting: &'static str,
        /// Why its value is refused.
        message: String,
    },
    /// A fault of the host itself (a bug, or wasmtime refusing a valid configuration).
    #[error("host fault: {message}")]
    Internal {
        /// What failed, with context.
        message: String,
    },
}

impl HostError {
    /// The error's class, which retries and the HTTP status are derived from.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HostError::InvalidComponent { .. }
            | HostError::Compile { .. }
            | HostError::WorldMismatch { .. }
            | HostError::Config { .. } => ErrorKind::Invalid,
            HostError::NotCompiled { .. } => ErrorKind::NotFound,
            HostError::ArtifactStore {
                transient: true, ..
            }
            | HostError::Busy { .. } => ErrorKind::Unavailable,
            HostError::ArtifactStore {
                transient: false, ..
            }
            | HostError::Internal { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        HostError::Internal {
            message: format!("{context}: {e}"),
        }
    }
}
