//! What one call left behind: its measurements and everything the guest reported.
//!
//! Plain data, bounded by the call's limits. The telemetry layer turns it into spans,
//! metrics and log lines; the CLI prints it; tests assert on it.

use crate::bindings::{Level, Value};
use crate::error::CallError;
use std::time::{Duration, SystemTime};

/// The W3C identity of the host span wrapping one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    /// The trace this call belongs to.
    pub trace_id: u128,
    /// The host span of this call.
    pub span_id: u64,
    /// The span this call's span is a child of, if any.
    pub parent_span_id: Option<u64>,
    /// Whether the trace is sampled (W3C flag `01`).
    pub sampled: bool,
}

impl SpanIds {
    /// The W3C `traceparent` header naming this span.
    pub fn traceparent(&self) -> String {
        traceparent(self.trace_id, self.span_id, self.sampled)
    }
}

/// The W3C `traceparent` header naming span `span_id` of trace `trace_id`.
pub fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> String {
    format!("00-{trace_id:032x}-{span_id:016x}-{:02x}", u8::from(sampled))
}

/// Parses a W3C `traceparent` header into (trace id, parent span id, sampled).
pub fn parse_traceparent(header: &str) -> Result<(u128, u64, bool), String> {
    // The header is the client's: its error shows no more than a valid one's length.
    let shown = |header: &str| crate::text::bounded(header, 64).into_owned();
    let parts: Vec<&str> = header.trim().split('-').collect();
    let [version, trace, span, flags] = parts.as_slice() else {
        return Err(format!("{:?} is not `00-<32 hex>-<16 hex>-<2 hex>`", shown(header)));
    };
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex(version, 2) || *version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return Err(format!(
            "{:?} is not `00-<32 lowercase hex>-<16 lowercase hex>-<2 hex>`",
            shown(header)
        ));
    }
    let trace_id = u128::from_str_radix(trace, 16).map_err(|e| e.to_string())?;
    let span_id = u64::from_str_radix(span, 16).map_err(|e| e.to_string())?;
    let flags = u8::from_str_radix(flags, 16).map_err(|e| e.to_string())?;
    if trace_id == 0 || span_id == 0 {
        return Err(format!("{:?} has an all-zero trace or span id", shown(header)));
    }
    Ok((trace_id, span_id, flags & 1 == 1))
}

/// Measurements of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// Wall time from the start of instantiation to the end of the call.
    pub wall: Duration,
    /// Time to instantiate the component into a fresh store.
    pub instantiate: Duration,
    /// Fuel the guest burned, nested `invoke` calls included.
    pub fuel_consumed: u64,
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
    /// Counter or histogram.
    pub kind: MetricKind,
    /// The guest's name for it (sanitized when exported).
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its attributes.
    pub attributes: Vec<(String, Value)>,
}

/// The kind of a guest metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `counter-add`.
    Counter,
    /// `histogram-record`.
    Histogram,
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
}

impl CallReport {
    /// An empty report for a call of `primitive` under `invocation`, starting now.
    pub(crate) fn new(primitive: &str, version: &str, invocation: &crate::sandbox::Invocation) -> Self {
        CallReport {
            primitive: primitive.to_owned(),
            version: version.to_owned(),
            correlation_id: invocation.correlation_id.clone(),
            tenant: invocation.tenant.clone(),
            ids: invocation.ids,
            tracestate: invocation.tracestate.clone(),
            instantiate_span_id: crate::guest_api::new_span_id(),
            nested_depth: invocation.depth,
            remote_parent: invocation.remote_parent,
            start: SystemTime::now(),
            stats: CallStats::default(),
            error: None,
            logs: Vec::new(),
            spans: Vec::new(),
            metrics: Vec::new(),
            nested: Vec::new(),
            dropped: Dropped::default(),
        }
    }

    /// `success` or `error`, the status label of the TTA.dev metrics.
    pub fn status(&self) -> &'static str {
        if self.error.is_none() { "success" } else { "error" }
    }
}

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
    pub error: Option<crate::workflow::StepError>,
    /// One span per combinator step (and per retry attempt, compensation), in order ended.
    pub spans: Vec<GuestSpanRecord>,
    /// The primitive calls, each under the span of the step that made it, in order ended.
    pub calls: Vec<CallReport>,
}

impl WorkflowReport {
    /// `success` or `error`.
    pub fn status(&self) -> &'static str {
        if self.error.is_none() { "success" } else { "error" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let ids = SpanIds {
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            span_id: 0xb7ad6b7169203331,
            parent_span_id: None,
            sampled: true,
        };
        let header = ids.traceparent();
        assert_eq!(header, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(parse_traceparent(&header), Ok((ids.trace_id, ids.span_id, true)));
    }

    #[test]
    fn bad_traceparents_are_refused() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad:?} accepted");
        }
    }
}
