//! Observability: every call traced, metered and logged, exported off the call path.
//!
//! [`initialize_observability`] builds a [`Telemetry`] from an [`ObservabilityConfig`]
//! (config file, `OTEL_*` variables, flags): the Prometheus registry, the sampler, the
//! exporters and the export thread, and the host's log output. The call path touches
//! it twice: [`Metrics::record_call`] (cached handles, atomic adds) and
//! [`Telemetry::export`] (a non-blocking hand-over of the finished report). Everything
//! else (spans, log records, pushes, the `/metrics` server) runs on the export thread.

pub mod buckets;
pub mod call_series;
mod connect;
pub mod cost;
mod error;
pub mod export;
mod exported;
pub mod file;
pub mod flame;
pub mod genai;
mod guest_histogram;
pub mod guest_metrics;
pub mod instruments;
pub mod logs;
pub mod metrics;
mod otlp;
pub mod otlp_metrics;
pub mod recent;
pub mod sampler;
pub mod scrape;
pub mod spans;
pub mod tree;

pub use error::TelemetryError;
pub use file::JsonFileSpanExporter;
pub use metrics::{Metrics, PrimitiveMetrics};
pub use sampler::Sampler;
pub use scrape::{MAX_SCRAPE_CONNECTIONS, SCRAPE_HEADER_TIMEOUT};
pub use tta_core::config::telemetry::{
    Exporter, LogFormat, ObservabilityConfig, OtlpProtocol, SamplerKind, TelemetryConfigError,
};

use export::{DynLogExporter, ExportQueue, LogSink, SpanSink, WorkerSetup};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tta_core::bindings::Value;
use tta_core::report::CallReport;

struct Inner {
    config: ObservabilityConfig,
    metrics: Arc<Metrics>,
    sampler: Sampler,
    queue: Option<ExportQueue>,
    kept: Option<Arc<recent::TraceStore>>,
    metrics_addr: Option<SocketAddr>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    shut_down: AtomicBool,
    summary: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.shut_down.load(Ordering::Acquire)
            && let Some(queue) = &self.queue
        {
            queue.shutdown(Instant::now() + self.config.export.shutdown_timeout());
        }
    }
}

/// The observability of a host. Clone it freely; clones share everything.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("summary", &self.inner.summary)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Telemetry`] from the configured exporters plus any given in code.
pub struct TelemetryBuilder {
    config: ObservabilityConfig,
    spans: Vec<SpanSink>,
    logs: Vec<(String, Box<dyn DynLogExporter>)>,
    logger: Option<String>,
    keep_traces: bool,
}

/// Builds telemetry from `config` with the standard `OTEL_*` environment variables applied
/// over it, and installs the host's log output on stderr (format and level from
/// `config.logs`, overridden by `RUST_LOG`).
pub fn initialize_observability(config: &ObservabilityConfig) -> Result<Telemetry, TelemetryError> {
    let mut config = config.clone();
    config.apply_env(|name| std::env::var(name).ok())?;
    let filter = log_filter(&config.logs.level);
    Telemetry::builder(config).install_logger(filter).build()
}

/// The crates of the host, whose log records `level` shows; every other crate shows
/// warnings only.
const HOST_CRATES: [&str; 8] = [
    "tta_core",
    "tta_telemetry",
    "tta_runtime",
    "tta_workflow",
    "tta_cluster",
    "tta_catalog",
    "tta_server",
    "tta_host",
];

/// The default log filter (`RUST_LOG` replaces it): `level` for the host's records,
/// `warn` for its dependencies'.
pub fn log_filter(level: &str) -> String {
    let mut filter = String::from("warn");
    for krate in HOST_CRATES {
        filter.push_str(&format!(",{krate}={level}"));
    }
    filter
}

impl TelemetryBuilder {
    /// Keeps the most recent sampled traces in memory per tenant (`telemetry.traces.keep`),
    /// for a server's `GET /v1/traces` and `/ui`.
    pub fn keep_traces(mut self) -> Self {
        self.keep_traces = true;
        self
    }

    /// Also sends spans to `exporter` (for example an in-memory exporter in tests).
    pub fn with_span_exporter(
        mut self,
        name: &str,
        exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
    ) -> Self {
        self.spans.push(SpanSink::new(name, Box::new(exporter)));
        self
    }

    /// Also sends log records to `exporter`.
    pub fn with_log_exporter(
        mut self,
        name: &str,
        exporter: impl opentelemetry_sdk::logs::LogExporter + 'static,
    ) -> Self {
        self.logs.push((name.to_owned(), Box::new(exporter)));
        self
    }

    /// Installs the global `tracing` subscriber for the host's own logs, filtered by
    /// `default_filter` unless `RUST_LOG` is set. Does nothing if one is installed already.
    pub fn install_logger(mut self, default_filter: impl Into<String>) -> Self {
        self.logger = Some(default_filter.into());
        self
    }

    /// Starts exporters, the export thread and the `/metrics` server as configured.
    pub fn build(self) -> Result<Telemetry, TelemetryError> {
        let TelemetryBuilder {
            config,
            spans: mut span_sinks,
            logs: extra_logs,
            logger,
            keep_traces,
        } = self;
        config.validate()?;
        if let Some(filter) = logger {
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(logs::HostLogLayer::new(config.logs.format, config.service_name.clone()))
                .try_init();
        }
        let metrics = Arc::new(Metrics::new(&config.metrics));
        metrics.touch_telemetry_counters("default");
        let sampler = Sampler::new(config.traces.sampler, config.traces.sampler_arg);
        let enabled = |list: &[Exporter], e: Exporter| !config.disabled && list.contains(&e);
        let console_traces = enabled(&config.traces.exporters, Exporter::Console);
        let mut log_sinks: Vec<LogSink> = Vec::new();
        if enabled(&config.logs.exporters, Exporter::Console) {
            log_sinks.push(LogSink::Console(config.logs.format));
        }
        if enabled(&config.logs.exporters, Exporter::File)
            && let Some(path) = &config.logs.file
        {
            let file = open_append(path).map_err(|e| TelemetryError::Exporter {
                signal: "logs",
                destination: path.display().to_string(),
                message: e.to_string(),
            })?;
            log_sinks.push(LogSink::File(std::io::BufWriter::new(file), path.display().to_string()));
        }
        if enabled(&config.traces.exporters, Exporter::File)
            && let Some(path) = &config.traces.file
        {
            let exporter =
                JsonFileSpanExporter::open(path, &config.service_name).map_err(|e| TelemetryError::Exporter {
                    signal: "traces",
                    destination: path.display().to_string(),
                    message: e.to_string(),
                })?;
            span_sinks.push(SpanSink::new(format!("file {}", path.display()), Box::new(exporter)));
        }
        for (name, exporter) in extra_logs {
            log_sinks.push(LogSink::Exporter {
                name,
                exporter,
                failing: false,
            });
        }
        let otlp_traces = enabled(&config.traces.exporters, Exporter::Otlp);
        let otlp_logs = enabled(&config.logs.exporters, Exporter::Otlp);
        let otlp_metrics = enabled(&config.metrics.exporters, Exporter::Otlp);
        let listener = match config.metrics.listen {
            Some(addr) => match std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::warn!("metrics endpoint is off: cannot listen on {addr}: {e}; calls are still metered");
                    None
                }
            },
            None => None,
        };
        let metrics_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let kept = if keep_traces && !config.disabled {
            recent::TraceStore::new(&config.traces)
        } else {
            None
        };
        let needs_worker = kept.is_some()
            || !span_sinks.is_empty()
            || console_traces
            || !log_sinks.is_empty()
            || otlp_traces
            || otlp_logs
            || otlp_metrics
            || listener.is_some();
        let summary = describe(&config, &span_sinks, console_traces, &log_sinks, metrics_addr);
        if !needs_worker {
            // Nothing is exported: a one-shot `run` says so only when asked (`-v`).
            tracing::debug!("{summary}");
            return Ok(Telemetry {
                inner: Arc::new(Inner {
                    config,
                    metrics,
                    sampler,
                    queue: None,
                    kept: None,
                    metrics_addr: None,
                    worker: Mutex::new(None),
                    shut_down: AtomicBool::new(false),
                    summary,
                }),
            });
        }
        let wants_spans = kept.is_some() || !span_sinks.is_empty() || console_traces || otlp_traces;
        let wants_logs = !log_sinks.is_empty() || otlp_logs;
        // Reports, not spans, are queued: wake the thread when a batch's worth of calls waits.
        let (queue, reports, control) = ExportQueue::new(
            config.export.queue_size,
            config.export.queue_size / 4,
            wants_spans,
            wants_logs,
        );
        let wake_pending = Arc::clone(&queue.wake_pending);
        if let Err(e) = metrics
            .registry()
            .register(Box::new(export::QueueGauges::new(reports.clone())))
        {
            tracing::warn!("the export queue's gauges are not registered: {e}");
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), TelemetryError>>();
        let thread_config = config.clone();
        let thread_metrics = Arc::clone(&metrics);
        let thread_kept = kept.clone();
        let worker = std::thread::Builder::new()
            .name("tta-telemetry".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("tta-telemetry-io")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(TelemetryError::Thread(e.to_string())));
                        return;
                    }
                };
                let setup = {
                    let _guard = runtime.enter();
                    otlp::sinks(
                        &thread_config,
                        otlp_traces,
                        otlp_logs,
                        otlp_metrics,
                        span_sinks,
                        log_sinks,
                    )
                    .map(|(spans, logs, pusher)| WorkerSetup {
                        spans,
                        console_traces,
                        logs,
                        log_level: tta_core::bindings::Level::parse(&thread_config.logs.level)
                            .unwrap_or(tta_core::bindings::Level::Info),
                        metrics_pusher: pusher,
                        metrics_interval: Duration::from_millis(thread_config.metrics.export_interval_ms.max(100)),
                        batch_size: thread_config.export.batch_size,
                        interval: Duration::from_millis(thread_config.export.interval_ms.max(1)),
                        export_timeout: Duration::from_millis(thread_config.otlp.timeout_ms.max(1)),
                        service: thread_config.service_name.clone(),
                        kept: thread_kept,
                    })
                };
                let setup = match setup {
                    Ok(setup) => setup,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if let Some(listener) = listener {
                    let metrics = Arc::clone(&thread_metrics);
                    let auth = scrape::ScrapeAuth::new(&thread_config.metrics);
                    runtime.spawn(scrape::serve(listener, metrics, auth));
                }
                let _ = ready_tx.send(Ok(()));
                export::run_worker(setup, &runtime, reports, control, wake_pending, thread_metrics);
                runtime.shutdown_timeout(Duration::from_millis(100));
            })
            .map_err(|e| TelemetryError::Thread(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = worker.join();
                return Err(e);
            }
            Err(_) => {
                return Err(TelemetryError::Thread(
                    "the telemetry thread stopped while starting".into(),
                ));
            }
        }
        tracing::info!("{summary}");
        Ok(Telemetry {
            inner: Arc::new(Inner {
                config,
                metrics,
                sampler,
                queue: Some(queue),
                kept,
                metrics_addr,
                worker: Mutex::new(Some(worker)),
                shut_down: AtomicBool::new(false),
                summary,
            }),
        })
    }
}

fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// One line saying where each signal goes, and what is off.
fn describe(
    config: &ObservabilityConfig,
    spans: &[SpanSink],
    console_traces: bool,
    logs: &[LogSink],
    metrics_addr: Option<SocketAddr>,
) -> String {
    let otlp = format!(
        "otlp {} {}",
        match config.otlp.protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        },
        config.otlp.endpoint()
    );
    let on = |list: &[Exporter], e: Exporter| !config.disabled && list.contains(&e);
    let mut traces: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    if console_traces {
        traces.push("console".into());
    }
    if on(&config.traces.exporters, Exporter::Otlp) {
        traces.push(otlp.clone());
    }
    let mut log_targets: Vec<String> = logs
        .iter()
        .map(|l| match l {
            LogSink::Console(_) => "console".to_owned(),
            LogSink::File(_, path) => format!("file {path}"),
            LogSink::Exporter { name, .. } => name.clone(),
        })
        .collect();
    if on(&config.logs.exporters, Exporter::Otlp) {
        log_targets.push(otlp.clone());
    }
    let mut metric_targets = Vec::new();
    if let Some(addr) = metrics_addr {
        metric_targets.push(format!("http://{addr}/metrics"));
    }
    if on(&config.metrics.exporters, Exporter::Otlp) {
        metric_targets.push(otlp);
    }
    let list = |v: Vec<String>, off: &str| if v.is_empty() { off.to_owned() } else { v.join(", ") };
    let mut summary = format!(
        "telemetry: traces → {}; logs → {}; metrics → {}",
        list(traces, "off (no exporter)"),
        list(log_targets, "off (no exporter)"),
        list(metric_targets, "in memory only (no /metrics listener, no push)"),
    );
    if config.disabled {
        summary.push_str(" (OTEL_SDK_DISABLED is set)");
    } else if config.traces.exporters.is_empty() && config.logs.exporters.is_empty() {
        summary.push_str("; set OTEL_EXPORTER_OTLP_ENDPOINT or [telemetry] in the config to export");
    }
    summary
}

impl Telemetry {
    /// A builder starting from `config`.
    pub fn builder(config: ObservabilityConfig) -> TelemetryBuilder {
        TelemetryBuilder {
            config,
            spans: Vec::new(),
            logs: Vec::new(),
            logger: None,
            keep_traces: false,
        }
    }

    /// Metrics in memory, nothing exported, no thread: what a host has until told otherwise.
    pub fn disabled(config: &ObservabilityConfig) -> Self {
        let metrics = Arc::new(Metrics::new(&config.metrics));
        metrics.touch_telemetry_counters("default");
        Telemetry {
            inner: Arc::new(Inner {
                config: config.clone(),
                metrics,
                sampler: Sampler::new(config.traces.sampler, config.traces.sampler_arg),
                queue: None,
                kept: None,
                metrics_addr: None,
                worker: Mutex::new(None),
                shut_down: AtomicBool::new(false),
                summary: "telemetry: metrics in memory only".into(),
            }),
        }
    }

    /// The metrics registry and its handles.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The sampler for new traces.
    pub fn sampler(&self) -> Sampler {
        self.inner.sampler
    }

    /// Where `/metrics` is served, once bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.metrics_addr
    }

    /// One line saying where each signal goes.
    pub fn summary(&self) -> &str {
        &self.inner.summary
    }

    /// The recent traces kept in memory, when [`TelemetryBuilder::keep_traces`] asked.
    pub fn traces(&self) -> Option<&Arc<recent::TraceStore>> {
        self.inner.kept.as_ref()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ObservabilityConfig {
        &self.inner.config
    }

    /// Hands a finished top-level call to the exporters; never blocks.
    pub fn export(&self, report: &Arc<CallReport>) {
        if let Some(queue) = &self.inner.queue {
            queue.offer(export::Exported::Call(Arc::clone(report)), &self.inner.metrics);
        }
    }

    /// Hands a finished workflow run to the exporters; never blocks.
    pub fn export_workflow(&self, report: &Arc<tta_core::report::WorkflowReport>) {
        if let Some(queue) = &self.inner.queue {
            queue.offer(export::Exported::Workflow(Arc::clone(report)), &self.inner.metrics);
        }
    }

    /// Sends everything queued so far; `false` if that took longer than `timeout`. Blocks
    /// the calling thread (from async code, call it where blocking is allowed).
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.queue.as_ref().is_none_or(|q| q.flush(timeout))
    }

    /// Flushes and stops the exporters within the configured bound
    /// (`telemetry.export.shutdown_timeout_ms`), blocking the calling thread at most that
    /// long. Later calls are still metered, not exported.
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let bound = self.inner.config.export.shutdown_timeout();
        let Some(queue) = &self.inner.queue else {
            return Ok(());
        };
        if queue.shutdown(Instant::now() + bound) {
            if let Some(worker) = self
                .inner
                .worker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
            {
                let _ = worker.join();
            }
            Ok(())
        } else {
            Err(TelemetryError::ShutdownTimeout(bound))
        }
    }
}

/// A telemetry value as text.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
    }
}

/// Reports the unit tests of this crate build on.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::time::{Duration, SystemTime};
    use tta_core::report::{CallReport, CallStats, SpanIds};

    /// A successful call of `p` for `tenant` in trace `trace_id`, nothing reported.
    pub fn report(tenant: &str, trace_id: u128) -> CallReport {
        CallReport {
            primitive: "p".into(),
            version: "1".into(),
            correlation_id: "c".into(),
            tenant: tenant.into(),
            ids: SpanIds {
                trace_id,
                span_id: 10,
                parent_span_id: None,
                sampled: true,
            },
            tracestate: String::new(),
            instantiate_span_id: 11,
            nested_depth: 0,
            remote_parent: false,
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
            stats: CallStats {
                wall: Duration::from_millis(1),
                ..CallStats::default()
            },
            error: None,
            logs: Vec::new(),
            spans: Vec::new(),
            metrics: Vec::new(),
            nested: Vec::new(),
            dropped: Default::default(),
            attributes: Vec::new(),
        }
    }
}
