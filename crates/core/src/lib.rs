//! tta-core: the data every layer of tta-host shares — the contract's bindings, the
//! errors with their closed classes, what a call reports, W3C trace context, the config as
//! data, and the few plain helpers (bounded text, stored credentials, the HTTP listener,
//! TLS client configurations).
//!
//! It is the bottom crate: it depends on no other crate of the host, so nothing here can
//! reach telemetry, the runtime, workflows or the server.

pub mod bindings;
pub mod config;
pub mod credentials;
pub mod error;
pub mod guest_config;
pub mod listener;
pub mod metadata;
pub mod recording;
pub mod redact;
pub mod report;
pub mod schema;
pub mod shared_store;
pub mod text;
pub mod tls;
pub mod trace_context;

pub use config::{HostConfig, Limits};
pub use error::{CallError, GuestError, LoadError};
pub use report::CallReport;
