//! `tta:primitives/telemetry` (and `types`): the guest's own spans, logs and metrics.
//!
//! They are recorded into the call's report by its [`Recorder`], bounded by the call's
//! limits; what is over a limit is counted and dropped, never reported to the guest as an
//! error. The telemetry layer exports the report after the call, off the guest's path.
//! `wasi:otel` records through the same `Recorder`.

use std::time::SystemTime;
use tta_core::bindings::tta::primitives::{telemetry, types};
use tta_core::bindings::{GuestSpan, Level, Value};
use tta_core::config::Limits;
use tta_core::report::{CallReport, GuestLog, GuestMetric, GuestSpanRecord, LogSource, MetricKind, SpanEvent};
use tta_core::trace_context::new_span_id;
use wasmtime::component::{HasData, Linker, Resource};

/// Where one call's telemetry goes: its report, the guest spans still open, its limits.
#[derive(Debug)]
pub struct Recorder {
    /// What the call reports so far.
    pub report: CallReport,
    /// Open guest spans, innermost last: indices into `report.spans`, each with the fuel
    /// left when it opened.
    open_spans: Vec<(usize, u64)>,
    /// The fuel left in the store when the guest last called into the host (kept current
    /// by the sandbox's call hook), so spans and nested calls know what was burned.
    fuel_left: u64,
    limits: Limits,
}

/// A store whose data offers `tta:primitives/telemetry`.
pub trait RecorderView: Send {
    /// The call's recorder.
    fn recorder(&mut self) -> &mut Recorder;
}

pub(crate) struct HasRecorder;

impl HasData for HasRecorder {
    type Data<'a> = &'a mut Recorder;
}

/// Adds `tta:primitives/{types,telemetry}` to `linker`.
pub fn add_to_linker<T: RecorderView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasRecorder>(linker, T::recorder)?;
    telemetry::add_to_linker::<T, HasRecorder>(linker, T::recorder)?;
    Ok(())
}

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

impl Recorder {
    /// A recorder for a call under `limits` with `fuel` to burn, starting with `report`.
    pub fn new(report: CallReport, limits: Limits, fuel: u64) -> Self {
        Recorder {
            report,
            open_spans: Vec::new(),
            fuel_left: fuel,
            limits,
        }
    }

    /// The fuel left when the guest last entered the host.
    pub fn fuel_left(&self) -> u64 {
        self.fuel_left
    }

    /// Notes the fuel left as the guest enters the host (the sandbox's call hook).
    pub fn set_fuel_left(&mut self, fuel: u64) {
        self.fuel_left = fuel;
    }

    /// The limits the call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The span new guest spans and logs attach to: the innermost open guest span, or the call's.
    pub fn current_span_id(&self) -> u64 {
        self.open_spans
            .last()
            .and_then(|&(i, _)| self.report.spans.get(i))
            .map_or(self.report.ids.span_id, |s| s.span_id)
    }

    /// The report, every guest span still open ended at `end` with `fuel_left` in the store.
    pub fn finish(mut self, end: SystemTime, fuel_left: u64) -> CallReport {
        for &(i, opened) in &self.open_spans {
            if let Some(span) = self.report.spans.get_mut(i) {
                span.end.get_or_insert(end);
                span.fuel.get_or_insert(opened.saturating_sub(fuel_left));
            }
        }
        self.report
    }

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
        let rep = handle.rep() as usize;
        let Some(at) = self.open_spans.iter().position(|&(i, _)| i == rep) else {
            return;
        };
        let (_, opened) = self.open_spans.remove(at);
        let burned = opened.saturating_sub(self.fuel_left);
        if let Some(span) = self.span_mut(handle) {
            span.end = Some(SystemTime::now());
            span.fuel = Some(burned);
        }
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

impl types::Host for Recorder {}

impl telemetry::Host for Recorder {
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

impl Recorder {
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
        let point = GuestMetric {
            kind,
            name,
            value,
            attributes,
            distribution: None,
        };
        self.record_point(point, false);
    }

    /// Keeps a metric point within the call's limits. With `replace`, it takes the place of
    /// an earlier point of the same instrument and attributes: a cumulative export's later
    /// reading, which already counts what the earlier one did.
    pub(crate) fn record_point(&mut self, point: GuestMetric, replace: bool) {
        if !point.value.is_finite() {
            self.report.dropped.metrics += 1;
            return;
        }
        let (attributes, dropped) = bounded_attributes(point.attributes, self.limits().max_span_items);
        self.report.dropped.span_items += dropped;
        let point = GuestMetric {
            name: bounded(point.name),
            attributes,
            ..point
        };
        if replace
            && let Some(earlier) = self
                .report
                .metrics
                .iter_mut()
                .find(|m| m.kind == point.kind && m.name == point.name && m.attributes == point.attributes)
        {
            *earlier = point;
            return;
        }
        if self.report.metrics.len() >= self.limits().max_metric_points {
            self.report.dropped.metrics += 1;
            return;
        }
        self.report.metrics.push(point);
    }
}

impl telemetry::HostSpan for Recorder {
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
            fuel: None,
        };
        self.report.spans.push(record);
        self.open_spans.push((index, self.fuel_left));
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
