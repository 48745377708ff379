//! The one wasmtime `Engine` of the process and the epoch ticker that enforces deadlines.
//!
//! Fuel metering, epoch interruption and the pooling allocator are configured here and
//! nowhere else, so every component is compiled for, and runs under, the same rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tta_core::config::HostConfig;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes of each pooled table reset with `memset` instead of `madvise` (see [`build_engine`]).
pub const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Builds the engine: fuel, epochs, stack limit, and a pooling allocator with
/// copy-on-write memory images sized from the limits.
///
/// A slot returned with `madvise` costs a TLB shootdown, and the next call on it
/// page-faults every page it touches again: most of a fresh instance's time for a small
/// guest. So the first `keep_resident_bytes` of a memory (2 MiB by default: a Rust or C
/// guest's stack, data and first heap pages) are reset with `memset` instead — only the
/// pages a call dirtied where the kernel offers `PAGEMAP_SCAN` (Linux 6.7+).
pub fn build_engine(config: &HostConfig) -> wasmtime::Result<Engine> {
    let limits = &config.limits;
    let mut pool = PoolingAllocationConfig::new();
    let instances = config.max_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(16))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .max_memory_size(limits.max_memory_bytes)
        .table_elements(limits.max_table_elements)
        .max_unused_warm_slots(instances.min(32))
        .linear_memory_keep_resident(config.keep_resident_bytes)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = Config::new();
    wasm.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_wasm_stack_bytes)
        .async_stack_size(limits.max_wasm_stack_bytes + (1 << 20))
        .memory_init_cow(true)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(32))
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm)
}

/// Advances the engine's epoch on a fixed tick, so deadline checks in guests fire.
///
/// Stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine` every `tick`.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("tta-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
