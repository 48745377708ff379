//! The command-line layer of the config: flags that override the file and the environment,
//! as data with the one place each is applied (wasmtime's `cli-flags`). The CLI flattens
//! these into its commands; [`super::HostConfig::build`] applies them last.

use super::telemetry::{Exporter, LogFormat, OtlpProtocol, SamplerKind};
use super::{ConfigError, HostConfig, ObservabilityConfig, ServerConfig};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Limits that override the config file.
#[derive(Debug, Args, Default)]
pub struct LimitFlags {
    /// Fuel one call may burn.
    #[arg(long, global = true)]
    pub fuel: Option<u64>,
    /// Wall-clock limit of one call, in milliseconds.
    #[arg(long, global = true)]
    pub timeout_ms: Option<u64>,
    /// Linear memory one instance may use, in MiB.
    #[arg(long, global = true)]
    pub max_memory_mb: Option<usize>,
    /// Largest input, in bytes.
    #[arg(long, global = true)]
    pub max_input_bytes: Option<usize>,
    /// Largest output, in bytes.
    #[arg(long, global = true)]
    pub max_output_bytes: Option<usize>,
    /// Where compiled components are cached (default: the user cache dir, or TTA_CACHE_DIR).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component afresh; do not read or write the cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
}

impl LimitFlags {
    /// Sets what was given on `config`.
    pub fn apply(&self, config: &mut HostConfig) -> Result<(), ConfigError> {
        let limits = &mut config.limits;
        if let Some(v) = self.fuel {
            limits.fuel = v;
        }
        if let Some(v) = self.timeout_ms {
            limits.timeout_ms = v;
        }
        if let Some(v) = self.max_memory_mb {
            limits.max_memory_bytes = v.checked_mul(1 << 20).ok_or(ConfigError::Value {
                key: "--max-memory-mb",
                message: format!("{v} MiB is too large"),
            })?;
        }
        if let Some(v) = self.max_input_bytes {
            limits.max_input_bytes = v;
        }
        if let Some(v) = self.max_output_bytes {
            limits.max_output_bytes = v;
        }
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        if self.no_cache {
            config.cache_dir = None;
        }
        Ok(())
    }
}

/// Telemetry settings that override the config file and the `OTEL_*` variables.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryFlags {
    /// OTLP endpoint for traces, logs and metrics (e.g. http://localhost:4317); turns OTLP on.
    #[arg(long, global = true)]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol.
    #[arg(long, global = true, value_enum)]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Where traces go (repeatable): otlp, console, file.
    #[arg(long = "traces-exporter", global = true, value_enum)]
    pub traces_exporters: Vec<Exporter>,
    /// Where call and guest log records go (repeatable): otlp, console, file.
    #[arg(long = "logs-exporter", global = true, value_enum)]
    pub logs_exporters: Vec<Exporter>,
    /// JSON-lines file of the `file` trace exporter.
    #[arg(long, global = true)]
    pub traces_file: Option<PathBuf>,
    /// JSON-lines file of the `file` log exporter.
    #[arg(long, global = true)]
    pub logs_file: Option<PathBuf>,
    /// Share of new traces recorded, 0.0 to 1.0 (parent-based: a caller's decision wins).
    #[arg(long, global = true)]
    pub sample_ratio: Option<f64>,
    /// Serve Prometheus `/metrics` on this address (default 0.0.0.0:9464 for long-running
    /// commands; `load` and `run` serve only when given this flag).
    #[arg(long, global = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve no metrics endpoint, whatever the config says.
    #[arg(long, global = true, conflicts_with = "metrics_addr")]
    pub no_metrics: bool,
    /// `service.name` on all telemetry.
    #[arg(long, global = true)]
    pub service_name: Option<String>,
    /// Log format on stderr: `pretty` for people, `json` for the TTA.dev JSON lines.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

impl TelemetryFlags {
    /// Sets what was given on `t`. `metrics_port` is whether a `/metrics` listener from the
    /// file or the environment stays on (a command that ends at once has no one to scrape it).
    pub fn apply(&self, t: &mut ObservabilityConfig, metrics_port: bool) {
        if let Some(endpoint) = &self.otlp_endpoint {
            t.otlp.endpoint = Some(endpoint.clone());
            for list in [&mut t.traces.exporters, &mut t.logs.exporters, &mut t.metrics.exporters] {
                if !list.contains(&Exporter::Otlp) {
                    list.push(Exporter::Otlp);
                }
            }
        }
        if let Some(protocol) = self.otlp_protocol {
            t.otlp.protocol = protocol;
        }
        if !self.traces_exporters.is_empty() {
            t.traces.exporters = self.traces_exporters.clone();
        }
        if !self.logs_exporters.is_empty() {
            t.logs.exporters = self.logs_exporters.clone();
        }
        if let Some(path) = &self.traces_file {
            t.traces.file = Some(path.clone());
        }
        if let Some(path) = &self.logs_file {
            t.logs.file = Some(path.clone());
        }
        if let Some(ratio) = self.sample_ratio {
            t.traces.sampler = SamplerKind::ParentbasedTraceidratio;
            t.traces.sampler_arg = ratio;
        }
        if !metrics_port {
            t.metrics.listen = None;
        }
        if let Some(addr) = self.metrics_addr {
            t.metrics.listen = Some(addr);
        }
        if self.no_metrics {
            t.metrics.listen = None;
        }
        if let Some(name) = &self.service_name {
            t.service_name = name.clone();
        }
        if let Some(format) = self.log_format {
            t.logs.format = format;
        }
    }
}

/// `serve`'s directories and address, instead of the `[server]` keys.
#[derive(Debug, Args, Default)]
pub struct ServerFlags {
    /// Listen on this address instead of `server.listen`.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Shared primitives directory instead of `server.plugins_dir`.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
    /// Workflows directory instead of `server.workflows_dir`.
    #[arg(long)]
    pub workflows_dir: Option<PathBuf>,
    /// Uploads directory instead of `server.uploads_dir`.
    #[arg(long)]
    pub uploads_dir: Option<PathBuf>,
}

impl ServerFlags {
    /// Sets what was given on `s`.
    pub fn apply(&self, s: &mut ServerConfig) {
        if let Some(listen) = self.listen {
            s.listen = listen;
        }
        for (flag, slot) in [
            (&self.plugins_dir, &mut s.plugins_dir),
            (&self.workflows_dir, &mut s.workflows_dir),
            (&self.uploads_dir, &mut s.uploads_dir),
        ] {
            if let Some(dir) = flag {
                *slot = Some(dir.clone());
            }
        }
    }
}
