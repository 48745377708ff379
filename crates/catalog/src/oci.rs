//! Components in OCI registries, in the Wasm OCI artifact layout the ecosystem uses (the
//! CNCF TAG-Runtime "wasm OCI artifact" layout, what `wkg`, Spin and wasmCloud push): an
//! image manifest whose config is `application/vnd.wasm.config.v0+json` and whose one layer
//! is the component, `application/wasm`.
//!
//! A pull checks the manifest before any blob is fetched (media types, the layer's declared
//! size against the limit), verifies the layer's SHA-256 against its digest before the
//! bytes are kept, and keeps them by digest in the cache (`<cache>/oci/sha256/<hex>.wasm`),
//! so a digest already pulled is never fetched again and nothing unverified is ever
//! compiled. Credentials come only from the environment: `TTA_REGISTRY_TOKEN` (bearer) or
//! `TTA_REGISTRY_USERNAME` and `TTA_REGISTRY_PASSWORD` (basic). Plain HTTP is used only for
//! loopback registries and those `TTA_INSECURE_REGISTRIES` names (comma-separated hosts).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The registry refused the credentials.
    #[error(
        "{0}: the registry refused access; set TTA_REGISTRY_TOKEN, or TTA_REGISTRY_USERNAME and TTA_REGISTRY_PASSWORD"
    )]
    Unauthorized(String),
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

    fn pinned(&self) -> Option<&str> {
        self.tag_or_digest.strip_prefix("sha256:")
    }

    /// The repository's API URL: HTTPS, or plain HTTP for a loopback registry and those
    /// `TTA_INSECURE_REGISTRIES` names.
    fn base(&self) -> Result<String, OciError> {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.");
        let allowed = std::env::var("TTA_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .any(|r| r.trim() == self.registry || r.trim() == host);
        let scheme = if loopback || allowed { "http" } else { "https" };
        Ok(format!("{scheme}://{}/v2/{}", self.registry, self.repository))
    }
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

/// A client for one command's pulls and pushes: bounded by `timeout` per request.
pub struct Client {
    http: reqwest::Client,
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Client {
    /// A client whose every request ends within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        tta_core::tls::install_default_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(4))
            .build()
            .unwrap_or_default();
        Client { http }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Ok(token) = std::env::var("TTA_REGISTRY_TOKEN") {
            return request.bearer_auth(token);
        }
        match (
            std::env::var("TTA_REGISTRY_USERNAME"),
            std::env::var("TTA_REGISTRY_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => request.basic_auth(user, Some(password)),
            _ => request,
        }
    }

    async fn send(
        &self,
        reference: &Reference,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<reqwest::Response, OciError> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| OciError::Unreachable {
                reference: reference.to_string(),
                what: if e.is_timeout() {
                    format!("{what} timed out")
                } else {
                    format!("{what}: connection failed")
                },
            })?;
        match response.status().as_u16() {
            200..=299 => Ok(response),
            401 | 403 => Err(OciError::Unauthorized(reference.to_string())),
            404 => Err(OciError::NotFound(reference.to_string())),
            status => Err(OciError::Status {
                reference: reference.to_string(),
                status,
                what,
            }),
        }
    }

    /// Reads a body, refusing it past `limit` bytes.
    async fn bounded(
        &self,
        reference: &Reference,
        mut response: reqwest::Response,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, OciError> {
        let mut bytes = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|_| OciError::Unreachable {
                reference: reference.to_string(),
                what: format!("{what} stalled or broke off"),
            })?;
            let Some(chunk) = chunk else { break };
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(OciError::TooLarge {
                    reference: reference.to_string(),
                    size: bytes.len() as u64,
                    limit,
                });
            }
        }
        Ok(bytes)
    }

    /// Pulls the component `reference` names into `cache` (by digest), verified, and
    /// returns the file and its digest. A component over `limit` bytes is refused before
    /// it is fetched.
    pub async fn pull(&self, reference: &Reference, cache: &Path, limit: u64) -> Result<(PathBuf, String), OciError> {
        let base = reference.base()?;
        let named = |why: String| OciError::NotWasm {
            reference: reference.to_string(),
            why,
        };
        let response = self
            .send(
                reference,
                self.http
                    .get(format!("{base}/manifests/{}", reference.tag_or_digest))
                    .header("accept", MANIFEST),
                "the manifest",
            )
            .await?;
        let body = self.bounded(reference, response, 4 << 20, "the manifest").await?;
        if let Some(pinned) = reference.pinned() {
            let actual = digest_of(&body);
            if actual != format!("sha256:{pinned}") {
                return Err(OciError::DigestMismatch {
                    reference: reference.to_string(),
                    what: "manifest",
                    expected: format!("sha256:{pinned}"),
                    actual,
                });
            }
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| named("its manifest is not JSON".into()))?;
        let config_type = manifest["config"]["mediaType"].as_str().unwrap_or("none");
        if config_type != WASM_CONFIG {
            return Err(named(format!(
                "its config is {config_type:?}, not {WASM_CONFIG:?} (a container image?)"
            )));
        }
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let wasm: Vec<_> = layers.iter().filter(|l| l["mediaType"] == WASM_LAYER).collect();
        let [layer] = wasm.as_slice() else {
            return Err(named(format!("it has {} `{WASM_LAYER}` layers, not one", wasm.len())));
        };
        let digest = layer["digest"].as_str().unwrap_or_default().to_owned();
        let hex_digest = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| named(format!("its layer's digest {digest:?} is not a sha256 digest")))?;
        let size = layer["size"].as_u64().unwrap_or(u64::MAX);
        if size > limit {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size,
                limit,
            });
        }
        let dir = cache.join("oci/sha256");
        let path = dir.join(format!("{hex_digest}.wasm"));
        if path.is_file() {
            return Ok((path, digest));
        }
        let response = self
            .send(reference, self.http.get(format!("{base}/blobs/{digest}")), "the layer")
            .await?;
        let bytes = self.bounded(reference, response, limit, "the layer").await?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                what: "layer",
                expected: digest,
                actual,
            });
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| OciError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let temporary = dir.join(format!(".{hex_digest}.{}.tmp", std::process::id()));
        std::fs::write(&temporary, &bytes).map_err(io(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(io(&path))?;
        Ok((path, digest))
    }

    /// Pushes the component `bytes` as `reference`; returns the manifest's digest.
    pub async fn push(&self, reference: &Reference, bytes: &[u8]) -> Result<String, OciError> {
        let base = reference.base()?;
        let layer_digest = digest_of(bytes);
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer_digest],
        })
        .to_string()
        .into_bytes();
        let config_digest = digest_of(&config);
        for (blob, digest) in [(&config[..], &config_digest), (bytes, &layer_digest)] {
            let started = self
                .send(
                    reference,
                    self.http.post(format!("{base}/blobs/uploads/")),
                    "starting an upload",
                )
                .await?;
            let location = started
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let url = if location.starts_with("http") {
                location
            } else {
                let origin = base.split("/v2/").next().unwrap_or_default();
                format!("{origin}{location}")
            };
            let separator = if url.contains('?') { '&' } else { '?' };
            self.send(
                reference,
                self.http
                    .put(format!("{url}{separator}digest={digest}"))
                    .header("content-type", "application/octet-stream")
                    .body(blob.to_vec()),
                "uploading a blob",
            )
            .await?;
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": WASM_CONFIG,
            "config": { "mediaType": WASM_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": WASM_LAYER, "digest": layer_digest, "size": bytes.len() }],
        })
        .to_string()
        .into_bytes();
        let digest = digest_of(&manifest);
        self.send(
            reference,
            self.http
                .put(format!("{base}/manifests/{}", reference.tag_or_digest))
                .header("content-type", MANIFEST)
                .body(manifest),
            "the manifest",
        )
        .await?;
        Ok(digest)
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
        assert_eq!(tagged.base().expect("loopback"), "http://127.0.0.1:5000/v2/tta/echo");
        let remote = Reference::parse("oci://ghcr.io/a/b:1").expect("remote");
        assert!(remote.base().expect("https").starts_with("https://"));
    }
}
