//! Observability end to end: spans through an in-memory exporter and a real OTLP receiver,
//! `/metrics` scraped over HTTP, JSON logs, a backend that is down or hung, guest floods.

use crate::otlp_receiver::{self, attr, id64, id128, text};
use crate::{config, fixture, plugin};
use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::logs::InMemoryLogExporterBuilder;
use opentelemetry_sdk::trace::{InMemorySpanExporter, InMemorySpanExporterBuilder, SpanData};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tta_host::telemetry::{Exporter, ObservabilityConfig, OtlpProtocol, Telemetry, TelemetryBuilder};
use tta_host::{CallOptions, Host};

const FLUSH: Duration = Duration::from_secs(30);

/// A telemetry config for tests: no `/metrics` listener, fast export, short timeouts.
pub fn telemetry_config() -> ObservabilityConfig {
    let mut t = ObservabilityConfig::default();
    // Tests run in parallel: none takes the default :9464.
    t.metrics.listen = None;
    t.export.interval_ms = 20;
    t.otlp.timeout_ms = 2_000;
    t.export.shutdown_timeout_ms = 2_000;
    t
}

async fn host(telemetry: TelemetryBuilder, paths: &[PathBuf]) -> Host {
    let telemetry = telemetry.build().expect("telemetry starts");
    let host = Host::with_telemetry(config(), telemetry).expect("host starts");
    for path in paths {
        host.load(path)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    host
}

fn in_memory() -> (InMemorySpanExporter, TelemetryBuilder) {
    let spans = InMemorySpanExporterBuilder::new().build();
    let builder = Telemetry::builder(telemetry_config()).with_span_exporter("memory", spans.clone());
    (spans, builder)
}

fn finished(host: &Host, spans: &InMemorySpanExporter) -> Vec<SpanData> {
    assert!(host.telemetry().flush(FLUSH), "flush timed out");
    spans.get_finished_spans().expect("in-memory spans")
}

fn by_name<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = by_name(spans, name);
    assert_eq!(
        found.len(),
        1,
        "expected one `{name}` span in {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

fn attribute(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn int_attribute(span: &SpanData, key: &str) -> i64 {
    match attribute(span, key) {
        Some(opentelemetry::Value::I64(i)) => i,
        other => panic!("{key} on {} is {other:?}", span.name),
    }
}

fn str_attribute(span: &SpanData, key: &str) -> String {
    attribute(span, key)
        .map(|v| v.to_string())
        .unwrap_or_else(|| panic!("{key} missing on {}", span.name))
}

#[tokio::test]
async fn a_call_is_one_span_with_the_tta_attributes_and_guest_spans_nest_under_it() {
    let (spans, builder) = in_memory();
    let host = host(
        builder,
        &[plugin("orchestrator"), plugin("uppercase"), plugin("word-count")],
    )
    .await;
    let options = CallOptions {
        correlation_id: Some("req-abc-123".into()),
        ..CallOptions::default()
    };
    let outcome = host.call("orchestrator", br#"{"text":"one two three"}"#, options).await;
    assert!(outcome.output.is_ok(), "{:?}", outcome.output);
    let spans = finished(&host, &spans);

    let root = one(&spans, "orchestrator.execute");
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(root.status, Status::Ok);
    assert_eq!(str_attribute(root, "primitive.name"), "orchestrator");
    assert_eq!(str_attribute(root, "primitive.version"), "0.1.0");
    assert_eq!(str_attribute(root, "primitive.type"), "wasm");
    assert_eq!(str_attribute(root, "correlation_id"), "req-abc-123");
    assert_eq!(str_attribute(root, "tenant.id"), "default");
    assert_eq!(
        int_attribute(root, "wasm.fuel_consumed"),
        outcome.report.stats.fuel_consumed as i64
    );
    assert!(int_attribute(root, "wasm.memory_peak_bytes") >= 65_536);
    assert_eq!(
        int_attribute(root, "wasm.instantiate_ns"),
        outcome.report.stats.instantiate.as_nanos() as i64
    );

    // Host phases are child spans.
    let instantiations = by_name(&spans, "wasm.instantiate");
    assert_eq!(instantiations.len(), 3, "one per call");
    assert!(
        instantiations
            .iter()
            .any(|s| s.parent_span_id == root.span_context.span_id())
    );

    // `invoke` made a child span per callee; the guest's own span nests under its call.
    let trace_id = root.span_context.trace_id();
    for callee in ["uppercase.execute", "word-count.execute"] {
        let span = one(&spans, callee);
        assert_eq!(span.parent_span_id, root.span_context.span_id(), "{callee}");
        assert_eq!(span.span_context.trace_id(), trace_id);
        assert_eq!(str_attribute(span, "correlation_id"), "req-abc-123");
    }
    let tokenize = one(&spans, "word-count.tokenize");
    assert_eq!(
        tokenize.parent_span_id,
        one(&spans, "word-count.execute").span_context.span_id()
    );
    assert_eq!(int_attribute(tokenize, "words"), 3);
    assert_eq!(
        tokenize
            .events
            .events
            .iter()
            .map(|e| e.name.to_string())
            .collect::<Vec<_>>(),
        ["tokenized"]
    );
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace_id));
    host.telemetry().shutdown().expect("clean shutdown");
}

#[tokio::test]
async fn a_three_level_invoke_chain_is_one_trace_and_each_guest_saw_its_own_span() {
    let (spans, builder) = in_memory();
    let host = host(builder, &[fixture("context-probe")]).await;
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let options = CallOptions {
        traceparent: Some(incoming.into()),
        tracestate: Some("vendor=1".into()),
        tenant: Some("acme".into()),
        data: vec![("user".into(), "u-1".into())],
        ..CallOptions::default()
    };
    let outcome = host
        .call(
            "context-probe",
            br#"{"then":["context-probe","context-probe"]}"#,
            options,
        )
        .await;
    let output: serde_json::Value = serde_json::from_slice(outcome.output.as_ref().expect("chain runs")).expect("JSON");
    let spans = finished(&host, &spans);

    let calls = by_name(&spans, "context-probe.execute");
    assert_eq!(calls.len(), 3);
    let forwards = by_name(&spans, "probe.forward");
    assert_eq!(forwards.len(), 2);
    let span_of = |id: u64| spans.iter().find(|s| s.span_context.span_id() == SpanId::from(id));

    // Level by level: the traceparent the guest saw names its call span, whose parent is
    // the caller's `probe.forward` span (or, at the top, the incoming traceparent).
    let mut level = &output;
    let mut expected_parent = SpanId::from(0xb7ad6b7169203331u64);
    for depth in 0..3 {
        let traceparent = level["traceparent"].as_str().expect("traceparent");
        let tta_host::trace_context::Parent {
            trace_id: trace,
            span_id,
            sampled,
        } = tta_host::trace_context::parse_traceparent(traceparent).expect("valid");
        assert_eq!(
            trace, 0x0af7651916cd43dd8448eb211c80319c,
            "level {depth} is in the caller's trace"
        );
        assert!(sampled);
        assert_eq!(level["tracestate"], "vendor=1");
        assert_eq!(level["tenant"], "acme");
        assert_eq!(level["data"][0][1], "u-1");
        let call = span_of(span_id).unwrap_or_else(|| panic!("level {depth}: no span for {traceparent}"));
        assert_eq!(call.name, "context-probe.execute");
        assert_eq!(call.parent_span_id, expected_parent, "level {depth}");
        assert_eq!(call.parent_span_is_remote, depth == 0);
        assert_eq!(str_attribute(call, "tenant.id"), "acme");
        if depth < 2 {
            let forward = forwards
                .iter()
                .find(|f| f.parent_span_id == call.span_context.span_id())
                .expect("probe.forward under the call");
            expected_parent = forward.span_context.span_id();
        }
        level = &level["inner"];
    }
    assert!(level.is_null());
}

#[tokio::test]
async fn a_failed_call_has_error_status_type_and_an_exception_event() {
    let (spans, builder) = in_memory();
    let host = host(builder, &[fixture("trap")]).await;
    let outcome = crate::call(&host, "trap", "").await;
    assert!(outcome.output.is_err());
    let spans = finished(&host, &spans);
    let span = one(&spans, "trap.execute");
    assert!(
        matches!(&span.status, Status::Error { description } if description.contains("trap")),
        "{:?}",
        span.status
    );
    assert_eq!(str_attribute(span, "error.type"), "trap");
    let exception = span
        .events
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("exception event");
    let exception_type = exception
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "exception.type")
        .map(|kv| kv.value.to_string());
    assert_eq!(exception_type.as_deref(), Some("trap"));
}

#[tokio::test]
async fn unsampled_calls_export_no_spans_but_still_count_in_metrics() {
    let (spans, builder) = in_memory();
    let host = host(builder, &[plugin("echo")]).await;
    for _ in 0..3 {
        let options = CallOptions {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00".into()),
            ..CallOptions::default()
        };
        let outcome = host.call("echo", b"x", options).await;
        assert!(outcome.output.is_ok());
        assert!(!outcome.report.ids.sampled, "the parent's decision is followed");
    }
    assert!(finished(&host, &spans).is_empty());
    let text = host.telemetry().metrics().render();
    assert_eq!(
        sample(
            &text,
            "primitive_executions_total",
            &[("primitive_name", "echo"), ("status", "success")]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn the_sampling_ratio_applies_to_new_traces() {
    let mut t = telemetry_config();
    t.traces.sampler = tta_host::telemetry::SamplerKind::ParentbasedTraceidratio;
    t.traces.sampler_arg = 0.0;
    let spans = InMemorySpanExporterBuilder::new().build();
    let host = host(
        Telemetry::builder(t).with_span_exporter("memory", spans.clone()),
        &[plugin("echo")],
    )
    .await;
    for _ in 0..5 {
        assert!(!crate::call(&host, "echo", "x").await.report.ids.sampled);
    }
    assert!(finished(&host, &spans).is_empty());
}

#[tokio::test]
async fn guest_logs_are_records_with_trace_span_and_correlation_ids() {
    let logs = InMemoryLogExporterBuilder::new().build();
    let builder = Telemetry::builder(telemetry_config()).with_log_exporter("memory", logs.clone());
    let host = host(builder, &[plugin("word-count")]).await;
    let options = CallOptions {
        correlation_id: Some("req-logs".into()),
        ..CallOptions::default()
    };
    let outcome = host.call("word-count", br#"{"text":"a b"}"#, options).await;
    assert!(outcome.output.is_ok());
    assert!(host.telemetry().flush(FLUSH));
    let records = logs.get_emitted_logs().expect("logs");
    let body = |r: &opentelemetry_sdk::logs::SdkLogRecord| match r.body() {
        Some(opentelemetry::logs::AnyValue::String(s)) => s.to_string(),
        other => format!("{other:?}"),
    };
    let guest = records
        .iter()
        .find(|l| body(&l.record) == "counted words")
        .expect("the guest's log record");
    let context = guest.record.trace_context().expect("trace context");
    assert_eq!(
        u128::from_be_bytes(context.trace_id.to_bytes()),
        outcome.report.ids.trace_id
    );
    assert_eq!(
        u64::from_be_bytes(context.span_id.to_bytes()),
        outcome.report.ids.span_id
    );
    let attrs: HashMap<String, String> = guest
        .record
        .attributes_iter()
        .map(|(k, v)| (k.to_string(), format!("{v:?}")))
        .collect();
    assert!(attrs["correlation_id"].contains("req-logs"));
    assert!(attrs["words"].contains('2'), "{attrs:?}");
    let done = records
        .iter()
        .find(|l| body(&l.record) == "primitive_executed")
        .expect("the call's record");
    let attrs: HashMap<String, String> = done
        .record
        .attributes_iter()
        .map(|(k, v)| (k.to_string(), format!("{v:?}")))
        .collect();
    assert!(attrs["status"].contains("success"));
    assert!(attrs.contains_key("duration_ms"));
}

/// The value of the sample `name{labels…}` (labels a subset) in a Prometheus exposition.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_owned(), body.to_owned())
}

/// Runs `promtool check metrics` on `text` (required in CI through `TTA_REQUIRE_PROMTOOL`).
pub fn promtool_check(text: &str) {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("TTA_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not run ({e}); scripts/test.sh installs it and requires it");
            return;
        }
        Err(e) => panic!("promtool is required (TTA_REQUIRE_PROMTOOL) but cannot run: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n--- exposition ---\n{text}"
    );
}

// The receiver runs on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_exact_values_with_tenant_labels_and_passes_promtool() {
    let mut t = telemetry_config();
    t.metrics.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let host = host(
        Telemetry::builder(t),
        &[
            plugin("echo"),
            plugin("json-validate"),
            plugin("word-count"),
            fixture("trap"),
            fixture("llm-sim"),
        ],
    )
    .await;
    let addr = host.telemetry().metrics_addr().expect("metrics endpoint bound");
    for _ in 0..3 {
        assert!(crate::call(&host, "echo", "hi").await.output.is_ok());
    }
    let tenant = CallOptions {
        tenant: Some("acme".into()),
        ..CallOptions::default()
    };
    assert!(host.call("echo", b"hi", tenant.clone()).await.output.is_ok());
    assert!(crate::call(&host, "json-validate", "{not json").await.output.is_err());
    assert!(crate::call(&host, "trap", "").await.output.is_err());
    assert!(
        crate::call(&host, "word-count", r#"{"text":"a b c"}"#)
            .await
            .output
            .is_ok()
    );
    assert!(
        crate::call(&host, "word-count", r#"{"text":"d e"}"#)
            .await
            .output
            .is_ok()
    );
    for model in ["gpt-4-mini", "gpt-4-mini", "claude"] {
        let input = format!(r#"{{"model":"{model}","prompt_tokens":150,"completion_tokens":200,"cost_usd":0.015}}"#);
        assert!(crate::call(&host, "llm-sim", &input).await.output.is_ok());
    }

    let (head, text) = scrape(addr).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let s = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
    let echo = [("primitive_name", "echo"), ("tenant", "default")];
    assert_eq!(
        s("primitive_executions_total", &[echo[0], echo[1], ("status", "success")]),
        Some(3.0)
    );
    assert_eq!(
        s(
            "primitive_executions_total",
            &[echo[0], ("tenant", "acme"), ("status", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(s("primitive_duration_seconds_count", &echo), Some(3.0));
    assert_eq!(
        s("primitive_duration_seconds_bucket", &[echo[0], echo[1], ("le", "+Inf")]),
        Some(3.0)
    );
    assert_eq!(s("primitive_fuel_consumed_count", &echo), Some(3.0));
    assert_eq!(s("primitive_memory_peak_bytes_count", &echo), Some(3.0));
    assert_eq!(s("primitive_instantiate_seconds_count", &echo), Some(3.0));
    assert_eq!(
        s(
            "primitive_errors_total",
            &[("primitive_name", "json-validate"), ("error_type", "invalid_input")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s(
            "primitive_errors_total",
            &[("primitive_name", "trap"), ("error_type", "trap")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s(
            "primitive_executions_total",
            &[("primitive_name", "trap"), ("status", "error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s(
            "tta_guest_words_counted_total",
            &[("primitive_name", "word-count"), ("tenant", "default")]
        ),
        Some(5.0)
    );
    fn llm(model: &str) -> [(&str, &str); 3] {
        [("primitive_name", "llm-sim"), ("model", model), ("tenant", "default")]
    }
    assert_eq!(s("llm_requests_total", &llm("gpt-4-mini")), Some(2.0));
    assert_eq!(s("llm_requests_total", &llm("claude")), Some(1.0));
    let gpt = llm("gpt-4-mini");
    assert_eq!(
        s("llm_tokens_total", &[gpt[0], gpt[1], ("kind", "prompt")]),
        Some(300.0)
    );
    assert_eq!(
        s("llm_tokens_total", &[gpt[0], gpt[1], ("kind", "completion")]),
        Some(400.0)
    );
    let cost = s("llm_cost_usd_total", &gpt).expect("cost");
    assert!((cost - 0.03).abs() < 1e-9, "{cost}");
    assert_eq!(
        s("telemetry_dropped_total", &[("signal", "spans"), ("tenant", "default")]),
        Some(0.0)
    );
    for line in text.lines().filter(|l| {
        !l.starts_with('#') && (l.starts_with("primitive_") || l.starts_with("llm_") || l.starts_with("tta_guest_"))
    }) {
        assert!(line.contains("tenant=\""), "no tenant label: {line}");
    }
    promtool_check(&text);
}

#[tokio::test]
async fn a_guest_flooding_logs_spans_and_metric_names_is_capped_and_the_next_call_is_fine() {
    let mut t = telemetry_config();
    t.metrics.guest_series_per_primitive = 20;
    let host = host(Telemetry::builder(t), &[fixture("telemetry-flood"), plugin("echo")]).await;
    let input = r#"{"logs":5000,"spans":1000,"metrics":5000,"stdout_lines":5000}"#;
    let outcome = crate::call(&host, "telemetry-flood", input).await;
    assert!(outcome.output.is_ok(), "{:?}", outcome.output);
    let report = &outcome.report;
    let limits = &host.config().limits;
    assert_eq!(report.logs.len(), limits.max_log_records);
    assert_eq!(report.spans.len(), limits.max_spans);
    assert!(report.spans.iter().all(|s| s.attributes.len() <= limits.max_span_items));
    assert!(report.dropped.logs > 0 && report.dropped.spans > 0 && report.dropped.span_items > 0);
    assert!(report.dropped.metrics > 0 && report.dropped.stdio_bytes > 0);

    let text = host.telemetry().metrics().render();
    let guest_series = text.lines().filter(|l| l.starts_with("tta_guest_flood_metric")).count();
    assert_eq!(guest_series, 20, "guest series are capped per primitive");
    let flood = |kind: &str| {
        sample(
            &text,
            "primitive_telemetry_dropped_total",
            &[("primitive_name", "telemetry-flood"), ("kind", kind)],
        )
        .unwrap_or(0.0)
    };
    for kind in ["logs", "spans", "span_items", "metrics", "metric_series", "stdio_bytes"] {
        assert!(flood(kind) > 0.0, "{kind} drops are counted");
    }
    // Nothing carries over: the next call of another primitive is clean and cheap.
    let next = crate::call(&host, "echo", "after the flood").await;
    assert_eq!(next.output.as_deref().ok(), Some(&b"after the flood"[..]));
    assert!(next.report.logs.is_empty() && next.report.spans.is_empty());
    assert_eq!(next.report.dropped, tta_host::report::Dropped::default());
}

#[tokio::test]
async fn tenants_past_the_cap_share_one_series() {
    let mut t = telemetry_config();
    t.metrics.tenants = 2;
    let host = host(Telemetry::builder(t), &[plugin("echo")]).await;
    for tenant in ["t1", "t2", "t3", "t4"] {
        let options = CallOptions {
            tenant: Some(tenant.into()),
            ..CallOptions::default()
        };
        assert!(host.call("echo", b"x", options).await.output.is_ok());
    }
    let text = host.telemetry().metrics().render();
    let count = |tenant: &str| {
        sample(
            &text,
            "primitive_executions_total",
            &[("primitive_name", "echo"), ("tenant", tenant), ("status", "success")],
        )
    };
    // `default` took one of the two slots when the registry started.
    assert_eq!(count("t1"), Some(1.0));
    assert_eq!(count("other"), Some(3.0));
    assert_eq!(count("t3"), None);
}

pub fn otlp_config(endpoint: String, protocol: OtlpProtocol) -> ObservabilityConfig {
    let mut t = telemetry_config();
    t.otlp.endpoint = Some(endpoint);
    t.otlp.protocol = protocol;
    t.traces.exporters = vec![Exporter::Otlp];
    t.logs.exporters = vec![Exporter::Otlp];
    t.metrics.exporters = vec![Exporter::Otlp];
    t.metrics.export_interval_ms = 100;
    t.service_name = "tta-test".into();
    t
}

async fn check_otlp_chain(protocol: OtlpProtocol) {
    let (addr, received) = match protocol {
        OtlpProtocol::Grpc => otlp_receiver::grpc().await,
        OtlpProtocol::HttpProtobuf => otlp_receiver::http().await,
    };
    let t = otlp_config(format!("http://{addr}"), protocol);
    let host = host(Telemetry::builder(t), &[fixture("context-probe"), fixture("trap")]).await;
    let options = CallOptions {
        correlation_id: Some("req-otlp".into()),
        ..CallOptions::default()
    };
    let outcome = host
        .call(
            "context-probe",
            br#"{"then":["context-probe","context-probe"]}"#,
            options,
        )
        .await;
    let output: serde_json::Value = serde_json::from_slice(outcome.output.as_ref().expect("runs")).expect("JSON");
    assert!(crate::call(&host, "trap", "").await.output.is_err());
    assert!(host.telemetry().flush(FLUSH));

    let spans = received.spans();
    assert!(spans.iter().all(|(service, _)| service == "tta-test"));
    let spans: Vec<_> = spans.into_iter().map(|(_, s)| s).collect();
    let calls: Vec<_> = spans.iter().filter(|s| s.name == "context-probe.execute").collect();
    assert_eq!(
        calls.len(),
        3,
        "three levels; metrics:\n{}",
        host.telemetry()
            .metrics()
            .render()
            .lines()
            .filter(|l| l.starts_with("telemetry_dropped"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let trace = id128(&calls[0].trace_id);
    assert_eq!(trace, outcome.report.ids.trace_id);
    assert!(calls.iter().all(|s| id128(&s.trace_id) == trace), "one trace");
    // Each level's traceparent names its span; each span's parent is a span of the same trace.
    let mut level = &output;
    while !level.is_null() {
        let span_id = tta_host::trace_context::parse_traceparent(level["traceparent"].as_str().expect("tp"))
            .expect("valid")
            .span_id;
        let span = calls
            .iter()
            .find(|s| id64(&s.span_id) == span_id)
            .expect("span the guest saw");
        assert_eq!(
            attr(&span.attributes, "correlation_id").map(|v| text(&v)).as_deref(),
            Some("req-otlp")
        );
        assert_eq!(
            attr(&span.attributes, "primitive.type").map(|v| text(&v)).as_deref(),
            Some("wasm")
        );
        let fuel = attr(&span.attributes, "wasm.fuel_consumed")
            .map(|v| text(&v))
            .expect("fuel");
        assert!(fuel.parse::<u64>().expect("int") > 0);
        if !span.parent_span_id.is_empty() {
            let parent = id64(&span.parent_span_id);
            assert!(
                spans.iter().any(|s| id64(&s.span_id) == parent),
                "parent {parent:016x} exported"
            );
        }
        level = &level["inner"];
    }
    let trap = spans
        .iter()
        .find(|s| s.name == "trap.execute")
        .expect("failed call exported");
    let status = trap.status.as_ref().expect("status");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert_eq!(
        attr(&trap.attributes, "error.type").map(|v| text(&v)).as_deref(),
        Some("trap")
    );
    assert!(trap.events.iter().any(|e| e.name == "exception"));

    // What the host counts as exported is what the receiver got, and nothing was dropped.
    let rendered = host.telemetry().metrics().render();
    let counted = |name: &str, signal: &str| {
        sample(&rendered, name, &[("signal", signal), ("tenant", "default")]).unwrap_or(-1.0)
    };
    let logs = received.logs();
    assert_eq!(
        counted("telemetry_exported_total", "spans"),
        spans.len() as f64,
        "{rendered}"
    );
    assert_eq!(
        counted("telemetry_exported_total", "logs"),
        logs.len() as f64,
        "{rendered}"
    );
    assert_eq!(counted("telemetry_dropped_total", "spans"), 0.0, "{rendered}");
    assert_eq!(counted("telemetry_dropped_total", "logs"), 0.0, "{rendered}");
    let probed = logs
        .iter()
        .find(|l| l.body.as_ref().map(text).as_deref() == Some("probed"))
        .expect("guest log exported");
    assert_eq!(id128(&probed.trace_id), trace);
    assert!(
        calls.iter().any(|s| s.span_id == probed.span_id),
        "log carries its span id"
    );

    host.telemetry().shutdown().expect("clean shutdown");
    let metrics = received.metrics();
    let executions = metrics
        .iter()
        .rev()
        .find(|m| m.name == "primitive_executions")
        .expect("metrics pushed over OTLP");
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &executions.data else {
        panic!("primitive_executions is a sum");
    };
    assert!(sum.is_monotonic);
    let probe_success: f64 = sum
        .data_points
        .iter()
        .filter(|p| {
            attr(&p.attributes, "primitive_name").map(|v| text(&v)).as_deref() == Some("context-probe")
                && attr(&p.attributes, "status").map(|v| text(&v)).as_deref() == Some("success")
        })
        .map(|p| match p.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v)) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(probe_success, 3.0);
}

// The receiver runs on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_logs_and_metrics_reach_a_real_otlp_grpc_receiver() {
    check_otlp_chain(OtlpProtocol::Grpc).await;
}

// The receiver runs on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_logs_and_metrics_reach_a_real_otlp_http_receiver() {
    check_otlp_chain(OtlpProtocol::HttpProtobuf).await;
}

async fn check_backend_down(endpoint: std::net::SocketAddr, protocol: OtlpProtocol) {
    let mut t = otlp_config(format!("http://{endpoint}"), protocol);
    t.otlp.timeout_ms = 200;
    t.export.queue_size = 4;
    t.export.shutdown_timeout_ms = 500;
    let host = host(Telemetry::builder(t), &[plugin("echo")]).await;
    let mut spans = 0;
    let mut waiting_most = 0.0_f64;
    for i in 0..50 {
        let input = format!("call {i}");
        let outcome = crate::call(&host, "echo", &input).await;
        assert_eq!(outcome.output.as_deref().ok(), Some(input.as_bytes()), "calls go on");
        spans += tta_host::telemetry::spans::span_count(&outcome.report);
        let text = host.telemetry().metrics().render();
        waiting_most = waiting_most.max(sample(&text, "telemetry_export_queue_size", &[]).expect("queue gauge"));
    }
    host.telemetry().flush(FLUSH);
    let text = host.telemetry().metrics().render();
    let counted =
        |name: &str, signal: &str| sample(&text, name, &[("signal", signal), ("tenant", "default")]).unwrap_or(0.0);
    // Memory stays bounded: what waits for the collector never passes the queue's capacity.
    assert_eq!(sample(&text, "telemetry_export_queue_capacity", &[]), Some(4.0));
    assert!(waiting_most <= 4.0, "{waiting_most} reports waited in a queue of 4");
    // Every span is accounted for: none was taken, all were counted as dropped.
    assert_eq!(counted("telemetry_exported_total", "spans"), 0.0, "{text}");
    assert_eq!(
        counted("telemetry_dropped_total", "spans"),
        spans as f64,
        "every span of the 50 calls counted as dropped:\n{text}"
    );
    assert!(counted("telemetry_dropped_total", "logs") > 0.0, "log drops counted");
    assert_eq!(
        sample(
            &text,
            "primitive_executions_total",
            &[("primitive_name", "echo"), ("status", "success")]
        ),
        Some(50.0)
    );
    // Shutdown is bounded: it returns (flushed or timed out), it does not hang.
    let telemetry = host.telemetry().clone();
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(telemetry.shutdown().is_ok());
    });
    assert!(wait.recv_timeout(FLUSH).is_ok(), "shutdown returned");
}

#[tokio::test]
async fn a_collector_that_is_down_costs_calls_nothing_and_drops_are_counted() {
    check_backend_down(otlp_receiver::closed_port(), OtlpProtocol::Grpc).await;
}

// The receiver runs on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_calls_nothing_and_drops_are_counted() {
    check_backend_down(otlp_receiver::silent().await, OtlpProtocol::Grpc).await;
    check_backend_down(otlp_receiver::silent().await, OtlpProtocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_concurrent_scrapes_hold_neither_calls_nor_descriptors() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tta_host::telemetry::{MAX_SCRAPE_CONNECTIONS, SCRAPE_HEADER_TIMEOUT};
    let mut t = telemetry_config();
    t.metrics.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let host = host(Telemetry::builder(t), &[plugin("echo")]).await;
    let addr = host.telemetry().metrics_addr().expect("a metrics listener");
    // Scrapers that send half a request and stall, as many as the endpoint serves at once.
    let mut stalled = Vec::new();
    for _ in 0..MAX_SCRAPE_CONNECTIONS {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"GET /metr").await.expect("half a request");
        stalled.push(stream);
    }
    // One more is answered 503 and closed at once instead of holding a descriptor.
    let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut refused = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), extra.read_to_end(&mut refused)).await;
    assert!(closed.is_ok(), "a connection past the cap was held");
    assert!(
        refused.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    let mut byte = [0u8; 1];
    // Calls do not notice.
    for i in 0..20 {
        let input = format!("call {i}");
        let outcome = crate::call(&host, "echo", &input).await;
        assert_eq!(outcome.output.as_deref().ok(), Some(input.as_bytes()));
    }
    // The stalled ones are closed after the header timeout.
    for stream in &mut stalled {
        let closed = tokio::time::timeout(SCRAPE_HEADER_TIMEOUT * 6, stream.read(&mut byte)).await;
        assert!(closed.is_ok(), "a stalled scraper was never closed");
    }
    drop(stalled);
    // Then 8 scrapers at once all get the same, complete answer.
    let scrapes: Vec<_> = (0..8).map(|_| tokio::spawn(scrape(addr))).collect();
    for scrape in scrapes {
        let (head, body) = scrape.await.expect("a scraper");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            sample(
                &body,
                "primitive_executions_total",
                &[("primitive_name", "echo"), ("status", "success")]
            ),
            Some(20.0)
        );
    }
}

// The receivers run on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_answering_slower_than_the_export_timeout_costs_calls_nothing_and_drops_are_counted() {
    let slow = otlp_receiver::Behaviour::Slow(Duration::from_secs(2));
    check_backend_down(otlp_receiver::grpc_behaving(slow).await.0, OtlpProtocol::Grpc).await;
    check_backend_down(otlp_receiver::http_behaving(slow).await.0, OtlpProtocol::HttpProtobuf).await;
}

// The receivers run on the test's runtime while `flush` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_answering_errors_costs_calls_nothing_and_drops_are_counted() {
    let failing = otlp_receiver::Behaviour::Failing;
    let (grpc, received) = otlp_receiver::grpc_behaving(failing).await;
    check_backend_down(grpc, OtlpProtocol::Grpc).await;
    assert!(received.spans().is_empty(), "the failing receiver kept nothing");
    check_backend_down(
        otlp_receiver::http_behaving(failing).await.0,
        OtlpProtocol::HttpProtobuf,
    )
    .await;
}

#[tokio::test]
async fn file_exporters_write_json_lines_in_the_tta_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = telemetry_config();
    t.traces.exporters = vec![Exporter::File];
    t.traces.file = Some(dir.path().join("traces.jsonl"));
    t.logs.exporters = vec![Exporter::File];
    t.logs.file = Some(dir.path().join("logs.jsonl"));
    let host = host(Telemetry::builder(t), &[plugin("word-count")]).await;
    let options = CallOptions {
        correlation_id: Some("req-file".into()),
        ..CallOptions::default()
    };
    let outcome = host.call("word-count", br#"{"text":"x y"}"#, options).await;
    assert!(outcome.output.is_ok());
    host.telemetry().shutdown().expect("shutdown flushes");
    let logs = std::fs::read_to_string(dir.path().join("logs.jsonl")).expect("log file");
    let records: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let done = records
        .iter()
        .find(|r| r["event"] == "primitive_executed")
        .expect("call record");
    crate::assert_tta_log_record(done);
    assert_eq!(done["correlation_id"], "req-file");
    assert_eq!(done["trace_id"], format!("{:032x}", outcome.report.ids.trace_id));
    assert_eq!(done["status"], "success");
    // The TTA.dev keys lead, in their order.
    let line = logs.lines().find(|l| l.contains("primitive_executed")).expect("line");
    let positions: Vec<usize> = [
        "timestamp",
        "level",
        "event",
        "correlation_id",
        "trace_id",
        "span_id",
        "service",
    ]
    .iter()
    .map(|k| line.find(&format!("\"{k}\":")).expect("key"))
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
    assert!(
        records.iter().any(|r| r["event"] == "counted words" && r["words"] == 2),
        "{logs}"
    );
    let traces = std::fs::read_to_string(dir.path().join("traces.jsonl")).expect("trace file");
    let spans: Vec<serde_json::Value> = traces
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "word-count.execute" && s["attributes"]["primitive.type"] == "wasm")
    );
    assert!(spans.iter().any(|s| s["name"] == "word-count.tokenize"));
}

#[tokio::test]
async fn a_guest_using_the_opentelemetry_sdk_over_wasi_otel_reports_under_the_call_span() {
    let (spans, builder) = in_memory();
    let host = host(builder, &[fixture("otel-sdk")]).await;
    let options = CallOptions {
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tracestate: Some("vendor=abc".into()),
        ..CallOptions::default()
    };
    let outcome = host.call("otel-sdk", b"{}", options).await;
    let output: serde_json::Value = serde_json::from_slice(outcome.output.as_ref().expect("ok")).expect("JSON");
    let report = &outcome.report;
    assert_eq!(
        output["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "outer-span-context is the caller's trace"
    );
    assert_eq!(
        output["span_id"],
        format!("{:016x}", report.ids.span_id),
        "and the call's span"
    );

    let spans = finished(&host, &spans);
    let call = one(&spans, "otel-sdk.execute");
    let handle = one(&spans, "otel.handle");
    let step = one(&spans, "otel.step");
    for span in [handle, step] {
        assert_eq!(span.span_context.trace_id(), call.span_context.trace_id(), "one trace");
    }
    assert_eq!(
        handle.parent_span_id,
        call.span_context.span_id(),
        "the SDK's root span is a child of the call"
    );
    assert_eq!(
        step.parent_span_id,
        handle.span_context.span_id(),
        "its child ended first and still found its parent"
    );
    assert_eq!(int_attribute(handle, "items"), 3);
    assert_eq!(str_attribute(handle, "mode"), "batch");
    assert!(matches!(step.status, Status::Error { ref description } if description == "step failed softly"));
    assert_eq!(step.events.events[0].name, "checkpoint");
    assert!(step.end_time >= step.start_time && handle.end_time >= step.end_time);

    let log = report
        .logs
        .iter()
        .find(|l| l.message == "cache miss")
        .expect("the SDK's log record");
    assert_eq!(log.level, tta_host::bindings::Level::Warn);
    assert_eq!(
        log.span_id,
        u64::from_be_bytes(handle.span_context.span_id().to_bytes())
    );
    assert!(
        log.fields
            .contains(&("key".to_owned(), tta_host::bindings::Value::Str("user:42".into())))
    );

    let fuel = |span: &SpanData| int_attribute(span, "wasm.fuel_consumed");
    assert!(
        fuel(handle) > fuel(step) && fuel(step) > 0,
        "the SDK's spans carry the fuel burned while they were open, the parent's holding its child's"
    );
    assert_eq!(
        int_attribute(step, "wasm.fuel_self"),
        fuel(step),
        "a leaf's fuel is all its own"
    );
    assert!(fuel(call) > fuel(handle));

    // A second call: counters and up-down counters add, the gauge keeps its last reading.
    let second = host.call("otel-sdk", b"{}", CallOptions::default()).await;
    assert!(second.output.is_ok());
    let exposition = host.telemetry().metrics().render();
    crate::telemetry::promtool_check(&exposition);
    let labels = [("primitive_name", "otel-sdk"), ("route", "/a")];
    assert_eq!(
        sample(&exposition, "tta_guest_requests_total", &labels),
        Some(4.0),
        "a monotonic sum is a counter; an export repeated in a call replaces the earlier (2 a call)"
    );
    let labels = [("primitive_name", "otel-sdk")];
    let bucket = |name: &str, le: &str| {
        sample(
            &exposition,
            &format!("{name}_bucket"),
            &[("primitive_name", "otel-sdk"), ("le", le)],
        )
    };
    assert_eq!(
        [
            bucket("tta_guest_latency", "5"),
            bucket("tta_guest_latency", "10"),
            bucket("tta_guest_latency", "25")
        ],
        [Some(0.0), Some(2.0), Some(4.0)],
        "9 and 15 stay in their own buckets (not both at the mean's)"
    );
    assert_eq!(sample(&exposition, "tta_guest_latency_count", &labels), Some(4.0));
    assert_eq!(sample(&exposition, "tta_guest_latency_sum", &labels), Some(48.0));
    assert_eq!(
        sample(&exposition, "tta_guest_queue_depth", &labels),
        Some(7.0),
        "a gauge is its last reading"
    );
    assert!(exposition.contains("# TYPE tta_guest_queue_depth gauge"));
    assert_eq!(
        sample(&exposition, "tta_guest_in_use", &labels),
        Some(8.0),
        "an up-down counter adds"
    );
    assert!(exposition.contains("# TYPE tta_guest_in_use gauge"));
    assert_eq!(
        [
            bucket("tta_guest_payload_bytes", "0"),
            bucket("tta_guest_payload_bytes", "4"),
            bucket("tta_guest_payload_bytes", "8")
        ],
        [Some(2.0), Some(6.0), Some(8.0)],
        "an exponential histogram's buckets become explicit bounds"
    );
    assert_eq!(sample(&exposition, "tta_guest_payload_bytes_sum", &labels), Some(34.0));
    assert_eq!(report.dropped.metrics, 0, "every kind wasi:otel carries is kept");
}
