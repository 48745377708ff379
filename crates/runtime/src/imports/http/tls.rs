//! TLS for guests' requests: rustls (no OpenSSL, no system library), TLS 1.2 and 1.3 only,
//! SNI and hostname verification always on, against the tenant's roots plus its own CAs.

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use std::sync::Arc;
use tta_core::config::HttpPolicy;
use tta_core::config::http::Roots;
use wasmtime_wasi_http::Error;

/// The client configuration of one tenant's HTTPS requests.
pub(crate) fn client_config(policy: &HttpPolicy) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match policy.roots {
        Roots::Mozilla => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "http.roots = \"system\" found no certificates in the system store ({} errors)",
                    found.errors.len()
                ));
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    for path in &policy.ca_files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("http.ca_files `{}`: {e}", path.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("http.ca_files `{}`: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
