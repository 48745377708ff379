//! tta-runtime: runs one call of a primitive in a fresh, limited sandbox and meters it.
//!
//! [`host::Host::execute`] is the one metered entry of every call: it hands an
//! [`invocation::Invocation`] to the [`sandbox`] (one store, one instance, its limits),
//! whose guest reaches the host only through the capabilities of [`imports`], and records
//! the [`tta_core::report::CallReport`] that comes back. The crate depends on the data and
//! telemetry crates only: it cannot name a workflow, the catalog, the server or the CLI.

pub mod cache;
pub mod compile;
pub mod engine;
pub mod host;
pub mod imports;
pub mod invocation;
pub mod primitive;
pub mod recording;
pub mod registry;
pub mod sandbox;
pub mod tenant;

pub use host::{CallOptions, CallOutcome, Host, HostError};
pub use primitive::Primitive;
pub use registry::Registry;
