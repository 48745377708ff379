//! What every call of a host needs from it, and nothing more: the engine to make a store
//! in, the metrics a capability records into, and who runs nested calls.
//!
//! A call's state holds one `Arc<CallEnv>`, never the host itself, so no type ties the
//! linker that builds instances and the state of the instances into a loop.

use crate::imports::http::{HttpClientMetrics, HttpClients};
use crate::imports::invoke::Invoke;
use std::sync::Arc;
use tta_telemetry::Metrics;
use wasmtime::Engine;

/// The per-host environment of calls.
pub struct CallEnv {
    /// The engine every component is compiled for.
    pub engine: Engine,
    /// The host's metrics (the bounded tenant label).
    pub metrics: Arc<Metrics>,
    /// The HTTP client's instruments.
    pub http: Arc<HttpClientMetrics>,
    /// Guests' HTTP connections and TLS configurations, per tenant.
    pub http_clients: Arc<HttpClients>,
    /// Runs guests' nested calls.
    pub invoker: Arc<dyn Invoke>,
    /// How often the engine's epoch ticks: a call's deadline is this many ticks away.
    pub epoch_tick: std::time::Duration,
}
