//! The service's settings. The binary layers defaults < file < env < flags; this crate only
//! receives the result.

use std::time::Duration;

use refract_secrets::Keyring;

/// Largest component accepted, decompressed (`COMPONENTS_MAX_SIZE`). JS and Python components
/// embed an engine, hence 64 MiB; more would let one upload pin that much memory per request.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Largest JSON body (`JSON_MAX_SIZE`): workspaces, automations, secrets.
pub const DEFAULT_MAX_JSON_BYTES: usize = 10_000_000;

/// How long Cranelift may take on one upload before it answers 422; bounds the time one upload
/// holds a blocking thread.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most component compiles running at once in one process. A compile cannot be stopped once
/// started (Cranelift runs to the end even after its request timed out, see
/// [`crate::compiles`]) and each may use every core, so this caps the CPU that uploads can take
/// from the runs.
pub const DEFAULT_MAX_COMPILES: usize = 4;

/// Most component compiles of one workspace running at once: one tenant's uploads cannot take
/// every slot of [`DEFAULT_MAX_COMPILES`].
pub const DEFAULT_MAX_WORKSPACE_COMPILES: usize = 2;

/// Shortest interval between two ticks of a schedule (`automation-dsl.md` §2.6): a schedule
/// firing more often is refused on save.
pub const DEFAULT_MIN_SCHEDULE_INTERVAL: Duration = Duration::from_secs(1);

/// Versions kept per automation ([`crate::automation_versions`]).
pub const DEFAULT_AUTOMATION_VERSIONS: usize = 20;

/// Most versions an operator may keep per automation: each holds a whole automation, and a
/// rename moves them all.
pub const MAX_AUTOMATION_VERSIONS: usize = 100;

/// Largest secret value, in bytes (§14.2).
pub const MAX_SECRET_BYTES: usize = 64 << 10;

/// Most secrets one workspace may hold (§9.2).
pub const MAX_SECRETS: usize = 200;

/// The workspaces service's limits; the defaults are the `DEFAULT_*` constants above.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest component upload, in bytes, decompressed (default 64 MiB).
    pub max_component_bytes: usize,
    /// Largest JSON request body, in bytes (default 10 MB).
    pub max_json_bytes: usize,
    /// Longest compile of one upload before it is refused with 422 (default 60 s).
    pub compile_timeout: Duration,
    /// Compiles at once in this process; more uploads get 503 until one ends.
    pub max_compiles: usize,
    /// Compiles at once for one workspace; more of its uploads get 429 until one ends.
    pub max_workspace_compiles: usize,
    /// Shortest interval between two ticks of a schedule accepted on save (default 1 s).
    pub min_schedule_interval: Duration,
    /// Previous versions kept per automation, 1 to [`MAX_AUTOMATION_VERSIONS`] (default 20).
    pub automation_versions: usize,
    /// Seals secret values at rest; the runtime must open them with the same keys. The
    /// default is a random key of this process only: binaries always set the configured one.
    pub keyring: Keyring,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            max_compiles: DEFAULT_MAX_COMPILES,
            max_workspace_compiles: DEFAULT_MAX_WORKSPACE_COMPILES,
            min_schedule_interval: DEFAULT_MIN_SCHEDULE_INTERVAL,
            automation_versions: DEFAULT_AUTOMATION_VERSIONS,
            keyring: Keyring::ephemeral(),
        }
    }
}
