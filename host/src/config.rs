//! Host configuration: the limits every call runs under, and where things live.
//!
//! The defaults are safe for untrusted guests. A config file (`tta.toml`) overrides
//! them and CLI flags override the file; see the README for every key.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Per-call limits: what one guest call may consume before the host stops it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
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

/// Everything the host needs at start-up.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Limits applied to every call.
    pub limits: Limits,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the compiled-component cache may hold on disk; past it the least recently
    /// used artifacts are removed (`compile_cache_size_bytes` shows the size).
    pub cache_max_bytes: u64,
    /// How many instances may be live at once (the pooling allocator's size).
    pub max_instances: u32,
    /// Bytes of each pooled linear memory kept mapped between calls and reset with `memset`
    /// instead of handed back to the kernel: no page faults on the next call, at the cost
    /// of up to this much resident memory per warm slot. 0 returns every page.
    pub keep_resident_bytes: usize,
    /// How often the epoch ticker fires, in milliseconds; deadlines are this precise.
    pub epoch_tick_ms: u64,
    /// Observability: exporters, sampling, metrics endpoint, log format.
    pub telemetry: crate::telemetry::ObservabilityConfig,
    /// `tta-host serve`: listener, directories, upload and shutdown bounds.
    pub server: crate::server::ServerConfig,
    /// The tenants `serve` authenticates, with their access and quotas (`[[tenants]]`).
    pub tenants: Vec<crate::tenant::TenantConfig>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            limits: Limits::default(),
            cache_dir: default_cache_dir(),
            cache_max_bytes: 1 << 30,
            max_instances: 128,
            keep_resident_bytes: 2 << 20,
            epoch_tick_ms: 5,
            telemetry: crate::telemetry::ObservabilityConfig::default(),
            server: crate::server::ServerConfig::default(),
            tenants: Vec::new(),
        }
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where, from the TOML parser.
        message: String,
    },
    /// A `[telemetry]` setting is invalid.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryConfigError),
    /// A value is out of range.
    #[error("config value `{key}` is invalid: {message}")]
    Value {
        /// The key, e.g. `limits.fuel`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl HostConfig {
    /// Reads a TOML config file; keys not given keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: HostConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // Directories in the file are relative to the file, wherever the host is started.
        let base = path.parent().unwrap_or(Path::new(""));
        let s = &mut config.server;
        for dir in [&mut s.plugins_dir, &mut s.workflows_dir, &mut s.uploads_dir]
            .into_iter()
            .flatten()
        {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive: [(&'static str, u64); 7] = [
            ("limits.fuel", l.fuel),
            ("limits.timeout_ms", l.timeout_ms),
            ("limits.max_memory_bytes", l.max_memory_bytes as u64),
            ("limits.max_wasm_stack_bytes", l.max_wasm_stack_bytes as u64),
            ("max_instances", u64::from(self.max_instances)),
            ("cache_max_bytes", self.cache_max_bytes),
            ("epoch_tick_ms", self.epoch_tick_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Value {
                    key,
                    message: "must be greater than 0".into(),
                });
            }
        }
        if l.max_wasm_stack_bytes > 16 << 20 {
            return Err(ConfigError::Value {
                key: "limits.max_wasm_stack_bytes",
                message: format!("{} is over the 16 MiB maximum", l.max_wasm_stack_bytes),
            });
        }
        if l.max_memory_bytes > 4 << 30 {
            return Err(ConfigError::Value {
                key: "limits.max_memory_bytes",
                message: format!("{} is over the 4 GiB maximum of 32-bit wasm", l.max_memory_bytes),
            });
        }
        self.telemetry.validate()?;
        Ok(())
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TTA_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "tta", "tta-host").map(|d| d.cache_dir().join("components"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_defaults() {
        let config: HostConfig = toml::from_str("[limits]\nfuel = 10\n").expect("valid toml");
        assert_eq!(config.limits.fuel, 10);
        assert_eq!(config.limits.timeout_ms, Limits::default().timeout_ms);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = toml::from_str::<HostConfig>("[limits]\nfule = 10\n").expect_err("typo");
        assert!(err.to_string().contains("fule"), "{err}");
    }

    #[test]
    fn zero_limits_are_rejected() {
        let mut config = HostConfig::default();
        config.limits.timeout_ms = 0;
        let err = config.validate().expect_err("zero timeout");
        assert!(err.to_string().contains("limits.timeout_ms"), "{err}");
    }
}
