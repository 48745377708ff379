//! The errors of the library boundary: why a component was not loaded, why a call failed,
//! and why a workflow step failed.
//!
//! Every message says what happened, where, and how to fix it, in one line. Traps are
//! classified by downcasting wasmtime's error chain, never by matching its text, and each
//! error has a class from a closed set ([`ErrorClass`], [`StepErrorKind`]) that labels
//! metrics and picks exit codes.

mod call;
mod load;
mod step;

pub use call::{CallError, ErrorClass, GuestError};
pub use load::{LoadError, WORLD};
pub use step::{StepError, StepErrorKind};
