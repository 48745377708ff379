//! A finished call's report as OpenTelemetry spans.
//!
//! The host span ids were fixed before the call (the guest saw them in its
//! `traceparent`), so spans are built after the fact with those ids instead of being
//! started live: the call path only hands the report to the export queue, and this
//! conversion runs on the export thread.

use crate::cost::Costs;
use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::SystemTime;
use tta_core::bindings::Value;
use tta_core::report::{CallReport, GuestSpanRecord, SpanIds, WorkflowReport};

/// The scopes spans are reported under: the host's own, and the guests'.
#[derive(Debug, Clone)]
pub struct Scopes {
    host: InstrumentationScope,
    guest: InstrumentationScope,
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            host: InstrumentationScope::builder("tta-host")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            guest: InstrumentationScope::builder("tta-guest")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }
}

/// A telemetry value as an OpenTelemetry value.
pub fn otel_value(value: &Value) -> opentelemetry::Value {
    match value {
        Value::Str(s) => opentelemetry::Value::String(s.clone().into()),
        Value::Int(i) => opentelemetry::Value::I64(*i),
        Value::Float(f) => opentelemetry::Value::F64(*f),
        Value::Boolean(b) => opentelemetry::Value::Bool(*b),
    }
}

fn key_values(attributes: &[(String, Value)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), otel_value(v)))
        .collect()
}

fn i64_of(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Makes the span contexts of one trace: same trace id, flags and tracestate.
fn contexts(ids: &SpanIds, tracestate: &str) -> impl Fn(u64) -> SpanContext {
    let trace_id = TraceId::from(ids.trace_id);
    let flags = if ids.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = TraceState::from_str(tracestate).unwrap_or_default();
    move |span_id| SpanContext::new(trace_id, SpanId::from(span_id), flags, false, state.clone())
}

/// Appends the spans of `report` and of its nested calls to `out`.
pub fn report_spans(report: &CallReport, scopes: &Scopes, out: &mut Vec<SpanData>) {
    call_spans(report, &Costs::of_call(report), scopes, out);
}

/// `wasm.fuel_consumed` (everything under the span) and `wasm.fuel_self` (its own part).
fn fuel_attributes(costs: &Costs, span_id: u64, attributes: &mut Vec<KeyValue>) {
    if let Some(node) = costs.get(span_id) {
        attributes.push(KeyValue::new("wasm.fuel_consumed", i64_of(node.fuel)));
        attributes.push(KeyValue::new("wasm.fuel_self", i64_of(node.fuel_self)));
    }
}

fn call_spans(report: &CallReport, costs: &Costs, scopes: &Scopes, out: &mut Vec<SpanData>) {
    let ids = report.ids;
    let context = contexts(&ids, &report.tracestate);
    let start = report.start;
    let end = start + report.stats.wall;
    let stats = &report.stats;

    let mut attributes = vec![
        KeyValue::new("primitive.name", report.primitive.clone()),
        KeyValue::new("primitive.version", report.version.clone()),
        KeyValue::new("primitive.type", "wasm"),
        KeyValue::new("correlation_id", report.correlation_id.clone()),
        KeyValue::new("tenant.id", report.tenant.clone()),
        KeyValue::new("wasm.fuel_consumed", i64_of(stats.fuel_consumed)),
        KeyValue::new(
            "wasm.fuel_self",
            i64_of(costs.get(ids.span_id).map_or(stats.fuel_consumed, |n| n.fuel_self)),
        ),
        KeyValue::new("wasm.memory_peak_bytes", i64_of(stats.memory_peak_bytes)),
        KeyValue::new("wasm.instantiate_ns", i64_of(stats.instantiate.as_nanos())),
        KeyValue::new("wasm.output_bytes", i64_of(stats.output_bytes)),
    ];
    attributes.extend(key_values(&report.attributes));
    let mut events = SpanEvents::default();
    let d = &report.dropped;
    for (key, n) in [
        ("tta.dropped.logs", d.logs),
        ("tta.dropped.spans", d.spans),
        ("tta.dropped.span_items", d.span_items),
        ("tta.dropped.metrics", d.metrics),
        ("tta.dropped.stdio_bytes", d.stdio_bytes),
    ] {
        if n > 0 {
            attributes.push(KeyValue::new(key, i64_of(n)));
        }
    }
    let status = match &report.error {
        None => Status::Ok,
        Some(error) => {
            attributes.push(KeyValue::new("error.type", error.error_type()));
            events.events.push(Event::new(
                "exception",
                end,
                vec![
                    KeyValue::new("exception.type", error.error_type()),
                    KeyValue::new("exception.message", error.to_string()),
                ],
                0,
            ));
            Status::error(error.to_string())
        }
    };
    let (parent, parent_is_remote) = match ids.parent_span_id {
        Some(p) => (SpanId::from(p), report.remote_parent),
        None => (SpanId::INVALID, false),
    };
    out.push(SpanData {
        span_context: context(ids.span_id),
        parent_span_id: parent,
        parent_span_is_remote: parent_is_remote,
        span_kind: if report.nested_depth == 0 {
            SpanKind::Server
        } else {
            SpanKind::Internal
        },
        name: Cow::Owned(format!("{}.execute", report.primitive)),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scopes.host.clone(),
    });

    if !stats.instantiate.is_zero() {
        out.push(SpanData {
            span_context: context(report.instantiate_span_id),
            parent_span_id: SpanId::from(ids.span_id),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("wasm.instantiate"),
            start_time: start,
            end_time: start + stats.instantiate,
            attributes: vec![
                KeyValue::new("primitive.name", report.primitive.clone()),
                KeyValue::new("wasm.fuel_consumed", i64_of(stats.instantiate_fuel)),
            ],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scopes.host.clone(),
        });
    }

    for span in &report.spans {
        out.push(guest_span(span, context(span.span_id), end, scopes, costs));
    }
    for nested in &report.nested {
        call_spans(nested, costs, scopes, out);
    }
}

fn guest_span(
    span: &GuestSpanRecord,
    context: SpanContext,
    call_end: SystemTime,
    scopes: &Scopes,
    costs: &Costs,
) -> SpanData {
    let mut attributes = key_values(&span.attributes);
    fuel_attributes(costs, span.span_id, &mut attributes);
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| Event::new(e.name.clone(), e.time, key_values(&e.attributes), 0))
        .collect();
    SpanData {
        span_context: context,
        parent_span_id: SpanId::from(span.parent_span_id),
        parent_span_is_remote: false,
        span_kind: if span.client {
            SpanKind::Client
        } else {
            SpanKind::Internal
        },
        name: Cow::Owned(span.name.clone()),
        start_time: span.start,
        end_time: span.end.unwrap_or(call_end),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: match &span.error {
            Some(message) => Status::error(message.clone()),
            None => Status::Unset,
        },
        instrumentation_scope: scopes.guest.clone(),
    }
}

/// Appends the spans of a workflow run: the root `workflow.<name>`, one per combinator
/// step, and every primitive call under the step that made it.
pub fn workflow_spans(report: &WorkflowReport, scopes: &Scopes, out: &mut Vec<SpanData>) {
    let costs = Costs::of_workflow(report);
    let ids = report.ids;
    let context = contexts(&ids, &report.tracestate);
    let end = report.start + report.wall;
    let mut attributes = vec![
        KeyValue::new("workflow.name", report.workflow.clone()),
        KeyValue::new("correlation_id", report.correlation_id.clone()),
        KeyValue::new("tenant.id", report.tenant.clone()),
        KeyValue::new("workflow.steps_run", i64_of(report.spans.len() + report.calls.len())),
    ];
    fuel_attributes(&costs, ids.span_id, &mut attributes);
    attributes.extend(key_values(&report.attributes));
    let mut events = SpanEvents::default();
    let status = match &report.error {
        None => Status::Ok,
        Some(error) => {
            attributes.push(KeyValue::new("error.type", error.error_type()));
            events.events.push(Event::new(
                "exception",
                end,
                vec![
                    KeyValue::new("exception.type", error.error_type()),
                    KeyValue::new("exception.message", error.to_string()),
                ],
                0,
            ));
            Status::error(error.to_string())
        }
    };
    out.push(SpanData {
        span_context: context(ids.span_id),
        parent_span_id: ids.parent_span_id.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: report.remote_parent,
        span_kind: SpanKind::Server,
        name: Cow::Owned(format!("workflow.{}", report.workflow)),
        start_time: report.start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scopes.host.clone(),
    });
    for span in &report.spans {
        out.push(guest_span(span, context(span.span_id), end, scopes, &costs));
    }
    for call in &report.calls {
        call_spans(call, &costs, scopes, out);
    }
}

/// How many spans `report_spans` makes of `report`.
pub fn span_count(report: &CallReport) -> u64 {
    1 + u64::from(!report.stats.instantiate.is_zero())
        + report.spans.len() as u64
        + report.nested.iter().map(span_count).sum::<u64>()
}
