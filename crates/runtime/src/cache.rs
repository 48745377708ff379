//! The on-disk cache of compiled components, keyed by content hash.
//!
//! Deserializing a compiled artifact runs native code from it, so the cache only ever
//! deserializes bytes this host wrote itself: each artifact is stored with an HMAC under
//! a random key kept in the cache directory (readable by its owner only), and anything
//! that fails the check is recompiled and overwritten. Writes go to a temporary file
//! that is renamed into place, so a crash never leaves a half-written artifact behind.
//!
//! The cache is bounded: past `cache_max_bytes` the least recently used artifacts (by
//! modification time, which a hit refreshes) are removed, and an upload's artifact goes
//! with the upload. Losing an artifact only costs a compile the next time it is loaded.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;

/// A directory of compiled components.
#[derive(Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_hash: u64,
    max_bytes: u64,
    stats: Arc<Stats>,
    /// Held while artifacts are evicted, so two evictions never race over one directory.
    evicting: Mutex<()>,
}

/// What the cache's gauges show.
#[derive(Debug, Default)]
struct Stats {
    bytes: AtomicU64,
    max_bytes: AtomicU64,
    evictions: AtomicU64,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (and stored, if the cache is on).
    Compiled,
    /// Loaded from the cache.
    Cached,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache in `dir` for artifacts of `engine`, holding at
    /// most `max_bytes` of them.
    pub fn open(dir: &Path, engine: &Engine, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        restrict_permissions(dir, 0o700)?;
        let key = load_or_create_key(&dir.join("key"))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        let cache = ArtifactCache {
            dir: dir.to_owned(),
            key,
            engine_hash: hasher.finish(),
            max_bytes,
            stats: Arc::default(),
            evicting: Mutex::new(()),
        };
        cache.stats.max_bytes.store(max_bytes, Ordering::Relaxed);
        cache.evict(None);
        Ok(cache)
    }

    /// The cache's gauges, to register with the metrics registry: its size, its bound and
    /// the artifacts it evicted.
    pub fn gauges(&self) -> CacheGauges {
        CacheGauges::new(Arc::clone(&self.stats))
    }

    /// Bytes of artifacts on disk, as last counted.
    pub fn size_bytes(&self) -> u64 {
        self.stats.bytes.load(Ordering::Relaxed)
    }

    /// Removes the artifact of the component whose SHA-256 is `digest` (hex), if cached:
    /// an upload's, when it is deleted.
    pub fn remove(&self, digest: &str) {
        let Some(prefix) = digest.get(..32) else {
            return;
        };
        let path = self.dir.join(format!("{prefix}-{:016x}.cwasm", self.engine_hash));
        if let Ok(meta) = std::fs::metadata(&path)
            && std::fs::remove_file(&path).is_ok()
        {
            let _ = self
                .stats
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(meta.len()))
                });
        }
    }

    /// Counts the artifacts and removes the least recently used until they fit in
    /// `max_bytes`, never `keep` (the one just written).
    fn evict(&self, keep: Option<&Path>) {
        let _evicting = self.evicting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut artifacts: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = artifacts.iter().map(|(_, len, _)| len).sum();
        if total > self.max_bytes {
            artifacts.sort();
            for (_, len, path) in &artifacts {
                if total <= self.max_bytes {
                    break;
                }
                if Some(path.as_path()) == keep {
                    continue;
                }
                if std::fs::remove_file(path).is_ok() {
                    total -= len;
                    self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(artifact = %path.display(), "evicted from the compile cache");
                }
            }
        }
        self.stats.bytes.store(total, Ordering::Relaxed);
    }

    fn artifact_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir
            .join(format!("{}-{:016x}.cwasm", &digest[..32], self.engine_hash))
    }

    fn tag(&self, artifact: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(artifact);
        mac.finalize().into_bytes().into()
    }

    /// Returns the compiled component for `wasm`, from the cache when a valid artifact is there.
    pub fn load_or_compile(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Component, Origin)> {
        let path = self.artifact_path(wasm);
        if let Ok(stored) = std::fs::read(&path)
            && let Some(component) = self.deserialize_verified(engine, &stored)
        {
            // A hit makes the artifact the most recently used.
            if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                let _ = file.set_modified(SystemTime::now());
            }
            return Ok((component, Origin::Cached));
        }
        let artifact = engine.precompile_component(wasm)?;
        // SAFETY: `artifact` was produced just now by `precompile_component` on this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        match self.store(&path, &artifact) {
            Ok(()) => self.evict(Some(&path)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache; continuing without it");
            }
        }
        Ok((component, Origin::Compiled))
    }

    fn deserialize_verified(&self, engine: &Engine, stored: &[u8]) -> Option<Component> {
        let split = stored.len().checked_sub(TAG_LEN)?;
        let (artifact, tag) = stored.split_at(split);
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(artifact);
        mac.verify_slice(tag).ok()?;
        // SAFETY: the HMAC proves these bytes were written by `store` from the output of
        // `precompile_component`; wasmtime further checks engine compatibility.
        unsafe { Component::deserialize(engine, artifact) }.ok()
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(artifact)?;
        tmp.write_all(&self.tag(artifact))?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// `compile_cache_size_bytes`, `compile_cache_max_bytes` and
/// `compile_cache_evictions_total`, read when scraped.
pub struct CacheGauges {
    stats: Arc<Stats>,
    size: prometheus::IntGauge,
    max: prometheus::IntGauge,
    evictions: prometheus::IntCounter,
}

impl CacheGauges {
    #[allow(clippy::expect_used)]
    fn new(stats: Arc<Stats>) -> Self {
        CacheGauges {
            stats,
            size: prometheus::IntGauge::new(
                "compile_cache_size_bytes",
                "Bytes of compiled components in the on-disk cache.",
            )
            .expect("static metric definition"),
            max: prometheus::IntGauge::new(
                "compile_cache_max_bytes",
                "The cache's bound (cache_max_bytes); past it the least recently used artifacts are removed.",
            )
            .expect("static metric definition"),
            evictions: prometheus::IntCounter::new(
                "compile_cache_evictions_total",
                "Compiled components removed from the cache to keep it under its bound.",
            )
            .expect("static metric definition"),
        }
    }
}

impl prometheus::core::Collector for CacheGauges {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut descs = self.size.desc();
        descs.extend(self.max.desc());
        descs.extend(self.evictions.desc());
        descs
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.size.set(gauge(self.stats.bytes.load(Ordering::Relaxed)));
        self.max.set(gauge(self.stats.max_bytes.load(Ordering::Relaxed)));
        let evictions = self.stats.evictions.load(Ordering::Relaxed);
        self.evictions.inc_by(evictions.saturating_sub(self.evictions.get()));
        let mut families = self.size.collect();
        families.extend(self.max.collect());
        families.extend(self.evictions.collect());
        families
    }
}

fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&key)?;
    tmp.as_file().sync_all()?;
    restrict_permissions(tmp.path(), 0o600)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(key)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
