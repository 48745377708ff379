//! The capabilities a guest can import, one module each, generic over a view of the store's
//! data (as wasmtime-wasi-http's `WasiHttpView`): each defines the state it keeps per call,
//! the small trait through which it reaches that state, and its `add_to_linker`.
//!
//! The sandbox owns the store type and implements the views ([`crate::sandbox::CallState`]);
//! nothing here names it. A new capability is one module here, one line in [`add_to_linker`],
//! and its state and view in `sandbox/state.rs`.

pub mod config;
pub mod http;
pub mod invoke;
pub mod otel;
pub mod telemetry;
pub mod v2;

use wasmtime::component::Linker;

/// Every view a call's store data offers.
pub trait CallView:
    wasmtime_wasi::WasiView
    + wasmtime_wasi_http::WasiHttpView
    + telemetry::RecorderView
    + invoke::InvokeView
    + otel::OtelView
    + config::ConfigView
    + 'static
{
}

impl<T> CallView for T where
    T: wasmtime_wasi::WasiView
        + wasmtime_wasi_http::WasiHttpView
        + telemetry::RecorderView
        + invoke::InvokeView
        + otel::OtelView
        + config::ConfigView
        + 'static
{
}

/// Adds every import of the world to `linker`: WASI 0.2 (locked down per call by the
/// sandbox), outgoing `wasi:http`, `wasi:config`, and the host's own (`tta:primitives` 0.1.0
/// and 0.2.0, `wasi:otel`).
pub fn add_to_linker<T: CallView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    http::add_to_linker(linker)?;
    telemetry::add_to_linker(linker)?;
    invoke::add_to_linker(linker)?;
    v2::add_to_linker(linker)?;
    otel::add_to_linker(linker)?;
    config::add_to_linker(linker)?;
    Ok(())
}
