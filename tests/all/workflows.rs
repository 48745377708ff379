//! Workflows end to end with real guests: each combinator's semantics and its telemetry
//! (span tree, attributes, metric values), failure paths, deep and long workflows, and
//! the example workflows in `workflows/`.

use crate::telemetry::sample;
use crate::{config, fixture, plugin, repo};
use opentelemetry_sdk::trace::{InMemorySpanExporter, InMemorySpanExporterBuilder};
use std::time::Duration;
use tta_host::report::{GuestSpanRecord, WorkflowReport};
use tta_host::telemetry::{ObservabilityConfig, Telemetry};
use tta_host::workflow::{Workflow, WorkflowOutcome};
use tta_host::{CallOptions, Host};

const PLUGINS: &[&str] = &[
    "echo",
    "uppercase",
    "word-count",
    "json-validate",
    "summarize",
    "format",
    "reserve-stock",
    "release-stock",
    "charge-card",
    "refund-card",
];
const FIXTURES: &[&str] = &["flaky", "spin-forever", "trap", "context-probe"];

async fn host_and_spans() -> (Host, InMemorySpanExporter) {
    let mut t = ObservabilityConfig::default();
    t.metrics.listen = None;
    t.export.interval_ms = 20;
    let spans = InMemorySpanExporterBuilder::new().build();
    let telemetry = Telemetry::builder(t)
        .with_span_exporter("memory", spans.clone())
        .build()
        .expect("telemetry");
    let mut config = config();
    config.limits.timeout_ms = 2_000;
    // Deadlines, not fuel, stop the spinning fixture here, however fast the machine.
    config.limits.fuel = 100_000_000_000;
    let host = Host::with_telemetry(config, telemetry).expect("host");
    for name in PLUGINS {
        host.load(&plugin(name)).await.expect("plugin loads");
    }
    for name in FIXTURES {
        host.load(&fixture(name)).await.expect("fixture loads");
    }
    (host, spans)
}

async fn host() -> Host {
    host_and_spans().await.0
}

fn compile(host: &Host, text: &str) -> Workflow {
    let file = tta_host::workflow::parse(text).unwrap_or_else(|p| panic!("{p:?}"));
    Workflow::compile(&file, text, host).unwrap_or_else(|e| panic!("{e}"))
}

async fn run(workflow: &Workflow, input: &str) -> WorkflowOutcome {
    workflow.run(input.as_bytes(), CallOptions::default()).await
}

fn output(outcome: &WorkflowOutcome) -> serde_json::Value {
    let bytes = outcome
        .output
        .as_ref()
        .unwrap_or_else(|e| panic!("workflow failed: {e}"));
    serde_json::from_slice(bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into()))
}

fn span<'a>(report: &'a WorkflowReport, name: &str) -> &'a GuestSpanRecord {
    report.spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span `{name}` in {:?}",
            report.spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

fn attr(span: &GuestSpanRecord, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| tta_host::telemetry::value_text(v))
}

fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&host.telemetry().metrics().render(), name, labels)
}

#[tokio::test]
async fn sequential_passes_outputs_on_and_the_context_and_data_reach_every_step() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "seq"
[steps.main]
sequential = ["first", "second"]
[steps.first]
primitive = "context-probe"
set_data = { first_tenant = "/tenant" }
[steps.second]
primitive = "context-probe"
"#,
    );
    let options = CallOptions {
        correlation_id: Some("req-wf".into()),
        tenant: Some("acme".into()),
        data: vec![("user".into(), "u-7".into())],
        ..CallOptions::default()
    };
    let outcome = wf.run(b"", options).await;
    let out = output(&outcome);
    assert_eq!(out["correlation_id"], "req-wf");
    assert_eq!(out["tenant"], "acme");
    let data = out["data"].as_array().expect("data");
    assert!(data.contains(&serde_json::json!(["user", "u-7"])), "{data:?}");
    assert!(
        data.contains(&serde_json::json!(["first_tenant", "acme"])),
        "a step added to data: {data:?}"
    );
    let report = &outcome.report;
    assert_eq!(report.calls.len(), 2);
    let main = span(report, "main");
    assert_eq!(main.parent_span_id, report.ids.span_id);
    assert!(
        report
            .calls
            .iter()
            .all(|c| c.ids.parent_span_id == Some(main.span_id) && c.ids.trace_id == report.ids.trace_id)
    );
    let seen_span = tta_host::trace_context::parse_traceparent(out["traceparent"].as_str().expect("tp"))
        .expect("valid")
        .span_id;
    assert_eq!(
        seen_span, report.calls[1].ids.span_id,
        "the guest saw its own call span"
    );
    assert_eq!(
        metric(
            &host,
            "workflow_executions_total",
            &[("workflow_name", "seq"), ("status", "success"), ("tenant", "acme")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&host, "workflow_duration_seconds_count", &[("workflow_name", "seq")]),
        Some(1.0)
    );
    assert_eq!(metric(&host, "active_workflows", &[("tenant", "acme")]), Some(0.0));
}

#[tokio::test]
async fn parallel_combines_in_branch_order_or_by_name_and_fails_fast_or_collects() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "par"
[steps.main]
sequential = ["both", "named"]
[steps.both]
parallel = { branches = ["up", "count"] }
[steps.named]
parallel = { named = { first = "echo", second = "echo" } }
[steps.up]
sequential = ["pick-text", "upper"]
[steps.pick-text]
primitive = "echo"
[steps.upper]
primitive = "uppercase"
[steps.count]
primitive = "word-count"
[steps.echo]
primitive = "echo"
"#,
    );
    let out = output(&run(&wf, r#"{"text":"a b"}"#).await);
    assert_eq!(out["first"][0]["text"], "A B");
    assert_eq!(out["first"][1]["words"], 2);
    assert_eq!(out["second"], out["first"]);

    let failing = |policy: &str| {
        format!(
            r#"name = "par-fail"
[steps.main]
parallel = {{ branches = ["spin", "boom", "ok"], on_failure = "{policy}" }}
[steps.spin]
timeout = {{ step = "spin-forever", ms = 300 }}
[steps.spin-forever]
primitive = "spin-forever"
[steps.boom]
primitive = "trap"
[steps.ok]
primitive = "echo"
"#
        )
    };
    let fast = run(&compile(&host, &failing("fail_fast")), "x").await;
    let error = fast.output.expect_err("a branch traps");
    assert_eq!(error.error_type(), "trap");
    let cancelled: u32 = attr(span(&fast.report, "main"), "parallel.cancelled")
        .expect("cancelled")
        .parse()
        .expect("int");
    assert!(cancelled >= 1, "the spinning branch was cancelled");
    assert!(
        fast.report.calls.iter().all(|c| c.primitive != "spin-forever"),
        "and never finished"
    );
    let collected = run(&compile(&host, &failing("collect")), "x").await;
    let error = collected.output.expect_err("two branches fail");
    assert!(error.message.starts_with("2 of 3 branches failed"), "{}", error.message);
    assert!(
        error.message.contains("deadline_exceeded") && error.message.contains("trap"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_timeout_inside_a_parallel_branch_stops_only_that_branch() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "bounded"
[steps.main]
parallel = { branches = ["slow-or-default", "upper"] }
[steps.slow-or-default]
fallback = ["slow", "echo"]
[steps.slow]
timeout = { step = "spin", ms = 100 }
[steps.spin]
primitive = "spin-forever"
[steps.echo]
primitive = "echo"
[steps.upper]
primitive = "uppercase"
"#,
    );
    let outcome = run(&wf, r#"{"text":"go"}"#).await;
    let out = output(&outcome);
    assert_eq!(out[0]["text"], "go", "the bounded branch fell back");
    assert_eq!(out[1]["text"], "GO", "the other branch finished");
    let spin = outcome
        .report
        .calls
        .iter()
        .find(|c| c.primitive == "spin-forever")
        .expect("spin call");
    assert_eq!(spin.error.as_ref().map(|e| e.error_type()), Some("deadline_exceeded"));
    let context_deadline = outcome
        .report
        .calls
        .iter()
        .find(|c| c.primitive == "uppercase")
        .expect("upper");
    assert!(context_deadline.error.is_none());
    assert_eq!(
        attr(span(&outcome.report, "slow"), "timeout.exceeded").as_deref(),
        Some("true")
    );
    assert_eq!(
        metric(
            &host,
            "timeout_exceeded_total",
            &[("workflow_name", "bounded"), ("step", "slow")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &host,
            "fallback_used_total",
            &[("workflow_name", "bounded"), ("step", "echo")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_timeout_step_is_the_deadline_guests_see() {
    let host = host().await;
    let wf = compile(
        &host,
        "name = \"deadline\"\n[steps.main]\ntimeout = { step = \"probe\", ms = 300 }\n[steps.probe]\nprimitive = \"context-probe\"\n",
    );
    let out = output(&run(&wf, "").await);
    let deadline = out["deadline_ms"].as_u64().expect("deadline_ms");
    assert!(
        deadline <= 300 && deadline > 0,
        "the guest sees the step's deadline: {deadline}"
    );
}

#[tokio::test]
async fn conditional_chooses_then_else_or_passes_the_input_through() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "cond"
[steps.main]
conditional = { if = { pointer = "/n", op = "gt", value = 10 }, then = "upper", else = "count" }
[steps.upper]
primitive = "uppercase"
[steps.count]
primitive = "word-count"
"#,
    );
    assert_eq!(output(&run(&wf, r#"{"n":11,"text":"x y"}"#).await)["text"], "X Y");
    let low = run(&wf, r#"{"n":3,"text":"x y"}"#).await;
    assert_eq!(output(&low)["words"], 2);
    assert_eq!(
        attr(span(&low.report, "main"), "condition.result").as_deref(),
        Some("false")
    );
    let pass = compile(
        &host,
        "name = \"c2\"\n[steps.main]\nconditional = { if = { pointer = \"/flag\", op = \"exists\" }, then = \"upper\" }\n[steps.upper]\nprimitive = \"uppercase\"\n",
    );
    let through = run(&pass, r#"{"text":"same"}"#).await;
    assert_eq!(output(&through)["text"], "same");
    assert!(through.report.calls.is_empty());
    let not_json = run(&wf, "not json").await;
    assert_eq!(not_json.output.expect_err("not JSON").error_type(), "not_json");
}

#[tokio::test]
async fn router_records_its_decision_by_rule_or_classifier_with_a_default() {
    let host = host().await;
    let by_rule = compile(
        &host,
        r#"name = "routes"
[steps.main]
router = { by = "/tier", routes = { fast = "upper", slow = "count" }, default = "slow" }
[steps.upper]
primitive = "uppercase"
[steps.count]
primitive = "word-count"
"#,
    );
    let fast = run(&by_rule, r#"{"tier":"fast","text":"a"}"#).await;
    assert_eq!(output(&fast)["text"], "A");
    let main = span(&fast.report, "main");
    assert_eq!(attr(main, "route_selected").as_deref(), Some("fast"));
    assert!(main.events.iter().any(|e| e.name == "route_decision_made"));
    let unknown = run(&by_rule, r#"{"tier":"gold","text":"a b"}"#).await;
    assert_eq!(output(&unknown)["words"], 2, "an unknown route takes the default");
    fn labels(route: &str) -> [(&str, &str); 3] {
        [("workflow_name", "routes"), ("router", "main"), ("route", route)]
    }
    assert_eq!(metric(&host, "router_route_selected_total", &labels("fast")), Some(1.0));
    assert_eq!(metric(&host, "router_route_selected_total", &labels("slow")), Some(1.0));
    assert_eq!(
        metric(&host, "router_decision_duration_seconds_count", &[("router", "main")]),
        Some(2.0)
    );

    // The classifier's output names the route: `echo` of "\"slow\"" says slow.
    let classified = compile(
        &host,
        r#"name = "classified"
[steps.main]
router = { classifier = "echo", routes = { fast = "upper", slow = "count" } }
[steps.upper]
primitive = "uppercase"
[steps.count]
primitive = "echo"
"#,
    );
    let outcome = run(&classified, r#""slow""#).await;
    assert_eq!(output(&outcome), "slow");
    assert_eq!(outcome.report.calls.len(), 2, "classifier and route");
    let lost = run(&classified, r#""nowhere""#).await;
    let error = lost.output.expect_err("no route and no default");
    assert_eq!(error.error_type(), "no_route");
    assert!(error.message.contains("`nowhere`"), "{}", error.message);
}

#[tokio::test]
async fn retry_retries_retryable_errors_with_an_attempt_span_each_and_gives_up_when_told() {
    let host = host().await;
    let wf = |attempts: u32, traps: bool| {
        compile(
            &host,
            &format!(
                "name = \"retrying\"\n[steps.main]\nretry = {{ step = \"flaky\", max_attempts = {attempts}, backoff_ms = 1, retry_traps = {traps} }}\n[steps.flaky]\nprimitive = \"flaky\"\n"
            ),
        )
    };
    let outcome = run(&wf(3, false), r#"{"succeed_on":3}"#).await;
    assert_eq!(output(&outcome), "succeeded on attempt 3");
    let attempts: Vec<_> = outcome
        .report
        .spans
        .iter()
        .filter(|s| s.name == "main.attempt")
        .collect();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts
            .iter()
            .filter_map(|s| attr(s, "retry.attempt"))
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(attempts.iter().take(2).all(|s| s.error.is_some()) && attempts[2].error.is_none());
    assert_eq!(
        metric(
            &host,
            "retry_attempts_total",
            &[("workflow_name", "retrying"), ("step", "main")]
        ),
        Some(2.0)
    );

    let exhausted = run(&wf(2, false), r#"{"succeed_on":5}"#).await;
    assert!(exhausted.output.is_err());
    assert_eq!(
        attr(span(&exhausted.report, "main"), "retry.exhausted").as_deref(),
        Some("true")
    );
    assert_eq!(exhausted.report.calls.len(), 2);
    let permanent = run(&wf(5, false), r#"{"fail":"permanent"}"#).await;
    assert_eq!(permanent.report.calls.len(), 1, "a non-retryable error is not retried");
    let trap = run(&wf(3, false), r#"{"fail":"trap"}"#).await;
    assert_eq!(trap.report.calls.len(), 1, "traps are not retried by default");
    let trap = run(&wf(3, true), r#"{"fail":"trap"}"#).await;
    assert_eq!(trap.report.calls.len(), 3, "unless retry_traps");
}

#[tokio::test]
async fn fallback_says_which_step_answered_and_fails_when_all_do() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "fb"
[steps.main]
fallback = ["broken", "echo"]
[steps.broken]
primitive = "flaky"
[steps.echo]
primitive = "echo"
"#,
    );
    let outcome = run(&wf, r#"{"fail":"permanent"}"#).await;
    assert_eq!(output(&outcome)["fail"], "permanent");
    assert_eq!(
        attr(span(&outcome.report, "main"), "fallback.used").as_deref(),
        Some("echo")
    );
    assert_eq!(
        metric(
            &host,
            "fallback_used_total",
            &[("workflow_name", "fb"), ("step", "echo")]
        ),
        Some(1.0)
    );
    let all = compile(
        &host,
        "name = \"fb2\"\n[steps.main]\nfallback = [\"a\", \"b\"]\n[steps.a]\nprimitive = \"flaky\"\n[steps.b]\nprimitive = \"trap\"\n",
    );
    let error = run(&all, r#"{"fail":"permanent"}"#).await.output.expect_err("all fail");
    assert_eq!(error.error_type(), "all_failed");
    assert!(
        error.message.starts_with("all 2 alternatives failed"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn cache_hits_by_input_per_tenant_expires_and_evicts() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "cached"
[steps.main]
cache = { step = "upper", ttl_ms = 60000, max_entries = 2 }
[steps.upper]
primitive = "uppercase"
"#,
    );
    let tenant = |t: &str| CallOptions {
        tenant: Some(t.into()),
        ..CallOptions::default()
    };
    let first = wf.run(br#"{"text":"a"}"#, tenant("t1")).await;
    let second = wf.run(br#"{"text":"a"}"#, tenant("t1")).await;
    assert_eq!(output(&second), output(&first));
    assert_eq!(first.report.calls.len(), 1);
    assert_eq!(second.report.calls.len(), 0, "served from the cache");
    assert_eq!(attr(span(&second.report, "main"), "cache.hit").as_deref(), Some("true"));
    let other_tenant = wf.run(br#"{"text":"a"}"#, tenant("t2")).await;
    assert_eq!(
        other_tenant.report.calls.len(),
        1,
        "one tenant never sees another's entry"
    );
    let labels = |t: &'static str| [("workflow_name", "cached"), ("cache", "main"), ("tenant", t)];
    assert_eq!(metric(&host, "cache_hit_total", &labels("t1")), Some(1.0));
    assert_eq!(metric(&host, "cache_miss_total", &labels("t1")), Some(1.0));
    assert_eq!(metric(&host, "cache_miss_total", &labels("t2")), Some(1.0));
    assert_eq!(
        metric(&host, "cache_operation_duration_seconds_count", &[("operation", "hit")]),
        Some(1.0)
    );
    // A third distinct entry evicts the least recently used of two.
    wf.run(br#"{"text":"b"}"#, tenant("t1")).await;
    assert_eq!(metric(&host, "cache_evictions_total", &labels("t1")), Some(1.0));
    assert!(metric(&host, "cache_size_bytes", &[("workflow_name", "cached")]).unwrap_or(0.0) > 0.0);

    let short = compile(
        &host,
        "name = \"short\"\n[steps.main]\ncache = { step = \"upper\", ttl_ms = 1 }\n[steps.upper]\nprimitive = \"uppercase\"\n",
    );
    run(&short, r#"{"text":"a"}"#).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        run(&short, r#"{"text":"a"}"#).await.report.calls.len(),
        1,
        "an expired entry is computed again"
    );
}

#[tokio::test]
async fn circuit_breaker_opens_after_failures_then_recovers_through_a_trial() {
    let host = host().await;
    let wf = compile(
        &host,
        r#"name = "guarded"
[steps.main]
circuit_breaker = { step = "check", failures = 2, window_ms = 60000, cooldown_ms = 50 }
[steps.check]
primitive = "json-validate"
"#,
    );
    let bad = r#"{"name":""}"#;
    let good = r#"{"name":"ada","age":30}"#;
    let state = || {
        metric(
            &host,
            "circuit_breaker_state",
            &[("workflow_name", "guarded"), ("breaker", "main")],
        )
    };
    assert!(run(&wf, bad).await.output.is_err());
    assert_eq!(state(), Some(0.0));
    let opening = run(&wf, bad).await;
    assert_eq!(state(), Some(1.0), "open after two failures");
    assert!(
        span(&opening.report, "main")
            .events
            .iter()
            .any(|e| e.name == "circuit_breaker.open")
    );
    let rejected = run(&wf, good).await;
    assert_eq!(rejected.output.expect_err("open").error_type(), "circuit_open");
    assert!(rejected.report.calls.is_empty(), "an open breaker calls nothing");
    tokio::time::sleep(Duration::from_millis(80)).await;
    let trial = run(&wf, good).await;
    assert!(trial.output.is_ok());
    let events: Vec<_> = span(&trial.report, "main")
        .events
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(events, ["circuit_breaker.half_open", "circuit_breaker.closed"]);
    assert_eq!(state(), Some(0.0));
    crate::telemetry::promtool_check(&host.telemetry().metrics().render());
}

#[tokio::test]
async fn a_saga_compensates_completed_steps_in_reverse_order() {
    let host = host().await;
    let text = std::fs::read_to_string(repo().join("workflows/order-saga.toml")).expect("example");
    let saga = compile(
        &host,
        &text
            .replace(
                r#"steps = ["reserve", "charge", "receipt"]"#,
                r#"steps = ["reserve", "charge", "fail"]"#,
            )
            .replace(
                "[steps.receipt]\nprimitive = \"format\"",
                "[steps.fail]\nprimitive = \"trap\"",
            ),
    );
    let outcome = run(&saga, r#"{"sku":"book-42","qty":1,"amount":30}"#).await;
    let error = outcome.output.expect_err("the last step traps");
    assert!(
        error.message.ends_with("compensated: charge, reserve"),
        "{}",
        error.message
    );
    let order: Vec<&str> = outcome.report.calls.iter().map(|c| c.primitive.as_str()).collect();
    assert_eq!(
        order,
        ["reserve-stock", "charge-card", "trap", "refund-card", "release-stock"]
    );
    let refund = &outcome.report.calls[3];
    assert_eq!(
        refund.ids.parent_span_id,
        Some(span(&outcome.report, "charge.compensate").span_id)
    );
    assert_eq!(
        metric(
            &host,
            "compensations_total",
            &[("workflow_name", "order"), ("step", "charge")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &host,
            "compensations_total",
            &[("workflow_name", "order"), ("step", "reserve")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_workflow_is_one_trace_rooted_at_workflow_name() {
    let (host, spans) = host_and_spans().await;
    let text = std::fs::read_to_string(repo().join("workflows/llm-pipeline.toml")).expect("example");
    let wf = compile(&host, &text);
    let input = r#"{"text":"Every call is a span. Fuel is metered.","tier":"fast"}"#;
    let outcome = run(&wf, input).await;
    assert!(
        output(&outcome)["text"]
            .as_str()
            .expect("text")
            .contains("summary: Every call is a span.")
    );
    assert!(host.telemetry().flush(Duration::from_secs(30)));
    let exported = spans.get_finished_spans().expect("spans");
    let root = exported
        .iter()
        .find(|s| s.name == "workflow.llm-pipeline")
        .expect("root span");
    let root_id = root.span_context.span_id();
    assert!(
        exported
            .iter()
            .all(|s| s.span_context.trace_id() == root.span_context.trace_id())
    );
    let by = |name: &str| {
        exported
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(by("main").parent_span_id, root_id);
    assert_eq!(by("route").parent_span_id, by("main").span_context.span_id());
    assert_eq!(by("fast").parent_span_id, by("route").span_context.span_id());
    assert_eq!(
        by("summarize.execute").parent_span_id,
        by("summarize-with-retry.attempt").span_context.span_id()
    );
    assert!(exported.iter().any(|s| s.name == "llm.completion"));
    let llm = metric(
        &host,
        "llm_requests_total",
        &[("primitive_name", "summarize"), ("model", "extractive-small")],
    );
    assert_eq!(llm, Some(1.0));
    // The fast tier is cached: the same question again calls nothing.
    assert_eq!(run(&wf, input).await.report.calls.len(), 1, "only `format` runs");
}

#[tokio::test]
async fn a_thousand_steps_deep_or_long_run_without_overflowing_the_stack() {
    let host = host().await;
    let mut deep = String::from("name = \"deep\"\n[steps.main]\nsequential = [\"s1\"]\n");
    for i in 1..1000 {
        deep.push_str(&format!("[steps.s{i}]\nsequential = [\"s{}\"]\n", i + 1));
    }
    deep.push_str("[steps.s1000]\nprimitive = \"echo\"\n");
    let deep = compile(&host, &deep);
    let outcome = run(&deep, "bottom").await;
    assert_eq!(outcome.output.as_deref().ok(), Some(&b"bottom"[..]));
    assert_eq!(outcome.report.spans.len(), 1000);
    let steps: Vec<String> = (0..1000).map(|i| format!("\"e{i}\"")).collect();
    let mut long = format!("name = \"long\"\n[steps.main]\nsequential = [{}]\n", steps.join(", "));
    for i in 0..1000 {
        long.push_str(&format!("[steps.e{i}]\nprimitive = \"echo\"\n"));
    }
    let outcome = run(&compile(&host, &long), "along").await;
    assert_eq!(outcome.output.as_deref().ok(), Some(&b"along"[..]));
    assert_eq!(outcome.report.calls.len(), 1000);
}

#[tokio::test]
async fn the_example_workflows_validate_and_run() {
    let host = host().await;
    let read = |name: &str| std::fs::read_to_string(repo().join("workflows").join(name)).expect("example");
    let report = compile(&host, &read("text-report.toml"));
    let out = output(&run(&report, r#"{"text":"One two. Three."}"#).await);
    let text = out["text"].as_str().expect("formatted");
    assert!(
        text.contains("counts: {") && text.contains("shouted: {\"text\":\"ONE TWO. THREE.\"}"),
        "{text}"
    );
    let order = compile(&host, &read("order-saga.toml"));
    let ok = run(&order, r#"{"sku":"book-42","qty":1,"amount":30}"#).await;
    assert!(
        output(&ok)["text"]
            .as_str()
            .expect("receipt")
            .contains("charge: chg-3000-")
    );
    let declined = run(&order, r#"{"sku":"book-42","qty":1,"amount":2000}"#).await;
    let error = declined.output.expect_err("declined");
    assert!(
        error.message.contains("card declined") && error.message.ends_with("compensated: reserve"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn flows_compose_in_rust_with_operators_and_run_like_files() {
    use tta_host::workflow::builder::{primitive, router_by, saga};
    let host = host().await;
    let flow = router_by(
        "/tier",
        [("loud", primitive("uppercase")), ("quiet", primitive("echo"))],
        Some("quiet"),
    )
    .named("route")
        >> (primitive("word-count") | primitive("flaky").retry_with(3, 1, false).or(primitive("echo")));
    let workflow = flow.compile("built", &host).expect("compiles");
    // `quiet` echoes the whole input on, so the flaky branch sees `succeed_on`.
    let outcome = run(&workflow, r#"{"tier":"quiet","text":"a b","succeed_on":2}"#).await;
    let out = output(&outcome);
    assert_eq!(out[0]["words"], 2);
    assert_eq!(out[1], "succeeded on attempt 2");
    assert_eq!(
        attr(span(&outcome.report, "route"), "route_selected").as_deref(),
        Some("quiet")
    );
    assert_eq!(outcome.report.workflow, "built");

    // Problems in built flows are reported like file problems, by key path.
    let error = (primitive("echo") >> primitive("nope"))
        .compile("broken", &host)
        .expect_err("unknown primitive");
    assert!(error.to_string().contains("unknown primitive `nope`"), "{error}");

    let order = saga([
        (primitive("reserve-stock"), Some("release-stock")),
        (primitive("charge-card"), Some("refund-card")),
    ])
    .compile("built-order", &host)
    .expect("compiles");
    let declined = run(&order, r#"{"sku":"b","qty":1,"amount":5000}"#).await;
    assert!(
        declined
            .output
            .expect_err("declined")
            .message
            .ends_with("compensated: reserve-stock-2")
    );
}
