//! The call path measured against bare wasmtime, side by side in one run:
//!
//! 1. the same `echo` call (64-byte payload) as a bare typed call into a live instance, a
//!    bare fresh instance + call, and tta-host's call uninstrumented, instrumented and
//!    unsampled, instrumented and sampled (tta-host always makes a fresh instance);
//! 2. the parts tta-host's instrumentation runs (metric recording, the export hand-over);
//! 3. fuel metering on, off with epochs only, and neither, for a compute-heavy call;
//! 4. payloads of 1 KiB, 64 KiB and 1 MiB through `echo` against a `memcpy` of the same size;
//! 5. calls per second with 1 and 2 worker threads (measured outside criterion, printed);
//! 8. the call spread over 1, 10 and 100 tenants, and a workflow of 1, 4 and 16 sequential
//!    `echo` steps (the cost of a step over the call it makes).
//!
//! Every bare baseline uses tta-host's own engine configuration (pooling, copy-on-write,
//! fuel, epochs) unless the measure is about that configuration, so a ratio is the cost of
//! tta-host's code. `cargo bench -p tta-host --bench overhead` prints the table at the end.
//! Needs `cargo xtask plugins` first.

use criterion::Criterion;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tta_host::telemetry::{ObservabilityConfig, SamplerKind, Telemetry};
use tta_host::{CallOptions, Host, HostConfig, Plugin};
use wasmtime::Engine;

#[path = "common/bare.rs"]
mod bare;

/// Takes spans and forgets them: the export thread's work without a network.
#[derive(Debug, Default, Clone)]
struct NullExporter(Arc<AtomicU64>);

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The allocator the `tta-host` binary uses, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GROUP: &str = "call_overhead";
const BASELINE: &str = "uninstrumented";
const BARE_WARM: &str = "bare_warm_typed_call";
const BARE_FRESH: &str = "bare_fresh_instance_call";
const FUEL_GROUP: &str = "fuel_modes";
const FUEL_MODES: [&str; 3] = ["fuel_and_epochs", "epochs_only", "neither"];
const PAYLOAD_GROUP: &str = "payload";
const TENANT_GROUP: &str = "tenants";
const TENANT_COUNTS: [usize; 3] = [1, 10, 100];
const STEP_GROUP: &str = "workflow_steps";
const STEP_COUNTS: [usize; 3] = [1, 4, 16];
const PAYLOAD_SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

fn host_config() -> HostConfig {
    let cache = std::env::temp_dir().join("tta-bench-cache");
    HostConfig {
        cache_dir: Some(cache),
        ..HostConfig::default()
    }
}

fn telemetry(sampler: SamplerKind) -> Telemetry {
    let mut config = ObservabilityConfig::default();
    config.traces.sampler = sampler;
    config.metrics.listen = None;
    Telemetry::builder(config)
        .with_span_exporter("null", NullExporter::default())
        .build()
        .expect("telemetry starts")
}

fn load(rt: &tokio::runtime::Runtime, host: &Host) -> Arc<Plugin> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/echo.wasm");
    rt.block_on(host.load(&path))
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask plugins` first)", path.display()))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let baseline = Host::new(host_config()).expect("host");
    let sampled = Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOn)).expect("host");
    let unsampled = Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOff)).expect("host");
    let (p0, p1, p2) = (load(&rt, &baseline), load(&rt, &sampled), load(&rt, &unsampled));
    let input = [b'x'; 64];

    let engine = tta_host::engine::build_engine(&host_config()).expect("engine");
    let pre = bare::pre(&engine, "echo");
    let ctx = bare::context();
    let mut warm_store = bare::store(&engine);
    let warm = rt.block_on(pre.instantiate_async(&mut warm_store)).expect("instance");

    let mut group = c.benchmark_group(GROUP);
    group.bench_function(BARE_WARM, |b| {
        b.iter(|| {
            rt.block_on(
                warm.tta_primitives_primitive()
                    .call_execute(&mut warm_store, &ctx, &input),
            )
            .expect("call")
        })
    });
    group.bench_function(BARE_FRESH, |b| {
        b.iter(|| {
            let mut store = bare::store(&engine);
            rt.block_on(async {
                let instance = pre.instantiate_async(&mut store).await.expect("instance");
                instance
                    .tta_primitives_primitive()
                    .call_execute(&mut store, &ctx, &input)
                    .await
            })
            .expect("call")
        })
    });
    group.bench_function(BASELINE, |b| {
        b.to_async(&rt)
            .iter(|| baseline.call_plugin_unobserved(&p0, &input, CallOptions::default()))
    });
    group.bench_function("instrumented_sampled", |b| {
        b.to_async(&rt)
            .iter(|| sampled.call_plugin(&p1, &input, CallOptions::default()))
    });
    group.bench_function("instrumented_unsampled", |b| {
        b.to_async(&rt)
            .iter(|| unsampled.call_plugin(&p2, &input, CallOptions::default()))
    });
    group.finish();

    // The instrumentation alone, on a real report.
    let outcome = rt.block_on(sampled.call_plugin(&p1, &input, CallOptions::default()));
    let report = Arc::clone(&outcome.report);
    let metrics = Arc::clone(sampled.telemetry().metrics());
    let handles = metrics.primitive("echo");
    let mut parts = c.benchmark_group("instrumentation_parts");
    parts.bench_function("record_call_metrics", |b| {
        b.iter(|| metrics.record_call(&handles, &report))
    });
    parts.bench_function("export_handover_sampled", |b| {
        b.iter(|| sampled.telemetry().export(&report))
    });
    let scopes = tta_host::telemetry::spans::Scopes::default();
    parts.bench_function("span_conversion_off_path", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            tta_host::telemetry::spans::report_spans(&report, &scopes, &mut out);
            out
        })
    });
    parts.finish();

    fuel_modes(c, &rt);
    payloads(c, &rt, &sampled, &p1);
    tenants(c, &rt, &sampled, &p1);
    workflow_steps(c, &rt, &sampled);
}

/// The same call for 1, 10 and 100 tenants in turn: per-tenant metric handles and labels.
fn tenants(c: &mut Criterion, rt: &tokio::runtime::Runtime, host: &Host, echo: &Arc<Plugin>) {
    let mut group = c.benchmark_group(TENANT_GROUP);
    for count in TENANT_COUNTS {
        let names: Vec<String> = (0..count).map(|i| format!("tenant-{i}")).collect();
        let mut next = 0usize;
        group.bench_function(count.to_string(), |b| {
            b.to_async(rt).iter(|| {
                next = (next + 1) % names.len();
                let options = CallOptions {
                    tenant: Some(names[next].clone()),
                    ..CallOptions::default()
                };
                host.call_plugin(echo, b"hi", options)
            })
        });
    }
    group.finish();
}

/// A workflow of `n` sequential `echo` steps.
fn workflow_steps(c: &mut Criterion, rt: &tokio::runtime::Runtime, host: &Host) {
    let mut group = c.benchmark_group(STEP_GROUP);
    for steps in STEP_COUNTS {
        let names: Vec<String> = (0..steps).map(|i| format!("\"s{i}\"")).collect();
        let mut text = format!(
            "name = \"chain{steps}\"\n[steps.main]\nsequential = [{}]\n",
            names.join(", ")
        );
        for i in 0..steps {
            text.push_str(&format!("[steps.s{i}]\nprimitive = \"echo\"\n"));
        }
        let workflow = tta_host::workflow::Workflow::from_text(&text, host).expect("workflow");
        group.bench_function(steps.to_string(), |b| {
            b.to_async(rt).iter(|| workflow.run(b"hi", CallOptions::default()))
        });
    }
    group.finish();
}

/// Calls per second of `echo` with `workers` runtime threads, 8 tasks calling in a loop.
fn calls_per_second(workers: usize, run_for: std::time::Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let host = Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOn)).expect("host");
    let echo = load(&rt, &host);
    let done = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (host, echo, done) = (host.clone(), Arc::clone(&echo), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut calls = 0u64;
                    while started.elapsed() < run_for {
                        host.call_plugin(&echo, b"hi", CallOptions::default()).await;
                        calls += 1;
                    }
                    done.fetch_add(calls, Ordering::Relaxed);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A compute-heavy call (`format` parsing and rendering a 4 000-field JSON object, warm
/// instance) under three engine configurations.
fn fuel_modes(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let fields: serde_json::Map<String, serde_json::Value> = (0..4_000)
        .map(|i| {
            (
                format!("field-{i}"),
                serde_json::json!({ "n": i, "tags": ["a", "b"], "ok": i % 2 == 0 }),
            )
        })
        .collect();
    let input = serde_json::Value::Object(fields).to_string().into_bytes();
    let ctx = bare::context();
    let mut group = c.benchmark_group(FUEL_GROUP);
    for mode in FUEL_MODES {
        let mut config = wasmtime::Config::new();
        config
            .consume_fuel(mode == "fuel_and_epochs")
            .epoch_interruption(mode != "neither");
        let engine = Engine::new(&config).expect("engine");
        let pre = bare::pre(&engine, "format");
        let mut store = bare::store(&engine);
        let instance = rt.block_on(pre.instantiate_async(&mut store)).expect("instance");
        group.bench_function(mode, |b| {
            b.iter(|| {
                rt.block_on(
                    instance
                        .tta_primitives_primitive()
                        .call_execute(&mut store, &ctx, &input),
                )
                .expect("call")
                .expect("formatted")
            })
        });
    }
    group.finish();
}

/// Bytes in and out through tta-host's instrumented call, against copying them once.
fn payloads(c: &mut Criterion, rt: &tokio::runtime::Runtime, host: &Host, echo: &Arc<Plugin>) {
    let mut group = c.benchmark_group(PAYLOAD_GROUP);
    for (label, size) in PAYLOAD_SIZES {
        let input = vec![b'x'; size];
        group.throughput(criterion::Throughput::Bytes(size as u64));
        group.bench_function(format!("echo_{label}"), |b| {
            b.to_async(rt)
                .iter(|| host.call_plugin(echo, &input, CallOptions::default()))
        });
        let mut target = vec![0u8; size];
        group.bench_function(format!("memcpy_{label}"), |b| {
            b.iter(|| {
                target.copy_from_slice(std::hint::black_box(&input));
                std::hint::black_box(&target);
            })
        });
    }
    group.finish();
}

fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(group).join(id).join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn report() {
    let Some(base) = mean_ns(GROUP, BASELINE) else {
        return;
    };
    let fresh = mean_ns(GROUP, BARE_FRESH).unwrap_or(f64::NAN);
    println!("\nthe echo call (64 bytes), mean ns, as a ratio to bare wasmtime's fresh instance + call:");
    for id in [
        BARE_WARM,
        BARE_FRESH,
        BASELINE,
        "instrumented_unsampled",
        "instrumented_sampled",
    ] {
        if let Some(ns) = mean_ns(GROUP, id) {
            println!(
                "  {id:<28} {ns:>10.0} ns  {:>6.2}x  ({:+.0} ns vs uninstrumented)",
                ns / fresh,
                ns - base
            );
        }
    }
    for id in [
        "record_call_metrics",
        "export_handover_sampled",
        "span_conversion_off_path",
    ] {
        if let Some(ns) = mean_ns("instrumentation_parts", id) {
            println!("  {id:<28} {ns:>10.0} ns");
        }
    }
    if let Some(neither) = mean_ns(FUEL_GROUP, "neither") {
        println!("\nformat on a 4 000-field object (warm instance), slowdown against no metering:");
        for mode in FUEL_MODES {
            if let Some(ns) = mean_ns(FUEL_GROUP, mode) {
                println!("  {mode:<28} {ns:>10.0} ns  {:>6.3}x", ns / neither);
            }
        }
    }
    if let Some(one) = mean_ns(TENANT_GROUP, "1") {
        println!("\nthe echo call spread over tenants (should be flat):");
        for count in TENANT_COUNTS {
            if let Some(ns) = mean_ns(TENANT_GROUP, &count.to_string()) {
                println!("  {count:>3} tenants {ns:>24.0} ns  {:>6.3}x", ns / one);
            }
        }
    }
    if let Some(call) = mean_ns(GROUP, "instrumented_sampled") {
        println!("\nworkflows of sequential echo steps: run, and the cost of a step over its call:");
        for steps in STEP_COUNTS {
            if let Some(ns) = mean_ns(STEP_GROUP, &steps.to_string()) {
                println!(
                    "  {steps:>3} steps {ns:>26.0} ns  {:>8.0} ns per step",
                    (ns - steps as f64 * call) / steps as f64
                );
            }
        }
    }
    println!("\npayload through echo (in and out), instrumented and sampled, against one memcpy:");
    for (label, size) in PAYLOAD_SIZES {
        let (Some(call), Some(copy)) = (
            mean_ns(PAYLOAD_GROUP, &format!("echo_{label}")),
            mean_ns(PAYLOAD_GROUP, &format!("memcpy_{label}")),
        ) else {
            continue;
        };
        let gbps = |ns: f64| size as f64 / ns;
        println!(
            "  {label:<6} call {call:>10.0} ns  {:>6.2} GB/s   memcpy {copy:>8.0} ns  {:>6.2} GB/s",
            gbps(call),
            gbps(copy)
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    // In `cargo test` mode each benchmark runs once and no estimates are written.
    if std::env::args().any(|a| a == "--bench") {
        report();
        let one = calls_per_second(1, std::time::Duration::from_secs(3));
        let two = calls_per_second(2, std::time::Duration::from_secs(3));
        println!("\necho calls per second, instrumented and sampled, 8 tasks:");
        println!("  1 worker thread  {one:>10.0} calls/s");
        println!("  2 worker threads {two:>10.0} calls/s  {:.2}x", two / one);
    } else {
        assert!(calls_per_second(2, std::time::Duration::from_millis(50)) > 0.0);
    }
}
