//! Item 8: does a call cost more as the host holds more plugins and serves more tenants,
//! and what does a workflow step add over the call it makes?

use crate::{generated, load_echo, sampled_host};
use criterion::Criterion;
use std::path::Path;
use tta_host::CallOptions;

pub const TENANT_GROUP: &str = "tenants";
pub const TENANT_COUNTS: [usize; 3] = [1, 10, 100];
pub const PLUGIN_GROUP: &str = "plugins_loaded";
pub const PLUGIN_COUNTS: [usize; 4] = [1, 10, 100, 1_000];
/// The calls rotate over this many of the loaded plugins, so the pool's warm slots (32)
/// hold them all at every count: the measure is the cost of being loaded, not of a cold slot.
pub const PLUGIN_ROTATION: usize = 8;
/// Calls rotating over all 1 000, more than the pool keeps warm.
pub const PLUGIN_COLD: &str = "1000_rotating_over_all";
pub const STEP_GROUP: &str = "workflow_steps";
pub const STEP_COUNTS: [usize; 3] = [1, 4, 16];

pub fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    tenants(c, rt);
    plugins(c, rt);
    workflow_steps(c, rt);
}

/// The same call for 1, 10 and 100 tenants in turn: per-tenant metric handles and labels.
fn tenants(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let host = sampled_host();
    let echo = load_echo(rt, &host);
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
                host.call_primitive(&echo, b"hi", options)
            })
        });
    }
    group.finish();
}

/// A call by name (through the registry, as `run` and `serve` call) with 1, 10, 100 and
/// 1 000 distinct components loaded, rotating over [`PLUGIN_ROTATION`] of them.
fn plugins(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let host = sampled_host();
    let mut names: Vec<String> = Vec::new();
    let mut group = c.benchmark_group(PLUGIN_GROUP);
    for count in PLUGIN_COUNTS {
        while names.len() < count {
            let name = format!("gen-{:04}", names.len());
            let bytes = generated::component(&name, generated::Execute::Echo);
            let plugin = rt
                .block_on(host.inspect_bytes(Path::new(&format!("{name}.wasm")), bytes))
                .expect("a generated component loads");
            host.register(plugin).expect("names are distinct");
            names.push(name);
        }
        assert_eq!(host.registry().visible_names(None).len(), count);
        // Spread over the whole registry, so the lookups are not of neighbours only.
        let called: Vec<&String> = names.iter().step_by((count / PLUGIN_ROTATION).max(1)).collect();
        for name in &called {
            let outcome = rt.block_on(host.call(name, b"hi", CallOptions::default()));
            assert_eq!(outcome.output.as_deref().ok(), Some(&b"hi"[..]), "{name}");
        }
        let mut next = 0usize;
        group.bench_function(count.to_string(), |b| {
            b.to_async(rt).iter(|| {
                next = (next + 1) % called.len();
                host.call(called[next], b"hi", CallOptions::default())
            })
        });
    }
    // Every call on a slot last used by another component: the image is mapped anew.
    let mut next = 0usize;
    group.bench_function(PLUGIN_COLD, |b| {
        b.to_async(rt).iter(|| {
            next = (next + 1) % names.len();
            host.call(&names[next], b"hi", CallOptions::default())
        })
    });
    group.finish();
}

/// A workflow of `n` sequential `echo` steps.
fn workflow_steps(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let host = sampled_host();
    load_echo(rt, &host);
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
        let workflow = tta_host::workflow::Workflow::from_text(&text, &host).expect("workflow");
        group.bench_function(steps.to_string(), |b| {
            b.to_async(rt).iter(|| workflow.run(b"hi", CallOptions::default()))
        });
    }
    group.finish();
}
