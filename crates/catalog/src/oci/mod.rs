//! Components in OCI registries, in the Wasm OCI artifact layout the ecosystem uses (the
//! CNCF TAG-Runtime "wasm OCI artifact" layout, what `wkg`, Spin and wasmCloud push): an
//! image manifest whose config is `application/vnd.wasm.config.v0+json` and whose one layer
//! is the component, `application/wasm`.
//!
//! A pull checks the manifest before any blob is fetched (media types, the layer's declared
//! size against the limit), verifies the layer's SHA-256 against its digest before the
//! bytes are kept, and keeps them by digest in the cache ([`store`]), so a digest already
//! pulled is never fetched again and nothing unverified is ever compiled. Credentials come
//! only from the environment ([`auth`]). Plain HTTP is used only for loopback registries
//! and those `registry.insecure` names.

mod auth;
mod client;
mod store;

pub use client::{Client, Resolved};
pub use store::{cache_root, resolved_path};

use std::path::PathBuf;

/// The manifest media type pulled and pushed.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config media type of a Wasm component artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type of a Wasm component.
pub const WASM_LAYER: &str = "application/wasm";

/// Why a component could not be pulled or pushed; each names the reference and the fix.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Not `oci://registry/repository:tag` or `…@sha256:<64 hex>`.
    #[error(
        "{0:?} is not an OCI reference: write oci://registry[:port]/repository:tag or oci://registry/repository@sha256:<64 hex digits>"
    )]
    BadReference(String),
    /// The registry could not be reached, or stalled.
    #[error("{reference}: the registry did not answer ({what}); check that it runs and is reachable")]
    Unreachable {
        /// The reference.
        reference: String,
        /// What failed.
        what: String,
    },
    /// The tag or digest is not in the repository.
    #[error("{0}: no such tag or digest in the registry")]
    NotFound(String),
    /// The registry (or its token service) refused access.
    #[error(
        "{reference}: {why}; set TTA_REGISTRY_TOKEN, or TTA_REGISTRY_USERNAME and TTA_REGISTRY_PASSWORD, to credentials that may read (or push to) it"
    )]
    Unauthorized {
        /// The reference.
        reference: String,
        /// Who refused what.
        why: String,
    },
    /// Another answer than the protocol's.
    #[error("{reference}: the registry answered {status} to {what}")]
    Status {
        /// The reference.
        reference: String,
        /// The HTTP status.
        status: u16,
        /// The request.
        what: &'static str,
    },
    /// The manifest is not a Wasm component artifact.
    #[error("{reference} is not a Wasm component artifact: {why}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What is wrong with the manifest.
        why: String,
    },
    /// The component is over the size limit.
    #[error("{reference}: the component is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The reference.
        reference: String,
        /// Its size (declared or read).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not what their digest says: nothing is kept.
    #[error(
        "{reference}: {what} digest mismatch: expected {expected}, got {actual}; the registry or a proxy altered it, nothing was loaded"
    )]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// The manifest or the layer.
        what: &'static str,
        /// The digest announced.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// `oci://registry/repository:tag` or `@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    /// `ns/name`.
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub tag_or_digest: String,
}

impl Reference {
    /// Parses `text` (which must start with `oci://`).
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let bad = || OciError::BadReference(text.chars().take(256).collect());
        let rest = text.strip_prefix("oci://").ok_or_else(bad)?;
        let (registry, path) = rest.split_once('/').ok_or_else(bad)?;
        let (repository, tag_or_digest) = match path.split_once('@') {
            Some((repository, digest)) => {
                let hex = digest.strip_prefix("sha256:").ok_or_else(bad)?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return Err(bad());
                }
                (repository, digest)
            }
            None => path.rsplit_once(':').ok_or_else(bad)?,
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        };
        let tag_ok = tag_or_digest.starts_with("sha256:")
            || (!tag_or_digest.is_empty()
                && tag_or_digest.len() <= 128
                && tag_or_digest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
        if registry.is_empty() || !repository.split('/').all(component_ok) || !tag_ok {
            return Err(bad());
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag_or_digest: tag_or_digest.to_owned(),
        })
    }

    /// The digest's hex digits, when the reference is a `@sha256:` pin.
    pub fn pinned(&self) -> Option<&str> {
        self.tag_or_digest.strip_prefix("sha256:")
    }

    /// The repository's API URL: HTTPS, or plain HTTP for a loopback registry and those
    /// `insecure` names.
    fn base(&self, insecure: &[String]) -> String {
        let scheme = if plain_http_allowed(&self.registry, insecure) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

/// Whether `authority` (`host[:port]`) may be spoken to over plain HTTP: a loopback host,
/// or one the operator listed.
fn plain_http_allowed(authority: &str, insecure: &[String]) -> bool {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.");
    loopback || insecure.iter().any(|r| r == authority || r == host)
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.pinned().is_some() { '@' } else { ':' };
        write!(
            f,
            "oci://{}/{}{sep}{}",
            self.registry, self.repository, self.tag_or_digest
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_or_say_how_to_write_them() {
        let tagged = Reference::parse("oci://127.0.0.1:5000/tta/echo:1.0").expect("a tag");
        assert_eq!(
            (
                tagged.registry.as_str(),
                tagged.repository.as_str(),
                tagged.tag_or_digest.as_str()
            ),
            ("127.0.0.1:5000", "tta/echo", "1.0")
        );
        let pinned = format!("oci://ghcr.io/a/b@sha256:{}", "0".repeat(64));
        assert_eq!(Reference::parse(&pinned).expect("a digest").to_string(), pinned);
        for bad in [
            "echo.wasm",
            "oci://registry",
            "oci://r/Upper:tag",
            "oci://r/repo",
            "oci://r/repo@sha256:abc",
            "oci://r/repo:bad tag",
        ] {
            assert!(matches!(Reference::parse(bad), Err(OciError::BadReference(_))), "{bad}");
        }
        assert_eq!(tagged.base(&[]), "http://127.0.0.1:5000/v2/tta/echo");
        let remote = Reference::parse("oci://ghcr.io/a/b:1").expect("remote");
        assert!(remote.base(&[]).starts_with("https://"));
        let internal = Reference::parse("oci://registry.internal:5000/a/b:1").expect("internal");
        assert!(
            internal
                .base(&["registry.internal:5000".to_owned()])
                .starts_with("http://")
        );
        assert!(internal.base(&["other:5000".to_owned()]).starts_with("https://"));
    }
}
