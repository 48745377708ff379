//! The export pipeline: a bounded queue between calls and exporters, and one thread that
//! batches, converts and exports.
//!
//! A call hands over its finished report (an `Arc`, no copy) with a non-blocking
//! `try_send`; when the queue is full the report's spans and logs are counted in
//! `telemetry_dropped_total` and the call goes on. The export thread turns reports into
//! spans and log records, sends them in batches with a timeout each, and counts what a
//! slow or absent backend did not take. It also pushes metrics and hosts the runtime of
//! the `/metrics` server, so nothing of telemetry runs on a caller's threads.

pub use crate::exported::Exported;
use crate::logs::{LogLine, call_logs, workflow_logs};
use crate::metrics::Metrics;
use crate::otlp_metrics::{MetricsPusher, to_request};
use crate::spans::{Scopes, report_spans, workflow_spans};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_util::future::BoxFuture;
use opentelemetry::InstrumentationScope;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tta_core::bindings::Level;
use tta_core::config::telemetry::LogFormat;

/// A span exporter behind a pointer: `SpanExporter::export` returns `impl Future`.
pub trait DynSpanExporter: Send + Sync + std::fmt::Debug {
    /// Exports one batch.
    fn export_boxed(&self, batch: Vec<SpanData>) -> BoxFuture<'_, OTelSdkResult>;
    /// Shuts down.
    fn shutdown_boxed(&self, timeout: Duration) -> OTelSdkResult;
}

impl<T: SpanExporter + 'static> DynSpanExporter for T {
    fn export_boxed(&self, batch: Vec<SpanData>) -> BoxFuture<'_, OTelSdkResult> {
        Box::pin(self.export(batch))
    }
    fn shutdown_boxed(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
}

/// A log exporter behind a pointer.
pub trait DynLogExporter: Send + Sync + std::fmt::Debug {
    /// Exports one batch.
    fn export_boxed<'a>(&'a self, batch: LogBatch<'a>) -> BoxFuture<'a, OTelSdkResult>;
    /// Shuts down.
    fn shutdown_boxed(&self, timeout: Duration) -> OTelSdkResult;
}

impl<T: LogExporter + 'static> DynLogExporter for T {
    fn export_boxed<'a>(&'a self, batch: LogBatch<'a>) -> BoxFuture<'a, OTelSdkResult> {
        Box::pin(self.export(batch))
    }
    fn shutdown_boxed(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
}

/// One destination of spans, with a name for messages and whether it is failing now.
pub struct SpanSink {
    pub(crate) name: String,
    pub(crate) exporter: Box<dyn DynSpanExporter>,
    failing: bool,
}

/// One destination of log records.
pub enum LogSink {
    /// Lines on stderr.
    Console(LogFormat),
    /// JSON lines appended to a file.
    File(std::io::BufWriter<std::fs::File>, String),
    /// An OpenTelemetry log exporter (OTLP, in-memory).
    Exporter {
        /// For messages.
        name: String,
        /// The exporter.
        exporter: Box<dyn DynLogExporter>,
        /// Whether it is failing now.
        failing: bool,
    },
}

impl SpanSink {
    /// A named span destination.
    pub fn new(name: impl Into<String>, exporter: Box<dyn DynSpanExporter>) -> Self {
        SpanSink {
            name: name.into(),
            exporter,
            failing: false,
        }
    }
}

/// What the export thread does.
pub struct WorkerSetup {
    pub(crate) spans: Vec<SpanSink>,
    pub(crate) console_traces: bool,
    pub(crate) logs: Vec<LogSink>,
    pub(crate) log_level: Level,
    pub(crate) metrics_pusher: Option<MetricsPusher>,
    pub(crate) metrics_interval: Duration,
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
    pub(crate) export_timeout: Duration,
    pub(crate) service: String,
    /// Where sampled traces are kept for `GET /v1/traces`, when `serve` keeps them.
    pub(crate) kept: Option<Arc<crate::recent::TraceStore>>,
}

pub(crate) enum Control {
    Wake,
    Flush(Sender<()>),
    Shutdown(Instant, Sender<()>),
}

/// The caller's end of the queue.
pub struct ExportQueue {
    tx: Sender<Exported>,
    control: Sender<Control>,
    wake_at: usize,
    pub(crate) wake_pending: Arc<AtomicBool>,
    pub(crate) wants_spans: bool,
    pub(crate) wants_logs: bool,
}

impl ExportQueue {
    pub(crate) fn new(
        capacity: usize,
        wake_at: usize,
        wants_spans: bool,
        wants_logs: bool,
    ) -> (Self, Receiver<Exported>, Receiver<Control>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let (control, control_rx) = crossbeam_channel::unbounded();
        (
            ExportQueue {
                tx,
                control,
                wake_at: wake_at.clamp(1, capacity),
                wake_pending: Arc::new(AtomicBool::new(false)),
                wants_spans,
                wants_logs,
            },
            rx,
            control_rx,
        )
    }

    /// Hands `item` to the export thread without waiting; counts it as dropped if the queue is full.
    pub fn offer(&self, item: Exported, metrics: &Metrics) {
        if !(self.wants_logs || self.wants_spans && item.sampled()) {
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => {
                if self.tx.len() >= self.wake_at && !self.wake_pending.swap(true, Ordering::AcqRel) {
                    let _ = self.control.send(Control::Wake);
                }
            }
            Err(TrySendError::Full(item) | TrySendError::Disconnected(item)) => {
                if self.wants_spans && item.sampled() {
                    metrics.telemetry_dropped("spans", item.tenant(), item.span_count());
                }
                if self.wants_logs {
                    metrics.telemetry_dropped("logs", item.tenant(), item.log_count());
                }
            }
        }
    }

    /// Asks the export thread to send everything queued; waits at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = crossbeam_channel::bounded(1);
        self.control.send(Control::Flush(ack)).is_ok() && done.recv_timeout(timeout).is_ok()
    }

    /// Asks the export thread to flush and stop by `deadline`; waits at most until then.
    pub fn shutdown(&self, deadline: Instant) -> bool {
        let (ack, done) = crossbeam_channel::bounded(1);
        if self.control.send(Control::Shutdown(deadline, ack)).is_err() {
            return true;
        }
        done.recv_deadline(deadline + Duration::from_millis(50)).is_ok()
    }
}

/// `telemetry_export_queue_size` and `telemetry_export_queue_capacity`, read when scraped:
/// how many finished calls and workflow runs wait for the export thread, and how many the
/// queue holds before it drops. It holds the receiving end, so the export thread still
/// sees the queue close when the host goes.
pub(crate) struct QueueGauges {
    reports: Receiver<Exported>,
    size: prometheus::IntGauge,
    capacity: prometheus::IntGauge,
}

impl QueueGauges {
    pub(crate) fn new(reports: Receiver<Exported>) -> Self {
        let gauge = |name: &str, help: &str| prometheus::IntGauge::new(name, help).expect("static metric definition");
        let size = gauge(
            "telemetry_export_queue_size",
            "Finished calls and workflow runs waiting for the telemetry thread to export them.",
        );
        let capacity = gauge(
            "telemetry_export_queue_capacity",
            "How many finished calls and workflow runs the export queue holds; past that they are dropped and counted.",
        );
        capacity.set(i64::try_from(reports.capacity().unwrap_or(0)).unwrap_or(i64::MAX));
        QueueGauges {
            reports,
            size,
            capacity,
        }
    }
}

impl prometheus::core::Collector for QueueGauges {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut descs = self.size.desc();
        descs.extend(self.capacity.desc());
        descs
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.size.set(i64::try_from(self.reports.len()).unwrap_or(i64::MAX));
        let mut families = self.size.collect();
        families.extend(self.capacity.collect());
        families
    }
}

/// The export thread's loop; returns when shut down or when the host is gone.
///
/// The thread sleeps until its interval passes or a caller finds the queue a batch deep;
/// a call never wakes it otherwise (a wake-up per call would cost the caller a syscall).
pub(crate) fn run_worker(
    mut setup: WorkerSetup,
    runtime: &tokio::runtime::Runtime,
    reports: Receiver<Exported>,
    control: Receiver<Control>,
    wake_pending: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let scopes = Scopes::default();
    let logger = SdkLoggerProvider::builder().build().logger("tta-host");
    let log_scope = InstrumentationScope::builder("tta-host").build();
    let started = SystemTime::now();
    let mut batch = Batch::default();
    let mut next_flush = Instant::now() + setup.interval;
    let mut next_push = Instant::now() + setup.metrics_interval;
    let drain = |setup: &mut WorkerSetup, batch: &mut Batch, deadline: Option<Instant>| -> bool {
        wake_pending.store(false, Ordering::Release);
        let mut open = true;
        loop {
            match reports.try_recv() {
                Ok(report) => {
                    if let Some(kept) = &setup.kept
                        && report.sampled()
                    {
                        kept.keep(&report);
                    }
                    batch.add(setup, &scopes, &report);
                    if batch.spans.len() >= setup.batch_size || batch.logs.len() >= setup.batch_size {
                        batch.send(setup, runtime, &metrics, &logger, &log_scope, deadline);
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        batch.send(setup, runtime, &metrics, &logger, &log_scope, deadline);
        open
    };
    loop {
        let wake = if setup.metrics_pusher.is_some() {
            next_flush.min(next_push)
        } else {
            next_flush
        };
        match control.recv_deadline(wake) {
            Ok(Control::Wake) => {
                if !drain(&mut setup, &mut batch, None) {
                    return;
                }
            }
            Ok(Control::Flush(ack)) => {
                let open = drain(&mut setup, &mut batch, None);
                let _ = ack.send(());
                if !open {
                    return;
                }
            }
            Ok(Control::Shutdown(deadline, ack)) => {
                drain(&mut setup, &mut batch, Some(deadline));
                if let Some(pusher) = &mut setup.metrics_pusher {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let request = to_request(&metrics.registry().gather(), &pusher.resource, started);
                    let _ = runtime.block_on(async { tokio::time::timeout(left, pusher.push(request)).await });
                }
                let left = deadline.saturating_duration_since(Instant::now());
                for sink in &setup.spans {
                    let _ = sink.exporter.shutdown_boxed(left);
                }
                for sink in &mut setup.logs {
                    match sink {
                        LogSink::Exporter { exporter, .. } => {
                            let _ = exporter.shutdown_boxed(left);
                        }
                        LogSink::File(file, _) => {
                            let _ = file.flush();
                        }
                        LogSink::Console(_) => {}
                    }
                }
                let _ = ack.send(());
                return;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                drain(&mut setup, &mut batch, None);
                return;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if now >= next_flush {
                    if !drain(&mut setup, &mut batch, None) {
                        return;
                    }
                    next_flush = Instant::now() + setup.interval;
                }
                if now >= next_push
                    && let Some(pusher) = &mut setup.metrics_pusher
                {
                    let request = to_request(&metrics.registry().gather(), &pusher.resource, started);
                    let error = runtime.block_on(pusher.push(request)).err();
                    report_outcome("metrics", &mut pusher.failing, &pusher.destination, error.as_deref());
                    if error.is_some() {
                        metrics.telemetry_dropped("metrics", "default", 1);
                    } else {
                        metrics.telemetry_exported("metrics", "default", 1);
                    }
                    next_push = Instant::now() + setup.metrics_interval;
                }
            }
        }
    }
}

/// What is waiting to be sent, with per-tenant counts to attribute drops.
#[derive(Default)]
struct Batch {
    spans: Vec<SpanData>,
    logs: Vec<LogLine>,
    tenants: HashMap<String, (u64, u64)>,
}

impl Batch {
    fn add(&mut self, setup: &WorkerSetup, scopes: &Scopes, item: &Exported) {
        let spans_before = self.spans.len();
        if item.sampled() && (!setup.spans.is_empty() || setup.console_traces) {
            if setup.console_traces {
                let tree = match item {
                    Exported::Call(r) => crate::tree::render(r),
                    Exported::Workflow(r) => crate::tree::render_workflow(r),
                };
                let _ = write!(std::io::stderr().lock(), "{tree}");
            }
            if !setup.spans.is_empty() {
                match item {
                    Exported::Call(r) => report_spans(r, scopes, &mut self.spans),
                    Exported::Workflow(r) => workflow_spans(r, scopes, &mut self.spans),
                }
            }
        }
        let logs_before = self.logs.len();
        if !setup.logs.is_empty() {
            match item {
                Exported::Call(r) => call_logs(r, setup.log_level, &mut self.logs),
                Exported::Workflow(r) => workflow_logs(r, setup.log_level, &mut self.logs),
            }
        }
        let counts = self.tenants.entry(item.tenant().to_owned()).or_default();
        counts.0 += (self.spans.len() - spans_before) as u64;
        counts.1 += (self.logs.len() - logs_before) as u64;
    }

    fn send(
        &mut self,
        setup: &mut WorkerSetup,
        runtime: &tokio::runtime::Runtime,
        metrics: &Metrics,
        logger: &opentelemetry_sdk::logs::SdkLogger,
        log_scope: &InstrumentationScope,
        deadline: Option<Instant>,
    ) {
        let mut spans = std::mem::take(&mut self.spans);
        let logs = std::mem::take(&mut self.logs);
        let tenants = std::mem::take(&mut self.tenants);
        let timeout = |setup: &WorkerSetup| match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(setup.export_timeout),
            None => setup.export_timeout,
        };
        let count = |signal: &str, pick: fn(&(u64, u64)) -> u64, taken: bool| {
            for (tenant, counts) in &tenants {
                if taken {
                    metrics.telemetry_exported(signal, tenant, pick(counts));
                } else {
                    metrics.telemetry_dropped(signal, tenant, pick(counts));
                }
            }
        };
        if !spans.is_empty() {
            let n = setup.spans.len();
            for i in 0..n {
                let t = timeout(setup);
                let sink = &mut setup.spans[i];
                let batch = if i + 1 == n {
                    std::mem::take(&mut spans)
                } else {
                    spans.clone()
                };
                let result =
                    runtime.block_on(async { tokio::time::timeout(t, sink.exporter.export_boxed(batch)).await });
                let error = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no answer within {t:?}")),
                };
                report_outcome("traces", &mut sink.failing, &sink.name, error.as_deref());
                count("spans", |c| c.0, error.is_none());
            }
        }
        if !logs.is_empty() {
            let mut records: Option<Vec<SdkLogRecord>> = None;
            for i in 0..setup.logs.len() {
                let t = timeout(setup);
                match &mut setup.logs[i] {
                    LogSink::Console(format) => {
                        let mut err = std::io::stderr().lock();
                        for line in &logs {
                            let _ = writeln!(err, "{}", line.format(*format, &setup.service));
                        }
                        count("logs", |c| c.1, true);
                    }
                    LogSink::File(file, path) => {
                        let mut ok = true;
                        for line in &logs {
                            ok &= writeln!(file, "{}", line.to_json(&setup.service)).is_ok();
                        }
                        ok &= file.flush().is_ok();
                        if !ok {
                            tracing::warn!(path = %path, "cannot write the log file; log records dropped");
                        }
                        count("logs", |c| c.1, ok);
                    }
                    LogSink::Exporter {
                        name,
                        exporter,
                        failing,
                    } => {
                        let records =
                            records.get_or_insert_with(|| logs.iter().map(|l| sdk_record(logger, l)).collect());
                        let pairs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                            records.iter().map(|r| (r, log_scope)).collect();
                        let result = runtime.block_on(async {
                            tokio::time::timeout(t, exporter.export_boxed(LogBatch::new(&pairs))).await
                        });
                        let error = match result {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(_) => Some(format!("no answer within {t:?}")),
                        };
                        report_outcome("logs", failing, name, error.as_deref());
                        count("logs", |c| c.1, error.is_none());
                    }
                }
            }
        }
    }
}

/// Says once when a destination starts failing and once when it recovers.
fn report_outcome(signal: &str, failing: &mut bool, name: &str, error: Option<&str>) {
    match (error, *failing) {
        (Some(e), false) => {
            *failing = true;
            tracing::warn!(
                "{signal} export to {name} failed: {e}; calls go on, and what cannot be sent is dropped and counted in telemetry_dropped_total"
            );
        }
        (None, true) => {
            *failing = false;
            tracing::info!("{signal} export to {name} works again");
        }
        _ => {}
    }
}

fn sdk_record(logger: &opentelemetry_sdk::logs::SdkLogger, line: &LogLine) -> SdkLogRecord {
    use opentelemetry::logs::{AnyValue, Severity};
    let mut record = logger.create_log_record();
    record.set_timestamp(line.time);
    record.set_observed_timestamp(SystemTime::now());
    let (severity, text) = match line.level {
        Level::Trace => (Severity::Trace, "TRACE"),
        Level::Debug => (Severity::Debug, "DEBUG"),
        Level::Info => (Severity::Info, "INFO"),
        Level::Warn => (Severity::Warn, "WARN"),
        Level::Error => (Severity::Error, "ERROR"),
    };
    record.set_severity_number(severity);
    record.set_severity_text(text);
    record.set_body(AnyValue::String(line.event.clone().into()));
    if let Some(id) = &line.correlation_id {
        record.add_attribute("correlation_id", id.clone());
    }
    for (k, v) in &line.fields {
        let value: AnyValue = match v {
            serde_json::Value::String(s) => AnyValue::String(s.clone().into()),
            serde_json::Value::Bool(b) => AnyValue::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or_default()),
            },
            other => AnyValue::String(other.to_string().into()),
        };
        record.add_attribute(k.clone(), value);
    }
    if let Some((trace_id, span_id, sampled)) = line.trace {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        record.set_trace_context(TraceId::from(trace_id), SpanId::from(span_id), Some(flags));
    }
    record
}
