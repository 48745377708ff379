//! The most recent traces, kept in memory for their tenant: what `GET /v1/traces` and
//! `/ui` show without a tracing backend.
//!
//! The export thread hands every sampled call and workflow run here after it was queued,
//! so the call path does nothing more. Each tenant keeps at most `traces.keep` traces and
//! `traces.keep_bytes_per_tenant` bytes (its oldest go first), and all together at most
//! `traces.keep_bytes` (past it, the oldest of the tenant holding the most go): what one
//! tenant sends never evicts another's traces while it holds less than its share.

use crate::cost::{Costs, NodeKind};
use crate::exported::Exported;
use serde_json::{Value as Json, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tta_core::bindings::Value;
use tta_core::config::telemetry::TracesConfig;
use tta_core::report::{CallReport, GuestLog, GuestSpanRecord, WorkflowReport};

/// One kept trace and what its list entry shows.
#[derive(Debug)]
pub struct Kept {
    /// The trace id.
    pub trace_id: u128,
    /// The primitive called, or the workflow run.
    pub name: String,
    /// Whether it is a workflow run.
    pub workflow: bool,
    /// The error type, when it failed.
    pub error_type: Option<&'static str>,
    /// When it started.
    pub start: SystemTime,
    /// How long it took.
    pub wall: Duration,
    /// Fuel burned under it.
    pub fuel: u64,
    /// Its spans.
    pub spans: usize,
    bytes: usize,
    item: Exported,
}

/// What a listing asks for.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this primitive or workflow.
    pub name: Option<String>,
    /// Only failed (`Some(false)`) or succeeded (`Some(true)`) ones.
    pub ok: Option<bool>,
    /// Only those that took at least this long.
    pub min_duration: Option<Duration>,
    /// Only this trace.
    pub trace_id: Option<u128>,
    /// At most this many, newest first.
    pub limit: usize,
}

#[derive(Default)]
struct Tenant {
    traces: VecDeque<Arc<Kept>>,
    bytes: usize,
}

#[derive(Default)]
struct State {
    tenants: HashMap<String, Tenant>,
    bytes: usize,
}

/// The kept traces of every tenant.
pub struct TraceStore {
    keep: usize,
    per_tenant: usize,
    total: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceStore")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// Roughly what a report holds, in bytes: its strings and a fixed part per record.
fn report_bytes(report: &CallReport) -> usize {
    let attributes = |list: &[(String, Value)]| -> usize {
        list.iter()
            .map(|(k, v)| {
                k.len()
                    + 16
                    + match v {
                        Value::Str(s) => s.len(),
                        _ => 8,
                    }
            })
            .sum()
    };
    let spans: usize = report
        .spans
        .iter()
        .map(|s| {
            128 + s.name.len()
                + attributes(&s.attributes)
                + s.events
                    .iter()
                    .map(|e| 48 + e.name.len() + attributes(&e.attributes))
                    .sum::<usize>()
                + s.error.as_ref().map_or(0, String::len)
        })
        .sum();
    let logs: usize = report
        .logs
        .iter()
        .map(|l| 64 + l.message.len() + attributes(&l.fields))
        .sum();
    512 + report.primitive.len()
        + spans
        + logs
        + attributes(&report.attributes)
        + report.nested.iter().map(report_bytes).sum::<usize>()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TraceStore {
    /// A store as `config` bounds it; `None` when it keeps nothing.
    pub fn new(config: &TracesConfig) -> Option<Arc<Self>> {
        (config.keep > 0).then(|| {
            Arc::new(TraceStore {
                keep: config.keep,
                per_tenant: config.keep_bytes_per_tenant,
                total: config.keep_bytes,
                state: Mutex::default(),
            })
        })
    }

    /// Keeps a sampled call or run for its tenant, evicting as the bounds say.
    pub(crate) fn keep(&self, item: &Exported) {
        let kept = match item {
            Exported::Call(r) => Kept {
                trace_id: r.ids.trace_id,
                name: r.primitive.clone(),
                workflow: false,
                error_type: r.error.as_ref().map(|e| e.error_type()),
                start: r.start,
                wall: r.stats.wall,
                fuel: r.stats.fuel_consumed,
                spans: crate::spans::span_count(r) as usize,
                bytes: report_bytes(r),
                item: item.clone(),
            },
            Exported::Workflow(r) => Kept {
                trace_id: r.ids.trace_id,
                name: r.workflow.clone(),
                workflow: true,
                error_type: r.error.as_ref().map(|e| e.error_type()),
                start: r.start,
                wall: r.wall,
                fuel: r.calls.iter().map(|c| c.stats.fuel_consumed).sum(),
                spans: 1
                    + r.spans.len()
                    + r.calls
                        .iter()
                        .map(|c| crate::spans::span_count(c) as usize)
                        .sum::<usize>(),
                bytes: 512 + r.spans.len() * 256 + r.calls.iter().map(report_bytes).sum::<usize>(),
                item: item.clone(),
            },
        };
        let tenant_id = item.tenant();
        if kept.bytes > self.per_tenant.min(self.total) {
            return;
        }
        let mut state = lock(&self.state);
        let State { tenants, bytes } = &mut *state;
        let tenant = tenants.entry(tenant_id.to_owned()).or_default();
        tenant.bytes += kept.bytes;
        *bytes += kept.bytes;
        tenant.traces.push_back(Arc::new(kept));
        while tenant.traces.len() > self.keep || tenant.bytes > self.per_tenant {
            let Some(old) = tenant.traces.pop_front() else { break };
            tenant.bytes -= old.bytes;
            *bytes -= old.bytes;
        }
        while *bytes > self.total {
            let Some(largest) = tenants.values_mut().max_by_key(|t| t.bytes) else {
                break;
            };
            let Some(old) = largest.traces.pop_front() else { break };
            largest.bytes -= old.bytes;
            *bytes -= old.bytes;
        }
    }

    /// The tenant's traces that pass `filter`, newest first.
    pub fn list(&self, tenant: &str, filter: &Filter) -> Vec<Arc<Kept>> {
        let state = lock(&self.state);
        let Some(kept) = state.tenants.get(tenant) else {
            return Vec::new();
        };
        kept.traces
            .iter()
            .rev()
            .filter(|t| filter.name.as_ref().is_none_or(|n| *n == t.name))
            .filter(|t| filter.ok.is_none_or(|ok| ok == t.error_type.is_none()))
            .filter(|t| filter.min_duration.is_none_or(|d| t.wall >= d))
            .filter(|t| filter.trace_id.is_none_or(|id| id == t.trace_id))
            .take(filter.limit)
            .cloned()
            .collect()
    }

    /// The tenant's trace `trace_id`, if it is kept.
    pub fn get(&self, tenant: &str, trace_id: u128) -> Option<Arc<Kept>> {
        let state = lock(&self.state);
        state
            .tenants
            .get(tenant)?
            .traces
            .iter()
            .rev()
            .find(|t| t.trace_id == trace_id)
            .cloned()
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

fn value(v: &Value) -> Json {
    match v {
        Value::Str(s) => Json::String(s.clone()),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Boolean(b) => json!(b),
    }
}

fn object(list: &[(String, Value)]) -> Json {
    Json::Object(list.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

/// A failure's type and message, or `null`.
fn error_json(error: Option<(&str, String)>) -> Json {
    error.map_or(
        Json::Null,
        |(kind, message)| json!({ "type": kind, "message": message }),
    )
}

fn log_json(log: &GuestLog) -> Json {
    json!({
        "time_unix_nano": unix_nanos(log.time),
        "level": crate::logs::level_name(log.level),
        "message": log.message,
        "fields": object(&log.fields),
    })
}

/// The spans of one trace, in the order they started, for the JSON view.
struct Spans<'a> {
    costs: Costs,
    out: Vec<(u64, Json)>,
    logs: HashMap<u64, Vec<&'a GuestLog>>,
}

impl<'a> Spans<'a> {
    fn span(&mut self, id: u64, extra: serde_json::Map<String, Json>) {
        let Some(node) = self.costs.get(id) else {
            return;
        };
        let mut span = serde_json::Map::new();
        span.insert("span_id".into(), json!(format!("{id:016x}")));
        span.insert(
            "parent_span_id".into(),
            node.parent.map_or(Json::Null, |p| json!(format!("{p:016x}"))),
        );
        span.insert("name".into(), json!(node.name));
        span.insert(
            "kind".into(),
            json!(match node.kind {
                NodeKind::Workflow => "workflow",
                NodeKind::Step => "step",
                NodeKind::Call => "call",
                NodeKind::Instantiate => "instantiate",
                NodeKind::Guest => "guest",
            }),
        );
        span.insert("start_unix_nano".into(), json!(unix_nanos(node.start)));
        span.insert(
            "duration_ns".into(),
            json!(u64::try_from(node.wall.as_nanos()).unwrap_or(u64::MAX)),
        );
        span.insert("fuel".into(), json!(node.fuel));
        span.insert("fuel_self".into(), json!(node.fuel_self));
        let logs: Vec<Json> = self
            .logs
            .get(&id)
            .map_or_else(Vec::new, |l| l.iter().map(|l| log_json(l)).collect());
        span.insert("logs".into(), Json::Array(logs));
        span.extend(extra);
        self.out.push((unix_nanos(node.start), Json::Object(span)));
    }

    fn record(&mut self, record: &GuestSpanRecord) {
        let mut extra = serde_json::Map::new();
        extra.insert("attributes".into(), object(&record.attributes));
        extra.insert(
            "events".into(),
            Json::Array(
                record
                    .events
                    .iter()
                    .map(|e| json!({ "name": e.name, "time_unix_nano": unix_nanos(e.time), "attributes": object(&e.attributes) }))
                    .collect(),
            ),
        );
        extra.insert("error".into(), record.error.as_ref().map_or(Json::Null, |e| json!(e)));
        self.span(record.span_id, extra);
    }

    fn call(&mut self, report: &'a CallReport) {
        for log in &report.logs {
            self.logs.entry(log.span_id).or_default().push(log);
        }
        let mut extra = serde_json::Map::new();
        let mut attributes = vec![
            ("primitive.name".to_owned(), Value::Str(report.primitive.clone())),
            ("primitive.version".to_owned(), Value::Str(report.version.clone())),
            ("correlation_id".to_owned(), Value::Str(report.correlation_id.clone())),
            (
                "wasm.memory_peak_bytes".to_owned(),
                Value::Int(i64::try_from(report.stats.memory_peak_bytes).unwrap_or(i64::MAX)),
            ),
        ];
        attributes.extend(report.attributes.iter().cloned());
        extra.insert("attributes".into(), object(&attributes));
        let error = report.error.as_ref().map(|e| (e.error_type(), e.to_string()));
        extra.insert("error".into(), error_json(error));
        self.span(report.ids.span_id, extra);
        if !report.stats.instantiate.is_zero() {
            self.span(report.instantiate_span_id, serde_json::Map::new());
        }
        for span in &report.spans {
            self.record(span);
        }
        for nested in &report.nested {
            self.call(nested);
        }
    }
}

impl Kept {
    /// Its entry in a listing.
    pub fn summary(&self) -> Json {
        json!({
            "trace_id": format!("{:032x}", self.trace_id),
            "name": self.name,
            "kind": if self.workflow { "workflow" } else { "primitive" },
            "status": if self.error_type.is_none() { "ok" } else { "error" },
            "error_type": self.error_type,
            "start_unix_nano": unix_nanos(self.start),
            "duration_ms": self.wall.as_secs_f64() * 1e3,
            "fuel": self.fuel,
            "spans": self.spans,
        })
    }

    /// The whole trace: its summary and every span with its fuel, attributes, events and
    /// logs, in the order they started.
    pub fn json(&self) -> Json {
        let mut spans = match &self.item {
            Exported::Call(r) => {
                let mut spans = Spans {
                    costs: Costs::of_call(r),
                    out: Vec::new(),
                    logs: HashMap::new(),
                };
                spans.call(r);
                spans
            }
            Exported::Workflow(r) => workflow_spans(r),
        };
        spans.out.sort_by_key(|(start, _)| *start);
        let mut out = self.summary();
        out["span_list"] = Json::Array(spans.out.into_iter().map(|(_, s)| s).collect());
        out
    }
}

fn workflow_spans(report: &WorkflowReport) -> Spans<'_> {
    let mut spans = Spans {
        costs: Costs::of_workflow(report),
        out: Vec::new(),
        logs: HashMap::new(),
    };
    let mut extra = serde_json::Map::new();
    extra.insert("attributes".into(), object(&report.attributes));
    let error = report.error.as_ref().map(|e| (e.error_type(), e.to_string()));
    extra.insert("error".into(), error_json(error));
    spans.span(report.ids.span_id, extra);
    for step in &report.spans {
        spans.record(step);
    }
    for call in &report.calls {
        spans.call(call);
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(tenant: &str, trace_id: u128, log_bytes: usize) -> Arc<CallReport> {
        let mut r = crate::tests_support::report(tenant, trace_id);
        r.logs.push(GuestLog {
            time: SystemTime::now(),
            level: tta_core::bindings::Level::Info,
            message: "x".repeat(log_bytes),
            fields: Vec::new(),
            span_id: r.ids.span_id,
            source: tta_core::report::LogSource::Api,
        });
        Arc::new(r)
    }

    #[test]
    fn each_tenant_keeps_its_own_newest_within_count_and_bytes() {
        let config = TracesConfig {
            keep: 3,
            keep_bytes_per_tenant: 20_000,
            keep_bytes: 30_000,
            ..TracesConfig::default()
        };
        let store = TraceStore::new(&config).expect("a store");
        for id in 1..=5 {
            store.keep(&Exported::Call(report("acme", id, 10)));
        }
        let ids: Vec<u128> = store
            .list(
                "acme",
                &Filter {
                    limit: 10,
                    ..Filter::default()
                },
            )
            .iter()
            .map(|t| t.trace_id)
            .collect();
        assert_eq!(ids, [5, 4, 3], "the newest three");
        assert!(store.get("beta", 5).is_none(), "another tenant sees none of them");
        // A tenant sending big traces evicts its own first, then the largest holder's.
        for id in 10..14 {
            store.keep(&Exported::Call(report("beta", id, 9_000)));
        }
        let beta = store.list(
            "beta",
            &Filter {
                limit: 10,
                ..Filter::default()
            },
        );
        assert_eq!(beta.len(), 2, "beta holds what its 20 000 bytes allow");
        assert_eq!(
            store
                .list(
                    "acme",
                    &Filter {
                        limit: 10,
                        ..Filter::default()
                    }
                )
                .len(),
            3,
            "acme keeps its own"
        );
        let json = store.get("acme", 5).expect("kept").json();
        assert_eq!(json["span_list"][0]["name"], "p.execute");
        assert_eq!(json["span_list"][0]["logs"][0]["message"], "x".repeat(10));
    }
}
