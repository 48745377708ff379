//! Why a file was not accepted as a primitive.

use std::path::PathBuf;

/// The WIT worlds a primitive may fit, one per contract version the host loads.
pub const WORLD: &str = "tta:primitives/primitive-plugin@0.1.0` or `@0.2.0";

/// Why a file was not accepted as a primitive.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist.
    #[error("{}: no such file; check the path, or build the plugins with `cargo xtask plugins`", .path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("{}: not a WebAssembly file (it does not start with `\\0asm`); pass a `.wasm` component", .path.display())]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before a complete header.
    #[error("{}: truncated: {len} bytes is too short for a WebAssembly header; rebuild or re-copy the file", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A core module where a component is needed.
    #[error(
        "{}: this is a core WebAssembly module, not a component; build it as a component: \
         `cargo build --target wasm32-wasip2`, or `wasm-tools component new {} -o component.wasm`",
        .path.display(), .path.display()
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// The component failed validation or compilation (including truncation inside it).
    #[error("{}: invalid component: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// wasmtime's reason, with the byte offset where it applies.
        reason: String,
    },
    /// A valid component that does not fit the `primitive-plugin` world.
    #[error("{}: does not fit world `{WORLD}`: {reason}", .path.display())]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The missing or mismatched import or export.
        reason: String,
    },
    /// `describe()` failed or returned unusable metadata.
    #[error("{}: describe() failed: {reason}", .path.display())]
    Describe {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Two files describe primitives with the same name.
    #[error("{}: primitive name `{name}` is already taken by {}; rename one of them in describe()", .path.display(), .existing.display())]
    Duplicate {
        /// The file rejected.
        path: PathBuf,
        /// The name both use.
        name: String,
        /// The file loaded first.
        existing: PathBuf,
    },
}

impl LoadError {
    /// A short, stable name of the kind of rejection, for APIs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::NotFound { .. } => "not_found",
            LoadError::Io { .. } => "io",
            LoadError::NotWasm { .. } => "not_wasm",
            LoadError::Truncated { .. } => "truncated",
            LoadError::CoreModule { .. } => "core_module",
            LoadError::Invalid { .. } => "invalid_component",
            LoadError::WrongWorld { .. } => "wrong_world",
            LoadError::Describe { .. } => "describe_failed",
            LoadError::Duplicate { .. } => "duplicate_name",
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            LoadError::NotFound { path }
            | LoadError::Io { path, .. }
            | LoadError::NotWasm { path }
            | LoadError::Truncated { path, .. }
            | LoadError::CoreModule { path }
            | LoadError::Invalid { path, .. }
            | LoadError::WrongWorld { path, .. }
            | LoadError::Describe { path, .. }
            | LoadError::Duplicate { path, .. } => path,
        }
    }

    /// The same error about `shown` instead of its file: what a tenant is told about its
    /// upload, which names the upload and never the host's directories.
    #[must_use]
    pub fn shown_as(mut self, shown: &std::path::Path) -> Self {
        match &mut self {
            LoadError::NotFound { path }
            | LoadError::Io { path, .. }
            | LoadError::NotWasm { path }
            | LoadError::Truncated { path, .. }
            | LoadError::CoreModule { path }
            | LoadError::Invalid { path, .. }
            | LoadError::WrongWorld { path, .. }
            | LoadError::Describe { path, .. } => shown.clone_into(path),
            LoadError::Duplicate { path, existing, .. } => {
                shown.clone_into(path);
                if let Some(name) = existing.file_name() {
                    *existing = std::path::PathBuf::from(name);
                }
            }
        }
        self
    }
}
