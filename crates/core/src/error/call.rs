//! Why a call produced no output, and the closed set of classes a failure falls in.

use crate::bindings::{ErrorKind, WitError};
use std::fmt;
use std::time::Duration;

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

    /// The kind of WIT name `name` (`invalid-input`, …).
    #[must_use]
    pub fn parse(name: &str) -> Option<ErrorKind> {
        [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
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
    /// The class of this error, from a closed set.
    pub fn class(&self) -> ErrorClass {
        match self {
            CallError::UnknownPrimitive { .. } => ErrorClass::NotFound,
            CallError::InputTooLarge { .. } | CallError::OutputTooLarge { .. } => ErrorClass::PayloadTooLarge,
            CallError::OutOfFuel { .. } => ErrorClass::FuelExhausted,
            CallError::DeadlineExceeded { .. } => ErrorClass::DeadlineExceeded,
            CallError::MemoryLimit { .. } => ErrorClass::MemoryLimit,
            CallError::StackExhausted { .. } => ErrorClass::StackExhausted,
            CallError::Trap { .. } => ErrorClass::Trap,
            CallError::Guest(e) => match e.kind {
                ErrorKind::InvalidInput => ErrorClass::InvalidInput,
                ErrorKind::NotFound => ErrorClass::NotFound,
                ErrorKind::Unavailable => ErrorClass::Unavailable,
                ErrorKind::Timeout => ErrorClass::Timeout,
                ErrorKind::Internal => ErrorClass::Internal,
            },
            CallError::InvokeDepth { .. } => ErrorClass::InvokeDepth,
            CallError::Instantiate(_) => ErrorClass::Instantiate,
            CallError::Host(_) => ErrorClass::Host,
        }
    }

    /// A short, stable name of the error class for metrics, logs and APIs.
    pub fn error_type(&self) -> &'static str {
        self.class().name()
    }

    /// Whether the call hit a resource limit (as opposed to failing on its own).
    pub fn is_limit(&self) -> bool {
        self.class().is_limit()
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

/// The class of a failed call: the `error_type` label of `primitive_errors_total`, the
/// `type` of a problem document, the `error.type` of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// No such primitive, or the guest said `not-found`.
    NotFound,
    /// The input or the output is over its limit.
    PayloadTooLarge,
    /// The call burned its fuel.
    FuelExhausted,
    /// The call ran past its deadline.
    DeadlineExceeded,
    /// The guest grew memory past its limit.
    MemoryLimit,
    /// The guest exhausted its stack.
    StackExhausted,
    /// The guest trapped.
    Trap,
    /// The guest said `invalid-input`.
    InvalidInput,
    /// The guest said `unavailable`, or a remote primitive could not be reached.
    Unavailable,
    /// The guest said `timeout`.
    Timeout,
    /// The guest said `internal`.
    Internal,
    /// `invoke` nested too deep.
    InvokeDepth,
    /// The component could not be instantiated.
    Instantiate,
    /// The host failed.
    Host,
}

impl ErrorClass {
    /// Every class, for lookups by name.
    pub const ALL: [ErrorClass; 14] = [
        ErrorClass::NotFound,
        ErrorClass::PayloadTooLarge,
        ErrorClass::FuelExhausted,
        ErrorClass::DeadlineExceeded,
        ErrorClass::MemoryLimit,
        ErrorClass::StackExhausted,
        ErrorClass::Trap,
        ErrorClass::InvalidInput,
        ErrorClass::Unavailable,
        ErrorClass::Timeout,
        ErrorClass::Internal,
        ErrorClass::InvokeDepth,
        ErrorClass::Instantiate,
        ErrorClass::Host,
    ];

    /// Its stable name, e.g. `fuel_exhausted`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::NotFound => "not_found",
            ErrorClass::PayloadTooLarge => "payload_too_large",
            ErrorClass::FuelExhausted => "fuel_exhausted",
            ErrorClass::DeadlineExceeded => "deadline_exceeded",
            ErrorClass::MemoryLimit => "memory_limit",
            ErrorClass::StackExhausted => "stack_exhausted",
            ErrorClass::Trap => "trap",
            ErrorClass::InvalidInput => "invalid_input",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Internal => "internal",
            ErrorClass::InvokeDepth => "invoke_depth",
            ErrorClass::Instantiate => "instantiate",
            ErrorClass::Host => "host",
        }
    }

    /// The class named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether it is a resource limit (as opposed to a failure of the call's own).
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            ErrorClass::PayloadTooLarge
                | ErrorClass::FuelExhausted
                | ErrorClass::DeadlineExceeded
                | ErrorClass::MemoryLimit
                | ErrorClass::StackExhausted
                | ErrorClass::InvokeDepth
        )
    }
}
