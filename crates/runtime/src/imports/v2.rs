//! `tta:primitives@0.2.0`'s `types`, `telemetry` and `invoke`: the 0.1.0 functions under
//! the new version's names. 0.2.0 changed only `metadata`, so each function converts its
//! arguments (the same WIT types, generated twice) and runs the 0.1.0 one: one
//! implementation, whichever version a guest speaks.

use super::invoke::{HasInvoke, InvokeCtx, InvokeView};
use super::telemetry::{HasRecorder, Recorder, RecorderView};
use tta_core::bindings::tta::primitives::{invoke as invoke1, telemetry as telemetry1, types as types1};
use tta_core::bindings::v2::tta::primitives::{invoke, telemetry, types};
use tta_core::bindings::{GuestSpan, Level, Value, WitError};
use wasmtime::component::{Linker, Resource};

/// Adds `tta:primitives/{types,telemetry,invoke}@0.2.0` to `linker`.
pub fn add_to_linker<T: RecorderView + InvokeView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasRecorder>(linker, T::recorder)?;
    telemetry::add_to_linker::<T, HasRecorder>(linker, T::recorder)?;
    invoke::add_to_linker::<T, HasInvoke>(linker, T::invoke)
}

fn level(level: telemetry::Level) -> Level {
    match level {
        telemetry::Level::Trace => Level::Trace,
        telemetry::Level::Debug => Level::Debug,
        telemetry::Level::Info => Level::Info,
        telemetry::Level::Warn => Level::Warn,
        telemetry::Level::Error => Level::Error,
    }
}

fn value(value: telemetry::Value) -> Value {
    match value {
        telemetry::Value::Str(s) => Value::Str(s),
        telemetry::Value::Int(i) => Value::Int(i),
        telemetry::Value::Float(f) => Value::Float(f),
        telemetry::Value::Boolean(b) => Value::Boolean(b),
    }
}

fn attributes(attributes: Vec<(String, telemetry::Value)>) -> Vec<(String, Value)> {
    attributes.into_iter().map(|(k, v)| (k, value(v))).collect()
}

/// A 0.1.0 error as 0.2.0 spells it.
pub(crate) fn error(e: WitError) -> types::Error {
    use types::ErrorKind as K;
    use types1::ErrorKind as K1;
    types::Error {
        kind: match e.kind {
            K1::InvalidInput => K::InvalidInput,
            K1::NotFound => K::NotFound,
            K1::Unavailable => K::Unavailable,
            K1::Timeout => K::Timeout,
            K1::Internal => K::Internal,
        },
        message: e.message,
        retryable: e.retryable,
    }
}

/// A 0.2.0 error as the host's (0.1.0) type.
pub(crate) fn error_back(e: types::Error) -> WitError {
    use types::ErrorKind as K;
    use types1::ErrorKind as K1;
    WitError {
        kind: match e.kind {
            K::InvalidInput => K1::InvalidInput,
            K::NotFound => K1::NotFound,
            K::Unavailable => K1::Unavailable,
            K::Timeout => K1::Timeout,
            K::Internal => K1::Internal,
        },
        message: e.message,
        retryable: e.retryable,
    }
}

impl types::Host for Recorder {}

impl telemetry::Host for Recorder {
    fn log(
        &mut self,
        l: telemetry::Level,
        message: String,
        fields: Vec<(String, telemetry::Value)>,
    ) -> wasmtime::Result<()> {
        telemetry1::Host::log(self, level(l), message, attributes(fields))
    }

    fn counter_add(&mut self, name: String, v: f64, attrs: Vec<(String, telemetry::Value)>) -> wasmtime::Result<()> {
        telemetry1::Host::counter_add(self, name, v, attributes(attrs))
    }

    fn histogram_record(
        &mut self,
        name: String,
        v: f64,
        attrs: Vec<(String, telemetry::Value)>,
    ) -> wasmtime::Result<()> {
        telemetry1::Host::histogram_record(self, name, v, attributes(attrs))
    }
}

impl telemetry::HostSpan for Recorder {
    fn new(&mut self, name: String, attrs: Vec<(String, telemetry::Value)>) -> wasmtime::Result<Resource<GuestSpan>> {
        telemetry1::HostSpan::new(self, name, attributes(attrs))
    }

    fn set_attribute(&mut self, span: Resource<GuestSpan>, key: String, v: telemetry::Value) -> wasmtime::Result<()> {
        telemetry1::HostSpan::set_attribute(self, span, key, value(v))
    }

    fn add_event(
        &mut self,
        span: Resource<GuestSpan>,
        name: String,
        attrs: Vec<(String, telemetry::Value)>,
    ) -> wasmtime::Result<()> {
        telemetry1::HostSpan::add_event(self, span, name, attributes(attrs))
    }

    fn set_error(&mut self, span: Resource<GuestSpan>, message: String) -> wasmtime::Result<()> {
        telemetry1::HostSpan::set_error(self, span, message)
    }

    fn end(&mut self, span: Resource<GuestSpan>) -> wasmtime::Result<()> {
        telemetry1::HostSpan::end(self, span)
    }

    fn drop(&mut self, span: Resource<GuestSpan>) -> wasmtime::Result<()> {
        telemetry1::HostSpan::drop(self, span)
    }
}

impl invoke::Host for InvokeCtx<'_> {
    async fn call(&mut self, primitive: String, input: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        let result = invoke1::Host::call(self, primitive, input).await?;
        Ok(result.map_err(error))
    }
}
