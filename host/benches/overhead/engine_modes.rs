//! Items 3 and 4: what metering costs a compute-bound guest, and bytes across the boundary.

use crate::{bare, load_echo, sampled_host};
use criterion::Criterion;
use tta_host::CallOptions;
use wasmtime::Engine;

pub const FUEL_GROUP: &str = "fuel_modes";
pub const FUEL_MODES: [&str; 3] = ["fuel_and_epochs", "epochs_only", "neither"];
pub const PAYLOAD_GROUP: &str = "payload";
pub const PAYLOAD_SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

pub fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    fuel_modes(c, rt);
    payloads(c, rt);
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
fn payloads(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let host = sampled_host();
    let echo = load_echo(rt, &host);
    let mut group = c.benchmark_group(PAYLOAD_GROUP);
    for (label, size) in PAYLOAD_SIZES {
        let input = vec![b'x'; size];
        group.throughput(criterion::Throughput::Bytes(size as u64));
        group.bench_function(format!("echo_{label}"), |b| {
            b.to_async(rt)
                .iter(|| host.call_primitive(&echo, &input, CallOptions::default()))
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
