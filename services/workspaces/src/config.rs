//! The service's settings. The binary layers defaults < file < env < flags; this crate only
//! receives the result.

use std::time::Duration;

/// Largest component accepted, decompressed (`COMPONENTS_MAX_SIZE`). JS and Python components
/// embed an engine, hence 64 MiB; more would let one upload pin that much memory per request.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Largest JSON body (`JSON_MAX_SIZE`): workspaces, automations, secrets.
pub const DEFAULT_MAX_JSON_BYTES: usize = 10_000_000;

/// How long Cranelift may take on one upload before it answers 422; bounds the time one upload
/// holds a blocking thread.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Shortest interval between two ticks of a schedule (`automation-dsl.md` §2.6): a schedule
/// firing more often is refused on save.
pub const DEFAULT_MIN_SCHEDULE_INTERVAL: Duration = Duration::from_secs(1);

/// Largest secret value, in bytes (§14.2).
pub const MAX_SECRET_BYTES: usize = 64 << 10;

/// Most secrets one workspace may hold (§9.2).
pub const MAX_SECRETS: usize = 200;

#[derive(Debug, Clone)]
pub struct Config {
    pub max_component_bytes: usize,
    pub max_json_bytes: usize,
    pub compile_timeout: Duration,
    pub min_schedule_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            min_schedule_interval: DEFAULT_MIN_SCHEDULE_INTERVAL,
        }
    }
}
