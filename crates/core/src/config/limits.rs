//! `[limits]`: what one guest call may consume before the host stops it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-call limits: what one guest call may consume before the host stops it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) one call may burn, nested `invoke` calls included.
    pub fuel: u64,
    /// Wall-clock time one call may take, in milliseconds.
    pub timeout_ms: u64,
    /// Linear memory one instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Table elements one instance may hold.
    pub max_table_elements: usize,
    /// Bytes of native stack wasm code may use.
    pub max_wasm_stack_bytes: usize,
    /// Largest input accepted, in bytes.
    pub max_input_bytes: usize,
    /// Largest output accepted from a guest, in bytes.
    pub max_output_bytes: usize,
    /// Bytes of guest stdout and of stderr kept per call; the rest is counted and dropped.
    pub max_stdio_bytes: usize,
    /// Log records a call may emit; further ones are counted and dropped.
    pub max_log_records: usize,
    /// Spans a call may open; further ones are counted and dropped.
    pub max_spans: usize,
    /// Guest metric points a call may record; further ones are counted and dropped.
    pub max_metric_points: usize,
    /// Attributes and events kept per span.
    pub max_span_items: usize,
    /// How deep `invoke` calls may nest.
    pub max_invoke_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            timeout_ms: 5_000,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_wasm_stack_bytes: 1 << 20,
            max_input_bytes: 8 << 20,
            max_output_bytes: 8 << 20,
            max_stdio_bytes: 64 << 10,
            max_log_records: 1_000,
            max_spans: 256,
            max_metric_points: 1_000,
            max_span_items: 128,
            max_invoke_depth: 8,
        }
    }
}

impl Limits {
    /// The wall-clock limit as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}
