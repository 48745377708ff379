//! The OTLP exporters of traces, logs and metrics, built from the `[telemetry.otlp]`
//! section (and the `OTEL_*` variables folded into it) on the export thread's runtime.

use crate::TelemetryError;
use crate::export::{LogSink, SpanSink};
use crate::otlp_metrics;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tta_core::config::telemetry::{ObservabilityConfig, OtlpProtocol};

pub(crate) type Sinks = (Vec<SpanSink>, Vec<LogSink>, Option<otlp_metrics::MetricsPusher>);

/// Adds the OTLP exporters; runs inside the export runtime (gRPC channels connect lazily on it).
pub(crate) fn sinks(
    config: &ObservabilityConfig,
    traces: bool,
    logs: bool,
    metrics: bool,
    mut span_sinks: Vec<SpanSink>,
    mut log_sinks: Vec<LogSink>,
) -> Result<Sinks, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let endpoint = config.otlp.endpoint();
    let timeout = Duration::from_millis(config.otlp.timeout_ms);
    let fail = |signal: &'static str, destination: &str, e: &dyn std::fmt::Display| TelemetryError::Exporter {
        signal,
        destination: destination.to_owned(),
        message: e.to_string(),
    };
    if traces {
        let (exporter, name) = match config.otlp.protocol {
            OtlpProtocol::Grpc => (
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .with_timeout(timeout)
                    .build(),
                format!("otlp grpc {endpoint}"),
            ),
            OtlpProtocol::HttpProtobuf => (
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{endpoint}/v1/traces"))
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout)
                    .with_headers(Default::default())
                    .build(),
                format!("otlp http {endpoint}/v1/traces"),
            ),
        };
        let mut exporter = exporter.map_err(|e| fail("traces", &name, &e))?;
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        span_sinks.push(SpanSink::new(name, Box::new(exporter)));
    }
    if logs {
        let (exporter, name) = match config.otlp.protocol {
            OtlpProtocol::Grpc => (
                opentelemetry_otlp::LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .with_timeout(timeout)
                    .build(),
                format!("otlp grpc {endpoint}"),
            ),
            OtlpProtocol::HttpProtobuf => (
                opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{endpoint}/v1/logs"))
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(timeout)
                    .build(),
                format!("otlp http {endpoint}/v1/logs"),
            ),
        };
        let mut exporter = exporter.map_err(|e| fail("logs", &name, &e))?;
        opentelemetry_sdk::logs::LogExporter::set_resource(&mut exporter, &resource);
        log_sinks.push(LogSink::Exporter {
            name,
            exporter: Box::new(exporter),
            failing: false,
        });
    }
    let pusher = if metrics {
        Some(otlp_metrics::MetricsPusher::new(&config.otlp).map_err(|e| fail("metrics", &endpoint, &e))?)
    } else {
        None
    };
    Ok((span_sinks, log_sinks, pusher))
}
