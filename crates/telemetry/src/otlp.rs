//! The OTLP exporters of traces, logs and metrics, built from `[telemetry.otlp]` (and the
//! `OTEL_*` variables folded into it) on the export thread's runtime: each signal to its
//! own destination, over TLS when the URL is `https` (rustls: the Mozilla roots plus the
//! configured CA, an optional client certificate), with its headers and compression, and
//! every signal with the same resource.

use crate::TelemetryError;
use crate::export::{LogSink, SpanSink};
use crate::otlp_metrics;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tta_core::config::otlp::Destination;
use tta_core::config::telemetry::{Compression, ObservabilityConfig, OtlpProtocol, Signal};

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

/// The headers of a destination, each value resolved; an error names the header and the
/// reference, never a value.
fn headers(destination: &Destination) -> Result<HashMap<String, String>, String> {
    let var = |name: &str| std::env::var(name).ok();
    destination
        .headers
        .iter()
        .map(|(key, value)| {
            value
                .resolve(&var)
                .map(|v| (key.clone(), v))
                .map_err(|why| format!("header `{key}`: {why}"))
        })
        .collect()
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} `{}` cannot be read: {e}", path.display()))
}

/// The rustls configuration of an HTTPS destination.
pub(crate) fn rustls_config(destination: &Destination) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &destination.certificate {
        let pem = read(path, "the CA certificate")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("the CA certificate `{}`: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("the CA certificate `{}`: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match &destination.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&read(cert, "the client certificate")?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate `{}`: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_slice(&read(key, "the client key")?)
                .map_err(|e| format!("the client key `{}`: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key: {e}"))
        }
    }
}

/// The tonic TLS settings of an HTTPS gRPC destination.
pub(crate) fn tonic_tls(destination: &Destination) -> Result<tonic::transport::ClientTlsConfig, String> {
    let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
    if let Some(path) = &destination.certificate {
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(
            path,
            "the CA certificate",
        )?));
    }
    if let Some((cert, key)) = &destination.client_identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(cert, "the client certificate")?,
            read(key, "the client key")?,
        ));
    }
    Ok(tls)
}

/// An HTTP client for a destination: rustls, its timeout.
pub(crate) fn http_client(destination: &Destination) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls_config(destination)?)
        .timeout(Duration::from_millis(destination.timeout_ms))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

fn compression(c: Compression) -> Option<opentelemetry_otlp::Compression> {
    match c {
        Compression::None => None,
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
    }
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

/// Headers as gRPC metadata.
pub(crate) fn metadata(headers: &HashMap<String, String>) -> Result<tonic::metadata::MetadataMap, String> {
    let mut map = tonic::metadata::MetadataMap::new();
    for (key, value) in headers {
        let name = tonic::metadata::MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("header `{key}` is not a valid gRPC metadata name"))?;
        let value = value
            .parse()
            .map_err(|_| format!("the value of header `{key}` is not valid in a header"))?;
        map.insert(name, value);
    }
    Ok(map)
}
