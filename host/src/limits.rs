//! Per-run limits. Each is configurable per workspace; the defaults are the platform's plan
//! defaults. The engine-wide ceilings (pool size, largest memory any workspace may get) live in
//! [`crate::EngineConfig`].

use std::time::Duration;

/// Wall-clock budget of a run, host calls included. Protects workers from runs that never end
/// (a `wait` or a `fetch` that hangs); epoch interruption cannot see time spent in async host
/// calls, so this is a `tokio::time::timeout` around the call.
pub const DEFAULT_WALL_TIME: Duration = Duration::from_secs(30);
/// Guest compute budget (time spent running guest code, host calls excluded), enforced by epoch
/// interruption to within one tick. Protects the CPU from busy loops.
pub const DEFAULT_CPU_TIME: Duration = Duration::from_secs(10);
/// Linear memory of one run (all memories of the instance). Protects host RAM from memory
/// bombs; the pool's memory slots are sized to the engine-wide maximum.
pub const DEFAULT_MEMORY_BYTES: usize = 64 << 20;
/// Size of the run's output (body plus HTTP headers). Protects storage, the broker and webhook
/// clients from huge answers.
pub const DEFAULT_OUTPUT_BYTES: usize = 1 << 20;
/// Events one run may emit. Protects the broker and downstream automations from floods.
pub const DEFAULT_MAX_EMITS: u32 = 100;
/// Outbound requests one run may make. Protects third parties (and our egress) from floods.
pub const DEFAULT_MAX_FETCHES: u32 = 20;
/// Depth of automation chains (calls and emitted events). Protects against automations that
/// trigger each other forever.
pub const DEFAULT_MAX_CALL_DEPTH: u32 = 20;
/// Bytes of log messages and stdout/stderr kept per run; the rest is dropped and counted.
/// Protects the log pipeline from chatty guests.
pub const DEFAULT_MAX_LOG_BYTES: usize = 64 << 10;
/// Longest single log line kept; longer lines are truncated.
pub const DEFAULT_MAX_LOG_LINE: usize = 4 << 10;
/// Largest state value a run may write. Protects the context store.
pub const DEFAULT_MAX_STATE_VALUE_BYTES: usize = 256 << 10;
/// Connect timeout of one outbound request (process-wide: [`crate::EgressConfig`]).
pub const DEFAULT_FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Total time of one outbound request, redirects and body included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response body `fetch` returns; bigger bodies are refused while streaming.
pub const DEFAULT_FETCH_MAX_BYTES: u64 = 5 << 20;
/// Redirect hops `fetch` follows, each re-checked against the egress policy.
pub const DEFAULT_FETCH_MAX_REDIRECTS: u32 = 5;

/// The limits of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub wall_time: Duration,
    pub cpu_time: Duration,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    pub max_emits: u32,
    pub max_fetches: u32,
    pub max_call_depth: u32,
    pub max_log_bytes: usize,
    pub max_log_line: usize,
    pub max_state_value_bytes: usize,
    /// Largest serialized event `emit` accepts (refract-core's limit by default).
    pub max_event_bytes: usize,
    pub fetch_timeout: Duration,
    pub fetch_max_bytes: u64,
    pub fetch_max_redirects: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time: DEFAULT_WALL_TIME,
            cpu_time: DEFAULT_CPU_TIME,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            max_emits: DEFAULT_MAX_EMITS,
            max_fetches: DEFAULT_MAX_FETCHES,
            max_call_depth: DEFAULT_MAX_CALL_DEPTH,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_log_line: DEFAULT_MAX_LOG_LINE,
            max_state_value_bytes: DEFAULT_MAX_STATE_VALUE_BYTES,
            max_event_bytes: refract_core::DEFAULT_MAX_EVENT_SIZE,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            fetch_max_redirects: DEFAULT_FETCH_MAX_REDIRECTS,
        }
    }
}

/// Linear-memory limiter of one store. It records that it refused growth, so the run can be
/// classified as a memory error reliably (wasmtime reports the refusal as an error that is not
/// a `Trap`, toolchain note G9).
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) max_memory: usize,
    pub(crate) max_table_elements: usize,
    pub(crate) exceeded: bool,
}

/// The error a refused memory growth raises inside the guest.
#[derive(Debug, thiserror::Error)]
#[error("linear memory limit of {limit} bytes exceeded (asked for {desired})")]
pub(crate) struct MemoryExceeded {
    pub(crate) limit: usize,
    pub(crate) desired: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(max_memory: usize) -> Self {
        MemoryLimiter {
            max_memory,
            max_table_elements: 100_000,
            exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryExceeded {
                limit: self.max_memory,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}
