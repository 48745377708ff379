//! The errors of the library boundary: why a component was not loaded, and why a call failed.
//!
//! Every message says what happened, where, and how to fix it, in one line. Traps are
//! classified by downcasting wasmtime's error chain, never by matching its text.

use crate::bindings::{ErrorKind, WitError};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The WIT world every primitive must fit.
pub const WORLD: &str = "tta:primitives/primitive-plugin@0.1.0";

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

/// An error a guest returned through the WIT `error` record.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestError {
    /// Its kind.
    pub kind: ErrorKind,
    /// The guest's message.
    pub message: String,
    /// Whether the guest says a retry may succeed.
    pub retryable: bool,
}

impl ErrorKind {
    /// The WIT name of the kind, e.g. `invalid-input`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)?;
        if self.retryable {
            write!(f, " (retryable)")?;
        }
        Ok(())
    }
}

impl From<WitError> for GuestError {
    fn from(e: WitError) -> Self {
        GuestError {
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

impl From<GuestError> for WitError {
    fn from(e: GuestError) -> Self {
        WitError {
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

/// Why a call produced no output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// No loaded primitive has that name.
    #[error("no primitive named `{name}` is loaded; loaded: {}", list_or_none(.available))]
    UnknownPrimitive {
        /// The name asked for.
        name: String,
        /// The names that are loaded.
        available: Vec<String>,
    },
    /// The input is over the limit.
    #[error(
        "input is {size} bytes, over the limit of {limit}; send less or raise `limits.max_input_bytes` (a tenant: `quotas.max_request_bytes`)"
    )]
    InputTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The guest's output is over the limit.
    #[error(
        "output is {size} bytes, over the limit of {limit}; return less or raise `limits.max_output_bytes` (a tenant: `quotas.max_response_bytes`)"
    )]
    OutputTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The call burned all its fuel.
    #[error(
        "out of fuel: the call used its whole budget of {limit} fuel (an infinite loop?); raise `limits.fuel` (a tenant: `quotas.fuel`) if the work is legitimate"
    )]
    OutOfFuel {
        /// The budget.
        limit: u64,
    },
    /// The call ran past its wall-clock deadline.
    #[error("deadline exceeded: the call ran longer than {} ms and was stopped; raise `limits.timeout_ms` (a tenant: `quotas.timeout_ms`) if the work is legitimate", .limit.as_millis())]
    DeadlineExceeded {
        /// The deadline.
        limit: Duration,
    },
    /// The guest tried to grow memory past its limit.
    #[error(
        "memory limit: the guest asked for {requested} bytes of linear memory, over the limit of {limit}; raise `limits.max_memory_bytes` (a tenant: `quotas.max_memory_bytes`) if legitimate"
    )]
    MemoryLimit {
        /// The limit.
        limit: usize,
        /// What the guest asked for.
        requested: usize,
    },
    /// The guest exhausted its stack (runaway recursion).
    #[error("stack exhausted: the guest used more than {limit} bytes of stack (runaway recursion?){}", backtrace_suffix(.backtrace))]
    StackExhausted {
        /// The stack limit.
        limit: usize,
        /// The guest's backtrace.
        backtrace: String,
    },
    /// The guest trapped.
    #[error("guest trapped: {kind}{}{}", detail_suffix(.detail), backtrace_suffix(.backtrace))]
    Trap {
        /// The trap class, e.g. `wasm trap: wasm \`unreachable\` instruction executed`.
        kind: String,
        /// What the guest said last on stderr (a Rust panic message, say).
        detail: String,
        /// The guest's backtrace.
        backtrace: String,
    },
    /// The guest returned an error.
    #[error("primitive returned an error: {0}")]
    Guest(GuestError),
    /// `invoke` nested deeper than allowed.
    #[error("invoke nesting limit of {limit} reached (a primitive calling itself?)")]
    InvokeDepth {
        /// The limit.
        limit: u32,
    },
    /// Instantiation failed (e.g. the instance pool is exhausted).
    #[error("could not instantiate the component: {0}")]
    Instantiate(String),
    /// Anything else: a host-side failure.
    #[error("host error: {0}")]
    Host(String),
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn backtrace_suffix(backtrace: &str) -> String {
    if backtrace.is_empty() {
        String::new()
    } else {
        format!("\nguest backtrace:\n{backtrace}")
    }
}

impl CallError {
    /// A short, stable name of the error class for metrics, logs and APIs.
    pub fn error_type(&self) -> &'static str {
        match self {
            CallError::UnknownPrimitive { .. } => "not_found",
            CallError::InputTooLarge { .. } | CallError::OutputTooLarge { .. } => "payload_too_large",
            CallError::OutOfFuel { .. } => "fuel_exhausted",
            CallError::DeadlineExceeded { .. } => "deadline_exceeded",
            CallError::MemoryLimit { .. } => "memory_limit",
            CallError::StackExhausted { .. } => "stack_exhausted",
            CallError::Trap { .. } => "trap",
            CallError::Guest(e) => match e.kind {
                ErrorKind::InvalidInput => "invalid_input",
                ErrorKind::NotFound => "not_found",
                ErrorKind::Unavailable => "unavailable",
                ErrorKind::Timeout => "timeout",
                ErrorKind::Internal => "internal",
            },
            CallError::InvokeDepth { .. } => "invoke_depth",
            CallError::Instantiate(_) => "instantiate",
            CallError::Host(_) => "host",
        }
    }

    /// Whether the call hit a resource limit (as opposed to failing on its own).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            CallError::InputTooLarge { .. }
                | CallError::OutputTooLarge { .. }
                | CallError::OutOfFuel { .. }
                | CallError::DeadlineExceeded { .. }
                | CallError::MemoryLimit { .. }
                | CallError::StackExhausted { .. }
                | CallError::InvokeDepth { .. }
        )
    }

    /// How this error looks to a guest that called the failing primitive through `invoke`.
    pub fn to_guest_error(&self) -> GuestError {
        match self {
            CallError::Guest(e) => e.clone(),
            CallError::UnknownPrimitive { .. } => GuestError {
                kind: ErrorKind::NotFound,
                message: self.to_string(),
                retryable: false,
            },
            CallError::InputTooLarge { .. } => GuestError {
                kind: ErrorKind::InvalidInput,
                message: self.to_string(),
                retryable: false,
            },
            CallError::DeadlineExceeded { .. } => GuestError {
                kind: ErrorKind::Timeout,
                message: self.to_string(),
                retryable: true,
            },
            CallError::InvokeDepth { .. } | CallError::Instantiate(_) => GuestError {
                kind: ErrorKind::Unavailable,
                message: self.to_string(),
                retryable: false,
            },
            _ => GuestError {
                kind: ErrorKind::Internal,
                message: self.to_string(),
                retryable: false,
            },
        }
    }
}
