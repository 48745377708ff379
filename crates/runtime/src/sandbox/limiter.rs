//! The memory and table limits of one store, and the peak memory it reached.

use tta_core::config::Limits;

/// The memory error raised when a guest grows past its limit; downcast to classify it.
#[derive(Debug, thiserror::Error)]
#[error("linear memory limit of {limit} bytes exceeded: {requested} bytes requested")]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit: usize,
    /// What the guest asked for in total.
    pub requested: usize,
}

/// Enforces the memory and table limits of one store and records its peak memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    max_table_elements: usize,
    current_total: usize,
    peak_total: usize,
    exceeded: Option<(usize, usize)>,
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            limit: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            current_total: 0,
            peak_total: 0,
            exceeded: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.current_total - current.min(self.current_total) + desired;
        if total > self.limit {
            self.exceeded = Some((self.limit, total));
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.limit,
                requested: total,
            }));
        }
        self.current_total = total;
        self.peak_total = self.peak_total.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

impl MemoryLimiter {
    /// The most linear memory the store held at once, in bytes.
    pub fn peak_bytes(&self) -> usize {
        self.peak_total
    }

    /// The (limit, requested) of a growth this limiter refused, if any.
    pub fn exceeded(&self) -> Option<(usize, usize)> {
        self.exceeded
    }
}
