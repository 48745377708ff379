//! The host side of the imports a guest calls: `telemetry` and `invoke`.
//!
//! Telemetry is recorded into the call's report, bounded by the call's limits; what is
//! over a limit is counted and dropped, never reported to the guest as an error. The
//! telemetry layer exports the report after the call, off the guest's path.

use crate::bindings::tta::primitives::{invoke, telemetry, types};
use crate::bindings::{Level, Value, WitError};
use crate::error::CallError;
use crate::report::{GuestLog, GuestMetric, GuestSpanRecord, LogSource, MetricKind, SpanEvent, SpanIds};
use crate::sandbox::{self, CallState, Invocation};
use std::sync::Arc;
use std::time::SystemTime;
use wasmtime::component::Resource;

/// The host representation of a guest's `telemetry.span`: an index into the call's spans.
pub struct GuestSpan;

/// The handle given out when the span limit is reached; operations on it are ignored.
const DROPPED_SPAN: u32 = u32::MAX;

/// The longest string kept from a guest (messages, attribute values); the rest is cut.
const MAX_STRING_BYTES: usize = 8 * 1024;

pub(crate) fn bounded(mut s: String) -> String {
    if s.len() > MAX_STRING_BYTES {
        let mut cut = MAX_STRING_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn bounded_value(value: Value) -> Value {
    match value {
        Value::Str(s) => Value::Str(bounded(s)),
        other => other,
    }
}

pub(crate) fn bounded_attributes(attributes: Vec<(String, Value)>, max: usize) -> (Vec<(String, Value)>, u64) {
    let dropped = attributes.len().saturating_sub(max) as u64;
    let kept = attributes
        .into_iter()
        .take(max)
        .map(|(k, v)| (bounded(k), bounded_value(v)))
        .collect();
    (kept, dropped)
}

impl CallState {
    fn span_mut(&mut self, handle: &Resource<GuestSpan>) -> Option<&mut GuestSpanRecord> {
        let rep = handle.rep();
        if rep == DROPPED_SPAN {
            return None;
        }
        self.report
            .spans
            .get_mut(rep as usize)
            .filter(|span| span.end.is_none())
    }

    fn end_span(&mut self, handle: &Resource<GuestSpan>) {
        let rep = handle.rep();
        if let Some(span) = self.span_mut(handle) {
            span.end = Some(SystemTime::now());
        }
        self.open_spans.retain(|&i| i != rep as usize);
    }

    /// Whether one more attribute or event fits on `span`; counts it as dropped if not.
    fn span_has_room(&mut self, handle: &Resource<GuestSpan>) -> bool {
        let max = self.limits().max_span_items;
        match self.span_mut(handle) {
            Some(span) if span.attributes.len() + span.events.len() < max => true,
            Some(_) => {
                self.report.dropped.span_items += 1;
                false
            }
            None => false,
        }
    }
}

impl types::Host for CallState {}

impl telemetry::Host for CallState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, Value)>) -> wasmtime::Result<()> {
        let span_id = self.current_span_id();
        self.record_log(SystemTime::now(), level, message, fields, span_id);
        Ok(())
    }

    fn counter_add(&mut self, name: String, value: f64, attributes: Vec<(String, Value)>) -> wasmtime::Result<()> {
        self.record_metric(MetricKind::Counter, name, value, attributes);
        Ok(())
    }

    fn histogram_record(&mut self, name: String, value: f64, attributes: Vec<(String, Value)>) -> wasmtime::Result<()> {
        self.record_metric(MetricKind::Histogram, name, value, attributes);
        Ok(())
    }
}

impl CallState {
    /// Keeps a guest's log record, within the call's limits.
    pub(crate) fn record_log(
        &mut self,
        time: SystemTime,
        level: Level,
        message: String,
        fields: Vec<(String, Value)>,
        span_id: u64,
    ) {
        if self.report.logs.len() >= self.limits().max_log_records {
            self.report.dropped.logs += 1;
            return;
        }
        let (fields, dropped) = bounded_attributes(fields, self.limits().max_span_items);
        self.report.dropped.span_items += dropped;
        self.report.logs.push(GuestLog {
            time,
            level,
            message: bounded(message),
            fields,
            span_id,
            source: LogSource::Api,
        });
    }

    /// Keeps a guest's metric data point, within the call's limits.
    pub(crate) fn record_metric(
        &mut self,
        kind: MetricKind,
        name: String,
        value: f64,
        attributes: Vec<(String, Value)>,
    ) {
        if self.report.metrics.len() >= self.limits().max_metric_points || !value.is_finite() {
            self.report.dropped.metrics += 1;
            return;
        }
        let (attributes, dropped) = bounded_attributes(attributes, self.limits().max_span_items);
        self.report.dropped.span_items += dropped;
        self.report.metrics.push(GuestMetric {
            kind,
            name: bounded(name),
            value,
            attributes,
        });
    }
}

impl telemetry::HostSpan for CallState {
    fn new(&mut self, name: String, attributes: Vec<(String, Value)>) -> wasmtime::Result<Resource<GuestSpan>> {
        if self.report.spans.len() >= self.limits().max_spans {
            self.report.dropped.spans += 1;
            return Ok(Resource::new_own(DROPPED_SPAN));
        }
        let (attributes, dropped) = bounded_attributes(attributes, self.limits().max_span_items);
        self.report.dropped.span_items += dropped;
        let index = self.report.spans.len();
        let record = GuestSpanRecord {
            span_id: new_span_id(),
            parent_span_id: self.current_span_id(),
            name: bounded(name),
            start: SystemTime::now(),
            end: None,
            attributes,
            events: Vec::new(),
            error: None,
            client: false,
        };
        self.report.spans.push(record);
        self.open_spans.push(index);
        let rep = u32::try_from(index).unwrap_or(DROPPED_SPAN);
        Ok(Resource::new_own(rep))
    }

    fn set_attribute(&mut self, handle: Resource<GuestSpan>, key: String, value: Value) -> wasmtime::Result<()> {
        let max = self.limits().max_span_items;
        if let Some(span) = self.span_mut(&handle) {
            if let Some(existing) = span.attributes.iter_mut().find(|(k, _)| *k == key) {
                existing.1 = bounded_value(value);
            } else if span.attributes.len() + span.events.len() < max {
                span.attributes.push((bounded(key), bounded_value(value)));
            } else {
                self.report.dropped.span_items += 1;
            }
        }
        Ok(())
    }

    fn add_event(
        &mut self,
        handle: Resource<GuestSpan>,
        name: String,
        attributes: Vec<(String, Value)>,
    ) -> wasmtime::Result<()> {
        if self.span_has_room(&handle) {
            let (attributes, dropped) = bounded_attributes(attributes, self.limits().max_span_items);
            self.report.dropped.span_items += dropped;
            if let Some(span) = self.span_mut(&handle) {
                span.events.push(SpanEvent {
                    name: bounded(name),
                    time: SystemTime::now(),
                    attributes,
                });
            }
        }
        Ok(())
    }

    fn set_error(&mut self, handle: Resource<GuestSpan>, message: String) -> wasmtime::Result<()> {
        if let Some(span) = self.span_mut(&handle) {
            span.error = Some(bounded(message));
        }
        Ok(())
    }

    fn end(&mut self, handle: Resource<GuestSpan>) -> wasmtime::Result<()> {
        self.end_span(&handle);
        Ok(())
    }

    fn drop(&mut self, handle: Resource<GuestSpan>) -> wasmtime::Result<()> {
        self.end_span(&handle);
        Ok(())
    }
}

impl invoke::Host for CallState {
    async fn call(&mut self, primitive: String, input: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        let limit = self.limits().max_invoke_depth;
        if self.invocation.depth + 1 > limit {
            return Ok(Err(CallError::InvokeDepth { limit }.to_guest_error().into()));
        }
        let registry = self.shared.registry.load();
        let Some(plugin) = registry.resolve(self.invocation.access.as_deref(), &primitive) else {
            let available = registry.visible_names(self.invocation.access.as_deref());
            return Ok(Err(CallError::UnknownPrimitive {
                name: primitive,
                available,
            }
            .to_guest_error()
            .into()));
        };
        let parent = &self.invocation;
        let child = Invocation {
            correlation_id: parent.correlation_id.clone(),
            tenant: parent.tenant.clone(),
            ids: SpanIds {
                trace_id: parent.ids.trace_id,
                span_id: new_span_id(),
                parent_span_id: Some(self.current_span_id()),
                sampled: parent.ids.sampled,
            },
            tracestate: parent.tracestate.clone(),
            data: parent.data.clone(),
            deadline: parent.deadline,
            timeout: parent.timeout,
            fuel: self.fuel_at_host_entry,
            depth: parent.depth + 1,
            remote_parent: false,
            limits: parent.limits,
            access: parent.access.clone(),
        };
        drop(registry);
        let shared = Arc::clone(&self.shared);
        let (result, report) = Box::pin(sandbox::execute(&shared, &plugin, child, &input)).await;
        self.fuel_debit = report.stats.fuel_consumed;
        self.report.nested.push(report);
        Ok(result.map_err(|e| e.to_guest_error().into()))
    }
}

/// A fresh, non-zero W3C span id.
pub(crate) fn new_span_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}
