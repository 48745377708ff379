//! The call path measured against bare wasmtime, side by side in one run (the items of
//! `BENCHMARKS.md`):
//!
//! 1. the `echo` call (64-byte payload) as a bare typed call into a live instance, a bare
//!    fresh instance + call, and tta-host's call uninstrumented, instrumented and unsampled,
//!    instrumented and sampled (tta-host makes a fresh instance per call), with the parts
//!    its instrumentation runs ([`calls`]);
//! 2. the same, as medians: the per-request path;
//! 3. fuel metering on, epochs only, and neither, for a compute-heavy call ([`engine_modes`]);
//! 4. payloads of 1 KiB, 64 KiB and 1 MiB through `echo` against a `memcpy` ([`engine_modes`]);
//! 5. calls per second with 1 and 2 worker threads ([`load`]);
//! 6. rendering and scraping `/metrics` with 1 000 series, and call latency while a scraper
//!    polls it at 10 Hz ([`load`]);
//! 7. `serve` over HTTP on loopback against a bare hyper + wasmtime server ([`load`]);
//! 8. the call with 1–1 000 plugins loaded and 1–100 tenants, and workflows of 1–16 steps
//!    ([`growth`]);
//! 9. call latency while the OTLP collector works, refuses, hangs, is slow or fails, and
//!    while `/metrics` is scraped concurrently or slowly ([`backends`]);
//! 10. admitting a call: the local quota against the shared one in a real Redis ([`cluster`]);
//! 11. reading fuel at span boundaries ([`spans`]);
//! 12. recording a call for replay, `echo` and an `llm-chat` call over HTTP ([`recording`]).
//!
//! Every bare baseline uses tta-host's own engine configuration (pooling, copy-on-write,
//! fuel, epochs) unless the measure is about that configuration, so a ratio is the cost of
//! tta-host's code. `cargo bench -p tta-host --bench overhead` prints the summary at the end
//! and writes it to `target/criterion/summary.md`; with `TTA_BENCH_SUMMARY=BENCHMARKS.md` it
//! also replaces that file's generated section. Needs `cargo xtask plugins` first.

mod backends;
mod calls;
mod cluster;
mod engine_modes;
mod growth;
mod load;
mod recording;
mod report;
mod spans;

#[path = "../common/bare.rs"]
mod bare;
#[path = "../common/generated.rs"]
mod generated;
#[path = "../../../tests/all/otlp_receiver.rs"]
#[allow(dead_code, reason = "shared with the tests, which read what it received")]
mod otlp_receiver;

use criterion::Criterion;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tta_host::bench::Samples;
use tta_host::telemetry::{ObservabilityConfig, SamplerKind, Telemetry};
use tta_host::{Host, HostConfig, Primitive};

/// The allocator the `tta-host` binary uses, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The 64-byte payload of the `echo` measures.
pub const INPUT: [u8; 64] = [b'x'; 64];

/// Takes spans and forgets them: the export thread's work without a network.
#[derive(Debug, Default, Clone)]
pub struct NullExporter(Arc<AtomicU64>);

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The host configuration of every measure: compiled components cached across runs.
pub fn host_config() -> HostConfig {
    HostConfig {
        cache_dir: Some(std::env::temp_dir().join("tta-bench-cache")),
        ..HostConfig::default()
    }
}

/// Telemetry with `sampler`, spans to [`NullExporter`], no `/metrics` listener.
pub fn telemetry(sampler: SamplerKind) -> Telemetry {
    telemetry_with(sampler, |_| {})
}

/// [`telemetry`] with `adjust` applied to its configuration first.
pub fn telemetry_with(sampler: SamplerKind, adjust: impl FnOnce(&mut ObservabilityConfig)) -> Telemetry {
    let mut config = ObservabilityConfig::default();
    config.traces.sampler = sampler;
    config.metrics.listen = None;
    adjust(&mut config);
    Telemetry::builder(config)
        .with_span_exporter("null", NullExporter::default())
        .build()
        .expect("telemetry starts")
}

/// An instrumented, sampled host: what `tta-host run` and `serve` do by default.
pub fn sampled_host() -> Host {
    Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOn)).expect("host")
}

/// `plugins/<name>.wasm`.
pub fn plugin_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/{name}.wasm"))
}

/// `plugins/echo.wasm` loaded into `host`.
pub fn load_echo(rt: &tokio::runtime::Runtime, host: &Host) -> Arc<Primitive> {
    let path = plugin_path("echo");
    rt.block_on(host.load(&path))
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask plugins` first)", path.display()))
}

/// A runtime with `workers` threads, or the current thread for 0.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut builder = match workers {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    builder.enable_all().build().expect("runtime")
}

/// Latencies of single calls or requests of the measures that report percentiles, by
/// measure id (criterion keeps means and medians of batches only), summarised the way
/// `tta-host bench` summarises its samples.
static LATENCIES: Mutex<BTreeMap<String, Samples>> = Mutex::new(BTreeMap::new());

/// Adds `batch` to the latencies of `id`.
pub fn record_latencies(id: &str, batch: impl IntoIterator<Item = Duration>) {
    let mut all = LATENCIES.lock().unwrap_or_else(|e| e.into_inner());
    all.entry(id.to_owned()).or_default().extend(batch);
}

/// The p50 and p99 of `id` in ns, and how many latencies they are from.
pub fn percentiles(id: &str) -> Option<(f64, f64, usize)> {
    let all = LATENCIES.lock().unwrap_or_else(|e| e.into_inner());
    let samples = all.get(id)?;
    let summary = samples.summary()?;
    Some((summary.p50 as f64, summary.p99 as f64, samples.len()))
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let rt = runtime(0);
    calls::bench(&mut criterion, &rt);
    engine_modes::bench(&mut criterion, &rt);
    growth::bench(&mut criterion, &rt);
    load::bench(&mut criterion);
    backends::bench(&mut criterion);
    cluster::bench(&mut criterion);
    spans::bench(&mut criterion);
    recording::bench(&mut criterion, &rt);
    criterion.final_summary();
    // In `cargo test` mode each benchmark runs once and no estimates are written.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        report::write();
    }
}
