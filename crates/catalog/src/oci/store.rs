//! Pulled components on disk, under `<cache>/oci`: each verified layer once, by digest
//! (`sha256/<hex>.wasm`), and for each reference `serve` serves, a file that stands for it
//! (`refs/<registry>/<repository>/<tag>.wasm`), a hard link to the digest it points at now.
//! Moving a tag swaps that link atomically, so the loader sees a changed file at a stable
//! path and replaces the old component only if the new one loads. The digest files are
//! bounded by `registry.cache_max_bytes`: past it, the oldest that no link holds go.

use super::{OciError, Reference};
use std::path::{Path, PathBuf};

/// The directory pulled components are kept under: the compile cache's, or a temporary
/// one when the cache is off.
pub fn cache_root(config: &tta_core::config::HostConfig) -> PathBuf {
    config
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("tta-host"))
}

/// Where the verified layer with digest `sha256:<hex>` is kept.
pub(super) fn blob_path(cache: &Path, hex: &str) -> PathBuf {
    cache.join("oci/sha256").join(format!("{hex}.wasm"))
}

/// The file that stands for `reference` once it is resolved.
pub fn resolved_path(cache: &Path, reference: &Reference) -> PathBuf {
    let registry = reference.registry.replace(':', "_");
    let tag = reference.tag_or_digest.replace(':', "-");
    cache
        .join("oci/refs")
        .join(registry)
        .join(&reference.repository)
        .join(format!("{tag}.wasm"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_owned();
    move |source| OciError::Io { path, source }
}

/// Writes verified `bytes` to `path` through a temporary file, so no reader ever sees half.
pub(super) fn keep(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))
}

/// Points `link` at `blob`; returns whether it pointed elsewhere (or nowhere) before.
pub(super) fn link(blob: &Path, link: &Path) -> Result<bool, OciError> {
    if same_inode(blob, link) {
        return Ok(false);
    }
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temporary = dir.join(format!(".link.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    if std::fs::hard_link(blob, &temporary).is_err() {
        std::fs::copy(blob, &temporary).map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, link).map_err(io(link))?;
    Ok(true)
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether a link under `refs/` still holds the digest file at `path`.
#[cfg(unix)]
fn linked(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.nlink() > 1
}

#[cfg(not(unix))]
fn linked(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Removes the oldest digest files no link holds, except `spare` (just pulled), until the
/// rest fit in `max_bytes`; returns how many went.
pub(super) fn evict(cache: &Path, max_bytes: u64, spare: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(cache.join("oci/sha256")) else {
        return 0;
    };
    let mut files: Vec<(std::time::SystemTime, u64, bool, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| {
                (
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    meta.len(),
                    linked(&meta),
                    e.path(),
                )
            })
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut removed = 0;
    for (_, size, held, path) in files {
        if total <= max_bytes {
            break;
        }
        if !held && path != spare && std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(size);
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_swap_atomically_and_eviction_spares_what_they_hold() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = dir.path();
        let reference = Reference::parse("oci://127.0.0.1:5000/tta/echo:live").expect("a reference");
        let stands_for = resolved_path(cache, &reference);
        assert!(stands_for.ends_with("oci/refs/127.0.0.1_5000/tta/echo/live.wasm"));
        let (a, b) = (blob_path(cache, &"a".repeat(64)), blob_path(cache, &"b".repeat(64)));
        keep(&a, &[1; 100]).expect("a");
        keep(&b, &[2; 100]).expect("b");
        assert!(link(&a, &stands_for).expect("first link"), "new");
        assert!(!link(&a, &stands_for).expect("same"), "unchanged");
        assert!(link(&b, &stands_for).expect("moved"), "moved");
        assert_eq!(std::fs::read(&stands_for).expect("read"), [2; 100]);
        let c = blob_path(cache, &"c".repeat(64));
        keep(&c, &[3; 100]).expect("c");
        assert_eq!(evict(cache, 100, &c), 1, "the unheld one goes, not the one just pulled");
        assert!(!a.exists() && b.exists() && c.exists());
        assert_eq!(evict(cache, 0, &c), 0, "a held one stays");
    }
}
