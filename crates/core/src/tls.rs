//! The one way the host makes a TLS client configuration — for guests' HTTPS, OTLP export
//! and remote workflow steps alike: rustls with the ring provider (no OpenSSL, no system
//! library), TLS 1.2 and 1.3 only, SNI and hostname verification always on, the Mozilla
//! roots (`webpki-roots`) or the system store, plus extra CAs and an optional client
//! certificate.

use crate::config::http::Roots;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Makes ring the process's default rustls provider, once, so that any HTTP client built
/// without a configuration of the host's (a library user's, a test's) works too.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client configuration trusting `roots` and the CA certificates (PEM files) `cas`,
/// presenting `identity` (certificate chain and key, PEM files) when given. The error
/// names the file and what is wrong with it.
pub fn client_config(
    roots: Roots,
    cas: &[PathBuf],
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::Mozilla => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "roots = \"system\" found no certificates in the system store ({} errors)",
                    found.errors.len()
                ));
            }
            store.add_parsable_certificates(found.certs);
        }
    }
    for path in cas {
        for cert in certificates(path, "CA certificate")? {
            store
                .add(cert)
                .map_err(|e| format!("the CA certificate `{}`: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(store);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "client certificate")?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("the client key `{}`: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("the {what} `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("the {what} `{}` holds no PEM certificate", path.display()));
    }
    Ok(certs)
}
