//! The process-wide wasmtime [`Engine`] and the ticker that drives epoch interruption.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::HostError;

/// Epoch tick: CPU limits are enforced to within one tick.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(10);
/// Instances alive at once (runs in flight, nested calls included). Each reserves a slot of the
/// pooling allocator up front.
pub const DEFAULT_MAX_INSTANCES: u32 = 100;
/// Per-component caps of the pool, at the pool's average per component instance: one
/// component with many core modules, memories or tables cannot take the slots of many runs
/// (the pool's totals are these times `max_instances`). A Rust guest is one core module plus
/// a few adapter shims; a JavaScript one (ComponentizeJS) a few more; a Python one
/// (componentize-py) 14: CPython and its C libraries are dynamically linked core modules, with
/// their shims. A core instance slot is a small VM context, not a memory.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// See [`MAX_CORE_INSTANCES_PER_COMPONENT`].
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
/// See [`MAX_CORE_INSTANCES_PER_COMPONENT`].
pub const MAX_TABLES_PER_COMPONENT: u32 = 4;
/// Ceiling of any workspace's memory limit: the size of one memory slot of the pool.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 256 << 20;
/// Guest stack (wasm frames) before a stack-overflow trap.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 << 10;
/// Bytes of a memory slot kept resident (reset with memset instead of madvise) when a slot is
/// reused: for small guests, cheaper than faulting the pages in again on the next run (measured
/// in the host benchmark: 1 MiB roughly halves the first-call and drop costs of a small guest).
pub const DEFAULT_KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// Slot decommits batched into one call: fewer syscalls per dropped instance, at the price of
/// slots that wait for the batch before they can be reused.
pub const DEFAULT_DECOMMIT_BATCH: usize = 1;

/// Engine-wide settings, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Interval of the epoch ticker: the precision of CPU limits ([`DEFAULT_EPOCH_TICK`]).
    pub epoch_tick: Duration,
    /// Instance slots of the pool, all workspaces together ([`DEFAULT_MAX_INSTANCES`]).
    pub max_instances: u32,
    /// Instances one workspace may hold at once (its runs and their nested calls), so a flood
    /// from one tenant leaves slots for the others; `None`: half the pool (at least 1).
    pub max_instances_per_workspace: Option<u32>,
    /// Size of a memory slot: the ceiling of any workspace's memory limit
    /// ([`DEFAULT_MAX_MEMORY_BYTES`]).
    pub max_memory_bytes: usize,
    /// Guest stack before a stack-overflow trap ([`DEFAULT_MAX_WASM_STACK`]).
    pub max_wasm_stack: usize,
    /// Bytes of a reused slot's memory kept resident ([`DEFAULT_KEEP_RESIDENT_BYTES`]).
    pub keep_resident_bytes: usize,
    /// Slots whose memory is returned to the OS (`madvise`) in one batch; 1 = at every drop.
    pub decommit_batch_size: usize,
    /// Reset kept-resident memory with Linux's `PAGEMAP_SCAN` (only the pages a run touched),
    /// when the kernel supports it (6.7+); otherwise the first `keep_resident_bytes` are memset.
    pub pagemap_scan: bool,
    /// Use the pooling allocator (the default). Off only to compare in benchmarks.
    pub pooling: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            epoch_tick: DEFAULT_EPOCH_TICK,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_instances_per_workspace: None,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            keep_resident_bytes: DEFAULT_KEEP_RESIDENT_BYTES,
            decommit_batch_size: DEFAULT_DECOMMIT_BATCH,
            pagemap_scan: true,
            pooling: true,
        }
    }
}

impl EngineConfig {
    /// The instance slots one workspace may hold at once.
    pub fn workspace_share(&self) -> u32 {
        self.max_instances_per_workspace
            .unwrap_or(self.max_instances / 2)
            .clamp(1, self.max_instances.max(1))
    }

    fn validate(&self) -> Result<(), HostError> {
        let bad = |setting, message: &str| {
            Err(HostError::Config {
                setting,
                message: message.to_owned(),
            })
        };
        if self.epoch_tick < Duration::from_millis(1) {
            return bad("epoch_tick", "must be at least 1 ms");
        }
        if self.max_instances == 0 {
            return bad("max_instances", "must be at least 1");
        }
        if self.max_instances_per_workspace == Some(0) {
            return bad("max_instances_per_workspace", "must be at least 1");
        }
        if self.max_memory_bytes < (1 << 16) {
            return bad(
                "max_memory_bytes",
                "must be at least one wasm page (64 KiB)",
            );
        }
        Ok(())
    }
}

/// Builds the engine: component model, Cranelift, epoch interruption, copy-on-write memory
/// images, and (by default) the pooling allocator sized by `config`.
pub(crate) fn build_engine(config: &EngineConfig) -> Result<Engine, HostError> {
    config.validate()?;
    let mut c = Config::new();
    c.wasm_component_model(true)
        .strategy(wasmtime::Strategy::Cranelift)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .max_wasm_stack(config.max_wasm_stack);
    if config.pooling {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances;
        pool.total_component_instances(n)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
            .total_memories(n.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
            .total_tables(n.saturating_mul(MAX_TABLES_PER_COMPONENT))
            .total_stacks(n)
            .max_memory_size(config.max_memory_bytes)
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(config.keep_resident_bytes)
            .decommit_batch_size(config.decommit_batch_size.max(1))
            .pagemap_scan(if config.pagemap_scan {
                wasmtime::Enabled::Auto
            } else {
                wasmtime::Enabled::No
            });
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&c).map_err(|e| HostError::internal("creating the wasmtime engine", e))
}

/// What an artifact key must include besides the content digest: the wasmtime version and a
/// hash of every engine setting that affects compiled code.
pub(crate) fn engine_fingerprint(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("wasmtime-{}-{:016x}", wasmtime_version(), h.finish())
}

fn wasmtime_version() -> &'static str {
    // Pinned by the workspace (`wasmtime = "48"`); the compatibility hash covers patch-level
    // differences in compiled code.
    "48"
}

/// A thread that advances the engine's epoch every tick; stops when dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Result<Self, HostError> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("refract-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| HostError::internal("starting the epoch ticker", e))?;
        Ok(EpochTicker {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
