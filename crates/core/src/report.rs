//! What one call left behind: its measurements and everything the guest reported.
//!
//! Plain data, bounded by the call's limits. The telemetry layer turns it into spans,
//! metrics and log lines; the CLI prints it; tests assert on it.

use crate::bindings::{Level, Value};
use crate::error::CallError;
pub use crate::trace_context::SpanIds;
use std::time::{Duration, SystemTime};

/// Measurements of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// Wall time from the start of instantiation to the end of the call.
    pub wall: Duration,
    /// Time to instantiate the component into a fresh store.
    pub instantiate: Duration,
    /// Fuel the guest burned, nested `invoke` calls included.
    pub fuel_consumed: u64,
    /// The part of `fuel_consumed` burned while instantiating (start functions, data
    /// initialisation), before `execute` was entered.
    pub instantiate_fuel: u64,
    /// The largest linear memory the instance held, in bytes.
    pub memory_peak_bytes: usize,
    /// Bytes of output.
    pub output_bytes: usize,
}

/// A log record a guest emitted, through `telemetry.log` or on stdout/stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestLog {
    /// When it was emitted.
    pub time: SystemTime,
    /// Its severity.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Structured fields.
    pub fields: Vec<(String, Value)>,
    /// The span it was emitted in (a guest span, or the call's host span).
    pub span_id: u64,
    /// Where it came from.
    pub source: LogSource,
}

/// Where a guest log record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// `telemetry.log`.
    Api,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
}

/// A span a guest opened through the `telemetry.span` resource.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestSpanRecord {
    /// Its id.
    pub span_id: u64,
    /// Its parent: another guest span, or the call's host span.
    pub parent_span_id: u64,
    /// Its name.
    pub name: String,
    /// When it started.
    pub start: SystemTime,
    /// When it ended; `None` only while open (the host ends open spans when the call ends).
    pub end: Option<SystemTime>,
    /// Its attributes, in order set.
    pub attributes: Vec<(String, Value)>,
    /// Its events, in order.
    pub events: Vec<SpanEvent>,
    /// The error message, when the guest marked it failed.
    pub error: Option<String>,
    /// Whether it is the client side of an outgoing request (a remote workflow step, a
    /// guest's `wasi:http` request), exported with span kind `Client`.
    pub client: bool,
    /// Fuel burned while it was open, everything under it included, when the host could
    /// read the store's fuel at both ends; `None` for spans the host made itself (a
    /// workflow step, an outgoing request), whose fuel is that of what ran under them.
    pub fuel: Option<u64>,
}

/// An event on a guest span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// Its name.
    pub name: String,
    /// When it happened.
    pub time: SystemTime,
    /// Its attributes.
    pub attributes: Vec<(String, Value)>,
}

/// A metric data point a guest recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestMetric {
    /// Which instrument it is a point of.
    pub kind: MetricKind,
    /// The guest's name for it (sanitized when exported).
    pub name: String,
    /// The value: what a counter or up-down counter adds, a gauge's reading, one
    /// histogram observation, or the sum of a [`Distribution`].
    pub value: f64,
    /// Its attributes.
    pub attributes: Vec<(String, Value)>,
    /// For a histogram the guest aggregated itself (a `wasi:otel` SDK's), its buckets and
    /// count; `value` is then their sum. `None` for a single observation.
    pub distribution: Option<Box<Distribution>>,
}

/// The kind of a guest metric: every instrument kind `wasi:otel` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `counter-add`, or a monotonic `wasi:otel` sum: only grows.
    Counter,
    /// `histogram-record`, or a `wasi:otel` histogram (explicit or exponential buckets).
    Histogram,
    /// A `wasi:otel` gauge: the last reading wins.
    Gauge,
    /// A non-monotonic `wasi:otel` sum: adds, and may go down.
    UpDownCounter,
}

/// Observations a guest aggregated into buckets: `counts[i]` of them were at most
/// `bounds[i]` (and above the bound before); the last count, one more than the bounds, is
/// of those above every bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// How many observations.
    pub count: u64,
    /// The buckets' upper bounds, increasing.
    pub bounds: Vec<f64>,
    /// The count in each bucket, `bounds.len() + 1` of them.
    pub counts: Vec<u64>,
}

/// How much of what the guest reported was over the limits and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Log records.
    pub logs: u64,
    /// Spans.
    pub spans: u64,
    /// Span attributes and events.
    pub span_items: u64,
    /// Metric data points.
    pub metrics: u64,
    /// Bytes of stdout and stderr.
    pub stdio_bytes: u64,
}

/// Everything one call produced besides its output.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The primitive called.
    pub primitive: String,
    /// Its version.
    pub version: String,
    /// The correlation id of the call.
    pub correlation_id: String,
    /// The tenant it ran for.
    pub tenant: String,
    /// The ids of the call's host span.
    pub ids: SpanIds,
    /// The W3C `tracestate` the call ran with.
    pub tracestate: String,
    /// The id of the `wasm.instantiate` child span.
    pub instantiate_span_id: u64,
    /// How many `invoke` levels above this call (0 for a top-level call).
    pub nested_depth: u32,
    /// Whether the parent span is in another process (an incoming `traceparent`).
    pub remote_parent: bool,
    /// When it started.
    pub start: SystemTime,
    /// Measurements.
    pub stats: CallStats,
    /// `None` on success.
    pub error: Option<CallError>,
    /// Guest log records, in order.
    pub logs: Vec<GuestLog>,
    /// Guest spans, in order opened.
    pub spans: Vec<GuestSpanRecord>,
    /// Guest metric points, in order.
    pub metrics: Vec<GuestMetric>,
    /// Nested `invoke` calls, in order.
    pub nested: Vec<CallReport>,
    /// What was dropped over the limits.
    pub dropped: Dropped,
    /// What the caller put on the call's host span (the MCP server's `mcp.method.name`,
    /// `gen_ai.tool.name`, …); empty below the top level.
    pub attributes: Vec<(String, Value)>,
}

impl CallReport {
    /// `success` or `error`, the status label of the TTA.dev metrics.
    pub fn status(&self) -> &'static str {
        if self.error.is_none() { "success" } else { "error" }
    }

    /// The wait a failed dependency asked for, as the guest reported it: the
    /// `http.response.header.retry-after` attribute (HTTP delta-seconds, as a number or a
    /// string of one) of the last of its spans that has one, at most [`MAX_RETRY_AFTER`].
    pub fn retry_after(&self) -> Option<Duration> {
        let seconds = self.spans.iter().rev().find_map(|span| {
            span.attributes
                .iter()
                .find(|(key, _)| key == RETRY_AFTER)
                .and_then(|(_, value)| match value {
                    Value::Int(s) => u64::try_from(*s).ok().map(|s| s as f64),
                    Value::Float(s) if s.is_finite() && *s >= 0.0 => Some(*s),
                    Value::Str(s) => s.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0),
                    _ => None,
                })
        })?;
        Some(Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
    }
}

/// The attribute a guest records an HTTP `Retry-After` under (the HTTP semantic
/// conventions' `http.response.header.<key>`).
pub const RETRY_AFTER: &str = "http.response.header.retry-after";

/// The longest `Retry-After` the host believes; a longer one is cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Everything one workflow run produced besides its output.
#[derive(Debug, Clone)]
pub struct WorkflowReport {
    /// The workflow's name.
    pub workflow: String,
    /// The correlation id of the run.
    pub correlation_id: String,
    /// The tenant it ran for.
    pub tenant: String,
    /// The ids of the root span `workflow.<name>`.
    pub ids: SpanIds,
    /// Whether the root span's parent is in another process.
    pub remote_parent: bool,
    /// The W3C `tracestate` the run carried.
    pub tracestate: String,
    /// When it started.
    pub start: SystemTime,
    /// How long it took.
    pub wall: std::time::Duration,
    /// `None` on success.
    pub error: Option<crate::error::StepError>,
    /// One span per combinator step (and per retry attempt, compensation), in order ended.
    pub spans: Vec<GuestSpanRecord>,
    /// The primitive calls, each under the span of the step that made it, in order ended.
    pub calls: Vec<CallReport>,
    /// What the caller put on the root span, as [`CallReport::attributes`].
    pub attributes: Vec<(String, Value)>,
}

impl WorkflowReport {
    /// `success` or `error`.
    pub fn status(&self) -> &'static str {
        if self.error.is_none() { "success" } else { "error" }
    }
}
