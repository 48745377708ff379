//! The call path measured against bare wasmtime, side by side in one run:
//!
//! 1. the same `echo` call (64-byte payload) as a bare typed call into a live instance, a
//!    bare fresh instance + call, and tta-host's call uninstrumented, instrumented and
//!    unsampled, instrumented and sampled (tta-host always makes a fresh instance);
//! 2. the parts tta-host's instrumentation runs (metric recording, the export hand-over);
//! 3. fuel metering on, off with epochs only, and neither, for a compute-heavy call;
//! 4. payloads of 1 KiB, 64 KiB and 1 MiB through `echo` against a `memcpy` of the same size.
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
use tta_host::bindings::{Context, PrimitivePluginPre};
use tta_host::telemetry::{ObservabilityConfig, SamplerKind, Telemetry};
use tta_host::{CallOptions, Host, HostConfig, Plugin};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The store data of the bare baselines: WASI and nothing else.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn bare_store(engine: &Engine) -> Store<Bare> {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    // Both are no-ops on an engine without fuel or epochs.
    let _ = store.set_fuel(u64::MAX);
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

/// `echo` pre-linked on `engine` with WASI only: what anyone embedding wasmtime would write.
fn bare_pre(engine: &Engine, plugin: &str) -> PrimitivePluginPre<Bare> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/{plugin}.wasm"));
    let component = Component::from_file(engine, &path).expect("component");
    let mut linker = Linker::<Bare>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    linker.define_unknown_imports_as_traps(&component).expect("traps");
    PrimitivePluginPre::new(linker.instantiate_pre(&component).expect("pre")).expect("world")
}

fn context() -> Context {
    Context {
        correlation_id: "bench".into(),
        traceparent: String::new(),
        tracestate: String::new(),
        tenant: "default".into(),
        data: Vec::new(),
        deadline_ms: None,
    }
}

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
    let pre = bare_pre(&engine, "echo");
    let ctx = context();
    let mut warm_store = bare_store(&engine);
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
            let mut store = bare_store(&engine);
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
    let ctx = context();
    let mut group = c.benchmark_group(FUEL_GROUP);
    for mode in FUEL_MODES {
        let mut config = wasmtime::Config::new();
        config
            .consume_fuel(mode == "fuel_and_epochs")
            .epoch_interruption(mode != "neither");
        let engine = Engine::new(&config).expect("engine");
        let pre = bare_pre(&engine, "format");
        let mut store = bare_store(&engine);
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
    }
}
