//! What to export, where to, and how much: the `[telemetry]` section of the config file,
//! the standard `OTEL_*` environment variables, and CLI flags, in that order of precedence
//! (later wins).

use super::otlp::parse_pairs;
pub use super::otlp::{Compression, OtlpConfig, OtlpProtocol, Secret, Signal};
pub use super::setting::TelemetryConfigError;
use super::setting::bad;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Observability settings. The defaults export nothing and serve no endpoint: calls are
/// still metered (the registry is always there) and traced ids still reach guests.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// `service.name` of every span, log record and metric (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Turns every exporter off (`OTEL_SDK_DISABLED=true`); metrics are still kept in memory.
    pub disabled: bool,
    /// Traces.
    pub traces: TracesConfig,
    /// Logs.
    pub logs: LogsConfig,
    /// Metrics.
    pub metrics: MetricsConfig,
    /// The OTLP endpoint shared by all signals, and each signal's own settings.
    pub otlp: OtlpConfig,
    /// Resource attributes of every signal besides those the host sets
    /// (`OTEL_RESOURCE_ATTRIBUTES` adds to them), e.g. `deployment.environment.name`.
    pub resource: BTreeMap<String, String>,
    /// The export queue shared by all signals.
    pub export: ExportConfig,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            service_name: "tta-host".into(),
            disabled: false,
            traces: TracesConfig::default(),
            logs: LogsConfig::default(),
            metrics: MetricsConfig::default(),
            otlp: OtlpConfig::default(),
            resource: BTreeMap::new(),
            export: ExportConfig::default(),
        }
    }
}

/// Where a signal goes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Exporter {
    /// OTLP, gRPC or HTTP/protobuf per `[telemetry.otlp]`.
    Otlp,
    /// Human-readable text on stderr.
    Console,
    /// JSON lines appended to a file.
    File,
}

/// Which traces are recorded: the W3C/OTel sampler names of `OTEL_TRACES_SAMPLER`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A share of traces, by trace id.
    Traceidratio,
    /// The caller's decision when there is a parent; every root trace otherwise.
    ParentbasedAlwaysOn,
    /// The caller's decision when there is a parent; no root trace otherwise.
    ParentbasedAlwaysOff,
    /// The caller's decision when there is a parent; a share of root traces otherwise.
    ParentbasedTraceidratio,
}

/// `[telemetry.traces]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Exporters (`OTEL_TRACES_EXPORTER`: `otlp`, `console`, `file`, `none`).
    pub exporters: Vec<Exporter>,
    /// The sampler (`OTEL_TRACES_SAMPLER`).
    pub sampler: SamplerKind,
    /// The ratio of the ratio samplers, 0.0 to 1.0 (`OTEL_TRACES_SAMPLER_ARG`).
    pub sampler_arg: f64,
    /// The JSON-lines file of the `file` exporter.
    pub file: Option<PathBuf>,
    /// Sampled traces `serve` keeps in memory per tenant, besides any exporter, for
    /// `GET /v1/traces` and `/ui`; 0 keeps none.
    pub keep: usize,
    /// Bytes of kept traces per tenant (an estimate of what their reports hold); past it,
    /// the tenant's oldest go first.
    pub keep_bytes_per_tenant: usize,
    /// Bytes of kept traces in all; past it, the oldest of the tenant holding the most go.
    pub keep_bytes: usize,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            exporters: Vec::new(),
            sampler: SamplerKind::ParentbasedAlwaysOn,
            sampler_arg: 1.0,
            file: None,
            keep: 100,
            keep_bytes_per_tenant: 4 << 20,
            keep_bytes: 256 << 20,
        }
    }
}

/// `[telemetry.logs]`: where call and guest log records go besides the host's own stderr.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Exporters (`OTEL_LOGS_EXPORTER`: `otlp`, `console`, `file`, `none`).
    pub exporters: Vec<Exporter>,
    /// The least severe level exported: `trace`, `debug`, `info`, `warn`, `error`.
    pub level: String,
    /// Format of host logs and `console` records on stderr.
    pub format: LogFormat,
    /// The JSON-lines file of the `file` exporter.
    pub file: Option<PathBuf>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            exporters: Vec::new(),
            level: "info".into(),
            format: LogFormat::Pretty,
            file: None,
        }
    }
}

/// How log lines look on stderr.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object a line, the TTA.dev log format.
    Json,
}

/// `[telemetry.metrics]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (Prometheus text), `0.0.0.0:9464` by default; `None`
    /// (`listen = "off"`, `--no-metrics`) serves nothing.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: Option<SocketAddr>,
    /// SHA-256 (hex) of each bearer token a scraper may send (`authorization: Bearer <token>`,
    /// Prometheus' `authorization` scrape setting; make one with `tta-host keygen`). Empty:
    /// `/metrics` answers anyone who reaches it, as Prometheus exporters do on a private
    /// network. It shows every tenant id and every primitive name tenants uploaded.
    pub bearer_sha256: Vec<String>,
    /// Exporters pushing metrics (`OTEL_METRICS_EXPORTER`: `otlp`, `none`).
    pub exporters: Vec<Exporter>,
    /// How often metrics are pushed, in milliseconds (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub export_interval_ms: u64,
    /// Distinct series of guest-defined metrics one primitive may create for one tenant;
    /// the rest are counted in `primitive_telemetry_dropped_total{kind="metric_series"}`.
    /// Counted per (primitive, tenant), so one tenant's calls never use up another's.
    pub guest_series_per_primitive: usize,
    /// Distinct series of guest-defined metrics all of one tenant's primitives may create
    /// together; past it the tenant's new series are dropped and counted the same way.
    pub guest_series_per_tenant: usize,
    /// Labels a guest metric may carry besides `primitive_name` and `tenant`.
    pub guest_labels: usize,
    /// Distinct `llm.model` values per primitive and tenant; more are reported as `other`.
    pub llm_models_per_primitive: usize,
    /// Distinct tenants with their own series; more are reported as `other`.
    pub tenants: usize,
    /// (primitive, tenant) pairs whose call series are made at zero when the primitive is
    /// loaded, before any call: Prometheus' `rate()` and `increase()` need a sample before
    /// a series' first increment to count it. Past this many, a pair's series appear with
    /// its first call, as before.
    pub zero_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 9464))),
            bearer_sha256: Vec::new(),
            exporters: Vec::new(),
            export_interval_ms: 10_000,
            guest_series_per_primitive: 200,
            guest_series_per_tenant: 2_000,
            guest_labels: 4,
            llm_models_per_primitive: 16,
            tenants: 1_000,
            zero_series: 1_000,
        }
    }
}

/// `[telemetry.export]`: the bounded queue between calls and exporters.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Finished calls waiting for export; when full, new ones are dropped and counted.
    pub queue_size: usize,
    /// Spans or log records per export request.
    pub batch_size: usize,
    /// The longest a finished call waits before its batch is sent, in milliseconds.
    pub interval_ms: u64,
    /// How long shutdown may take to flush, in milliseconds.
    pub shutdown_timeout_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            queue_size: 2_048,
            batch_size: 512,
            interval_ms: 1_000,
            shutdown_timeout_ms: 3_000,
        }
    }
}

impl ExportConfig {
    /// The shutdown bound as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

impl ObservabilityConfig {
    /// Applies the standard `OTEL_*` variables read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), TelemetryConfigError> {
        let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(v) = var("OTEL_SDK_DISABLED") {
            self.disabled = parse_bool("OTEL_SDK_DISABLED", &v)?;
        }
        if let Some(v) = var("OTEL_SERVICE_NAME") {
            self.service_name = v;
        }
        if let Some(v) = var("OTEL_RESOURCE_ATTRIBUTES") {
            let pairs = parse_pairs(&v).map_err(|problem| bad("OTEL_RESOURCE_ATTRIBUTES", problem))?;
            self.resource.extend(pairs);
        }
        self.otlp.apply_env(&var)?;
        // An endpoint is an explicit wish for OTLP: a signal without its own choice goes there.
        let shared = var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        for (signal, exporters) in [
            ("TRACES", &mut self.traces.exporters),
            ("LOGS", &mut self.logs.exporters),
            ("METRICS", &mut self.metrics.exporters),
        ] {
            let own = var(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).is_some();
            if (shared || own) && !exporters.contains(&Exporter::Otlp) {
                exporters.push(Exporter::Otlp);
            }
        }
        for (name, exporters) in [
            ("OTEL_TRACES_EXPORTER", &mut self.traces.exporters),
            ("OTEL_LOGS_EXPORTER", &mut self.logs.exporters),
            ("OTEL_METRICS_EXPORTER", &mut self.metrics.exporters),
        ] {
            if let Some(v) = var(name) {
                *exporters = parse_exporters(name, &v)?;
            }
        }
        if let Some(v) = var("OTEL_TRACES_SAMPLER") {
            self.traces.sampler = parse_sampler("OTEL_TRACES_SAMPLER", &v)?;
        }
        if let Some(v) = var("OTEL_TRACES_SAMPLER_ARG") {
            self.traces.sampler_arg = parse_ratio("OTEL_TRACES_SAMPLER_ARG", &v)?;
        }
        if let Some(v) = var("OTEL_METRIC_EXPORT_INTERVAL") {
            self.metrics.export_interval_ms = v.parse().map_err(|_| {
                bad(
                    "OTEL_METRIC_EXPORT_INTERVAL",
                    format!("{v:?} is not a number of milliseconds"),
                )
            })?;
        }
        Ok(())
    }

    /// Checks what serde cannot: ratios, endpoints, files for file exporters, sizes.
    pub fn validate(&self) -> Result<(), TelemetryConfigError> {
        if !(0.0..=1.0).contains(&self.traces.sampler_arg) {
            return Err(bad(
                "telemetry.traces.sampler_arg",
                format!("{} is not a ratio between 0.0 and 1.0", self.traces.sampler_arg),
            ));
        }
        self.otlp.validate()?;
        if self.traces.exporters.contains(&Exporter::File) && self.traces.file.is_none() {
            return Err(bad(
                "telemetry.traces.file",
                "the `file` trace exporter needs a path: set telemetry.traces.file or pass --traces-file",
            ));
        }
        if self.logs.exporters.contains(&Exporter::File) && self.logs.file.is_none() {
            return Err(bad(
                "telemetry.logs.file",
                "the `file` log exporter needs a path: set telemetry.logs.file or pass --logs-file",
            ));
        }
        if self.metrics.exporters.iter().any(|e| *e != Exporter::Otlp) {
            return Err(bad(
                "telemetry.metrics.exporters",
                "metrics are pushed over `otlp` only; scrape `/metrics` for Prometheus",
            ));
        }
        crate::bindings::Level::parse(&self.logs.level).ok_or_else(|| {
            bad(
                "telemetry.logs.level",
                format!("{:?} is not trace, debug, info, warn or error", self.logs.level),
            )
        })?;
        for hash in &self.metrics.bearer_sha256 {
            if crate::credentials::parse_hash(hash).is_none() {
                return Err(bad(
                    "telemetry.metrics.bearer_sha256",
                    format!(
                        "`{}` is not 64 hex digits; store the token's SHA-256 (`tta-host keygen` prints both), never the token",
                        hash.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        for (key, value) in [
            ("telemetry.export.queue_size", self.export.queue_size),
            ("telemetry.export.batch_size", self.export.batch_size),
            ("telemetry.metrics.tenants", self.metrics.tenants),
        ] {
            if value == 0 {
                return Err(bad(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// `"off"` (or `""`) for no listener, otherwise a socket address such as `0.0.0.0:9464`.
fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim() {
        "" | "off" => Ok(None),
        addr => addr
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{addr:?} is not an address like 0.0.0.0:9464, or \"off\""))),
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, TelemetryConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(name, format!("{v:?} is not true or false"))),
    }
}

fn parse_exporters(name: &str, v: &str) -> Result<Vec<Exporter>, TelemetryConfigError> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim) {
        match part {
            "none" => return Ok(Vec::new()),
            "otlp" => out.push(Exporter::Otlp),
            "console" => out.push(Exporter::Console),
            "file" => out.push(Exporter::File),
            other => {
                return Err(bad(name, format!("{other:?} is not otlp, console, file or none")));
            }
        }
    }
    Ok(out)
}

fn parse_sampler(name: &str, v: &str) -> Result<SamplerKind, TelemetryConfigError> {
    Ok(match v {
        "always_on" => SamplerKind::AlwaysOn,
        "always_off" => SamplerKind::AlwaysOff,
        "traceidratio" => SamplerKind::Traceidratio,
        "parentbased_always_on" => SamplerKind::ParentbasedAlwaysOn,
        "parentbased_always_off" => SamplerKind::ParentbasedAlwaysOff,
        "parentbased_traceidratio" => SamplerKind::ParentbasedTraceidratio,
        _ => {
            return Err(bad(
                name,
                format!(
                    "{v:?} is not always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio"
                ),
            ));
        }
    })
}

fn parse_ratio(name: &str, v: &str) -> Result<f64, TelemetryConfigError> {
    match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(bad(name, format!("{v:?} is not a ratio between 0.0 and 1.0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn otel_environment_is_honoured() {
        let mut config = ObservabilityConfig::default();
        config
            .apply_env(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", "billing"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ]))
            .expect("valid environment");
        assert_eq!(config.service_name, "billing");
        assert_eq!(config.otlp.endpoint(), "http://collector:4318");
        assert_eq!(config.otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(config.traces.exporters, vec![Exporter::Otlp]);
        assert_eq!(config.metrics.exporters, vec![Exporter::Otlp]);
        assert!(config.logs.exporters.is_empty());
        assert_eq!(config.traces.sampler, SamplerKind::ParentbasedTraceidratio);
        assert_eq!(config.traces.sampler_arg, 0.25);
        config.validate().expect("valid");
    }

    #[test]
    fn bad_environment_names_the_variable() {
        for (name, value) in [
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_SDK_DISABLED", "maybe"),
        ] {
            let err = ObservabilityConfig::default()
                .apply_env(env(&[(name, value)]))
                .expect_err(value);
            assert_eq!(err.setting, name);
        }
    }

    #[test]
    fn the_metrics_listener_can_be_turned_off_in_the_file() {
        let config: ObservabilityConfig = toml::from_str("[metrics]\nlisten = \"off\"\n").expect("valid");
        assert_eq!(config.metrics.listen, None);
        let config: ObservabilityConfig = toml::from_str("[metrics]\nlisten = \"127.0.0.1:9000\"\n").expect("valid");
        assert_eq!(config.metrics.listen, Some(SocketAddr::from(([127, 0, 0, 1], 9000))));
        let err = toml::from_str::<ObservabilityConfig>("[metrics]\nlisten = \"9000\"\n").expect_err("no host");
        assert!(err.to_string().contains("0.0.0.0:9464"), "{err}");
    }

    #[test]
    fn sdk_disabled_is_read() {
        let mut config = ObservabilityConfig::default();
        config.apply_env(env(&[("OTEL_SDK_DISABLED", "true")])).expect("valid");
        assert!(config.disabled);
    }
}
