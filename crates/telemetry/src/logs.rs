//! Log records: the call's own (`primitive_executed`), the guest's, and the host's
//! diagnostics, in one shape: the TTA.dev JSON line or a pretty line for a terminal.
//!
//! JSON keys come in a fixed order: `timestamp`, `level`, `event`, `correlation_id`,
//! `trace_id`, `span_id`, `service`, then the record's own fields (`primitive`, `tenant`,
//! `duration_ms`, `status`, …). Guest fields never overwrite those.

use serde_json::Value as Json;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::SystemTime;
use tta_core::bindings::{Level, Value};
use tta_core::config::telemetry::LogFormat;
use tta_core::report::{CallReport, LogSource, WorkflowReport};

/// One log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// When it happened.
    pub time: SystemTime,
    /// Severity.
    pub level: Level,
    /// What happened: a snake_case event name, or a guest's message.
    pub event: String,
    /// The request it belongs to.
    pub correlation_id: Option<String>,
    /// The trace and span it was emitted in, and whether the trace is sampled.
    pub trace: Option<(u128, u64, bool)>,
    /// The record's own fields, in order.
    pub fields: Vec<(String, Json)>,
}

const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "event",
    "correlation_id",
    "trace_id",
    "span_id",
    "service",
];

/// A duration in milliseconds to the microsecond, for log fields: an integer number of
/// microseconds divided once, so it prints as `2.818`, never `2.8179999999999996`.
pub fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

/// The upper-case name of a level, as the TTA.dev format writes it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    }
}

/// A rank for comparing levels: trace 0 … error 4.
pub fn level_rank(level: Level) -> u8 {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

fn json_value(value: &Value) -> Json {
    match value {
        Value::Str(s) => Json::String(s.clone()),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Boolean(b) => Json::Bool(*b),
    }
}

/// Appends the log records of `report` and its nested calls at `min` or above to `out`.
pub fn call_logs(report: &CallReport, min: Level, out: &mut Vec<LogLine>) {
    let trace = |span_id: u64| Some((report.ids.trace_id, span_id, report.ids.sampled));
    let common = |fields: &mut Vec<(String, Json)>| {
        fields.push(("primitive".into(), Json::String(report.primitive.clone())));
        fields.push(("tenant".into(), Json::String(report.tenant.clone())));
    };
    for log in &report.logs {
        if level_rank(log.level) < level_rank(min) {
            continue;
        }
        let mut fields = Vec::with_capacity(log.fields.len() + 3);
        common(&mut fields);
        fields.push((
            "source".into(),
            Json::String(
                match log.source {
                    LogSource::Api => "guest",
                    LogSource::Stdout => "stdout",
                    LogSource::Stderr => "stderr",
                }
                .into(),
            ),
        ));
        for (k, v) in &log.fields {
            if !RESERVED.contains(&k.as_str()) && !fields.iter().any(|(f, _)| f == k) {
                fields.push((k.clone(), json_value(v)));
            }
        }
        out.push(LogLine {
            time: log.time,
            level: log.level,
            event: log.message.clone(),
            correlation_id: Some(report.correlation_id.clone()),
            trace: trace(log.span_id),
            fields,
        });
    }
    for nested in &report.nested {
        call_logs(nested, min, out);
    }
    let level = if report.error.is_some() {
        Level::Warn
    } else {
        Level::Info
    };
    if level_rank(level) >= level_rank(min) {
        let mut fields = Vec::with_capacity(8);
        common(&mut fields);
        fields.push(("version".into(), Json::String(report.version.clone())));
        fields.push((
            "duration_ms".into(),
            serde_json::Number::from_f64(millis(report.stats.wall)).map_or(Json::Null, Json::Number),
        ));
        fields.push(("status".into(), Json::String(report.status().into())));
        fields.push(("fuel_consumed".into(), Json::from(report.stats.fuel_consumed)));
        fields.push(("memory_peak_bytes".into(), Json::from(report.stats.memory_peak_bytes)));
        if let Some(error) = &report.error {
            fields.push(("error_type".into(), Json::String(error.error_type().into())));
            fields.push(("error".into(), Json::String(error.to_string())));
        }
        out.push(LogLine {
            time: report.start + report.stats.wall,
            level,
            event: "primitive_executed".into(),
            correlation_id: Some(report.correlation_id.clone()),
            trace: trace(report.ids.span_id),
            fields,
        });
    }
}

/// Appends the log records of a workflow run: each call's, then `workflow_executed`.
pub fn workflow_logs(report: &WorkflowReport, min: Level, out: &mut Vec<LogLine>) {
    for call in &report.calls {
        call_logs(call, min, out);
    }
    let level = if report.error.is_some() {
        Level::Warn
    } else {
        Level::Info
    };
    if level_rank(level) < level_rank(min) {
        return;
    }
    let mut fields = vec![
        ("workflow_name".to_owned(), Json::String(report.workflow.clone())),
        ("tenant".to_owned(), Json::String(report.tenant.clone())),
        (
            "duration_ms".to_owned(),
            serde_json::Number::from_f64(millis(report.wall)).map_or(Json::Null, Json::Number),
        ),
        ("status".to_owned(), Json::String(report.status().into())),
        ("calls".to_owned(), Json::from(report.calls.len())),
    ];
    if let Some(error) = &report.error {
        fields.push(("error_type".into(), Json::String(error.error_type().to_owned())));
        fields.push(("error".into(), Json::String(error.to_string())));
    }
    out.push(LogLine {
        time: report.start + report.wall,
        level,
        event: "workflow_executed".into(),
        correlation_id: Some(report.correlation_id.clone()),
        trace: Some((report.ids.trace_id, report.ids.span_id, report.ids.sampled)),
        fields,
    });
}

impl LogLine {
    /// The record as one JSON object (no newline).
    pub fn to_json(&self, service: &str) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        let mut first = true;
        let mut put = |out: &mut String, key: &str, value: &Json| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&Json::String(key.to_owned()).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        };
        put(&mut out, "timestamp", &Json::String(rfc3339(self.time)));
        put(&mut out, "level", &Json::String(level_name(self.level).into()));
        put(&mut out, "event", &Json::String(self.event.clone()));
        if let Some(id) = &self.correlation_id {
            put(&mut out, "correlation_id", &Json::String(id.clone()));
        }
        if let Some((trace_id, span_id, _)) = self.trace {
            put(&mut out, "trace_id", &Json::String(format!("{trace_id:032x}")));
            put(&mut out, "span_id", &Json::String(format!("{span_id:016x}")));
        }
        put(&mut out, "service", &Json::String(service.to_owned()));
        for (k, v) in &self.fields {
            put(&mut out, k, v);
        }
        out.push('}');
        out
    }

    /// Appends ` key=value` for each field, strings unquoted.
    fn write_fields(&self, out: &mut String) {
        for (k, v) in &self.fields {
            let _ = match v {
                Json::String(s) => write!(out, " {k}={s}"),
                other => write!(out, " {k}={other}"),
            };
        }
    }

    /// The record as one line for a person (no newline).
    pub fn to_pretty(&self) -> String {
        let mut out = format!("{} {:>5} {}", rfc3339(self.time), level_name(self.level), self.event);
        self.write_fields(&mut out);
        if let Some(id) = &self.correlation_id {
            let _ = write!(out, " correlation_id={id}");
        }
        if let Some((trace_id, span_id, _)) = self.trace {
            let _ = write!(out, " trace_id={trace_id:032x} span_id={span_id:016x}");
        }
        out
    }

    /// The record in `format`.
    pub fn format(&self, format: LogFormat, service: &str) -> String {
        match format {
            LogFormat::Json => self.to_json(service),
            LogFormat::Pretty => self.to_pretty(),
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2024-10-30T10:30:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A `tracing` layer writing the host's own diagnostics to stderr in the same shape as
/// call records, so one log stream has one format.
pub struct HostLogLayer {
    format: LogFormat,
    service: String,
}

impl HostLogLayer {
    /// A layer writing `format` lines tagged with `service`.
    pub fn new(format: LogFormat, service: impl Into<String>) -> Self {
        HostLogLayer {
            format,
            service: service.into(),
        }
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Vec<(String, Json)>,
}

impl tracing::field::Visit for FieldVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_json(field, Json::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_json(field, Json::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.record_json(field, Json::from(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.record_json(field, Json::from(value));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.record_json(
            field,
            serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number),
        );
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.record_json(field, Json::Bool(value));
    }
}

impl FieldVisitor {
    fn record_json(&mut self, field: &tracing::field::Field, value: Json) {
        if field.name() == "message" {
            self.message = Some(match value {
                Json::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.push((field.name().to_owned(), value));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for HostLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        };
        let mut fields = visitor.fields;
        // Ids given as fields take their place in the record, as on call records.
        let mut take = |key: &str| {
            let i = fields.iter().position(|(k, _)| k == key)?;
            match fields.remove(i).1 {
                Json::String(s) => Some(s),
                other => Some(other.to_string()),
            }
        };
        let correlation_id = take("correlation_id");
        let trace = match (take("trace_id"), take("span_id")) {
            (Some(t), Some(s)) => u128::from_str_radix(&t, 16)
                .ok()
                .zip(u64::from_str_radix(&s, 16).ok())
                .map(|(t, s)| (t, s, true)),
            _ => None,
        };
        if self.format == LogFormat::Json {
            fields.push(("target".into(), Json::String(meta.target().to_owned())));
        }
        let line = LogLine {
            time: SystemTime::now(),
            level,
            event: visitor.message.unwrap_or_else(|| meta.name().to_owned()),
            correlation_id,
            trace,
            fields,
        };
        let text = match self.format {
            LogFormat::Json => line.to_json(&self.service),
            LogFormat::Pretty => {
                let mut s = format!("{}: {}", level_name(level).to_ascii_lowercase(), line.event);
                line.write_fields(&mut s);
                if let Some(id) = line.correlation_id.as_deref().filter(|id| !id.is_empty()) {
                    let _ = write!(s, " correlation_id={id}");
                }
                s
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_730_284_200_123);
        assert_eq!(rfc3339(t), "2024-10-30T10:30:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn json_lines_keep_the_tta_key_order() {
        let line = LogLine {
            time: SystemTime::UNIX_EPOCH,
            level: Level::Info,
            event: "primitive_executed".into(),
            correlation_id: Some("req-1".into()),
            trace: Some((1, 2, true)),
            fields: vec![("status".into(), Json::String("success".into()))],
        };
        let json = line.to_json("svc");
        assert_eq!(
            json,
            r#"{"timestamp":"1970-01-01T00:00:00.000Z","level":"INFO","event":"primitive_executed","correlation_id":"req-1","trace_id":"00000000000000000000000000000001","span_id":"0000000000000002","service":"svc","status":"success"}"#
        );
    }
}
