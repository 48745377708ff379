//! Files of primitives and workflows loaded into a host with an explicit policy: the one
//! loader of `load`, `run`, `validate`, `bench`, `serve --check`, `serve`'s start and its hot
//! reload. What each does with a failure is its [`Policy`]; what it prints is the caller's.
//! Components in OCI registries are pulled into the cache by digest ([`oci`]) and loaded
//! from there like any file; [`sources`] reads `server.plugins`.

pub mod oci;
pub mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tta_core::error::LoadError;
use tta_runtime::host::Host;
use tta_runtime::primitive::Primitive;
use tta_workflow::{Problem, Workflow};

/// What a scan remembers of a file to see that it changed: its size and modification time.
pub type Fingerprint = (u64, SystemTime);

/// What happens to the files of one load when some fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Stop at the first file that fails; those before it stay loaded (`run`'s target).
    FailFast,
    /// Try every file and report each that fails; a name loaded twice is a failure (`load`,
    /// `serve --check`).
    ReportAll,
    /// Add what is not loaded yet: a file or a name already loaded is skipped, failures are
    /// reported (the plugin directory of `run`, `validate` and `bench`, for `invoke`).
    Supplement,
    /// A file that loads replaces what was loaded from it before; one that fails leaves that
    /// version serving (`serve`'s start and its hot reload).
    KeepPrevious,
}

/// What became of one file.
#[derive(Debug)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// The primitive now registered from it, or why there is none.
    pub result: Result<Arc<Primitive>, LoadError>,
    /// Whether it replaced a primitive loaded from the same file.
    pub replaced: bool,
}

/// Loads each of `paths` into `host`'s shared primitives under `policy`, telling
/// `progress` (index, total, path) before each file; returns what became of each file tried.
pub async fn load_primitives(
    host: &Host,
    paths: Vec<PathBuf>,
    policy: Policy,
    mut progress: impl FnMut(usize, usize, &Path),
) -> Vec<Loaded> {
    let total = paths.len();
    let mut loaded = Vec::with_capacity(total);
    for (i, path) in paths.into_iter().enumerate() {
        if policy == Policy::Supplement && host.registry().primitives().any(|p| same_file(&p.path, &path)) {
            continue;
        }
        progress(i, total, &path);
        let outcome = load_one(host, path, policy).await;
        let failed = outcome.as_ref().is_some_and(|o| o.result.is_err());
        loaded.extend(outcome);
        if failed && policy == Policy::FailFast {
            break;
        }
    }
    loaded
}

/// Loads and registers one file; `None` when `Supplement` skips it for its name.
async fn load_one(host: &Host, path: PathBuf, policy: Policy) -> Option<Loaded> {
    let primitive = match host.inspect(&path).await {
        Ok(primitive) => primitive,
        Err(e) => {
            return Some(Loaded {
                path,
                result: Err(e),
                replaced: false,
            });
        }
    };
    if policy == Policy::Supplement && host.registry().get(&primitive.metadata.name).is_some() {
        return None;
    }
    let registered = host.update_registry(|registry| {
        let previous = match policy {
            Policy::KeepPrevious => registry.remove_path(&path),
            _ => Vec::new(),
        };
        registry.insert(Arc::clone(&primitive)).map(|()| !previous.is_empty())
    });
    Some(match registered {
        Ok(replaced) => Loaded {
            path,
            result: Ok(primitive),
            replaced,
        },
        Err(e) => Loaded {
            path,
            result: Err(e),
            replaced: false,
        },
    })
}

/// Every file with `extension` in `dir` (none if it cannot be read), sorted, with its
/// fingerprint.
pub fn list(dir: &Path, extension: &str) -> BTreeMap<PathBuf, Fingerprint> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .filter_map(|p| fingerprint(&p).map(|fp| (p, fp)))
        .collect()
}

/// The fingerprint of the file at `path`, if it is one.
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file()
        .then(|| (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// Why a workflow file gave no workflow.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowFileError {
    /// The file could not be read.
    #[error("{}: cannot read the workflow: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems: every one, with its place.
    #[error("{}: {} problem(s)", .path.display(), .problems.len())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its problems.
        problems: Vec<Problem>,
    },
}

/// Reads the workflow file at `path` and compiles it against `host`'s primitives.
pub fn read_workflow(host: &Host, path: &Path) -> Result<Workflow, WorkflowFileError> {
    compile_workflow(host, path, &read_workflow_text(path)?)
}

/// The text of the workflow file at `path`.
pub fn read_workflow_text(path: &Path) -> Result<String, WorkflowFileError> {
    std::fs::read_to_string(path).map_err(|source| WorkflowFileError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Compiles `text`, read from the workflow file at `path`, against `host`'s primitives.
pub fn compile_workflow(host: &Host, path: &Path, text: &str) -> Result<Workflow, WorkflowFileError> {
    Workflow::from_text(text, host).map_err(|problems| WorkflowFileError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Whether `a` and `b` name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
