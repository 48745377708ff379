//! The `file` trace exporter: each span as one JSON object a line, appended to a file.

use crate::logs;
use std::sync::Mutex;

/// Writes each span as one JSON object a line: the `file` trace exporter.
#[derive(Debug)]
pub struct JsonFileSpanExporter {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
    service: String,
}

impl JsonFileSpanExporter {
    /// Appends to `path`, creating it.
    pub fn open(path: &std::path::Path, service: &str) -> std::io::Result<Self> {
        Ok(JsonFileSpanExporter {
            file: Mutex::new(std::io::BufWriter::new(super::open_append(path)?)),
            service: service.to_owned(),
        })
    }
}

fn otel_json(value: &opentelemetry::Value) -> serde_json::Value {
    match value {
        opentelemetry::Value::Bool(b) => serde_json::Value::Bool(*b),
        opentelemetry::Value::I64(i) => serde_json::Value::from(*i),
        opentelemetry::Value::F64(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        other => serde_json::Value::String(other.to_string()),
    }
}

impl opentelemetry_sdk::trace::SpanExporter for JsonFileSpanExporter {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        use std::io::Write as _;
        let mut out = String::new();
        for span in &batch {
            let attributes: serde_json::Map<String, serde_json::Value> = span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), otel_json(&kv.value)))
                .collect();
            let events: Vec<serde_json::Value> = span
                .events
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "name": e.name,
                        "timestamp": logs::rfc3339(e.timestamp),
                        "attributes": e.attributes.iter().map(|kv| (kv.key.to_string(), otel_json(&kv.value))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            let parent = span.parent_span_id;
            let line = serde_json::json!({
                "service": self.service,
                "name": span.name,
                "trace_id": span.span_context.trace_id().to_string(),
                "span_id": span.span_context.span_id().to_string(),
                "parent_span_id": (parent != opentelemetry::trace::SpanId::INVALID).then(|| parent.to_string()),
                "start": logs::rfc3339(span.start_time),
                "end": logs::rfc3339(span.end_time),
                "duration_ms": logs::millis(span.end_time.duration_since(span.start_time).unwrap_or_default()),
                "status": match &span.status {
                    opentelemetry::trace::Status::Unset => "unset".to_owned(),
                    opentelemetry::trace::Status::Ok => "ok".to_owned(),
                    opentelemetry::trace::Status::Error { description } => format!("error: {description}"),
                },
                "attributes": attributes,
                "events": events,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(out.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| opentelemetry_sdk::error::OTelSdkError::InternalFailure(e.to_string()))
    }
}
