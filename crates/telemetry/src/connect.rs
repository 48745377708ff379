//! How an OTLP exporter reaches its destination: header values resolved, TLS (the
//! host's client configuration with the Mozilla roots and the destination's CA and client
//! certificate), the HTTP client, headers as gRPC metadata.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tta_core::config::http::Roots;
use tta_core::config::otlp::Destination;
use tta_core::config::telemetry::Compression;

/// The headers of a destination, each value resolved; an error names the header and the
/// reference, never a value.
pub(crate) fn headers(destination: &Destination) -> Result<HashMap<String, String>, String> {
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

/// The rustls configuration of an HTTPS destination: the Mozilla roots plus its CA.
fn rustls_config(destination: &Destination) -> Result<Arc<rustls::ClientConfig>, String> {
    let identity = destination
        .client_identity
        .as_ref()
        .map(|(cert, key)| (cert.as_path(), key.as_path()));
    let cas: Vec<std::path::PathBuf> = destination.certificate.iter().cloned().collect();
    tta_core::tls::client_config(Roots::Mozilla, &cas, identity)
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
        .tls_backend_preconfigured(Arc::unwrap_or_clone(rustls_config(destination)?))
        .timeout(Duration::from_millis(destination.timeout_ms))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

pub(crate) fn compression(c: Compression) -> Option<opentelemetry_otlp::Compression> {
    match c {
        Compression::None => None,
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
    }
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
