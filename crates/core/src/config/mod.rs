//! Host configuration as data: one module per section, each with its defaults and its
//! checks. Runtime modules import these types; nothing here imports the runtime.
//!
//! The defaults are safe for untrusted guests. A config file (`tta.toml`) overrides
//! them, `OTEL_*` variables override the file's telemetry (and `TTA_INSECURE_REGISTRIES`
//! adds to its registries), and CLI flags override both;
//! see `docs/configuration.md` for every key.

pub mod cluster;
pub mod flags;
pub mod guest;
pub mod http;
pub mod limits;
pub mod llm;
pub mod otlp;
pub mod recording;
pub mod registry;
pub mod reload;
pub mod secret;
pub mod server;
pub mod setting;
pub mod telemetry;
pub mod tenants;

pub use cluster::{ClusterConfig, OnUnavailable};
pub use flags::{LimitFlags, ServerFlags, TelemetryFlags};
pub use guest::GuestValues;
pub use http::HttpPolicy;
pub use limits::Limits;
pub use llm::LlmConfig;
pub use recording::RecordingConfig;
pub use registry::RegistryConfig;
pub use reload::ReloadConfig;
pub use secret::Secret;
pub use server::ServerConfig;
pub use telemetry::{ObservabilityConfig, TelemetryConfigError};
pub use tenants::{Quotas, TenantConfig};

use serde::Deserialize;
use std::path::{Path, PathBuf};

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
    pub telemetry: ObservabilityConfig,
    /// `tta-host serve`: listener, directories, upload and shutdown bounds.
    pub server: ServerConfig,
    /// The tenants `serve` authenticates, with their access and quotas (`[[tenants]]`).
    pub tenants: Vec<TenantConfig>,
    /// LLM calls guests report: the price table (`[llm]`).
    pub llm: LlmConfig,
    /// State replicas of `serve` share through Redis (`[cluster]`).
    pub cluster: ClusterConfig,
    /// Pulling components from OCI registries (`[registry]`).
    pub registry: RegistryConfig,
    /// Recording calls for replay (`[recording]`).
    pub recording: RecordingConfig,
    /// What is checked before a new version of a primitive is swapped in (`[reload]`).
    pub reload: ReloadConfig,
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
            telemetry: ObservabilityConfig::default(),
            server: ServerConfig::default(),
            tenants: Vec::new(),
            llm: LlmConfig::default(),
            cluster: ClusterConfig::default(),
            registry: RegistryConfig::default(),
            recording: RecordingConfig::default(),
            reload: ReloadConfig::default(),
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
    Telemetry(#[from] TelemetryConfigError),
    /// A value is out of range.
    #[error("config value `{key}` is invalid: {message}")]
    Value {
        /// The key, e.g. `limits.fuel`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The layers a config is built from, lowest first: the file, the environment, the flags.
pub struct Layers<'a> {
    /// The config file, if any.
    pub file: Option<&'a Path>,
    /// Reads an environment variable (`OTEL_*`, `TTA_INSECURE_REGISTRIES`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Limit flags.
    pub limits: &'a LimitFlags,
    /// Telemetry flags.
    pub telemetry: &'a TelemetryFlags,
    /// `serve`'s flags, for `serve`.
    pub server: Option<&'a ServerFlags>,
    /// Whether a `/metrics` listener of the file or the environment stays on; a command
    /// that ends at once serves one only when `--metrics-addr` asks.
    pub metrics_port: bool,
}

impl HostConfig {
    /// Builds the config from its layers: the file (validated), then the `OTEL_*`
    /// environment, then the flags. The whole is not validated again: `serve --check`
    /// reports every problem itself, everything else calls [`HostConfig::validate`].
    pub fn build(layers: &Layers<'_>) -> Result<Self, ConfigError> {
        let mut config = match layers.file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.telemetry.apply_env(layers.env)?;
        config.registry.apply_env(layers.env);
        layers.limits.apply(&mut config)?;
        layers.telemetry.apply(&mut config.telemetry, layers.metrics_port);
        if let Some(server) = layers.server {
            server.apply(&mut config.server);
        }
        Ok(config)
    }

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
        for entry in &mut s.plugins {
            if !entry.starts_with("oci://") && Path::new(entry.as_str()).is_relative() {
                *entry = base.join(entry.as_str()).to_string_lossy().into_owned();
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
        if let Some(problem) = self.llm.check().into_iter().next() {
            return Err(ConfigError::Value {
                key: "llm.prices",
                message: problem,
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
