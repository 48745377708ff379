//! `tta:primitives/invoke`: a guest calls another primitive by name.
//!
//! The nested call runs in a store of its own, under the caller's tenant, trace and
//! deadline, with what is left of the caller's fuel, one level deeper; its report becomes
//! one of the caller's nested reports and the fuel it burned is taken from the caller when
//! the import returns. Which primitives exist, and how a call is run and metered, is the
//! [`Invoke`] implementation's business (the host's): this capability only shapes the
//! nested call and accounts for it.

use super::telemetry::Recorder;
use crate::invocation::Invocation;
use crate::recording::Tape;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tta_core::bindings::ErrorKind;
use tta_core::bindings::WitError;
use tta_core::bindings::tta::primitives::invoke;
use tta_core::error::{CallError, GuestError};
use tta_core::recording::{InvokeResult, Payload, RecordedError};
use tta_core::report::CallReport;
use wasmtime::component::{HasData, Linker};

/// Runs the nested calls of guests: resolves a name for the caller's tenant and runs it.
pub trait Invoke: Send + Sync {
    /// Runs `primitive` on `input` under `invocation`; `Err` when the tenant has no primitive
    /// of that name (an `UnknownPrimitive` naming the ones it has).
    fn invoke(&self, invocation: Invocation, primitive: String, input: Vec<u8>) -> BoxFuture<'static, Nested>;
}

/// A nested call's result and report, or why it did not run.
pub type Nested = Result<(Result<Vec<u8>, CallError>, CallReport), CallError>;

/// The fuel bookkeeping of nested calls, kept per call.
#[derive(Debug, Default)]
pub struct InvokeState {
    /// Fuel burned by nested calls, taken from the caller's store when the import returns.
    pub fuel_debit: u64,
}

/// The part of a call's state `invoke` works on.
pub struct InvokeCtx<'a> {
    /// The calling invocation.
    pub invocation: &'a Invocation,
    /// The caller's records: the nested report joins them.
    pub rec: &'a mut Recorder,
    /// This capability's own state.
    pub state: &'a mut InvokeState,
    /// Who runs the nested call.
    pub invoker: &'a Arc<dyn Invoke>,
    /// The call's tape, when it is recorded or replayed.
    pub tape: Option<&'a Arc<Tape>>,
}

/// A store whose data offers `invoke`.
pub trait InvokeView: Send {
    /// The invocation, records and invoke state of the call.
    fn invoke(&mut self) -> InvokeCtx<'_>;
}

pub(crate) struct HasInvoke;

impl HasData for HasInvoke {
    type Data<'a> = InvokeCtx<'a>;
}

/// Adds `tta:primitives/invoke` to `linker`.
pub fn add_to_linker<T: InvokeView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    invoke::add_to_linker::<T, HasInvoke>(linker, T::invoke)
}

impl invoke::Host for InvokeCtx<'_> {
    async fn call(&mut self, primitive: String, input: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        let limit = self.rec.limits().max_invoke_depth;
        if self.invocation.depth + 1 > limit {
            return Ok(Err(CallError::InvokeDepth { limit }.to_guest_error().into()));
        }
        let child = self.invocation.child(self.rec.current_span_id(), self.rec.fuel_left());
        // The tape knows a name as a recording keeps it: with the call's secrets scrubbed.
        let mut shown = primitive.clone();
        self.invocation.config.redactor().text(&mut shown);
        if let Some(tape) = self.tape.filter(|t| t.replays()) {
            return Ok(self.replayed(tape, child, &shown, &input));
        }
        let (answer, fuel, version) = match self.invoker.invoke(child, primitive.clone(), input.clone()).await {
            Ok((result, report)) => {
                let (fuel, version) = (report.stats.fuel_consumed, Some(report.version.clone()));
                self.state.fuel_debit = fuel;
                self.rec.report.nested.push(report);
                (result.map_err(|e| e.to_guest_error()), fuel, version)
            }
            Err(unknown) => (Err(unknown.to_guest_error()), 0, None),
        };
        if let Some(tape) = self.tape {
            let result = match &answer {
                Ok(output) => InvokeResult::Ok(Payload(output.clone())),
                Err(e) => InvokeResult::Err(RecordedError {
                    kind: e.kind.as_str().to_owned(),
                    message: e.message.clone(),
                    retryable: e.retryable,
                }),
            };
            tape.record_invoke(&shown, &input, result, fuel, version.as_deref());
        }
        Ok(answer.map_err(WitError::from))
    }
}

impl InvokeCtx<'_> {
    /// A nested call answered from the tape: its result and fuel as recorded, and a report
    /// of it (with no spans of its own: it did not run) under the caller's span.
    fn replayed(&mut self, tape: &Tape, child: Invocation, primitive: &str, input: &[u8]) -> Result<Vec<u8>, WitError> {
        let Some((result, fuel, version)) = tape.replay_invoke(primitive, input) else {
            return Err(WitError::from(GuestError {
                kind: ErrorKind::Internal,
                message: format!("replay: the recording has no call of `{primitive}` here"),
                retryable: false,
            }));
        };
        let answer = match result {
            InvokeResult::Ok(output) => Ok(output.0),
            InvokeResult::Err(e) => Err(GuestError {
                kind: ErrorKind::parse(&e.kind).unwrap_or(ErrorKind::Internal),
                message: e.message,
                retryable: e.retryable,
            }),
        };
        if let Some(version) = version {
            let mut report = child.report(primitive, &version);
            report.stats.fuel_consumed = fuel;
            report.error = answer.as_ref().err().map(|e| CallError::Guest(e.clone()));
            self.state.fuel_debit = fuel;
            self.rec.report.nested.push(report);
        }
        answer.map_err(WitError::from)
    }
}
