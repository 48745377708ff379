//! Guests in Python, JavaScript and C, built from source in `plugins/`, held to the same
//! contract as the Rust guests: the same output, typed errors, spans, logs and metrics. The
//! SDK probes of `tests/fixtures/` hold the Python and JavaScript SDKs to the same answers
//! on everything else they offer.

use crate::telemetry::sample;
use crate::{config, host_with, plugin};
use tta_host::bindings::{ErrorKind, Level, Value};
use tta_host::cache::Origin;
use tta_host::guest_config::GuestConfig;
use tta_host::report::{CallReport, LogSource, MetricKind};
use tta_host::{CallError, CallOptions, Host};

/// The three twins, with the language the load table should name.
const GUESTS: [(&str, &str); 3] = [
    ("slugify-py", "Python"),
    ("slugify-js", "JavaScript"),
    ("slugify-c", "C"),
];

async fn all_three() -> Host {
    let paths: Vec<_> = GUESTS.iter().map(|(name, _)| plugin(name)).collect();
    host_with(config(), &paths).await
}

fn the_slugify_span(report: &CallReport) -> &tta_host::report::GuestSpanRecord {
    assert_eq!(report.spans.len(), 1, "{:?}", report.spans);
    let span = &report.spans[0];
    assert_eq!(span.name, "slugify");
    assert_eq!(span.parent_span_id, report.ids.span_id, "a child of the call span");
    assert!(span.end.is_some(), "ended");
    span
}

#[tokio::test]
async fn each_language_slugifies_with_the_same_span_event_log_and_metric() {
    let host = all_three().await;
    for (name, _) in GUESTS {
        let outcome = host
            .call(name, br#"{"text": "Hello, World! 2x"}"#, CallOptions::default())
            .await;
        let output = outcome.output.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            std::str::from_utf8(output).expect("UTF-8"),
            r#"{"slug":"hello-world-2x","words":3}"#,
            "{name}"
        );
        let report = &outcome.report;
        let span = the_slugify_span(report);
        assert_eq!(
            span.attributes,
            [
                ("text.bytes".to_owned(), Value::Int(16)),
                ("slug.words".to_owned(), Value::Int(3))
            ],
            "{name}"
        );
        assert_eq!(span.events.len(), 1, "{name}");
        assert_eq!(span.events[0].name, "slugified");
        assert_eq!(span.error, None);

        assert_eq!(report.metrics.len(), 1, "{name}: {:?}", report.metrics);
        assert_eq!(report.metrics[0].kind, MetricKind::Counter);
        assert_eq!(report.metrics[0].name, "slugs_made");
        assert_eq!(report.metrics[0].value, 1.0);

        let logs: Vec<_> = report.logs.iter().filter(|l| l.source == LogSource::Api).collect();
        assert_eq!(logs.len(), 1, "{name}: {logs:?}");
        assert_eq!((logs[0].level, logs[0].message.as_str()), (Level::Info, "slugified"));
        assert_eq!(logs[0].fields, [("words".to_owned(), Value::Int(3))]);
        assert_eq!(
            logs[0].span_id, report.ids.span_id,
            "{name}: logged after the span ended"
        );
    }
    let exposition = host.telemetry().metrics().render();
    for (name, _) in GUESTS {
        let labels = [("primitive_name", name), ("tenant", "default")];
        assert_eq!(
            sample(&exposition, "tta_guest_slugs_made_total", &labels),
            Some(1.0),
            "{name}"
        );
        let executed = [("primitive_name", name), ("status", "success")];
        assert_eq!(
            sample(&exposition, "primitive_executions_total", &executed),
            Some(1.0),
            "{name}"
        );
    }
}

#[tokio::test]
async fn each_language_decodes_json_escapes_and_unicode_alike() {
    let host = all_three().await;
    let input = r#"{"other": [1, {"text": 2}], "text": "\u00dcn\u00efcode \u2013 \"quotes\"\t\ud83d\ude00 \/ 42", "n": -1.5e3}"#;
    for (name, _) in GUESTS {
        let outcome = host.call(name, input.as_bytes(), CallOptions::default()).await;
        let output = outcome.output.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(output.as_slice(), br#"{"slug":"n-code-quotes-42","words":4}"#, "{name}");
        let text = "Ünïcode – \"quotes\"\t😀 / 42";
        let span = the_slugify_span(&outcome.report);
        assert_eq!(
            span.attributes[0],
            ("text.bytes".to_owned(), Value::Int(text.len() as i64)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn each_language_rejects_bad_input_with_a_typed_error_and_a_warning() {
    let host = all_three().await;
    let cases: [(&[u8], &str); 6] = [
        (b"not json", "input is not JSON"),
        (b"{\"text\": \"open", "input is not JSON"),
        (b"[1, 2]", "has no string field \"text\""),
        (br#"{"txt": "hello"}"#, "has no string field \"text\""),
        (br#"{"text": 42}"#, "has no string field \"text\""),
        (b"{\"text\": \"\xff\xfe\"}", "input is not"),
    ];
    for (name, _) in GUESTS {
        for (input, expected) in cases {
            let outcome = host.call(name, input, CallOptions::default()).await;
            let Err(CallError::Guest(e)) = &outcome.output else {
                panic!(
                    "{name} on {:?}: expected a guest error, got {:?}",
                    String::from_utf8_lossy(input),
                    outcome.output
                );
            };
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{name}");
            assert!(!e.retryable);
            assert!(
                e.message.contains(expected),
                "{name}: {:?} lacks {expected:?}",
                e.message
            );
            assert!(
                e.message.contains(r#"e.g. {"text": "Hello, World!"}"#),
                "{name}: says how to fix it"
            );
            assert_eq!(outcome.report.status(), "error", "{name}");
            let warning = outcome
                .report
                .logs
                .iter()
                .find(|l| l.source == LogSource::Api)
                .unwrap_or_else(|| panic!("{name}: a warning"));
            assert_eq!(
                (warning.level, warning.message.as_str()),
                (Level::Warn, "rejected input")
            );
        }
        let outcome = host.call(name, br#"{"text": "?!"}"#, CallOptions::default()).await;
        let Err(CallError::Guest(e)) = &outcome.output else {
            panic!("{name}: expected a guest error");
        };
        assert!(
            e.message.contains("no ASCII letters or digits"),
            "{name}: {}",
            e.message
        );
        let span = the_slugify_span(&outcome.report);
        assert_eq!(span.error.as_deref(), Some("no letters or digits"), "{name}");
    }
}

#[tokio::test]
async fn each_language_exports_its_span_as_a_child_of_the_call_span() {
    let spans = opentelemetry_sdk::trace::InMemorySpanExporterBuilder::new().build();
    let telemetry = tta_host::telemetry::Telemetry::builder(crate::telemetry::telemetry_config())
        .with_span_exporter("memory", spans.clone())
        .build()
        .expect("telemetry");
    let host = Host::with_telemetry(config(), telemetry).expect("host");
    for (name, _) in GUESTS {
        host.load(&plugin(name)).await.expect("loads");
        let outcome = host.call(name, br#"{"text": "a b"}"#, CallOptions::default()).await;
        assert!(outcome.output.is_ok(), "{name}");
    }
    assert!(host.telemetry().flush(std::time::Duration::from_secs(30)));
    let exported = spans.get_finished_spans().expect("spans");
    for (name, _) in GUESTS {
        let call = exported
            .iter()
            .find(|s| s.name == format!("{name}.execute"))
            .unwrap_or_else(|| panic!("{name}.execute exported"));
        let child = exported
            .iter()
            .find(|s| s.name == "slugify" && s.parent_span_id == call.span_context.span_id())
            .unwrap_or_else(|| panic!("{name}: slugify under its call"));
        assert_eq!(child.span_context.trace_id(), call.span_context.trace_id());
        assert_eq!(child.events.events[0].name, "slugified");
    }
}

#[tokio::test]
async fn the_source_language_comes_from_the_component_and_a_second_load_is_cached() {
    let host = all_three().await;
    for (name, language) in GUESTS {
        let loaded = host.load(&plugin(name)).await.expect("loads again");
        assert_eq!(loaded.language.as_deref(), Some(language), "{name}");
        assert_eq!(loaded.origin, Origin::Cached, "{name}: the shared test cache has it");
    }
    let rust = host.load(&plugin("echo")).await.expect("echo");
    assert_eq!(rust.language.as_deref(), Some("Rust"));
}

#[tokio::test]
async fn the_python_and_javascript_sdks_describe_their_input_and_output_from_the_types() {
    let host = all_three().await;
    let registry = host.registry();
    for name in ["slugify-py", "slugify-js"] {
        let loaded = registry.get(name).unwrap_or_else(|| panic!("{name} loaded"));
        let m = &loaded.metadata;
        assert_eq!(m.contract.as_str(), "0.2.0", "{name}");
        assert!(m.title.as_deref().is_some_and(|t| t.starts_with("Slugify")), "{name}");
        assert_eq!(
            (m.hints.read_only, m.hints.idempotent, m.hints.open_world),
            (Some(true), Some(true), Some(false))
        );
        let input: serde_json::Value =
            serde_json::from_str(m.input_schema.as_deref().expect("an input schema")).expect("JSON");
        assert_eq!(input["type"], "object", "{name}: {input}");
        assert_eq!(input["required"], serde_json::json!(["text"]), "{name}: {input}");
        assert_eq!(input["properties"]["text"]["type"], "string", "{name}: {input}");
        assert!(
            input["properties"]["text"]["description"].is_string(),
            "{name}: {input}"
        );
        let output: serde_json::Value =
            serde_json::from_str(m.output_schema.as_deref().expect("an output schema")).expect("JSON");
        assert_eq!(
            output["required"],
            serde_json::json!(["slug", "words"]),
            "{name}: {output}"
        );
        assert_eq!(output["properties"]["words"]["type"], "integer", "{name}: {output}");
        // The host's own check (`validate_input`) agrees with what the SDK accepts.
        assert!(loaded.check_input(br#"{"text": "a b"}"#).is_ok(), "{name}");
        assert!(loaded.check_input(br#"{"text": 42}"#).is_err(), "{name}");
    }
    let c = registry.get("slugify-c").expect("slugify-c");
    assert_eq!(c.metadata.contract.as_str(), "0.1.0", "the C SDK stays on 0.1.0");
}

/// The SDK probes, twins in Python and JavaScript (`tests/fixtures/sdk-probe-*`).
const PROBES: [&str; 2] = ["sdk-probe-py", "sdk-probe-js"];

async fn probes() -> Host {
    let mut paths: Vec<_> = PROBES.iter().map(|name| crate::fixture(name)).collect();
    paths.push(plugin("word-count"));
    host_with(config(), &paths).await
}

async fn probe(host: &Host, name: &str, input: serde_json::Value, options: CallOptions) -> tta_host::CallOutcome {
    host.call(name, input.to_string().as_bytes(), options).await
}

fn answer(name: &str, outcome: &tta_host::CallOutcome) -> serde_json::Value {
    let output = outcome.output.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_slice(output).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn guest_error<'a>(name: &str, outcome: &'a tta_host::CallOutcome) -> &'a tta_host::GuestError {
    match &outcome.output {
        Err(CallError::Guest(e)) => e,
        other => panic!("{name}: expected a guest error, got {other:?}"),
    }
}

/// Beyond slugify, the two SDKs answer alike: nested typed input and where it is wrong, a
/// span and a histogram, `invoke` and its callee's error, config with and without values,
/// the call's context, typed errors with their retryability, and a crash that traps with
/// the guest's own words in the call's logs.
#[tokio::test]
async fn the_python_and_javascript_sdks_answer_alike_beyond_slugify() {
    use serde_json::json;
    let host = probes().await;
    for name in PROBES {
        let order = json!({"action": "order", "items": [{"name": "tea", "qty": 2}, {"name": "cake", "qty": 3}]});
        let outcome = probe(&host, name, order, CallOptions::default()).await;
        assert_eq!(
            answer(name, &outcome),
            json!({"action": "order", "value": {"total": 5, "names": ["tea", "cake"]}})
        );
        let report = &outcome.report;
        assert_eq!(report.spans.len(), 1, "{name}: {:?}", report.spans);
        assert_eq!(report.spans[0].name, "order");
        assert_eq!(
            report.spans[0].attributes,
            [
                ("items".to_owned(), Value::Int(2)),
                ("order.total".to_owned(), Value::Int(5))
            ],
            "{name}"
        );
        assert_eq!(report.metrics.len(), 1, "{name}: {:?}", report.metrics);
        let metric = &report.metrics[0];
        assert_eq!(
            (metric.kind, metric.name.as_str(), metric.value),
            (MetricKind::Histogram, "order_size", 5.0),
            "{name}"
        );
        assert_eq!(metric.attributes, [("unit".to_owned(), Value::Str("items".to_owned()))]);
        let logs: Vec<_> = report.logs.iter().filter(|l| l.source == LogSource::Api).collect();
        assert_eq!(logs.len(), 1, "{name}: {logs:?}");
        assert_eq!(logs[0].fields, [("action".to_owned(), Value::Str("order".to_owned()))]);

        for (input, expected) in [
            (
                json!({"action": "order", "items": [{"name": "tea", "qty": 1}, {"name": "cake", "qty": "3"}]}),
                r#"input has no integer field "items[1].qty""#,
            ),
            (
                json!({"action": "order", "items": [{"qty": 1}]}),
                r#"input has no string field "items[0].name""#,
            ),
            (
                json!({"action": "order", "items": {"name": "tea"}}),
                r#"input has no array field "items""#,
            ),
            (
                json!({"action": "dance"}),
                r#"input field "action" is not one of "order", "invoke""#,
            ),
            (json!({"items": []}), r#"input has no valid field "action""#),
        ] {
            let outcome = probe(&host, name, input.clone(), CallOptions::default()).await;
            let e = guest_error(name, &outcome);
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{name} on {input}");
            assert!(e.message.contains(expected), "{name} on {input}: {}", e.message);
        }

        let invoked = probe(
            &host,
            name,
            json!({"action": "invoke", "text": "one two three"}),
            CallOptions::default(),
        )
        .await;
        assert_eq!(
            answer(name, &invoked)["value"],
            json!({"words": 3, "lines": 1, "chars": 13}),
            "{name}"
        );
        assert_eq!(invoked.report.nested.len(), 1, "{name}: one nested call");
        assert_eq!(invoked.report.nested[0].primitive, "word-count");
        let missing = probe(&host, name, json!({"action": "invoke-missing"}), CallOptions::default()).await;
        let e = guest_error(name, &missing);
        assert_eq!(e.kind, ErrorKind::NotFound, "{name}: the callee's error, as ours");
        assert!(e.message.contains("no-such-primitive"), "{name}: {}", e.message);

        let values = GuestConfig::from_pairs(&[("greeting".to_owned(), "hi".to_owned())], &[]).expect("config");
        let configured = CallOptions {
            config: Some(std::sync::Arc::new(values)),
            ..CallOptions::default()
        };
        let outcome = probe(&host, name, json!({"action": "config"}), configured).await;
        assert_eq!(
            answer(name, &outcome)["value"],
            json!({"greeting": "hi", "missing": "fallback", "keys": ["greeting"]}),
            "{name}"
        );
        let outcome = probe(&host, name, json!({"action": "config"}), CallOptions::default()).await;
        assert_eq!(
            answer(name, &outcome)["value"],
            json!({"greeting": "none", "missing": "fallback", "keys": []}),
            "{name}"
        );

        let context = CallOptions {
            correlation_id: Some("sdk-probe-1".to_owned()),
            tenant: Some("acme".to_owned()),
            data: vec![("step".to_owned(), "two".to_owned())],
            ..CallOptions::default()
        };
        let outcome = probe(&host, name, json!({"action": "context"}), context).await;
        assert_eq!(
            answer(name, &outcome)["value"],
            json!({"tenant": "acme", "correlation_id": "sdk-probe-1", "step": "two"}),
            "{name}"
        );

        for (action, kind, retryable, message) in [
            ("not-found", ErrorKind::NotFound, false, r#"no order named "x""#),
            (
                "unavailable",
                ErrorKind::Unavailable,
                true,
                "the order service is down; try again",
            ),
        ] {
            let outcome = probe(
                &host,
                name,
                json!({"action": action, "text": "x"}),
                CallOptions::default(),
            )
            .await;
            let e = guest_error(name, &outcome);
            assert_eq!(
                (e.kind, e.retryable, e.message.as_str()),
                (kind, retryable, message),
                "{name}"
            );
            assert_eq!(outcome.report.status(), "error");
        }

        let crashed = probe(&host, name, json!({"action": "crash"}), CallOptions::default()).await;
        assert!(
            matches!(crashed.output, Err(CallError::Trap { .. })),
            "{name}: an exception that is not a primitive error traps: {:?}",
            crashed.output
        );
        assert!(
            crashed
                .report
                .logs
                .iter()
                .any(|l| l.source == LogSource::Stderr && l.message.contains("sdk-probe crashed on purpose")),
            "{name}: the exception's message is in the call's logs: {:?}",
            crashed.report.logs
        );
    }
}

/// The probes' schemas come from a nested dataclass (Python) and nested schema objects
/// (JavaScript) and say the same: the required fields, the enum, the nested item.
#[tokio::test]
async fn the_sdks_derive_the_same_nested_schema() {
    let host = probes().await;
    let registry = host.registry();
    let schemas: Vec<serde_json::Value> = PROBES
        .iter()
        .map(|name| {
            let loaded = registry.get(name).unwrap_or_else(|| panic!("{name} loaded"));
            serde_json::from_str(loaded.metadata.input_schema.as_deref().expect("an input schema")).expect("JSON")
        })
        .collect();
    for (name, schema) in PROBES.iter().zip(&schemas) {
        assert_eq!(schema["required"], serde_json::json!(["action"]), "{name}: {schema}");
        assert_eq!(
            schema["properties"]["action"]["enum"].as_array().map(Vec::len),
            Some(8),
            "{name}: {schema}"
        );
        let item = &schema["properties"]["items"]["items"];
        assert_eq!(item["type"], "object", "{name}: {schema}");
        assert_eq!(item["required"], serde_json::json!(["name", "qty"]), "{name}: {schema}");
        assert_eq!(item["properties"]["qty"]["type"], "integer", "{name}: {schema}");
        assert_eq!(item["properties"]["qty"]["description"], "How many", "{name}: {schema}");
        assert_eq!(item["description"], "One line of an order.", "{name}: {schema}");
        let loaded = registry.get(name).expect("loaded");
        assert!(
            loaded
                .check_input(br#"{"action": "order", "items": [{"name": "a", "qty": 1}]}"#)
                .is_ok()
        );
        assert!(
            loaded
                .check_input(br#"{"action": "order", "items": [{"name": "a", "qty": "1"}]}"#)
                .is_err(),
            "{name}: the host's check agrees with the SDK's"
        );
    }
    assert_eq!(
        schemas[0]["properties"], schemas[1]["properties"],
        "Python and JavaScript describe the same input"
    );
}
