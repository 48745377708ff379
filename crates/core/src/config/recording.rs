//! `[recording]`: which calls `serve` records for replay, and the bounds of what it keeps.
//!
//! A recording holds a call's input and output, so it is the tenant's data: each is served
//! to its own tenant only, each tenant has a byte budget (its oldest recordings go first),
//! and the directory as a whole has one too. `run --record` uses `max_call_bytes` alone.

use serde::Deserialize;
use std::path::PathBuf;

/// The `[recording]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// Record every call that fails (an error, a trap, a limit).
    pub failed: bool,
    /// The share of all calls recorded, from 0 (none) to 1 (every call), chosen by trace id
    /// so a trace's calls are recorded together.
    pub sample_ratio: f64,
    /// Where `serve` keeps recordings; under the cache directory when not set.
    pub dir: Option<PathBuf>,
    /// The largest recording of one call, in bytes (its answers from the host, roughly as
    /// written); a larger one is not kept, and counted.
    pub max_call_bytes: usize,
    /// Bytes of recordings kept per tenant; past it the tenant's oldest go first.
    pub tenant_budget_bytes: u64,
    /// Bytes of recordings kept in all; past it the oldest of any tenant go first.
    pub max_bytes: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            failed: false,
            sample_ratio: 0.0,
            dir: None,
            max_call_bytes: 4 << 20,
            tenant_budget_bytes: 64 << 20,
            max_bytes: 1 << 30,
        }
    }
}

impl RecordingConfig {
    /// Whether `serve` records anything.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.failed || self.sample_ratio > 0.0
    }

    /// Every problem with the section, each naming its key.
    #[must_use]
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push(format!(
                "recording.sample_ratio must be between 0 and 1 (got {})",
                self.sample_ratio
            ));
        }
        if self.max_call_bytes == 0 {
            problems.push("recording.max_call_bytes must be more than 0".into());
        }
        if self.tenant_budget_bytes < self.max_call_bytes as u64 {
            problems.push(format!(
                "recording.tenant_budget_bytes ({}) must hold at least one recording of recording.max_call_bytes ({})",
                self.tenant_budget_bytes, self.max_call_bytes
            ));
        }
        if self.max_bytes < self.tenant_budget_bytes {
            problems.push(format!(
                "recording.max_bytes ({}) must be at least recording.tenant_budget_bytes ({})",
                self.max_bytes, self.tenant_budget_bytes
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_record_nothing_and_bad_bounds_are_named() {
        assert!(!RecordingConfig::default().enabled());
        assert!(RecordingConfig::default().check().is_empty());
        let bad: RecordingConfig =
            toml::from_str("sample_ratio = 2.0\ntenant_budget_bytes = 1\n").expect("as expected");
        let problems = bad.check();
        assert!(
            problems.iter().any(|p| p.starts_with("recording.sample_ratio")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("recording.tenant_budget_bytes")),
            "{problems:?}"
        );
    }
}
