//! Exit codes, stable for scripts, and the code of each failure, chosen by its type.

use tta_core::error::{CallError, ErrorClass, StepError, StepErrorKind};

/// Success.
pub const OK: u8 = 0;
/// A host-side failure (bad config, I/O).
pub const HOST: u8 = 1;
/// Bad command-line usage (from clap).
pub const USAGE: u8 = 2;
/// A component was rejected at load.
pub const LOAD: u8 = 3;
/// The primitive returned an error.
pub const GUEST_ERROR: u8 = 4;
/// The guest trapped.
pub const TRAP: u8 = 5;
/// The call hit a limit: fuel, deadline, memory, stack, payload size, nesting.
pub const LIMIT: u8 = 6;
/// A workflow file is invalid.
pub const INVALID_WORKFLOW: u8 = 7;
/// `replay`: the guest asked an import for something the recording does not have there.
pub const REPLAY_IMPORT: u8 = 8;
/// `replay`: the output differs.
pub const REPLAY_OUTPUT: u8 = 9;
/// `replay`: the error differs, or one run failed and the other did not.
pub const REPLAY_ERROR: u8 = 10;
/// `replay`: the span tree differs.
pub const REPLAY_SPANS: u8 = 11;
/// `replay`: only the fuel differs.
pub const REPLAY_FUEL: u8 = 12;
/// `replay`: the recording cannot be read.
pub const BAD_RECORDING: u8 = 13;

/// The exit code of a failed call.
pub fn exit_code(error: &CallError) -> u8 {
    match error {
        CallError::Guest(_) => GUEST_ERROR,
        CallError::Trap { .. } => TRAP,
        e if e.is_limit() => LIMIT,
        CallError::UnknownPrimitive { .. } => LOAD,
        _ => HOST,
    }
}

/// The exit code of a failed workflow run.
pub fn step_exit_code(error: &StepError) -> u8 {
    match error.kind {
        StepErrorKind::Call(ErrorClass::Trap) => TRAP,
        kind if kind.is_limit() => LIMIT,
        _ => GUEST_ERROR,
    }
}
