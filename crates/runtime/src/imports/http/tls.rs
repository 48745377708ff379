//! TLS for guests' requests: the host's client configuration ([`tta_core::tls`]) with the
//! tenant's roots and CAs, and the `wasi:http` error of a failed handshake.

use rustls::ClientConfig;
use std::sync::Arc;
use tta_core::config::HttpPolicy;
use wasmtime_wasi_http::Error;

/// The client configuration of one tenant's HTTPS requests.
pub(crate) fn client_config(policy: &HttpPolicy) -> Result<Arc<ClientConfig>, String> {
    tta_core::tls::client_config(policy.roots, &policy.ca_files, None).map_err(|e| format!("http: {e}"))
}

/// The `wasi:http` error of a failed TLS handshake, and the reason for the span, found by
/// the type of the error rustls reported.
pub(crate) fn classify(error: &std::io::Error) -> (Error, String) {
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return (Error::TlsProtocolError, format!("TLS handshake failed: {error}"));
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => (
            Error::TlsCertificateError,
            format!("the server's certificate was refused: {why:?}"),
        ),
        rustls::Error::AlertReceived(alert) => (
            Error::TlsAlertReceived {
                alert_id: Some(u8::from(*alert)),
                alert_message: Some(format!("{alert:?}")),
            },
            format!("the server ended the TLS handshake with the alert {alert:?}"),
        ),
        other => (Error::TlsProtocolError, format!("TLS handshake failed: {other}")),
    }
}

/// The `tls.protocol.version` of a connection (`1.2`, `1.3`).
pub(crate) fn version(version: Option<rustls::ProtocolVersion>) -> Option<&'static str> {
    match version? {
        rustls::ProtocolVersion::TLSv1_3 => Some("1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("1.2"),
        _ => None,
    }
}
