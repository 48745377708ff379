//! Why a workflow step failed: the call's class, or a combinator's own reason.

use super::call::{CallError, ErrorClass};

/// The kind of a step's failure, from a closed set: it labels metrics and spans, names the
/// problem `type` of the API, and picks the CLI's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepErrorKind {
    /// A primitive call failed, here or at a remote tta-host, with this class.
    Call(ErrorClass),
    /// A router found no route for its input.
    NoRoute,
    /// A circuit breaker was open.
    CircuitOpen,
    /// Every alternative of a fallback failed.
    AllFailed,
    /// A condition needed JSON and the input is not.
    NotJson,
    /// A remote tta-host answered an error of a type this host does not know.
    RemoteError,
}

impl StepErrorKind {
    /// Its stable name, e.g. `trap` or `no_route`.
    pub fn name(self) -> &'static str {
        match self {
            StepErrorKind::Call(class) => class.name(),
            StepErrorKind::NoRoute => "no_route",
            StepErrorKind::CircuitOpen => "circuit_open",
            StepErrorKind::AllFailed => "all_failed",
            StepErrorKind::NotJson => "not_json",
            StepErrorKind::RemoteError => "remote_error",
        }
    }

    /// The kind named `name` (a remote host's problem `type`); unknown names are `RemoteError`.
    pub fn from_name(name: &str) -> Self {
        if let Some(class) = ErrorClass::from_name(name) {
            return StepErrorKind::Call(class);
        }
        [
            StepErrorKind::NoRoute,
            StepErrorKind::CircuitOpen,
            StepErrorKind::AllFailed,
            StepErrorKind::NotJson,
        ]
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or(StepErrorKind::RemoteError)
    }

    /// Whether a call hit a resource limit.
    pub fn is_limit(self) -> bool {
        matches!(self, StepErrorKind::Call(class) if class.is_limit())
    }
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("step `{step}` failed ({}): {message}", .kind.name())]
pub struct StepError {
    /// The step that failed (for a combinator, the one whose failure it reports).
    pub step: String,
    /// What kind of failure.
    pub kind: StepErrorKind,
    /// What happened.
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// Whether a guest trapped (for a parallel step: any of its branches).
    pub trap: bool,
    /// How long the failed dependency asked to be left alone before a retry (an HTTP
    /// `Retry-After` the guest reported); `retry` waits at least this long.
    pub retry_after: Option<std::time::Duration>,
}

impl StepError {
    /// A failure of `step`, not retryable.
    pub fn new(step: &str, kind: StepErrorKind, message: impl Into<String>) -> Self {
        StepError {
            step: step.to_owned(),
            kind,
            message: message.into(),
            retryable: false,
            trap: false,
            retry_after: None,
        }
    }

    /// The failure of `step` whose call failed with `error`.
    pub fn from_call(step: &str, error: &CallError) -> Self {
        StepError {
            step: step.to_owned(),
            kind: StepErrorKind::Call(error.class()),
            message: error.to_string(),
            retryable: match error {
                CallError::Guest(e) => e.retryable,
                CallError::DeadlineExceeded { .. } => true,
                _ => false,
            },
            trap: matches!(error, CallError::Trap { .. }),
            retry_after: None,
        }
    }

    /// The error type, as in `primitive_errors_total` (`invalid_input`, `trap`,
    /// `deadline_exceeded`, …), or a combinator's own (`no_route`, `circuit_open`, …).
    pub fn error_type(&self) -> &'static str {
        self.kind.name()
    }
}
