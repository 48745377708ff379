//! What observability costs per call: the same warm `echo` call, uninstrumented and
//! instrumented (sampled and unsampled), measured side by side in one run, then the parts
//! the call path runs (metric recording, the hand-over to the export thread) alone.
//!
//! `cargo bench -p tta-host --bench overhead` prints the ratios and the added
//! nanoseconds per call at the end. Needs `cargo xtask plugins` first.

use criterion::Criterion;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tta_host::telemetry::{ObservabilityConfig, SamplerKind, Telemetry};
use tta_host::{CallOptions, Host, HostConfig, Plugin};

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
    let input = b"{\"text\":\"hello\"}";

    let mut group = c.benchmark_group(GROUP);
    group.bench_function(BASELINE, |b| {
        b.to_async(&rt)
            .iter(|| baseline.call_plugin_unobserved(&p0, input, CallOptions::default()))
    });
    group.bench_function("instrumented_sampled", |b| {
        b.to_async(&rt)
            .iter(|| sampled.call_plugin(&p1, input, CallOptions::default()))
    });
    group.bench_function("instrumented_unsampled", |b| {
        b.to_async(&rt)
            .iter(|| unsampled.call_plugin(&p2, input, CallOptions::default()))
    });
    group.finish();

    // The instrumentation alone, on a real report.
    let outcome = rt.block_on(sampled.call_plugin(&p1, input, CallOptions::default()));
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
    println!("\nper-call overhead of observability (mean of the same warm echo call):");
    println!("  {BASELINE:<24} {base:>10.0} ns  1.000x");
    for id in ["instrumented_sampled", "instrumented_unsampled"] {
        if let Some(ns) = mean_ns(GROUP, id) {
            println!(
                "  {id:<24} {ns:>10.0} ns  {:.3}x  ({:+.0} ns per call)",
                ns / base,
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
            println!("  {id:<24} {ns:>10.0} ns");
        }
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
