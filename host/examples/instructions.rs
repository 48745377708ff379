//! Instructions per call, counted by callgrind instead of timed: a regression check that
//! machine noise cannot move.
//!
//! `scripts/instructions.sh` runs this under `valgrind --tool=callgrind
//! --collect-atstart=no --toggle-collect=tta_measure`, once per scenario, and compares the
//! count per call with `BENCHMARKS.instructions.json`. The scenarios are the benchmark's
//! items 1 and 2: a bare wasmtime fresh instance + call of `echo`, and tta-host's call of it
//! uninstrumented, instrumented unsampled and instrumented sampled. Setup (engine, loading
//! through the compiled-component cache, warm-up) runs outside the counted function.
//!
//! Usage: `instructions <scenario> <calls>`; scenarios: bare_fresh, uninstrumented,
//! unsampled, sampled.

use std::path::Path;
use std::sync::Arc;
use tta_host::bindings::v2::PrimitivePluginPre;
use tta_host::telemetry::{ObservabilityConfig, SamplerKind, Telemetry};
use tta_host::{CallOptions, Host, HostConfig, Primitive};

#[path = "../benches/common/bare.rs"]
mod bare;
use bare::Bare;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INPUT: [u8; 64] = [b'x'; 64];

fn echo_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/echo.wasm")
}

/// A small pool: valgrind cannot map the terabyte of address space the default one reserves.
fn config() -> HostConfig {
    HostConfig {
        cache_dir: Some(std::env::temp_dir().join("tta-instructions-cache")),
        max_instances: 2,
        ..HostConfig::default()
    }
}

fn host(sampler: Option<SamplerKind>) -> Host {
    match sampler {
        None => Host::new(config()).expect("host"),
        Some(sampler) => {
            let mut telemetry = ObservabilityConfig::default();
            telemetry.traces.sampler = sampler;
            telemetry.metrics.listen = None;
            // Spans go to a file nobody reads: the export thread's work is off the call path.
            telemetry.traces.exporters = vec![tta_host::telemetry::Exporter::File];
            telemetry.traces.file = Some(std::env::temp_dir().join("tta-instructions-spans.jsonl"));
            Host::with_telemetry(config(), Telemetry::builder(telemetry).build().expect("telemetry")).expect("host")
        }
    }
}

/// The counted region of the host scenarios.
#[unsafe(no_mangle)]
#[inline(never)]
fn tta_measure_host(rt: &tokio::runtime::Runtime, host: &Host, plugin: &Arc<Primitive>, calls: u64, observed: bool) {
    host_calls(rt, host, plugin, calls, observed);
}

/// `calls` tta-host calls.
fn host_calls(rt: &tokio::runtime::Runtime, host: &Host, plugin: &Arc<Primitive>, calls: u64, observed: bool) {
    rt.block_on(async {
        for _ in 0..calls {
            let outcome = if observed {
                host.call_primitive(plugin, &INPUT, CallOptions::default()).await
            } else {
                host.call_primitive_unobserved(plugin, &INPUT, CallOptions::default())
                    .await
            };
            std::hint::black_box(outcome);
        }
    });
}

/// The counted region of the bare scenario.
#[unsafe(no_mangle)]
#[inline(never)]
fn tta_measure_bare(
    rt: &tokio::runtime::Runtime,
    engine: &wasmtime::Engine,
    pre: &PrimitivePluginPre<Bare>,
    calls: u64,
) {
    bare_calls(rt, engine, pre, calls);
}

/// `calls` bare fresh instances + calls.
fn bare_calls(rt: &tokio::runtime::Runtime, engine: &wasmtime::Engine, pre: &PrimitivePluginPre<Bare>, calls: u64) {
    let ctx = bare::context();
    rt.block_on(async {
        for _ in 0..calls {
            let mut store = bare::store(engine);
            let instance = pre.instantiate_async(&mut store).await.expect("instance");
            let out = instance
                .tta_primitives_primitive()
                .call_execute(&mut store, &ctx, &INPUT)
                .await
                .expect("call");
            std::hint::black_box(out).expect("echo");
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(scenario), Some(calls)) = (args.first(), args.get(1).and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: instructions <bare_fresh|uninstrumented|unsampled|sampled> <calls>");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if scenario == "bare_fresh" {
        let engine = tta_host::engine::build_engine(&config()).expect("engine");
        let pre = bare::pre(&engine, "echo");
        bare_calls(&rt, &engine, &pre, 20);
        tta_measure_bare(&rt, &engine, &pre, calls);
        return;
    }
    let (sampler, observed) = match scenario.as_str() {
        "uninstrumented" => (None, false),
        "unsampled" => (Some(SamplerKind::AlwaysOff), true),
        "sampled" => (Some(SamplerKind::AlwaysOn), true),
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    };
    let host = host(sampler);
    let plugin = rt
        .block_on(host.load(&echo_path()))
        .unwrap_or_else(|e| panic!("{e} (run `cargo xtask plugins` first)"));
    host_calls(&rt, &host, &plugin, 20, observed);
    tta_measure_host(&rt, &host, &plugin, calls, observed);
}
