//! tta-host: runs workflow primitives as sandboxed WebAssembly components and makes
//! every call observable.
//!
//! Data flows one way, down the layers of `ARCHITECTURE.md`: [`Host::call`] →
//! [`host::Host::execute`] (the one metered entry of every call) → [`sandbox`] (one store,
//! one instance, its limits) → the guest, whose imports are the capabilities of
//! [`imports`]; what the guest reports comes back as a [`report::CallReport`].

pub mod bench;
pub mod bindings;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod compile;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod host;
pub mod imports;
pub mod invocation;
pub mod listener;
pub mod primitive;
pub mod registry;
pub mod report;
pub mod sandbox;
pub mod scaffold;
pub mod server;
pub mod telemetry;
pub mod tenant;
pub mod text;
pub mod trace_context;
pub mod workflow;

pub use config::{HostConfig, Limits};
pub use error::{CallError, GuestError, LoadError};
pub use host::{CallOptions, CallOutcome, Host, HostError};
pub use primitive::Primitive;
pub use registry::Registry;
pub use report::CallReport;
pub use telemetry::{ObservabilityConfig, Telemetry, initialize_observability};
