//! How a call ended, told from wasmtime's error chain by downcasting, never by its text.

use super::limiter::MemoryLimitExceeded;
use super::state::CallState;
use std::time::Duration;
use tta_core::error::CallError;
use tta_core::report::{GuestLog, LogSource};
use wasmtime::{Trap, WasmBacktrace};

/// The guest's last words on stderr, such as a Rust panic message, to explain a trap.
pub(crate) fn last_stderr_words(logs: &[GuestLog]) -> String {
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.source == LogSource::Stderr)
        .map(|l| l.message.as_str())
        .collect();
    let start = lines.len().saturating_sub(2);
    let text = lines[start..].join(" ");
    text.chars().take(500).collect()
}

/// Turns wasmtime's error chain into a specific `CallError`, by downcasting, never by text.
pub(crate) fn classify(
    error: wasmtime::Error,
    state: &CallState,
    fuel: u64,
    timeout: Duration,
    instantiating: bool,
) -> CallError {
    if let Some(m) = error.downcast_ref::<MemoryLimitExceeded>() {
        return CallError::MemoryLimit {
            limit: m.limit,
            requested: m.requested,
        };
    }
    if let Some((limit, requested)) = state.limiter.exceeded() {
        return CallError::MemoryLimit { limit, requested };
    }
    let backtrace = error
        .downcast_ref::<WasmBacktrace>()
        .map(format_backtrace)
        .unwrap_or_default();
    if error.downcast_ref::<std::str::Utf8Error>().is_some() {
        // Lifting a string that is not UTF-8 is a trap in the component model: the guest
        // broke the ABI, the host did not fail.
        return CallError::Trap {
            kind: "the guest handed the host a string that is not UTF-8".into(),
            detail: format!("{error:#}"),
            backtrace,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel { limit: fuel },
        Some(Trap::Interrupt) => CallError::DeadlineExceeded { limit: timeout },
        Some(Trap::StackOverflow) => CallError::StackExhausted {
            limit: state.invocation.limits.max_wasm_stack_bytes,
            backtrace,
        },
        Some(trap) => CallError::Trap {
            kind: trap.to_string(),
            detail: String::new(),
            backtrace,
        },
        None if instantiating => CallError::Instantiate(format!("{error:#}")),
        // Once the instance runs, the only errors without a trap code are wasmtime refusing
        // what the guest handed over: a pointer out of bounds or misaligned, a bad variant
        // or `char`, an unknown resource handle. The imports of ours never fail (they count
        // and drop instead), so these are the guest's (found by fuzz target smith_component).
        None => CallError::Trap {
            kind: "the guest broke the component model's canonical ABI".into(),
            detail: format!("{error:#}"),
            backtrace,
        },
    }
}

/// At most this many frames are shown; runaway recursion has thousands of identical ones.
const MAX_FRAMES: usize = 12;

fn format_backtrace(backtrace: &WasmBacktrace) -> String {
    let frames = backtrace.frames();
    let mut out = String::new();
    for (i, frame) in frames.iter().take(MAX_FRAMES).enumerate() {
        let name = frame.func_name().unwrap_or("<unnamed>");
        out.push_str(&format!("  {i:>2}: {name}"));
        if let Some(sym) = frame.symbols().first()
            && let (Some(file), Some(line)) = (sym.file(), sym.line())
        {
            out.push_str(&format!(" at {file}:{line}"));
        }
        out.push('\n');
    }
    if frames.len() > MAX_FRAMES {
        out.push_str(&format!("  ... {} more frames\n", frames.len() - MAX_FRAMES));
    }
    out.trim_end().to_owned()
}
