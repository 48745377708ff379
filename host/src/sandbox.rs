//! One guest call: a fresh `Store` from the pool, its limits, and the classification of how it ended.
//!
//! Nothing survives a call: every call instantiates the component anew (copy-on-write
//! from the pooling allocator), so no state leaks between calls or tenants. The WASI
//! context grants nothing: no files, no sockets, no environment, no arguments; stdout
//! and stderr are captured, bounded, and become the call's log records.

use crate::bindings::{Context, Level, Metadata, PrimitivePlugin, PrimitivePluginPre};
use crate::config::Limits;
use crate::error::{CallError, GuestError};
use crate::host::Shared;
use crate::outgoing_http::OutgoingHttp;
use crate::plugin::Plugin;
use crate::report::{CallReport, CallStats, GuestLog, LogSource, SpanIds};
use crate::stdio::CapturedOutput;
use crate::tenant::Access;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

/// Everything that identifies and bounds one call, decided by the caller.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Ties together every span, log and metric of one request.
    pub correlation_id: String,
    /// The tenant the call runs for.
    pub tenant: String,
    /// The W3C ids of the call's host span.
    pub ids: SpanIds,
    /// The W3C `tracestate` passed along.
    pub tracestate: String,
    /// Workflow data.
    pub data: Vec<(String, String)>,
    /// When the call must be finished.
    pub deadline: Instant,
    /// The wall-clock limit the deadline came from, for messages.
    pub timeout: Duration,
    /// The fuel the call may burn.
    pub fuel: u64,
    /// How many `invoke` levels above this call.
    pub depth: u32,
    /// Whether the parent span is in another process (an incoming `traceparent`).
    pub remote_parent: bool,
    /// The limits the call runs under: the host's, or its tenant's quotas.
    pub limits: Limits,
    /// What the tenant may reach through `invoke`; `None` is the operator (everything shared).
    pub access: Option<Arc<Access>>,
}

impl Invocation {
    /// The invocation of a top-level call: a new trace (or the caller's, from `traceparent`),
    /// the full budget of `limits`.
    pub fn root(limits: &Limits, correlation_id: String, tenant: String, parent: Option<(u128, u64, bool)>) -> Self {
        let ids = match parent {
            Some((trace_id, parent_span_id, sampled)) => SpanIds {
                trace_id,
                span_id: crate::guest_api::new_span_id(),
                parent_span_id: Some(parent_span_id),
                sampled,
            },
            None => SpanIds {
                trace_id: new_trace_id(),
                span_id: crate::guest_api::new_span_id(),
                parent_span_id: None,
                sampled: true,
            },
        };
        Invocation {
            correlation_id,
            tenant,
            ids,
            tracestate: String::new(),
            data: Vec::new(),
            deadline: Instant::now() + limits.timeout(),
            timeout: limits.timeout(),
            fuel: limits.fuel,
            depth: 0,
            remote_parent: parent.is_some(),
            limits: *limits,
            access: None,
        }
    }
}

/// A fresh, non-zero W3C trace id.
fn new_trace_id() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// The memory error raised when a guest grows past its limit; downcast to classify it.
#[derive(Debug, thiserror::Error)]
#[error("linear memory limit of {limit} bytes exceeded: {requested} bytes requested")]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit: usize,
    /// What the guest asked for in total.
    pub requested: usize,
}

/// Enforces the memory and table limits of one store and records its peak memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    max_table_elements: usize,
    current_total: usize,
    peak_total: usize,
    exceeded: Option<(usize, usize)>,
}

impl MemoryLimiter {
    fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            limit: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            current_total: 0,
            peak_total: 0,
            exceeded: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.current_total - current.min(self.current_total) + desired;
        if total > self.limit {
            self.exceeded = Some((self.limit, total));
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.limit,
                requested: total,
            }));
        }
        self.current_total = total;
        self.peak_total = self.peak_total.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

/// The data of one store: WASI, limits, and what the guest reports.
pub struct CallState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) invocation: Invocation,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    pub(crate) report: CallReport,
    /// Open guest spans, innermost last: indices into `report.spans`.
    pub(crate) open_spans: Vec<usize>,
    /// Fuel left when the guest last called into the host.
    pub(crate) fuel_at_host_entry: u64,
    /// Fuel burned by nested calls, taken from this store when the import returns.
    pub(crate) fuel_debit: u64,
    /// Outgoing HTTP, made on the first request.
    http: Option<Box<OutgoingHttp>>,
    /// Span ids a guest's `wasi:otel` SDK announced as started, so children ending first
    /// find their parent.
    pub(crate) otel_started: Vec<u64>,
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let parent = self.current_span_id();
        let http = self.http.get_or_insert_with(|| {
            Box::new(OutgoingHttp::new(
                self.shared.telemetry.metrics(),
                &self.invocation,
                &self.report.primitive,
            ))
        });
        http.hooks.parent_span_id = parent;
        WasiHttpCtxView {
            hooks: &mut http.hooks,
            table: &mut self.table,
            ctx: &mut http.ctx,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    /// The span new guest spans and logs attach to: the innermost open guest span, or the call's.
    pub(crate) fn current_span_id(&self) -> u64 {
        self.open_spans
            .last()
            .and_then(|&i| self.report.spans.get(i))
            .map_or(self.invocation.ids.span_id, |s| s.span_id)
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.invocation.limits
    }
}

/// Runs `plugin` once on `input` under `invocation`; records its metrics and returns its
/// output and its report.
pub(crate) async fn execute(
    shared: &Arc<Shared>,
    plugin: &Arc<Plugin>,
    invocation: Invocation,
    input: &[u8],
) -> (Result<Vec<u8>, CallError>, CallReport) {
    let (result, report) = execute_unmetered(shared, plugin, invocation, input).await;
    shared.telemetry.metrics().record_call(&plugin.metrics, &report);
    (result, report)
}

pub(crate) async fn execute_unmetered(
    shared: &Arc<Shared>,
    plugin: &Arc<Plugin>,
    invocation: Invocation,
    input: &[u8],
) -> (Result<Vec<u8>, CallError>, CallReport) {
    let limits = invocation.limits;
    let report = CallReport::new(&plugin.metadata.name, &plugin.metadata.version, &invocation);
    if input.len() > limits.max_input_bytes {
        let err = CallError::InputTooLarge {
            size: input.len(),
            limit: limits.max_input_bytes,
        };
        let mut report = report;
        report.error = Some(err.clone());
        return (Err(err), report);
    }
    let context = Context {
        correlation_id: invocation.correlation_id.clone(),
        traceparent: invocation.ids.traceparent(),
        tracestate: invocation.tracestate.clone(),
        tenant: invocation.tenant.clone(),
        data: invocation.data.clone(),
        deadline_ms: Some(
            u64::try_from(
                invocation
                    .deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
        ),
    };
    let (timeout, fuel, deadline) = (invocation.timeout, invocation.fuel, invocation.deadline);
    let mut store = match new_store(shared, invocation, report, plugin.imports_invoke) {
        Ok(store) => store,
        Err((err, report)) => return (Err(err), report),
    };

    let began = Instant::now();
    let instance = match within(deadline, plugin.pre.instantiate_async(&mut store)).await {
        Some(Ok(instance)) => instance,
        Some(Err(e)) => {
            let err = classify(e, store.data(), fuel, timeout, true);
            return finish(store, Err(err), began.elapsed(), fuel, began);
        }
        None => {
            let err = CallError::DeadlineExceeded { limit: timeout };
            return finish(store, Err(err), began.elapsed(), fuel, began);
        }
    };
    let instantiate = began.elapsed();
    let outcome = within(
        deadline,
        instance
            .tta_primitives_primitive()
            .call_execute(&mut store, &context, input),
    )
    .await;
    let result = match outcome {
        Some(Ok(Ok(output))) if output.len() > limits.max_output_bytes => Err(CallError::OutputTooLarge {
            size: output.len(),
            limit: limits.max_output_bytes,
        }),
        Some(Ok(Ok(output))) => Ok(output),
        Some(Ok(Err(e))) => Err(CallError::Guest(GuestError::from(e))),
        Some(Err(e)) => Err(classify(e, store.data(), fuel, timeout, false)),
        None => Err(CallError::DeadlineExceeded { limit: timeout }),
    };
    finish(store, result, instantiate, fuel, began)
}

/// How long past its deadline a call may still wait in the host. Guest code is stopped at
/// the deadline by the epoch callback, but epochs cannot interrupt a guest that waits in the
/// host — a WASI sleep, a poll on a clock or a stream — so the wait itself is bounded too.
const HOST_WAIT_GRACE: Duration = Duration::from_millis(20);

/// `future`'s output, or `None` once `deadline` (and the grace) has passed; dropping a
/// wasmtime call future unwinds the guest's fiber, and the store is discarded after.
async fn within<T>(deadline: Instant, future: impl std::future::Future<Output = T>) -> Option<T> {
    let until = tokio::time::Instant::from_std(deadline + HOST_WAIT_GRACE);
    tokio::time::timeout_at(until, future).await.ok()
}

/// Why `describe()` gave no metadata.
pub(crate) enum DescribeFailure {
    /// The exports have the right names but not the types of the world.
    Types(String),
    /// The call failed.
    Call(CallError),
}

/// Calls `describe()` on a fresh instance, under the same limits as a call; this is also
/// where the types of the exports are checked against the world.
pub(crate) async fn describe(
    shared: &Arc<Shared>,
    pre: &PrimitivePluginPre<CallState>,
    limits: &Limits,
) -> Result<Metadata, DescribeFailure> {
    let invocation = Invocation::root(limits, "describe".into(), "default".into(), None);
    let report = CallReport::new("describe", "", &invocation);
    let (timeout, fuel, deadline) = (invocation.timeout, invocation.fuel, invocation.deadline);
    let late = || DescribeFailure::Call(CallError::DeadlineExceeded { limit: timeout });
    let mut store = new_store(shared, invocation, report, false).map_err(|(err, _)| DescribeFailure::Call(err))?;
    let instance = match within(deadline, pre.instance_pre().instantiate_async(&mut store)).await {
        Some(Ok(instance)) => instance,
        Some(Err(e)) => return Err(DescribeFailure::Call(classify(e, store.data(), fuel, timeout, true))),
        None => return Err(late()),
    };
    let plugin = PrimitivePlugin::new(&mut store, &instance).map_err(|e| DescribeFailure::Types(format!("{e:#}")))?;
    match within(deadline, plugin.tta_primitives_primitive().call_describe(&mut store))
        .await
        .ok_or_else(late)?
    {
        Ok(metadata) => Ok(metadata),
        Err(e) => {
            let err = classify(e, store.data(), fuel, timeout, false);
            // `finish` adds the guest's last words on stderr to a trap.
            let (result, _) = finish(store, Err(err.clone()), Duration::ZERO, fuel, Instant::now());
            Err(DescribeFailure::Call(result.err().unwrap_or(err)))
        }
    }
}

/// Fuel burned between two yields to the executor (~0.1 ms of guest code): how long a
/// busy guest may keep other tenants' calls waiting for a worker thread.
const FUEL_YIELD_INTERVAL: u64 = 200_000;

/// A store for one call: WASI locked down, limits, fuel, deadline.
#[allow(clippy::result_large_err)]
fn new_store(
    shared: &Arc<Shared>,
    invocation: Invocation,
    report: CallReport,
    charge_nested: bool,
) -> Result<Store<CallState>, (CallError, CallReport)> {
    let limits = invocation.limits;
    let stdout = CapturedOutput::new(limits.max_stdio_bytes);
    let stderr = CapturedOutput::new(limits.max_stdio_bytes);
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_blocking_current_thread(false)
        .build();
    let fuel = invocation.fuel;
    let deadline = invocation.deadline;
    let state = CallState {
        shared: Arc::clone(shared),
        invocation,
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(&limits),
        stdout,
        stderr,
        report,
        open_spans: Vec::new(),
        fuel_at_host_entry: fuel,
        fuel_debit: 0,
        http: None,
        otel_started: Vec::new(),
    };
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|state| &mut state.limiter);
    // Data a guest hands the host in one crossing can never exceed its own memory; with this
    // bound an oversized output is lifted and then refused as `OutputTooLarge` by name.
    store.set_hostcall_fuel(limits.max_memory_bytes.saturating_add(1 << 16));
    // Yielding every so much fuel keeps long calls from hogging an executor thread, and
    // makes the fuel counter current at each yield, so a deadline stop reports what was burned.
    if let Err(e) = store
        .set_fuel(fuel)
        .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)))
    {
        return Err((CallError::Host(e.to_string()), store.into_data().report));
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    if charge_nested {
        store.call_hook(charge_nested_fuel);
    }
    Ok(store)
}

/// Moves fuel burned by a nested `invoke` call from this store's budget.
fn charge_nested_fuel(mut cx: wasmtime::StoreContextMut<'_, CallState>, hook: CallHook) -> wasmtime::Result<()> {
    match hook {
        CallHook::CallingHost => {
            let left = cx.get_fuel()?;
            cx.data_mut().fuel_at_host_entry = left;
        }
        CallHook::ReturningFromHost => {
            let debit = std::mem::take(&mut cx.data_mut().fuel_debit);
            if debit > 0 {
                let left = cx.get_fuel()?;
                cx.set_fuel(left.saturating_sub(debit))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn finish(
    store: Store<CallState>,
    result: Result<Vec<u8>, CallError>,
    instantiate: Duration,
    fuel_budget: u64,
    began: Instant,
) -> (Result<Vec<u8>, CallError>, CallReport) {
    let wall = began.elapsed();
    let fuel_left = store.get_fuel().unwrap_or(0);
    let mut state = store.into_data();
    let end = SystemTime::now();
    for &i in &state.open_spans {
        if let Some(span) = state.report.spans.get_mut(i) {
            span.end.get_or_insert(end);
        }
    }
    state.open_spans.clear();
    if let Some(http) = state.http.take() {
        let max_spans = state.invocation.limits.max_spans;
        for span in http.take_spans() {
            if state.report.spans.len() < max_spans {
                state.report.spans.push(span);
            } else {
                state.report.dropped.spans += 1;
            }
        }
    }
    let host_span = state.invocation.ids.span_id;
    let max_logs = state.invocation.limits.max_log_records;
    for (capture, source, level) in [
        (&state.stdout, LogSource::Stdout, Level::Info),
        (&state.stderr, LogSource::Stderr, Level::Warn),
    ] {
        let (text, dropped) = capture.take();
        state.report.dropped.stdio_bytes += dropped;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if state.report.logs.len() >= max_logs {
                state.report.dropped.logs += 1;
                continue;
            }
            state.report.logs.push(GuestLog {
                time: end,
                level,
                message: line.to_owned(),
                fields: Vec::new(),
                span_id: host_span,
                source,
            });
        }
    }
    let mut result = result;
    if let Err(CallError::Trap { detail, .. }) = &mut result
        && detail.is_empty()
    {
        *detail = last_stderr_words(&state.report.logs);
    }
    let mut report = state.report;
    report.stats = CallStats {
        wall,
        instantiate,
        fuel_consumed: fuel_budget.saturating_sub(fuel_left),
        memory_peak_bytes: state.limiter.peak_total,
        output_bytes: result.as_ref().map_or(0, Vec::len),
    };
    report.error = result.as_ref().err().cloned();
    (result, report)
}

/// The guest's last words on stderr, such as a Rust panic message, to explain a trap.
fn last_stderr_words(logs: &[GuestLog]) -> String {
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.source == LogSource::Stderr)
        .map(|l| l.message.as_str())
        .collect();
    let start = lines.len().saturating_sub(2);
    let text = lines[start..].join(" ");
    text.chars().take(500).collect()
}

/// Turns wasmtime's error chain into a specific `CallError`, by downcasting, never by text.
fn classify(error: wasmtime::Error, state: &CallState, fuel: u64, timeout: Duration, instantiating: bool) -> CallError {
    if let Some(m) = error.downcast_ref::<MemoryLimitExceeded>() {
        return CallError::MemoryLimit {
            limit: m.limit,
            requested: m.requested,
        };
    }
    if let Some((limit, requested)) = state.limiter.exceeded {
        return CallError::MemoryLimit { limit, requested };
    }
    let backtrace = error
        .downcast_ref::<WasmBacktrace>()
        .map(format_backtrace)
        .unwrap_or_default();
    if error.downcast_ref::<std::str::Utf8Error>().is_some() {
        // Lifting a string that is not UTF-8 is a trap in the component model: the guest
        // broke the ABI, the host did not fail.
        return CallError::Trap {
            kind: "the guest handed the host a string that is not UTF-8".into(),
            detail: format!("{error:#}"),
            backtrace,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel { limit: fuel },
        Some(Trap::Interrupt) => CallError::DeadlineExceeded { limit: timeout },
        Some(Trap::StackOverflow) => CallError::StackExhausted {
            limit: state.limits().max_wasm_stack_bytes,
            backtrace,
        },
        Some(trap) => CallError::Trap {
            kind: trap.to_string(),
            detail: String::new(),
            backtrace,
        },
        None if instantiating => CallError::Instantiate(format!("{error:#}")),
        // Once the instance runs, the only errors without a trap code are wasmtime refusing
        // what the guest handed over: a pointer out of bounds or misaligned, a bad variant
        // or `char`, an unknown resource handle. The imports of ours never fail (they count
        // and drop instead), so these are the guest's (found by fuzz target smith_component).
        None => CallError::Trap {
            kind: "the guest broke the component model's canonical ABI".into(),
            detail: format!("{error:#}"),
            backtrace,
        },
    }
}

/// At most this many frames are shown; runaway recursion has thousands of identical ones.
const MAX_FRAMES: usize = 12;

fn format_backtrace(backtrace: &WasmBacktrace) -> String {
    let frames = backtrace.frames();
    let mut out = String::new();
    for (i, frame) in frames.iter().take(MAX_FRAMES).enumerate() {
        let name = frame.func_name().unwrap_or("<unnamed>");
        out.push_str(&format!("  {i:>2}: {name}"));
        if let Some(sym) = frame.symbols().first()
            && let (Some(file), Some(line)) = (sym.file(), sym.line())
        {
            out.push_str(&format!(" at {file}:{line}"));
        }
        out.push('\n');
    }
    if frames.len() > MAX_FRAMES {
        out.push_str(&format!("  ... {} more frames\n", frames.len() - MAX_FRAMES));
    }
    out.trim_end().to_owned()
}
