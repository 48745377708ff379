//! The on-disk cache of compiled components, keyed by content hash.
//!
//! Deserializing a compiled artifact runs native code from it, so the cache only ever
//! deserializes bytes this host wrote itself: each artifact is stored with an HMAC under
//! a random key kept in the cache directory (readable by its owner only), and anything
//! that fails the check is recompiled and overwritten. Writes go to a temporary file
//! that is renamed into place, so a crash never leaves a half-written artifact behind.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Opens (creating if needed) the cache in `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        restrict_permissions(dir, 0o700)?;
        let key = load_or_create_key(&dir.join("key"))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            key,
            engine_hash: hasher.finish(),
        })
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
            return Ok((component, Origin::Cached));
        }
        let artifact = engine.precompile_component(wasm)?;
        // SAFETY: `artifact` was produced just now by `precompile_component` on this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache; continuing without it");
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
