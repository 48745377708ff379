//! Bare wasmtime, for the baselines of the benchmarks and the instruction counts: a store
//! with WASI and nothing else, and a component pre-linked the way anyone embedding wasmtime
//! would, on tta-host's bindings of the world.

use std::path::Path;
use tta_host::bindings::{Context, PrimitivePluginPre};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The store data of a bare call: WASI and nothing else.
pub struct Bare {
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

/// A fresh store with unlimited fuel and no deadline (no-ops where the engine has neither).
pub fn store(engine: &Engine) -> Store<Bare> {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    let _ = store.set_fuel(u64::MAX);
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

/// `plugins/<plugin>.wasm` compiled on `engine` and pre-linked with WASI only; imports
/// beyond WASI trap if called.
pub fn pre(engine: &Engine, plugin: &str) -> PrimitivePluginPre<Bare> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/{plugin}.wasm"));
    let component = Component::from_file(engine, &path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask plugins` first)", path.display()));
    let mut linker = Linker::<Bare>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    linker.define_unknown_imports_as_traps(&component).expect("traps");
    PrimitivePluginPre::new(linker.instantiate_pre(&component).expect("pre")).expect("world")
}

/// The context every bare call passes.
pub fn context() -> Context {
    Context {
        correlation_id: "bench".into(),
        traceparent: String::new(),
        tracestate: String::new(),
        tenant: "default".into(),
        data: Vec::new(),
        deadline_ms: None,
    }
}
