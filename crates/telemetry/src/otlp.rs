//! The OTLP exporters of traces, logs and metrics, built from `[telemetry.otlp]` (and the
//! `OTEL_*` variables folded into it) on the export thread's runtime: each signal to its
//! own destination, over TLS when the URL is `https` (rustls: the Mozilla roots plus the
//! configured CA, an optional client certificate), with its headers and compression, and
//! every signal with the same resource.

use crate::connect::{compression, headers, http_client, metadata, tonic_tls};
use crate::error::TelemetryError;
use crate::export::{LogSink, SpanSink};
use crate::otlp_metrics;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use std::sync::OnceLock;
use std::time::Duration;
use tta_core::config::otlp::Destination;
use tta_core::config::telemetry::{ObservabilityConfig, OtlpProtocol, Signal};

pub(crate) type Sinks = (Vec<SpanSink>, Vec<LogSink>, Option<otlp_metrics::MetricsPusher>);

/// The resource of every signal: `service.name`, `service.version`, `service.instance.id`
/// (one per process unless configured), `host.name`, `process.pid`, the SDK's
/// `telemetry.sdk.*`, and the configured attributes (`OTEL_RESOURCE_ATTRIBUTES` among them).
pub fn resource(config: &ObservabilityConfig) -> Resource {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    let mut attributes: Vec<KeyValue> = config
        .resource
        .iter()
        .filter(|(k, _)| k.as_str() != "service.name")
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let has = |key: &str| config.resource.contains_key(key);
    if !has("service.version") {
        attributes.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    if !has("service.instance.id") {
        let id = INSTANCE.get_or_init(|| uuid::Uuid::new_v4().to_string());
        attributes.push(KeyValue::new("service.instance.id", id.clone()));
    }
    if !has("host.name")
        && let Some(name) = host_name()
    {
        attributes.push(KeyValue::new("host.name", name));
    }
    attributes.push(KeyValue::new("process.pid", i64::from(std::process::id())));
    // `OTEL_SERVICE_NAME` (the config's name) wins over a `service.name` attribute, unless
    // it is only the default.
    let service = match config.resource.get("service.name") {
        Some(name) if config.service_name == ObservabilityConfig::default().service_name => name.clone(),
        _ => config.service_name.clone(),
    };
    Resource::builder_empty()
        .with_detector(Box::new(opentelemetry_sdk::resource::TelemetryResourceDetector))
        .with_attributes(attributes)
        .with_service_name(service)
        .build()
}

fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// Adds the OTLP exporters; runs inside the export runtime (gRPC channels connect lazily on it).
pub(crate) fn sinks(
    config: &ObservabilityConfig,
    traces: bool,
    logs: bool,
    metrics: bool,
    mut span_sinks: Vec<SpanSink>,
    mut log_sinks: Vec<LogSink>,
) -> Result<Sinks, TelemetryError> {
    let resource = resource(config);
    let fail = |signal: Signal, destination: &str, message: String| TelemetryError::Exporter {
        signal: signal.name(),
        destination: destination.to_owned(),
        message,
    };
    let name = |d: &Destination| match d.protocol {
        OtlpProtocol::Grpc => format!("otlp grpc {}", d.url),
        OtlpProtocol::HttpProtobuf => format!("otlp http {}", d.url),
    };
    if traces {
        let d = config.otlp.destination(Signal::Traces);
        let label = name(&d);
        let headers = headers(&d).map_err(|e| fail(Signal::Traces, &label, e))?;
        let timeout = Duration::from_millis(d.timeout_ms);
        let exporter = match d.protocol {
            OtlpProtocol::Grpc => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(d.url.clone())
                    .with_timeout(timeout)
                    .with_metadata(metadata(&headers).map_err(|e| fail(Signal::Traces, &label, e))?);
                if d.url.starts_with("https://") {
                    b = b.with_tls_config(tonic_tls(&d).map_err(|e| fail(Signal::Traces, &label, e))?);
                }
                if let Some(c) = compression(d.compression) {
                    b = b.with_compression(c);
                }
                b.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(d.url.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout)
                    .with_http_client(http_client(&d).map_err(|e| fail(Signal::Traces, &label, e))?)
                    .with_headers(headers);
                if let Some(c) = compression(d.compression) {
                    b = b.with_compression(c);
                }
                b.build()
            }
        };
        let mut exporter = exporter.map_err(|e| fail(Signal::Traces, &label, e.to_string()))?;
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        span_sinks.push(SpanSink::new(label, Box::new(exporter)));
    }
    if logs {
        let d = config.otlp.destination(Signal::Logs);
        let label = name(&d);
        let headers = headers(&d).map_err(|e| fail(Signal::Logs, &label, e))?;
        let timeout = Duration::from_millis(d.timeout_ms);
        let exporter = match d.protocol {
            OtlpProtocol::Grpc => {
                let mut b = opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(d.url.clone())
                    .with_timeout(timeout)
                    .with_metadata(metadata(&headers).map_err(|e| fail(Signal::Logs, &label, e))?);
                if d.url.starts_with("https://") {
                    b = b.with_tls_config(tonic_tls(&d).map_err(|e| fail(Signal::Logs, &label, e))?);
                }
                if let Some(c) = compression(d.compression) {
                    b = b.with_compression(c);
                }
                b.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_endpoint(d.url.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout)
                    .with_http_client(http_client(&d).map_err(|e| fail(Signal::Logs, &label, e))?)
                    .with_headers(headers);
                if let Some(c) = compression(d.compression) {
                    b = b.with_compression(c);
                }
                b.build()
            }
        };
        let mut exporter = exporter.map_err(|e| fail(Signal::Logs, &label, e.to_string()))?;
        opentelemetry_sdk::logs::LogExporter::set_resource(&mut exporter, &resource);
        log_sinks.push(LogSink::Exporter {
            name: label,
            exporter: Box::new(exporter),
            failing: false,
        });
    }
    let pusher = if metrics {
        let d = config.otlp.destination(Signal::Metrics);
        let label = name(&d);
        let headers = headers(&d).map_err(|e| fail(Signal::Metrics, &label, e))?;
        Some(otlp_metrics::MetricsPusher::new(&d, headers, &resource).map_err(|e| fail(Signal::Metrics, &label, e))?)
    } else {
        None
    };
    Ok((span_sinks, log_sinks, pusher))
}
