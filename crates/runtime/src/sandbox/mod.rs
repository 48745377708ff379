//! One guest call: a fresh `Store` from the pool, its limits, and the classification of how it ended.
//!
//! Nothing survives a call: every call instantiates the component anew (copy-on-write
//! from the pooling allocator), so no state leaks between calls or tenants. The WASI
//! context grants nothing: no files, no sockets, no environment, no arguments; stdout
//! and stderr are captured, bounded, and become the call's log records. The sandbox
//! produces a report; it does not meter or export (that is `Host::execute`'s).

mod classify;
pub mod contract;
pub mod env;
pub mod limiter;
pub mod state;
pub mod stdio;

pub use env::CallEnv;
pub use limiter::MemoryLimitExceeded;
pub use state::CallState;

use crate::imports::invoke::InvokeState;
use crate::imports::otel::OtelState;
use crate::imports::telemetry::Recorder;
use crate::invocation::Invocation;
use crate::recording::{Ended, Tape, sources};
use classify::{classify, last_stderr_words};
use contract::Pre;
use limiter::MemoryLimiter;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use stdio::CapturedOutput;
use tta_core::bindings::{Context, Level};
use tta_core::config::Limits;
use tta_core::error::{CallError, GuestError};
use tta_core::metadata::Metadata;
use tta_core::report::{CallReport, CallStats, GuestLog, LogSource};
use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

/// What the sandbox needs of a primitive to run it: its pre-linked component and names.
#[derive(Clone, Copy)]
pub struct Guest<'a> {
    /// The component, compiled and pre-linked.
    pub pre: &'a Pre,
    /// Its name, for the report.
    pub name: &'a str,
    /// Its version, for the report.
    pub version: &'a str,
    /// SHA-256 of the component, for a recording.
    pub digest: &'a str,
    /// The file it came from, for a recording.
    pub path: &'a std::path::Path,
}

/// Runs `guest` once on `input` under `invocation` and returns its output and its report.
/// Nothing is metered or exported here: that is the caller's (`Host::execute`).
pub async fn execute(
    env: &Arc<CallEnv>,
    guest: Guest<'_>,
    invocation: Invocation,
    input: &[u8],
) -> (Result<Vec<u8>, CallError>, CallReport) {
    let limits = invocation.limits;
    if input.len() > limits.max_input_bytes {
        let err = CallError::InputTooLarge {
            size: input.len(),
            limit: limits.max_input_bytes,
        };
        let mut report = invocation.report(guest.name, guest.version);
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
    let Some(session) = invocation.session.clone() else {
        return run(env, guest, invocation, input, &context, None).await;
    };
    let tape = session.open(guest.name, input);
    let context = tape.context.as_ref().map_or(context, |c| Context {
        correlation_id: c.correlation_id.clone(),
        traceparent: c.traceparent.clone(),
        tracestate: c.tracestate.clone(),
        tenant: c.tenant.clone(),
        data: c.data.clone(),
        deadline_ms: c.deadline_ms,
    });
    let config = Arc::clone(&invocation.config);
    let (result, report) = run(env, guest, invocation, input, &context, Some(&tape)).await;
    session.close(
        &tape,
        Ended {
            primitive: guest.name,
            version: guest.version,
            digest: guest.digest,
            path: guest.path,
            input,
            context: &context,
            limits,
            result: &result,
            report: &report,
            redactor: config.redactor(),
        },
    );
    (result, report)
}

/// Runs the call, its clocks, random sources and imports going through `tape` if it has one.
async fn run(
    env: &Arc<CallEnv>,
    guest: Guest<'_>,
    invocation: Invocation,
    input: &[u8],
    context: &Context,
    tape: Option<&Arc<Tape>>,
) -> (Result<Vec<u8>, CallError>, CallReport) {
    let limits = invocation.limits;
    let report = invocation.report(guest.name, guest.version);
    let (timeout, fuel, deadline) = (invocation.timeout, invocation.fuel, invocation.deadline);
    let mut store = match new_store(env, invocation, report, tape) {
        Ok(store) => store,
        Err((err, report)) => return (Err(err), report),
    };

    let began = Instant::now();
    let instance = match within(deadline, guest.pre.instantiate(&mut store)).await {
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
    let instantiate_fuel = fuel.saturating_sub(store.get_fuel().unwrap_or(fuel));
    store.data_mut().instantiate_fuel = instantiate_fuel;
    let outcome = within(deadline, instance.execute(&mut store, context, input)).await;
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
pub enum DescribeFailure {
    /// The exports have the right names but not the types of the world.
    Types(String),
    /// The call failed.
    Call(CallError),
}

/// Calls `describe()` on a fresh instance, under the same limits as a call; this is also
/// where the types of the exports are checked against the world.
pub async fn describe(env: &Arc<CallEnv>, pre: &Pre, limits: &Limits) -> Result<Metadata, DescribeFailure> {
    let invocation = Invocation::root(limits, "describe".into(), "default".into(), None);
    let report = invocation.report("describe", "");
    let (timeout, fuel, deadline) = (invocation.timeout, invocation.fuel, invocation.deadline);
    let late = || DescribeFailure::Call(CallError::DeadlineExceeded { limit: timeout });
    let mut store = new_store(env, invocation, report, None).map_err(|(err, _)| DescribeFailure::Call(err))?;
    let instance = match within(deadline, pre.instance_pre().instantiate_async(&mut store)).await {
        Some(Ok(instance)) => instance,
        Some(Err(e)) => return Err(DescribeFailure::Call(classify(e, store.data(), fuel, timeout, true))),
        None => return Err(late()),
    };
    let primitive = pre
        .exports(&mut store, &instance)
        .map_err(|e| DescribeFailure::Types(format!("{e:#}")))?;
    match within(deadline, primitive.describe(&mut store))
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
    env: &Arc<CallEnv>,
    invocation: Invocation,
    report: CallReport,
    tape: Option<&Arc<Tape>>,
) -> Result<Store<CallState>, (CallError, CallReport)> {
    let limits = invocation.limits;
    let stdout = CapturedOutput::new(limits.max_stdio_bytes);
    let stderr = CapturedOutput::new(limits.max_stdio_bytes);
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_blocking_current_thread(false);
    if let Some(tape) = tape {
        wasi.wall_clock(sources::WallClock(Arc::clone(tape)))
            .monotonic_clock(sources::MonotonicClock(Arc::clone(tape)))
            .secure_random(sources::Random {
                tape: Arc::clone(tape),
                secure: true,
            })
            .insecure_random(sources::Random {
                tape: Arc::clone(tape),
                secure: false,
            })
            .insecure_random_seed(tape.insecure_seed);
    }
    let wasi = wasi.build();
    let fuel = invocation.fuel;
    let deadline = invocation.deadline;
    let state = CallState {
        env: Arc::clone(env),
        invocation,
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(&limits),
        stdout,
        stderr,
        recorder: Recorder::new(report, limits, fuel),
        invoke: InvokeState::default(),
        instantiate_fuel: 0,
        otel: OtelState::default(),
        http: None,
        tape: tape.cloned(),
    };
    let mut store = Store::new(&env.engine, state);
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
        return Err((
            CallError::Host(e.to_string()),
            store.into_data().recorder.finish(SystemTime::now(), fuel),
        ));
    }
    // The epoch callback runs only once the deadline is near, not at every tick: an epoch
    // check that fires after the call hook has moved a nested call's fuel out of the store
    // can write back the counter the guest had before (about 1 call in 20 lost or gained
    // thousands of fuel that way), and fuel must be the same on every run of the same input.
    // Fairness does not need the ticks: the store yields every `FUEL_YIELD_INTERVAL` fuel.
    let tick = env.epoch_tick.max(Duration::from_millis(1));
    let ticks = invocation_ticks(deadline, tick);
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Continue(invocation_ticks(deadline, tick)))
        }
    });
    store.call_hook(track_fuel);
    Ok(store)
}

/// Epoch ticks from now until `deadline` (at least one).
fn invocation_ticks(deadline: Instant, tick: Duration) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    u64::try_from(left.as_nanos() / tick.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Notes the fuel left each time the guest calls into the host (so a span, a `wasi:otel`
/// span or a nested call knows what was burned up to then: one read of the store's
/// counter), and moves fuel burned by a nested `invoke` call from this store's budget.
fn track_fuel(mut cx: wasmtime::StoreContextMut<'_, CallState>, hook: CallHook) -> wasmtime::Result<()> {
    match hook {
        CallHook::CallingHost => {
            let left = cx.get_fuel()?;
            cx.data_mut().recorder.set_fuel_left(left);
        }
        CallHook::ReturningFromHost => {
            let debit = std::mem::take(&mut cx.data_mut().invoke.fuel_debit);
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
    let state = store.into_data();
    let end = SystemTime::now();
    let mut report = state.recorder.finish(end, fuel_left);
    if let Some(http) = &state.http {
        let max_spans = state.invocation.limits.max_spans;
        for span in http.take_spans() {
            if report.spans.len() < max_spans {
                report.spans.push(span);
            } else {
                report.dropped.spans += 1;
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
        report.dropped.stdio_bytes += dropped;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if report.logs.len() >= max_logs {
                report.dropped.logs += 1;
                continue;
            }
            report.logs.push(GuestLog {
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
        *detail = last_stderr_words(&report.logs);
    }
    report.stats = CallStats {
        wall,
        instantiate,
        fuel_consumed: fuel_budget.saturating_sub(fuel_left),
        instantiate_fuel: state.instantiate_fuel,
        memory_peak_bytes: state.limiter.peak_bytes(),
        output_bytes: result.as_ref().map_or(0, Vec::len),
    };
    let redactor = state.invocation.config.redactor();
    if !redactor.is_empty() {
        redactor.report(&mut report);
        if let Err(e) = &mut result {
            redactor.error(e);
        }
    }
    report.error = result.as_ref().err().cloned();
    (result, report)
}
