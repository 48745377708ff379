//! Where the fuel went: every span's `wasm.fuel_consumed` and `wasm.fuel_self` as a real
//! OTLP receiver gets them, and `run --flamegraph` / `--folded` drawing a call and a workflow.

use crate::otlp_receiver::{self, attr, id64, text};
use crate::telemetry::otlp_config;
use crate::{config, plugin, repo, tta_host_in};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::HashMap;
use std::time::Duration;
use tta_host::telemetry::{OtlpProtocol, Telemetry};
use tta_host::workflow::Workflow;
use tta_host::{CallOptions, Host};

const PLUGINS: &[&str] = &["orchestrator", "uppercase", "word-count", "summarize", "format"];

fn int(span: &Span, key: &str) -> Option<u64> {
    attr(&span.attributes, key).and_then(|v| text(&v).parse().ok())
}

/// Checks, over every span of one trace, that a span's fuel is its own part plus its
/// children's, and returns each span's (total, own) by name.
fn fuel_adds_up(spans: &[&Span]) -> HashMap<String, Vec<(u64, u64)>> {
    let mut below: HashMap<u64, u64> = HashMap::new();
    for span in spans {
        if let (Some(fuel), false) = (int(span, "wasm.fuel_consumed"), span.parent_span_id.is_empty()) {
            *below.entry(id64(&span.parent_span_id)).or_default() += fuel;
        }
    }
    let mut by_name: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for span in spans {
        let Some(total) = int(span, "wasm.fuel_consumed") else {
            continue;
        };
        if span.name == "wasm.instantiate" {
            by_name.entry(span.name.clone()).or_default().push((total, total));
            continue;
        }
        let own = int(span, "wasm.fuel_self").unwrap_or_else(|| panic!("{} has no wasm.fuel_self", span.name));
        let children = below.get(&id64(&span.span_id)).copied().unwrap_or(0);
        assert_eq!(
            total,
            own + children,
            "{}: its fuel is its own plus its children's",
            span.name
        );
        by_name.entry(span.name.clone()).or_default().push((total, own));
    }
    by_name
}

// The receiver runs on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_carries_its_fuel_and_the_parts_add_up_on_the_wire() {
    let (addr, received) = otlp_receiver::grpc().await;
    let telemetry = Telemetry::builder(otlp_config(format!("http://{addr}"), OtlpProtocol::Grpc))
        .build()
        .expect("telemetry");
    let host = Host::with_telemetry(config(), telemetry).expect("host");
    for name in PLUGINS {
        host.load(&plugin(name)).await.expect("plugin loads");
    }
    let call = host
        .call("orchestrator", br#"{"text":"one two three"}"#, CallOptions::default())
        .await;
    assert!(call.output.is_ok());
    let path = repo().join("workflows/text-report.toml");
    let text = std::fs::read_to_string(&path).expect("workflow file");
    let file = tta_host::workflow::parse(&text).unwrap_or_else(|p| panic!("{p:?}"));
    let workflow = Workflow::compile(&file, &text, &host).unwrap_or_else(|e| panic!("{e}"));
    let run = workflow.run(br#"{"text":"a b c d"}"#, CallOptions::default()).await;
    assert!(run.output.is_ok());
    assert!(host.telemetry().flush(Duration::from_secs(30)));

    let all: Vec<Span> = received.spans().into_iter().map(|(_, s)| s).collect();
    let trace = |id: u128| -> Vec<&Span> {
        all.iter()
            .filter(|s| crate::otlp_receiver::id128(&s.trace_id) == id)
            .collect()
    };

    // The call: each level's total is what its report says; a guest span burned some of it.
    let spans = trace(call.report.ids.trace_id);
    let costs = fuel_adds_up(&spans);
    assert!(
        costs.contains_key("orchestrator.execute"),
        "{:?} of {:?}",
        costs.keys().collect::<Vec<_>>(),
        all.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(costs["orchestrator.execute"][0].0, call.report.stats.fuel_consumed);
    let nested = &call.report.nested;
    assert_eq!(nested.len(), 2);
    for n in nested {
        let (total, _) = costs[&format!("{}.execute", n.primitive)][0];
        assert_eq!(
            total, n.stats.fuel_consumed,
            "an invoke child carries its own call's fuel"
        );
    }
    let (tokenize, own) = costs["word-count.tokenize"][0];
    assert!(
        tokenize > 0 && tokenize == own,
        "a guest span's fuel is measured: {tokenize}"
    );
    assert!(tokenize < costs["word-count.execute"][0].0);

    // The workflow: the root and every step cost what the calls under them burned.
    let spans = trace(run.report.ids.trace_id);
    let costs = fuel_adds_up(&spans);
    let burned: u64 = run.report.calls.iter().map(|c| c.stats.fuel_consumed).sum();
    let (root, root_own) = costs["workflow.text-report"][0];
    assert_eq!((root, root_own), (burned, 0), "the root has no fuel of its own");
    for step in &run.report.spans {
        let (total, own) = costs[&step.name][0];
        assert_eq!(own, 0, "a step ({}) burns nothing itself", step.name);
        assert!(total > 0);
    }
}

#[test]
fn run_draws_a_call_and_a_workflow_as_flame_graphs_by_fuel_or_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = repo().join("plugins");
    let plugin_dir = plugins.to_string_lossy().into_owned();
    let svg = dir.path().join("call.svg");
    let folded = dir.path().join("call.txt");
    let out = tta_host_in(
        dir.path(),
        &[
            "run",
            "orchestrator",
            "--plugin-dir",
            &plugin_dir,
            "--input",
            r#"{"text":"one two"}"#,
            "--flamegraph",
            &svg.to_string_lossy(),
            "--folded",
            &folded.to_string_lossy(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let total: u64 = stderr
        .split("fuel ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the summary gives the fuel: {stderr}"));
    let stacks = std::fs::read_to_string(&folded).expect("folded stacks");
    let mut sum = 0;
    for line in stacks.lines() {
        let (stack, value) = line.rsplit_once(' ').expect("`stack value`");
        assert!(stack.starts_with("orchestrator.execute"), "{line}");
        sum += value.parse::<u64>().expect("an integer value");
    }
    assert_eq!(sum, total, "own parts add up to the call's fuel:\n{stacks}");
    assert!(stacks.contains("orchestrator.execute;word-count.execute;word-count.tokenize "));
    let drawn = std::fs::read_to_string(&svg).expect("svg");
    assert!(drawn.starts_with("<?xml") && drawn.trim_end().ends_with("</svg>"));
    assert!(drawn.contains("<title>orchestrator.execute — ") && drawn.contains("(100.0%)"));
    assert!(drawn.contains(">uppercase.execute<") || drawn.contains("<title>uppercase.execute"));

    // A workflow by time: one graph across its steps.
    let workflow = repo().join("workflows/text-report.toml");
    let out = tta_host_in(
        dir.path(),
        &[
            "run",
            &workflow.to_string_lossy(),
            "--plugin-dir",
            &plugin_dir,
            "--input",
            r#"{"text":"one two"}"#,
            "--folded",
            &folded.to_string_lossy(),
            "--by",
            "time",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stacks = std::fs::read_to_string(&folded).expect("folded stacks");
    assert!(
        stacks.lines().all(|l| l.starts_with("workflow.text-report")),
        "{stacks}"
    );
    assert!(stacks.contains(";format.execute"), "{stacks}");

    let out = tta_host_in(dir.path(), &["run", "echo", "--by", "weight"]);
    assert_eq!(out.status.code(), Some(2), "an unknown --by is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fuel, time"));
}
