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
/// Waits one run may make. Each wait is recorded as platform events (`runtime.waits.pending`,
/// `runtime.waits.fulfilled`) that no emit limit counts: this protects the broker and the
/// history from a run waiting in a tight loop.
pub const DEFAULT_MAX_WAITS: u32 = 100;
/// Depth of automation chains (calls and emitted events). Protects against automations that
/// trigger each other forever.
pub const DEFAULT_MAX_CALL_DEPTH: u32 = 20;
/// Bytes of log text (`log` lines, stdout/stderr lines, the host's messages) kept per run; the
/// rest is dropped and counted. Protects the log pipeline from chatty guests, and keeps a run's
/// record (`runtime.automations.executed`, with its input and output previews) well under the
/// event size limit.
pub const DEFAULT_MAX_LOG_BYTES: usize = 32 << 10;
/// Log lines kept per run; the rest is dropped and counted.
pub const DEFAULT_MAX_LOG_LINES: usize = 200;
/// Longest single log line kept; longer lines are truncated.
pub const DEFAULT_MAX_LOG_LINE: usize = 4 << 10;
/// Largest state value a run may write. Protects the context store.
pub const DEFAULT_MAX_STATE_VALUE_BYTES: usize = 256 << 10;
/// Bytes a webhook run may stream as its answer (`refract:automation/response`), event framing
/// included. Protects webhook clients and the gateway from endless streams.
pub const DEFAULT_STREAM_BYTES: u64 = 8 << 20;
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
    /// Wall-clock budget of the run, host calls included ([`DEFAULT_WALL_TIME`]).
    pub wall_time: Duration,
    /// Guest compute budget, host calls excluded ([`DEFAULT_CPU_TIME`]).
    pub cpu_time: Duration,
    /// Linear memory of the instance; capped by the engine's slot size
    /// ([`DEFAULT_MEMORY_BYTES`]).
    pub memory_bytes: usize,
    /// Size of the output, body plus HTTP headers ([`DEFAULT_OUTPUT_BYTES`]).
    pub output_bytes: usize,
    /// Events the run may emit ([`DEFAULT_MAX_EMITS`]).
    pub max_emits: u32,
    /// Outbound requests the run may make ([`DEFAULT_MAX_FETCHES`]).
    pub max_fetches: u32,
    /// Waits the run may make, started ones included ([`DEFAULT_MAX_WAITS`]).
    pub max_waits: u32,
    /// Depth of automation chains, calls and emitted events ([`DEFAULT_MAX_CALL_DEPTH`]).
    pub max_call_depth: u32,
    /// Log and stdio bytes kept for the run ([`DEFAULT_MAX_LOG_BYTES`]).
    pub max_log_bytes: usize,
    /// Log lines kept for the run ([`DEFAULT_MAX_LOG_LINES`]).
    pub max_log_lines: usize,
    /// Longest log line kept; longer ones are truncated ([`DEFAULT_MAX_LOG_LINE`]).
    pub max_log_line: usize,
    /// Largest state value the run may write ([`DEFAULT_MAX_STATE_VALUE_BYTES`]).
    pub max_state_value_bytes: usize,
    /// Bytes of a streamed webhook answer ([`DEFAULT_STREAM_BYTES`]).
    pub stream_bytes: u64,
    /// Largest serialized event `emit` accepts (refract-core's limit by default).
    pub max_event_bytes: usize,
    /// Total time of one outbound request ([`DEFAULT_FETCH_TIMEOUT`]).
    pub fetch_timeout: Duration,
    /// Largest response body `fetch` returns ([`DEFAULT_FETCH_MAX_BYTES`]).
    pub fetch_max_bytes: u64,
    /// Redirect hops `fetch` follows ([`DEFAULT_FETCH_MAX_REDIRECTS`]).
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
            max_waits: DEFAULT_MAX_WAITS,
            max_call_depth: DEFAULT_MAX_CALL_DEPTH,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_log_lines: DEFAULT_MAX_LOG_LINES,
            max_log_line: DEFAULT_MAX_LOG_LINE,
            max_state_value_bytes: DEFAULT_MAX_STATE_VALUE_BYTES,
            stream_bytes: DEFAULT_STREAM_BYTES,
            max_event_bytes: refract_core::DEFAULT_MAX_EVENT_SIZE,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            fetch_max_redirects: DEFAULT_FETCH_MAX_REDIRECTS,
        }
    }
}

/// Core instances one run's store may create: a component's core modules and adapter shims
/// (the pool's per-component cap, checked again per store so no path around the pool escapes).
pub(crate) const MAX_STORE_INSTANCES: usize =
    crate::engine::MAX_CORE_INSTANCES_PER_COMPONENT as usize;
/// Linear memories one run's store may create. See [`MAX_STORE_INSTANCES`].
pub(crate) const MAX_STORE_MEMORIES: usize = crate::engine::MAX_MEMORIES_PER_COMPONENT as usize;
/// Tables one run's store may create. See [`MAX_STORE_INSTANCES`].
pub(crate) const MAX_STORE_TABLES: usize = crate::engine::MAX_TABLES_PER_COMPONENT as usize;
/// Table elements of one run, all tables together: protects host RAM from table bombs.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Resource limiter of one store: counts of instances, memories and tables, and the run's
/// memory limit over the sum of all its linear memories (wasmtime asks about one memory at a
/// time, so the limiter keeps the run's total). It records that it refused growth, so the run
/// can be classified as a memory error reliably (wasmtime reports the refusal as an error that
/// is not a `Trap`, toolchain note G9).
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) max_memory: usize,
    pub(crate) max_table_elements: usize,
    /// Bytes of every linear memory of the run together.
    pub(crate) memory_used: usize,
    /// Elements of every table of the run together.
    pub(crate) table_used: usize,
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
            max_table_elements: MAX_TABLE_ELEMENTS,
            memory_used: 0,
            table_used: 0,
            exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A new memory is reported as growing from 0: `current` is already counted.
        let total = self
            .memory_used
            .saturating_add(desired.saturating_sub(current));
        if total > self.max_memory {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryExceeded {
                limit: self.max_memory,
                desired: total,
            }));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_used
            .saturating_add(desired.saturating_sub(current));
        if total > self.max_table_elements {
            return Ok(false);
        }
        self.table_used = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_STORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_STORE_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_STORE_TABLES
    }
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{ComponentBuilder, MemorySection, MemoryType, Module};
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Engine, Store};

    use super::*;
    use crate::engine::{EngineConfig, build_engine};

    /// A component of `modules` core instances, each with one memory of `pages` (none at 0).
    fn component(modules: u32, pages: u64) -> Vec<u8> {
        let mut module = Module::new();
        if pages > 0 {
            let mut memories = MemorySection::new();
            memories.memory(MemoryType {
                minimum: pages,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
            module.section(&memories);
        }
        let mut b = ComponentBuilder::default();
        let index = b.core_module(None, &module);
        for _ in 0..modules {
            b.core_instantiate(None, index, []);
        }
        b.finish()
    }

    fn engine(pooling: bool) -> Engine {
        let config = EngineConfig {
            max_instances: 4,
            pooling,
            ..EngineConfig::default()
        };
        build_engine(&config).unwrap()
    }

    /// Instantiates `bytes` in a store limited to `max_memory` bytes.
    fn instantiate(engine: &Engine, bytes: &[u8], max_memory: usize) -> Result<(), String> {
        let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
        let mut store = Store::new(engine, MemoryLimiter::new(max_memory));
        store.limiter(|l| l);
        Linker::new(engine)
            .instantiate(&mut store, &component)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn a_store_holds_a_bounded_number_of_instances_and_memories() {
        // Without the pool, only the store's limiter stands between a component and the host.
        let engine = engine(false);
        assert_eq!(instantiate(&engine, &component(2, 1), 64 << 20), Ok(()));
        let many_memories = instantiate(&engine, &component(3, 1), 64 << 20);
        assert!(many_memories.is_err(), "three memories in one run");
        let many_instances = instantiate(&engine, &component(17, 0), 64 << 20);
        assert!(many_instances.is_err(), "17 core instances in one run");
    }

    #[test]
    fn the_pool_refuses_a_component_bigger_than_its_share() {
        // Four runs' worth of memories taken by one component would leave the others `Busy`.
        let engine = engine(true);
        assert_eq!(instantiate(&engine, &component(2, 1), 64 << 20), Ok(()));
        assert!(instantiate(&engine, &component(3, 1), 64 << 20).is_err());
        assert!(instantiate(&engine, &component(17, 0), 64 << 20).is_err());
    }

    #[test]
    fn the_memory_limit_bounds_all_memories_of_a_run_together() {
        let engine = engine(false);
        // 40 pages = 2.5 MiB: one fits in 4 MiB, two do not.
        assert_eq!(instantiate(&engine, &component(1, 40), 4 << 20), Ok(()));
        let two = instantiate(&engine, &component(2, 40), 4 << 20);
        assert!(
            two.as_ref()
                .is_err_and(|e| e.contains("linear memory limit")),
            "{two:?}"
        );
    }
}
