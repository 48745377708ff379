//! The entries of `server.plugins`: where `serve` finds shared primitives besides
//! `plugins_dir`. An entry is a component file, a directory (its `*.wasm`), a pattern whose
//! last part has `*` wildcards (`plugins/*.wasm`), or an OCI reference. A reference is
//! pulled into the cache and served from a file that stands for the reference (see
//! [`oci::Client::resolve`]), so a tag that moves replaces what it served the way a changed
//! file does: the new component is loaded beside the old one and swapped in only if it loads.

use crate::oci::{self, OciError, Reference};
use crate::{Fingerprint, fingerprint, list};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One entry of `server.plugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A component file.
    File(PathBuf),
    /// Every `*.wasm` of a directory.
    Dir(PathBuf),
    /// The files of `dir` whose name matches `pattern` (`*` matches any run of characters).
    Pattern {
        /// The directory.
        dir: PathBuf,
        /// The file-name pattern.
        pattern: String,
    },
    /// A component in an OCI registry.
    Oci(Reference),
}

/// Why an entry of `server.plugins` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An `oci://` entry that does not parse.
    #[error("server.plugins: {0}")]
    Reference(#[from] OciError),
    /// A path that names nothing.
    #[error(
        "server.plugins: {0} is neither a component file, a directory, nor a pattern in an existing directory (like plugins/*.wasm)"
    )]
    Missing(PathBuf),
    /// A wildcard outside the file name.
    #[error("server.plugins: {0:?}: only the file name may have `*` wildcards (like plugins/*.wasm)")]
    Wildcard(String),
}

impl Source {
    /// Reads one entry (paths already made absolute by the config's loader).
    pub fn parse(entry: &str) -> Result<Source, SourceError> {
        if entry.starts_with("oci://") {
            return Ok(Source::Oci(Reference::parse(entry)?));
        }
        let path = Path::new(entry);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let dir = path.parent().unwrap_or(Path::new("."));
        if dir.to_string_lossy().contains('*') {
            return Err(SourceError::Wildcard(entry.to_owned()));
        }
        match name {
            Some(pattern) if pattern.contains('*') => {
                if dir.is_dir() {
                    Ok(Source::Pattern {
                        dir: dir.to_owned(),
                        pattern,
                    })
                } else {
                    Err(SourceError::Missing(path.to_owned()))
                }
            }
            _ if path.is_dir() => Ok(Source::Dir(path.to_owned())),
            _ if path.is_file() => Ok(Source::File(path.to_owned())),
            _ => Err(SourceError::Missing(path.to_owned())),
        }
    }

    /// The files this entry names now, with their fingerprints; for a reference, the file
    /// that stands for it in `cache` once it has been pulled.
    pub fn files(&self, cache: &Path) -> BTreeMap<PathBuf, Fingerprint> {
        match self {
            Source::File(path) => fingerprint(path).map(|fp| (path.clone(), fp)).into_iter().collect(),
            Source::Dir(dir) => list(dir, "wasm"),
            Source::Pattern { dir, pattern } => std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| matches(pattern, &n.to_string_lossy())))
                .filter_map(|p| fingerprint(&p).map(|fp| (p, fp)))
                .collect(),
            Source::Oci(reference) => {
                let path = oci::resolved_path(cache, reference);
                fingerprint(&path).map(|fp| (path, fp)).into_iter().collect()
            }
        }
    }
}

/// Reads every entry, or says what is wrong with each that cannot be used.
pub fn parse_all(entries: &[String]) -> Result<Vec<Source>, Vec<SourceError>> {
    let (sources, errors): (Vec<_>, Vec<_>) = entries.iter().map(|e| Source::parse(e)).partition(Result::is_ok);
    if errors.is_empty() {
        Ok(sources.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        assert!(matches("*.wasm", "echo.wasm"));
        assert!(matches("echo*", "echo.wasm"));
        assert!(matches("e*o.w*m", "echo.wasm"));
        assert!(matches("echo.wasm", "echo.wasm"));
        assert!(!matches("*.wasm", "echo.toml"));
        assert!(!matches("a*a", "a"));
        assert!(!matches("echo", "echo.wasm"));
    }

    #[test]
    fn entries_are_files_directories_patterns_or_references() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.wasm");
        std::fs::write(&file, b"x").expect("file");
        std::fs::write(dir.path().join("b.toml"), b"x").expect("file");
        let text = |p: &Path| p.to_string_lossy().into_owned();
        assert_eq!(Source::parse(&text(&file)).expect("a file"), Source::File(file.clone()));
        assert_eq!(
            Source::parse(&text(dir.path())).expect("a directory"),
            Source::Dir(dir.path().to_owned())
        );
        let pattern = Source::parse(&text(&dir.path().join("*.wasm"))).expect("a pattern");
        assert_eq!(
            pattern.files(dir.path()).into_keys().collect::<Vec<_>>(),
            std::slice::from_ref(&file)
        );
        assert!(matches!(
            Source::parse("oci://127.0.0.1:5000/a/b:1"),
            Ok(Source::Oci(_))
        ));
        assert!(matches!(
            Source::parse(&text(&dir.path().join("missing.wasm"))),
            Err(SourceError::Missing(_))
        ));
        assert!(matches!(
            Source::parse(&text(&dir.path().join("*/x.wasm"))),
            Err(SourceError::Wildcard(_))
        ));
        assert!(matches!(Source::parse("oci://nope"), Err(SourceError::Reference(_))));
        let errors = parse_all(&["oci://nope".into(), text(&file)]).expect_err("one bad entry");
        assert_eq!(errors.len(), 1);
    }
}
