//! Why telemetry could not start or stop as asked.

use std::time::Duration;
use tta_core::config::telemetry::TelemetryConfigError;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting is invalid.
    #[error("telemetry configuration: {0}")]
    Config(#[from] TelemetryConfigError),
    /// An exporter could not be built (a malformed endpoint, an unwritable file).
    #[error("cannot set up the {signal} exporter {destination}: {message}")]
    Exporter {
        /// traces, logs or metrics.
        signal: &'static str,
        /// Where it would have sent.
        destination: String,
        /// Why not.
        message: String,
    },
    /// The export thread could not start.
    #[error("cannot start the telemetry thread: {0}")]
    Thread(String),
    /// Shutdown did not finish flushing in time; what was left is lost.
    #[error("telemetry shutdown did not finish within {0:?}; unsent telemetry was dropped")]
    ShutdownTimeout(Duration),
}
