//! The host side of `wasi:otel` 0.2.0-rc.2: what an OpenTelemetry SDK inside a guest reports.
//!
//! A guest instrumented for Spin or wasmCloud asks `outer-span-context` for its parent and
//! hands over finished spans, log records and metrics. They become the same records as the
//! guest's `tta:primitives/telemetry` calls: children of the call's span, bounded by the
//! call's limits (the excess counted as dropped), exported with the call. The guest's ids are
//! kept where they are sound; a guest cannot graft its spans onto another trace or reuse the
//! host's span ids.

mod metrics;

use super::telemetry::{Recorder, bounded, bounded_attributes};
use std::time::{Duration, SystemTime};
use tta_core::bindings::Level;
use tta_core::bindings::Value;
use tta_core::bindings::wasi::otel::{logs, tracing, types};
use tta_core::report::{GuestSpanRecord, SpanEvent};
use tta_core::trace_context::new_span_id;
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

/// An OpenTelemetry `AnyValue`, JSON-encoded by the guest, as an attribute value.
fn attribute_value(json: String) -> Value {
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::String(s)) => Value::Str(s),
        Ok(serde_json::Value::Bool(b)) => Value::Boolean(b),
        Ok(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        // Arrays, maps and null keep their JSON text; so does a value that is not JSON.
        _ => Value::Str(json),
    }
}

pub(super) fn attributes(list: Vec<types::KeyValue>) -> Vec<(String, Value)> {
    list.into_iter().map(|kv| (kv.key, attribute_value(kv.value))).collect()
}

fn time(datetime: Datetime) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(datetime.nanoseconds.min(999_999_999)));
    SystemTime::UNIX_EPOCH + Duration::from_secs(datetime.seconds) + nanos
}

/// A hex span id; `None` unless it is 16 hex digits and not all zero.
fn span_id(hex: &str) -> Option<u64> {
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
        .filter(|&id| id != 0)
}

/// The level of an OpenTelemetry severity number (1–24), or of its text.
fn level(number: Option<u8>, text: Option<&str>) -> Level {
    match number {
        Some(1..=4) => Level::Trace,
        Some(5..=8) => Level::Debug,
        Some(9..=12) => Level::Info,
        Some(13..=16) => Level::Warn,
        Some(17..) => Level::Error,
        _ => match text.map(str::to_ascii_lowercase).as_deref() {
            Some("trace") => Level::Trace,
            Some("debug") => Level::Debug,
            Some("warn" | "warning") => Level::Warn,
            Some("error" | "fatal" | "critical") => Level::Error,
            _ => Level::Info,
        },
    }
}

/// What `wasi:otel` keeps per call besides the records: the span ids a guest's SDK
/// announced as started, so children ending first find their parent, each with the fuel
/// left then, so its span carries what it burned.
#[derive(Debug, Default)]
pub struct OtelState {
    started: Vec<(u64, u64)>,
}

/// The part of a call's state `wasi:otel` works on.
pub struct OtelCtx<'a> {
    /// Where the records go.
    pub rec: &'a mut Recorder,
    /// This capability's own state.
    pub state: &'a mut OtelState,
}

/// A store whose data offers `wasi:otel`.
pub trait OtelView: Send {
    /// The records and the `wasi:otel` state of the call.
    fn otel(&mut self) -> OtelCtx<'_>;
}

struct HasOtel;

impl HasData for HasOtel {
    type Data<'a> = OtelCtx<'a>;
}

/// Adds `wasi:otel/{types,tracing,logs,metrics}` to `linker`.
pub fn add_to_linker<T: OtelView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasOtel>(linker, T::otel)?;
    tracing::add_to_linker::<T, HasOtel>(linker, T::otel)?;
    logs::add_to_linker::<T, HasOtel>(linker, T::otel)?;
    tta_core::bindings::wasi::otel::metrics::add_to_linker::<T, HasOtel>(linker, T::otel)?;
    Ok(())
}

impl OtelCtx<'_> {
    /// Whether `id` names a span of this call: its own, a guest span, or one a guest started.
    fn is_call_span(&self, id: u64) -> bool {
        id == self.rec.report.ids.span_id
            || self.state.started.iter().any(|&(s, _)| s == id)
            || self.rec.report.spans.iter().any(|s| s.span_id == id)
    }

    /// The span a guest's span or log record belongs to: the one it names (hex) if that is a
    /// span of this call, else the span the guest's work runs under.
    fn named_or_current_span(&self, hex: Option<&str>) -> u64 {
        match hex.and_then(span_id) {
            Some(id) if self.is_call_span(id) => id,
            _ => self.rec.current_span_id(),
        }
    }
}

impl types::Host for OtelCtx<'_> {}

impl tracing::Host for OtelCtx<'_> {
    fn on_start(&mut self, context: tracing::SpanContext) -> wasmtime::Result<()> {
        if let Some(id) = span_id(&context.span_id)
            && self.state.started.len() < self.rec.limits().max_spans
        {
            self.state.started.push((id, self.rec.fuel_left()));
        }
        Ok(())
    }

    fn on_end(&mut self, span: tracing::SpanData) -> wasmtime::Result<()> {
        if self.rec.report.spans.len() >= self.rec.limits().max_spans {
            self.rec.report.dropped.spans += 1;
            return Ok(());
        }
        let own = span_id(&span.span_context.span_id);
        let fuel = own
            .and_then(|id| self.state.started.iter().find(|&&(s, _)| s == id))
            .map(|&(_, opened)| opened.saturating_sub(self.rec.fuel_left()));
        let span_id = match own {
            Some(id) if id != self.rec.report.ids.span_id && !self.rec.report.spans.iter().any(|s| s.span_id == id) => {
                id
            }
            _ => new_span_id(),
        };
        let parent_span_id = self.named_or_current_span(Some(&span.parent_span_id));
        let max_items = self.rec.limits().max_span_items;
        let (attributes, dropped) = bounded_attributes(attributes(span.attributes), max_items);
        self.rec.report.dropped.span_items +=
            dropped + u64::from(span.dropped_attributes) + u64::from(span.dropped_events);
        let room = max_items.saturating_sub(attributes.len());
        self.rec.report.dropped.span_items += span.events.len().saturating_sub(room) as u64;
        let events = span
            .events
            .into_iter()
            .take(room)
            .map(|event| {
                let (attributes, _) = bounded_attributes(self::attributes(event.attributes), max_items);
                SpanEvent {
                    name: bounded(event.name),
                    time: time(event.time),
                    attributes,
                }
            })
            .collect();
        let error = match span.status {
            tracing::Status::Error(message) => Some(bounded(message)),
            tracing::Status::Ok | tracing::Status::Unset => None,
        };
        self.rec.report.spans.push(GuestSpanRecord {
            span_id,
            parent_span_id,
            name: bounded(span.name),
            start: time(span.start_time),
            end: Some(time(span.end_time)),
            attributes,
            events,
            error,
            client: matches!(span.span_kind, tracing::SpanKind::Client | tracing::SpanKind::Producer),
            fuel,
        });
        Ok(())
    }

    fn outer_span_context(&mut self) -> wasmtime::Result<tracing::SpanContext> {
        let ids = &self.rec.report.ids;
        let trace_state = self
            .rec
            .report
            .tracestate
            .split(',')
            .filter_map(|member| member.trim().split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(tracing::SpanContext {
            trace_id: format!("{:032x}", ids.trace_id),
            span_id: format!("{:016x}", self.rec.current_span_id()),
            trace_flags: if ids.sampled {
                tracing::TraceFlags::SAMPLED
            } else {
                tracing::TraceFlags::empty()
            },
            is_remote: false,
            trace_state,
        })
    }
}

impl logs::Host for OtelCtx<'_> {
    fn on_emit(&mut self, record: logs::LogRecord) -> wasmtime::Result<()> {
        let level = level(record.severity_number, record.severity_text.as_deref());
        let message = match record.body {
            Some(json) => match attribute_value(json) {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Boolean(b) => b.to_string(),
            },
            None => record.event_name.clone().unwrap_or_default(),
        };
        let mut fields = attributes(record.attributes.unwrap_or_default());
        if let Some(event) = record.event_name {
            fields.push(("event.name".to_owned(), Value::Str(event)));
        }
        let span_id = self.named_or_current_span(record.span_id.as_deref());
        let when = record
            .timestamp
            .or(record.observed_timestamp)
            .map_or_else(SystemTime::now, time);
        self.rec.record_log(when, level, message, fields, span_id);
        Ok(())
    }
}
