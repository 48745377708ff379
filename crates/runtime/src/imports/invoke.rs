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
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tta_core::bindings::WitError;
use tta_core::bindings::tta::primitives::invoke;
use tta_core::error::CallError;
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
        match self.invoker.invoke(child, primitive, input).await {
            Ok((result, report)) => {
                self.state.fuel_debit = report.stats.fuel_consumed;
                self.rec.report.nested.push(report);
                Ok(result.map_err(|e| e.to_guest_error().into()))
            }
            Err(unknown) => Ok(Err(unknown.to_guest_error().into())),
        }
    }
}
