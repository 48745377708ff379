//! tta-host: runs workflow primitives as sandboxed WebAssembly components and makes
//! every call observable.
//!
//! This crate is the front (the commands, `bench`, `new`'s templates) over the layers of
//! `ARCHITECTURE.md`, each a crate that can only name the ones below it: `tta-core` (data),
//! `tta-telemetry`, `tta-runtime` ([`Host::call`] → [`host::Host::execute`], the one metered
//! entry of every call → [`sandbox`] → the guest and its [`imports`]), `tta-workflow`,
//! `tta-catalog`, `tta-server`. Their modules are re-exported here under the paths the
//! tests, benchmarks and fuzz targets use.

pub mod bench;
pub mod cli;
pub mod scaffold;

pub use tta_catalog as catalog;
pub use tta_cluster as cluster;
pub use tta_core::{
    bindings, config, credentials, error, guest_config, listener, metadata, redact, report, text, tls, trace_context,
};
pub use tta_runtime::{
    cache, compile, engine, host, imports, invocation, primitive, recording, registry, sandbox, tenant,
};
pub use tta_server as server;
pub use tta_telemetry as telemetry;
pub use tta_workflow as workflow;

pub use config::{HostConfig, Limits};
pub use error::{CallError, GuestError, LoadError};
pub use host::{CallOptions, CallOutcome, Host, HostError};
pub use primitive::Primitive;
pub use registry::Registry;
pub use report::CallReport;
pub use telemetry::{ObservabilityConfig, Telemetry, initialize_observability};
