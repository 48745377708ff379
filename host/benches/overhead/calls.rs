//! Items 1 and 2: the `echo` call, bare and through tta-host, and the parts of the
//! instrumentation on its path.

use crate::{INPUT, bare, host_config, load_echo, telemetry};
use criterion::Criterion;
use std::sync::Arc;
use tta_host::telemetry::SamplerKind;
use tta_host::{CallOptions, Host, HostConfig};

pub const GROUP: &str = "call_overhead";
pub const BARE_WARM: &str = "bare_warm_typed_call";
pub const BARE_FRESH: &str = "bare_fresh_instance_call";
/// The same, with every page of a returned slot handed back to the kernel (wasmtime's default).
pub const BARE_FRESH_MADVISE: &str = "bare_fresh_instance_call_madvise_reset";
pub const BASELINE: &str = "uninstrumented";
pub const UNSAMPLED: &str = "instrumented_unsampled";
pub const SAMPLED: &str = "instrumented_sampled";
pub const PARTS_GROUP: &str = "instrumentation_parts";
pub const PARTS: [&str; 3] = [
    "record_call_metrics",
    "export_handover_sampled",
    "span_conversion_off_path",
];

pub fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let baseline = Host::new(host_config()).expect("host");
    let sampled = Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOn)).expect("host");
    let unsampled = Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOff)).expect("host");
    let (p0, p1, p2) = (
        load_echo(rt, &baseline),
        load_echo(rt, &sampled),
        load_echo(rt, &unsampled),
    );

    let engine = tta_host::engine::build_engine(&host_config()).expect("engine");
    let pre = bare::pre(&engine, "echo");
    let madvise_engine = tta_host::engine::build_engine(&HostConfig {
        keep_resident_bytes: 0,
        ..host_config()
    })
    .expect("engine");
    let madvise_pre = bare::pre(&madvise_engine, "echo");
    let ctx = bare::context();
    let mut warm_store = bare::store(&engine);
    let warm = rt.block_on(pre.instantiate_async(&mut warm_store)).expect("instance");

    let mut group = c.benchmark_group(GROUP);
    group.bench_function(BARE_WARM, |b| {
        b.iter(|| {
            rt.block_on(
                warm.tta_primitives_primitive()
                    .call_execute(&mut warm_store, &ctx, &INPUT),
            )
            .expect("call")
        })
    });
    for (id, engine, pre) in [
        (BARE_FRESH, &engine, &pre),
        (BARE_FRESH_MADVISE, &madvise_engine, &madvise_pre),
    ] {
        group.bench_function(id, |b| {
            b.iter(|| {
                let mut store = bare::store(engine);
                rt.block_on(async {
                    let instance = pre.instantiate_async(&mut store).await.expect("instance");
                    instance
                        .tta_primitives_primitive()
                        .call_execute(&mut store, &ctx, &INPUT)
                        .await
                })
                .expect("call")
            })
        });
    }
    group.bench_function(BASELINE, |b| {
        b.to_async(rt)
            .iter(|| baseline.call_primitive_unobserved(&p0, &INPUT, CallOptions::default()))
    });
    group.bench_function(SAMPLED, |b| {
        b.to_async(rt)
            .iter(|| sampled.call_primitive(&p1, &INPUT, CallOptions::default()))
    });
    group.bench_function(UNSAMPLED, |b| {
        b.to_async(rt)
            .iter(|| unsampled.call_primitive(&p2, &INPUT, CallOptions::default()))
    });
    group.finish();

    // The instrumentation alone, on a real report.
    let outcome = rt.block_on(sampled.call_primitive(&p1, &INPUT, CallOptions::default()));
    let report = Arc::clone(&outcome.report);
    let metrics = Arc::clone(sampled.telemetry().metrics());
    let handles = metrics.primitive("echo");
    let scopes = tta_host::telemetry::spans::Scopes::default();
    let mut parts = c.benchmark_group(PARTS_GROUP);
    parts.bench_function(PARTS[0], |b| b.iter(|| metrics.record_call(&handles, &report)));
    parts.bench_function(PARTS[1], |b| b.iter(|| sampled.telemetry().export(&report)));
    parts.bench_function(PARTS[2], |b| {
        b.iter(|| {
            let mut out = Vec::new();
            tta_host::telemetry::spans::report_spans(&report, &scopes, &mut out);
            out
        })
    });
    parts.finish();
    guest_config(c, rt, &baseline);
}

pub const CONFIG_GROUP: &str = "guest_config";
/// The `config-probe` call reading one key once, and [`CONFIG_READS`] more times.
pub const CONFIG_ONE: &str = "one_read";
pub const CONFIG_MANY: &str = "many_reads";
pub const CONFIG_READS: u32 = 100;

/// What a `wasi:config` read adds to a call: the same call reading one key once and
/// [`CONFIG_READS`] more times, with a tenant's worth of values and secrets (so the
/// redaction pass runs too); the difference over the count is the cost of one read.
fn guest_config(c: &mut Criterion, rt: &tokio::runtime::Runtime, host: &Host) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config-probe.wasm");
    let probe = rt
        .block_on(host.load(&path))
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask plugins` first)", path.display()));
    let pairs: Vec<(String, String)> = (0..32).map(|i| (format!("key_{i}"), format!("value {i}"))).collect();
    let secrets = [(
        "api_key".to_owned(),
        tta_host::config::Secret("sk-bench-0123456789".to_owned()),
    )];
    let config = Arc::new(tta_host::guest_config::GuestConfig::from_pairs(&pairs, &secrets).expect("config"));
    let options = || CallOptions {
        config: Some(Arc::clone(&config)),
        ..CallOptions::default()
    };
    let one = r#"{"keys": ["key_7"], "reads": 1}"#.to_owned();
    let many = format!(r#"{{"keys": ["key_7"], "reads": {}}}"#, CONFIG_READS + 1);
    let mut group = c.benchmark_group(CONFIG_GROUP);
    for (id, input) in [(CONFIG_ONE, one), (CONFIG_MANY, many)] {
        group.bench_function(id, |b| {
            b.to_async(rt)
                .iter(|| host.call_primitive_unobserved(&probe, input.as_bytes(), options()))
        });
    }
    group.finish();
}
