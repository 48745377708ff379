//! Pulls and pushes over the distribution API, each request bounded by the configured
//! timeout and every body read bounded by a size.

use super::auth::{Challenge, Credentials, Tokens};
use super::{MANIFEST, OciError, Reference, WASM_CONFIG, WASM_LAYER};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tta_core::config::RegistryConfig;

/// A client for one command's (or one server's) pulls and pushes.
pub struct Client {
    http: reqwest::Client,
    insecure: Vec<String>,
    credentials: Credentials,
    tokens: Tokens,
    max_cached: u64,
}

/// Where a reference points now, as [`Client::resolve`] found it.
#[derive(Debug)]
pub struct Resolved {
    /// The file that stands for the reference.
    pub path: PathBuf,
    /// The layer's digest.
    pub digest: String,
    /// Whether the file changed: first resolved, or the tag moved.
    pub moved: bool,
}

pub(super) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Client {
    /// A client by `config` (its timeout per request, its insecure registries), with the
    /// environment's credentials.
    pub fn new(config: &RegistryConfig) -> Self {
        tta_core::tls::install_default_provider();
        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(4))
            .build()
            .unwrap_or_default();
        Client {
            http,
            insecure: config.insecure.clone(),
            credentials: Credentials::from_env(),
            tokens: Tokens::default(),
            max_cached: config.cache_max_bytes,
        }
    }

    /// Sends the request `make` builds, with the credentials or the token obtained for the
    /// repository; a `401` with a bearer challenge is answered once by a token exchange.
    async fn send(
        &self,
        reference: &Reference,
        make: impl Fn() -> reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<reqwest::Response, OciError> {
        let key = format!("{}/{}", reference.registry, reference.repository);
        let mut bearer = self.tokens.get(&key);
        let mut exchanged = false;
        loop {
            let request = match &bearer {
                Some(token) => make().bearer_auth(token),
                None => self.credentials.apply(make()),
            };
            let response = request.send().await.map_err(|e| OciError::Unreachable {
                reference: reference.to_string(),
                what: if e.is_timeout() {
                    format!("{what} timed out")
                } else {
                    format!("{what}: connection failed")
                },
            })?;
            let status = response.status().as_u16();
            if status == 401 && !exchanged {
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                if let Some(challenge) = challenge {
                    exchanged = true;
                    bearer = Some(
                        self.tokens
                            .exchange(
                                &self.http,
                                &self.credentials,
                                &challenge,
                                &self.insecure,
                                &reference.to_string(),
                                &key,
                            )
                            .await?,
                    );
                    continue;
                }
            }
            return match status {
                200..=299 => Ok(response),
                401 | 403 => Err(OciError::Unauthorized {
                    reference: reference.to_string(),
                    why: format!("the registry refused access to {what} ({status})"),
                }),
                404 => Err(OciError::NotFound(reference.to_string())),
                status => Err(OciError::Status {
                    reference: reference.to_string(),
                    status,
                    what,
                }),
            };
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
        let base = reference.base(&self.insecure);
        let named = |why: String| OciError::NotWasm {
            reference: reference.to_string(),
            why,
        };
        let url = format!("{base}/manifests/{}", reference.tag_or_digest);
        let response = self
            .send(
                reference,
                || self.http.get(&url).header("accept", MANIFEST),
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
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
            .ok_or_else(|| named(format!("its layer's digest {digest:?} is not a sha256 digest")))?;
        let size = layer["size"].as_u64().unwrap_or(u64::MAX);
        if size > limit {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size,
                limit,
            });
        }
        let path = super::store::blob_path(cache, hex_digest);
        if path.is_file() {
            return Ok((path, digest));
        }
        let url = format!("{base}/blobs/{digest}");
        let response = self.send(reference, || self.http.get(&url), "the layer").await?;
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
        super::store::keep(&path, &bytes)?;
        super::store::evict(cache, self.max_cached, &path);
        Ok((path, digest))
    }

    /// Pulls `reference` as [`Client::pull`] does and points the file that stands for it
    /// ([`super::resolved_path`]) at what it names now.
    pub async fn resolve(&self, reference: &Reference, cache: &Path, limit: u64) -> Result<Resolved, OciError> {
        let (blob, digest) = self.pull(reference, cache, limit).await?;
        let path = super::resolved_path(cache, reference);
        let moved = super::store::link(&blob, &path)?;
        Ok(Resolved { path, digest, moved })
    }

    /// Pushes the component `bytes` as `reference`; returns the manifest's digest.
    pub async fn push(&self, reference: &Reference, bytes: &[u8]) -> Result<String, OciError> {
        let base = reference.base(&self.insecure);
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
            let uploads = format!("{base}/blobs/uploads/");
            let started = self
                .send(reference, || self.http.post(&uploads), "starting an upload")
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
            let put = format!("{url}{separator}digest={digest}");
            self.send(
                reference,
                || {
                    self.http
                        .put(&put)
                        .header("content-type", "application/octet-stream")
                        .body(blob.to_vec())
                },
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
        let url = format!("{base}/manifests/{}", reference.tag_or_digest);
        self.send(
            reference,
            || {
                self.http
                    .put(&url)
                    .header("content-type", MANIFEST)
                    .body(manifest.clone())
            },
            "the manifest",
        )
        .await?;
        Ok(digest)
    }
}
