//! The data of one store: the call's WASI context, its limits, and one state per capability,
//! composed here and reached by each capability through its view.

use super::env::CallEnv;
use super::limiter::MemoryLimiter;
use super::stdio::CapturedOutput;
use crate::imports::config::{ConfigCtx, ConfigView};
use crate::imports::http::OutgoingHttp;
use crate::imports::invoke::{InvokeCtx, InvokeState, InvokeView};
use crate::imports::otel::{OtelCtx, OtelState, OtelView};
use crate::imports::telemetry::{Recorder, RecorderView};
use crate::invocation::Invocation;
use crate::recording::Tape;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

/// The data of one store: WASI, limits, and what the guest reports.
pub struct CallState {
    pub(crate) env: Arc<CallEnv>,
    pub(crate) invocation: Invocation,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    pub(crate) recorder: Recorder,
    pub(crate) invoke: InvokeState,
    pub(crate) otel: OtelState,
    /// Fuel burned before `execute` was entered.
    pub(crate) instantiate_fuel: u64,
    /// Outgoing HTTP, made on the first request.
    pub(crate) http: Option<Box<OutgoingHttp>>,
    /// The tape of a recorded or replayed call.
    pub(crate) tape: Option<Arc<Tape>>,
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let parent = self.recorder.current_span_id();
        let http = self.http.get_or_insert_with(|| {
            Box::new(OutgoingHttp::new(
                &self.env.metrics,
                &self.env.http,
                &self.env.http_clients,
                &self.invocation,
                &self.recorder.report.primitive,
                self.tape.clone(),
            ))
        });
        http.hooks.parent_span_id = parent;
        WasiHttpCtxView {
            hooks: &mut http.hooks,
            table: &mut self.table,
            ctx: &mut http.ctx,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RecorderView for CallState {
    fn recorder(&mut self) -> &mut Recorder {
        &mut self.recorder
    }
}

impl InvokeView for CallState {
    fn invoke(&mut self) -> InvokeCtx<'_> {
        InvokeCtx {
            invocation: &self.invocation,
            rec: &mut self.recorder,
            state: &mut self.invoke,
            invoker: &self.env.invoker,
            tape: self.tape.as_ref(),
        }
    }
}

impl OtelView for CallState {
    fn otel(&mut self) -> OtelCtx<'_> {
        OtelCtx {
            rec: &mut self.recorder,
            state: &mut self.otel,
        }
    }
}

impl ConfigView for CallState {
    fn config(&mut self) -> ConfigCtx<'_> {
        ConfigCtx {
            config: &self.invocation.config,
            primitive: &self.recorder.report.primitive,
            tape: self.tape.as_ref(),
        }
    }
}
