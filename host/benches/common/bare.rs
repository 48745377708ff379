//! Bare wasmtime, for the baselines of the benchmarks and the instruction counts: a store
//! with WASI and nothing else, and a component pre-linked the way anyone embedding wasmtime
//! would, on tta-host's bindings of the world (0.2.0, which the example plugins export).

use std::path::Path;
use tta_host::bindings::v2::{Context, PrimitivePluginPre};
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
    stub_imports_beyond_wasi(&mut linker, engine, &component);
    PrimitivePluginPre::new(linker.instantiate_pre(&component).expect("pre")).expect("world")
}

/// Defines every import outside `wasi:` as a function that traps. wasmtime's
/// `define_unknown_imports_as_traps` would also stub WASI interfaces newer than the ones
/// wasmtime-wasi defines (a guest built against `wasi:io@0.2.12` where the linker has
/// 0.2.6), since it matches names exactly, and the stubs' resources then clash with the real ones.
fn stub_imports_beyond_wasi(linker: &mut Linker<Bare>, engine: &Engine, component: &Component) {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if name.starts_with("wasi:") {
            continue;
        }
        let mut stubs = linker.instance(name).expect("an instance of stubs");
        for (export, item) in instance.exports(engine) {
            let defined = match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let called = format!("{name}#{export}");
                    stubs.func_new(export, move |_, _, _, _| {
                        Err(wasmtime::Error::msg(format!("bare wasmtime has no `{called}`")))
                    })
                }
                ComponentItem::Resource(_) => stubs.resource(export, ResourceType::host::<()>(), |_, _| Ok(())),
                _ => Ok(()),
            };
            defined.expect("a stub");
        }
    }
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
