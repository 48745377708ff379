//! `[telemetry.otlp]`: where OTLP goes and how — endpoint, protocol, TLS trust and client
//! certificate, headers (a hosted backend's key), compression — for all signals, with
//! per-signal overrides (`[telemetry.otlp.traces]`, …), and the standard variables over
//! them with the specification's precedence: `OTEL_EXPORTER_OTLP_TRACES_*` over
//! `OTEL_EXPORTER_OTLP_*` over the file.
//!
//! Header values are secrets: in the file a value may be `env:NAME` or `file:PATH`, resolved
//! when the exporters start, and no value is ever printed ([`Secret`]'s `Debug` hides it).

pub use super::secret::Secret;
use super::setting::{TelemetryConfigError, bad};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// gRPC (default port 4317).
    #[serde(rename = "grpc")]
    #[value(name = "grpc")]
    Grpc,
    /// HTTP with protobuf bodies (default port 4318).
    #[serde(rename = "http/protobuf")]
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Compression of export requests.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// None.
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// Settings one signal may override.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SignalOtlp {
    /// The full URL of this signal (used as is, no path appended).
    pub endpoint: Option<String>,
    /// Protocol of this signal.
    pub protocol: Option<OtlpProtocol>,
    /// Timeout of one export of this signal, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Headers of this signal (replacing the shared ones, as the specification has it).
    pub headers: Option<BTreeMap<String, Secret>>,
    /// Compression of this signal.
    pub compression: Option<Compression>,
    /// CA certificate (PEM) this signal's server is verified against.
    pub certificate: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

/// `[telemetry.otlp]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); per protocol default when absent. Over
    /// HTTP each signal's path (`/v1/traces`, …) is appended.
    pub endpoint: Option<String>,
    /// Protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: OtlpProtocol,
    /// Timeout of one export, in milliseconds (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout_ms: u64,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`); values may be
    /// `env:NAME` or `file:PATH`.
    pub headers: BTreeMap<String, Secret>,
    /// Compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
    pub compression: Compression,
    /// A CA certificate (PEM) trusted besides the Mozilla roots (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub certificate: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<PathBuf>,
    /// Its private key (PEM) (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// Overrides for traces.
    pub traces: SignalOtlp,
    /// Overrides for logs.
    pub logs: SignalOtlp,
    /// Overrides for metrics.
    pub metrics: SignalOtlp,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            timeout_ms: 5_000,
            headers: BTreeMap::new(),
            compression: Compression::None,
            certificate: None,
            client_certificate: None,
            client_key: None,
            traces: SignalOtlp::default(),
            logs: SignalOtlp::default(),
            metrics: SignalOtlp::default(),
        }
    }
}

/// A signal of OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric points.
    Metrics,
}

impl Signal {
    /// `traces`, `logs`, `metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

/// Where and how one signal is exported, every layer merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// The URL requests go to (over HTTP, with the signal's path).
    pub url: String,
    /// The protocol.
    pub protocol: OtlpProtocol,
    /// The timeout of one export.
    pub timeout_ms: u64,
    /// Headers, values unresolved.
    pub headers: BTreeMap<String, Secret>,
    /// Compression.
    pub compression: Compression,
    /// CA certificate.
    pub certificate: Option<PathBuf>,
    /// Client certificate and key.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

impl OtlpConfig {
    /// The base URL exports go to.
    pub fn endpoint(&self) -> String {
        match (&self.endpoint, self.protocol) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, OtlpProtocol::Grpc) => "http://localhost:4317".into(),
            (None, OtlpProtocol::HttpProtobuf) => "http://localhost:4318".into(),
        }
    }

    fn signal(&self, signal: Signal) -> &SignalOtlp {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
        }
    }

    /// Where `signal` goes: its own settings over the shared ones.
    pub fn destination(&self, signal: Signal) -> Destination {
        let own = self.signal(signal);
        let protocol = own.protocol.unwrap_or(self.protocol);
        let url = match (&own.endpoint, protocol) {
            (Some(url), _) => url.clone(),
            (None, OtlpProtocol::Grpc) => self.endpoint(),
            (None, OtlpProtocol::HttpProtobuf) => format!("{}/v1/{}", self.endpoint(), signal.name()),
        };
        let certificate = own.certificate.clone().or_else(|| self.certificate.clone());
        let identity = match (&own.client_certificate, &own.client_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            _ => self.client_certificate.clone().zip(self.client_key.clone()),
        };
        Destination {
            url,
            protocol,
            timeout_ms: own.timeout_ms.unwrap_or(self.timeout_ms),
            headers: own.headers.clone().unwrap_or_else(|| self.headers.clone()),
            compression: own.compression.unwrap_or(self.compression),
            certificate,
            client_identity: identity,
        }
    }

    /// Applies the `OTEL_EXPORTER_OTLP_*` variables, shared and per signal.
    pub fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<(), TelemetryConfigError> {
        if let Some(v) = var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            self.protocol = parse_protocol("OTEL_EXPORTER_OTLP_PROTOCOL", &v)?;
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_TIMEOUT") {
            self.timeout_ms = parse_ms("OTEL_EXPORTER_OTLP_TIMEOUT", &v)?;
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.endpoint = Some(check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &v)?);
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_HEADERS") {
            self.headers = parse_headers("OTEL_EXPORTER_OTLP_HEADERS", &v)?;
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_COMPRESSION") {
            self.compression = parse_compression("OTEL_EXPORTER_OTLP_COMPRESSION", &v)?;
        }
        for (name, slot) in [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &mut self.certificate),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &mut self.client_certificate),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &mut self.client_key),
        ] {
            if let Some(v) = var(name) {
                *slot = Some(PathBuf::from(v));
            }
        }
        for (signal, own) in [
            ("TRACES", &mut self.traces),
            ("LOGS", &mut self.logs),
            ("METRICS", &mut self.metrics),
        ] {
            let name = |key: &str| format!("OTEL_EXPORTER_OTLP_{signal}_{key}");
            if let Some(v) = var(&name("ENDPOINT")) {
                own.endpoint = Some(check_endpoint(&name("ENDPOINT"), &v)?);
            }
            if let Some(v) = var(&name("PROTOCOL")) {
                own.protocol = Some(parse_protocol(&name("PROTOCOL"), &v)?);
            }
            if let Some(v) = var(&name("TIMEOUT")) {
                own.timeout_ms = Some(parse_ms(&name("TIMEOUT"), &v)?);
            }
            if let Some(v) = var(&name("HEADERS")) {
                own.headers = Some(parse_headers(&name("HEADERS"), &v)?);
            }
            if let Some(v) = var(&name("COMPRESSION")) {
                own.compression = Some(parse_compression(&name("COMPRESSION"), &v)?);
            }
            for (key, slot) in [
                ("CERTIFICATE", &mut own.certificate),
                ("CLIENT_CERTIFICATE", &mut own.client_certificate),
                ("CLIENT_KEY", &mut own.client_key),
            ] {
                if let Some(v) = var(&name(key)) {
                    *slot = Some(PathBuf::from(v));
                }
            }
        }
        Ok(())
    }

    /// Checks the endpoints and that TLS files come in pairs where they must.
    pub fn validate(&self) -> Result<(), TelemetryConfigError> {
        if let Some(endpoint) = &self.endpoint {
            check_endpoint("telemetry.otlp.endpoint", endpoint)?;
        }
        for (name, own) in [
            ("traces", &self.traces),
            ("logs", &self.logs),
            ("metrics", &self.metrics),
        ] {
            if let Some(endpoint) = &own.endpoint {
                check_endpoint(&format!("telemetry.otlp.{name}.endpoint"), endpoint)?;
            }
            if own.client_certificate.is_some() != own.client_key.is_some() {
                return Err(bad(
                    &format!("telemetry.otlp.{name}"),
                    "client_certificate and client_key go together",
                ));
            }
        }
        if self.client_certificate.is_some() != self.client_key.is_some() {
            return Err(bad(
                "telemetry.otlp",
                "client_certificate and client_key (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY) go together",
            ));
        }
        Ok(())
    }
}

pub(super) fn parse_protocol(name: &str, v: &str) -> Result<OtlpProtocol, TelemetryConfigError> {
    match v {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        other => Err(bad(name, format!("{other:?} is not grpc or http/protobuf"))),
    }
}

fn parse_ms(name: &str, v: &str) -> Result<u64, TelemetryConfigError> {
    v.parse()
        .map_err(|_| bad(name, format!("{v:?} is not a number of milliseconds")))
}

fn parse_compression(name: &str, v: &str) -> Result<Compression, TelemetryConfigError> {
    match v {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        other => Err(bad(name, format!("{other:?} is not gzip or none"))),
    }
}

pub(super) fn check_endpoint(name: &str, v: &str) -> Result<String, TelemetryConfigError> {
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(v.to_owned())
    } else {
        Err(bad(
            name,
            format!("{v:?} is not an http:// or https:// URL (e.g. http://localhost:4317)"),
        ))
    }
}

/// `key=value,key2=value2` with percent-encoded values (the W3C baggage format the
/// specification uses). The error names the entry's position and key, never its value.
pub fn parse_headers(name: &str, v: &str) -> Result<BTreeMap<String, Secret>, TelemetryConfigError> {
    parse_pairs(v)
        .map(|pairs| pairs.into_iter().map(|(k, v)| (k, Secret(v))).collect())
        .map_err(|problem| bad(name, problem))
}

/// `key=value` pairs, comma-separated, values percent-decoded.
pub fn parse_pairs(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, entry) in v.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry {} has no `=`; write key=value,key2=value2", i + 1));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("entry {} has an empty key", i + 1));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("the value of `{key}` is not valid percent-encoded UTF-8"))?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

fn percent_decode(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_signal_variables_win_over_shared_ones_and_headers_stay_hidden() {
        let env: BTreeMap<&str, &str> = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt,team=a"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces.example/v1/traces"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-logs=1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]
        .into_iter()
        .collect();
        let mut otlp = OtlpConfig::default();
        otlp.apply_env(&|k| env.get(k).map(|v| (*v).to_owned())).expect("valid");
        let traces = otlp.destination(Signal::Traces);
        assert_eq!(traces.url, "https://traces.example/v1/traces");
        assert_eq!(traces.headers["x-api-key"].0, "s3cr=t");
        assert_eq!(traces.compression, Compression::Gzip);
        let metrics = otlp.destination(Signal::Metrics);
        assert_eq!(metrics.url, "https://otlp.example:4318/v1/metrics");
        let logs = otlp.destination(Signal::Logs);
        assert_eq!(logs.headers.len(), 1, "a signal's headers replace the shared ones");
        assert!(!format!("{otlp:?}").contains("s3cr"), "{otlp:?}");
        assert!(parse_headers("H", "novalue").is_err());
    }
}
