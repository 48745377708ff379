//! Item 11, reading fuel at span boundaries: the sandbox's call hook reads the store's fuel
//! each time a guest calls into the host, so a guest span (opened and ended: two calls) and
//! a `wasi:otel` span know what they burned. Measured on a component that calls a host
//! function in a loop, with and without that hook, fuel metering on in both.

use criterion::Criterion;
use wasmtime::component::{Component, Linker};
use wasmtime::{CallHook, Config, Engine, Store};

pub const SPAN_GROUP: &str = "span_fuel";
pub const WITHOUT: &str = "host_calls_without_hook";
pub const WITH: &str = "host_calls_reading_fuel";
/// Host calls per iteration.
pub const CALLS: u32 = 1_000;

const LOOP: &str = r#"
(component
  (import "tick" (func $tick))
  (core func $tick_lowered (canon lower (func $tick)))
  (core module $m
    (import "host" "tick" (func $tick))
    (func (export "run") (param $n i32)
      (block $done
        (loop $again
          (br_if $done (i32.eqz (local.get $n)))
          (call $tick)
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $again)))))
  (core instance $host (export "tick" (func $tick_lowered)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func (export "run") (param "n" u32) (canon lift (core func $i "run"))))
"#;

/// What the sandbox's hook keeps: the fuel left at the last entry into the host.
#[derive(Default)]
struct Data {
    fuel_left: u64,
}

pub fn bench(c: &mut Criterion) {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).expect("engine");
    let component = Component::new(&engine, LOOP).expect("the loop component");
    let mut linker = Linker::<Data>::new(&engine);
    linker.root().func_wrap("tick", |_, ()| Ok(())).expect("tick");
    let pre = linker.instantiate_pre(&component).expect("pre-linked");
    let mut group = c.benchmark_group(SPAN_GROUP);
    for (id, hook) in [(WITHOUT, false), (WITH, true)] {
        let mut store = Store::new(&engine, Data::default());
        if hook {
            store.call_hook(|mut cx, hook| {
                if matches!(hook, CallHook::CallingHost) {
                    let left = cx.get_fuel()?;
                    cx.data_mut().fuel_left = left;
                }
                Ok(())
            });
        }
        let instance = pre.instantiate(&mut store).expect("instance");
        let run = instance.get_typed_func::<(u32,), ()>(&mut store, "run").expect("run");
        group.bench_function(id, |b| {
            b.iter(|| {
                store.set_fuel(u64::MAX / 2).expect("fuel");
                run.call(&mut store, (CALLS,)).expect("runs");
            })
        });
        std::hint::black_box(store.data().fuel_left);
    }
    group.finish();
}
