//! Behaviour of real guests: outputs, errors, context, telemetry records, nested calls.

use crate::{call, config, fixture, host_with, json_output, plugin};
use tta_host::bindings::{ErrorKind, Level, Value};
use tta_host::report::{LogSource, MetricKind};
use tta_host::trace_context::{Parent, parse_traceparent};
use tta_host::{CallError, CallOptions};

#[tokio::test]
async fn echo_returns_its_input_bytes() {
    let host = host_with(config(), &[plugin("echo")]).await;
    let input: Vec<u8> = (0..=255u8).collect();
    let outcome = host.call("echo", &input, CallOptions::default()).await;
    assert_eq!(outcome.output.expect("ok"), input);
    assert_eq!(outcome.report.status(), "success");
    assert!(outcome.report.stats.fuel_consumed > 0);
    assert!(outcome.report.stats.memory_peak_bytes >= 64 * 1024);
}

#[tokio::test]
async fn uppercase_transforms_text() {
    let host = host_with(config(), &[plugin("uppercase")]).await;
    let outcome = call(&host, "uppercase", r#"{"text":"grüße, world"}"#).await;
    assert_eq!(json_output(&outcome)["text"], "GRÜSSE, WORLD");
}

#[tokio::test]
async fn json_validate_accepts_a_good_record() {
    let host = host_with(config(), &[plugin("json-validate")]).await;
    let outcome = call(
        &host,
        "json-validate",
        r#"{"name":"Ada","age":36,"email":"ada@example.org"}"#,
    )
    .await;
    assert_eq!(json_output(&outcome)["valid"], true);
}

#[tokio::test]
async fn json_validate_names_every_problem() {
    let host = host_with(config(), &[plugin("json-validate")]).await;
    let outcome = call(&host, "json-validate", r#"{"name":"","age":-3,"extra":1}"#).await;
    let Err(CallError::Guest(e)) = &outcome.output else {
        panic!("expected a guest error, got {:?}", outcome.output);
    };
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(!e.retryable);
    for needle in [
        "`name` must have 1 to 64 characters",
        "`age` must be an integer from 0 to 150, got -3",
        "`extra` is not allowed",
    ] {
        assert!(e.message.contains(needle), "{needle:?} not in {:?}", e.message);
    }
    assert_eq!(
        outcome.report.error.as_ref().map(CallError::error_type),
        Some("invalid_input")
    );
}

#[tokio::test]
async fn malformed_json_is_invalid_input_with_a_position() {
    let host = host_with(config(), &[plugin("uppercase")]).await;
    let outcome = call(&host, "uppercase", r#"{"text": }"#).await;
    let Err(CallError::Guest(e)) = &outcome.output else {
        panic!("expected a guest error, got {:?}", outcome.output);
    };
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("line 1, column"), "{}", e.message);
}

#[tokio::test]
async fn word_count_reports_a_span_an_event_a_metric_and_a_log() {
    let host = host_with(config(), &[plugin("word-count")]).await;
    let outcome = call(&host, "word-count", r#"{"text":"one two three\nfour"}"#).await;
    let out = json_output(&outcome);
    assert_eq!((out["words"].as_u64(), out["lines"].as_u64()), (Some(4), Some(2)));
    let report = &outcome.report;

    assert_eq!(report.spans.len(), 1);
    let span = &report.spans[0];
    assert_eq!(span.name, "word-count.tokenize");
    assert_eq!(span.parent_span_id, report.ids.span_id);
    assert!(span.end.is_some());
    assert_eq!(span.attributes, vec![("words".to_owned(), Value::Int(4))]);
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "tokenized");

    assert_eq!(report.metrics.len(), 1);
    assert_eq!(report.metrics[0].kind, MetricKind::Counter);
    assert_eq!(report.metrics[0].name, "words_counted");
    assert_eq!(report.metrics[0].value, 4.0);

    let log = report
        .logs
        .iter()
        .find(|l| l.source == LogSource::Api)
        .expect("a log record");
    assert_eq!(log.level, Level::Info);
    assert_eq!(log.message, "counted words");
    assert_eq!(
        log.span_id, report.ids.span_id,
        "the span had ended, so the log belongs to the call"
    );
    assert!(log.fields.contains(&("words".to_owned(), Value::Int(4))));
}

#[tokio::test]
async fn orchestrator_invokes_two_primitives_as_children_of_its_call() {
    let host = host_with(
        config(),
        &[plugin("orchestrator"), plugin("uppercase"), plugin("word-count")],
    )
    .await;
    let options = CallOptions {
        correlation_id: Some("req-abc-123".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        ..CallOptions::default()
    };
    let outcome = host
        .call("orchestrator", br#"{"text":"hello big world"}"#, options)
        .await;
    let out = json_output(&outcome);
    assert_eq!(out["upper"]["text"], "HELLO BIG WORLD");
    assert_eq!(out["counts"]["words"], 3);
    assert_eq!(out["correlation_id"], "req-abc-123");

    let report = &outcome.report;
    assert_eq!(report.ids.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(report.ids.parent_span_id, Some(0xb7ad6b7169203331));
    let names: Vec<&str> = report.nested.iter().map(|n| n.primitive.as_str()).collect();
    assert_eq!(names, ["uppercase", "word-count"]);
    let mut nested_fuel = 0;
    for nested in &report.nested {
        assert_eq!(nested.correlation_id, "req-abc-123");
        assert_eq!(nested.ids.trace_id, report.ids.trace_id);
        assert_eq!(nested.ids.parent_span_id, Some(report.ids.span_id));
        assert!(nested.error.is_none());
        nested_fuel += nested.stats.fuel_consumed;
    }
    assert!(
        report.stats.fuel_consumed > nested_fuel,
        "the caller is charged for its callees: {} <= {nested_fuel}",
        report.stats.fuel_consumed
    );
}

#[tokio::test]
async fn the_guest_sees_the_traceparent_of_its_own_call_span() {
    let host = host_with(
        config(),
        &[plugin("orchestrator"), plugin("uppercase"), plugin("word-count")],
    )
    .await;
    let outcome = call(&host, "orchestrator", r#"{"text":"x"}"#).await;
    let report = &outcome.report;
    let traceparent = report.ids.traceparent();
    let Parent {
        trace_id: trace,
        span_id: span,
        sampled,
    } = parse_traceparent(&traceparent).expect("valid");
    assert_eq!((trace, span, sampled), (report.ids.trace_id, report.ids.span_id, true));
}

#[tokio::test]
async fn invoking_a_missing_primitive_is_a_not_found_error_for_the_caller() {
    let host = host_with(config(), &[plugin("orchestrator"), plugin("uppercase")]).await;
    let outcome = call(&host, "orchestrator", r#"{"text":"x"}"#).await;
    let Err(CallError::Guest(e)) = &outcome.output else {
        panic!("expected a guest error, got {:?}", outcome.output);
    };
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("word-count"), "{}", e.message);
}

#[tokio::test]
async fn two_calls_share_no_guest_state() {
    let host = host_with(config(), &[fixture("stateful")]).await;
    for _ in 0..3 {
        let outcome = call(&host, "stateful", "").await;
        assert_eq!(outcome.output.expect("ok"), b"1");
    }
}

#[tokio::test]
async fn calling_an_unknown_name_lists_what_is_loaded() {
    let host = host_with(config(), &[plugin("echo")]).await;
    let outcome = call(&host, "nope", "").await;
    let Err(err @ CallError::UnknownPrimitive { .. }) = &outcome.output else {
        panic!("expected UnknownPrimitive, got {:?}", outcome.output);
    };
    assert!(err.to_string().contains("loaded: echo"), "{err}");
}

#[tokio::test]
async fn summarize_reports_llm_usage_that_becomes_llm_metrics() {
    let host = crate::host_with(crate::config(), &[crate::plugin("summarize")]).await;
    let text = "Every guest call is traced. Fuel is metered. Cost is tracked per model.";
    let input = serde_json::json!({ "text": text, "model": "extractive-large", "max_words": 5 }).to_string();
    let outcome = crate::call(&host, "summarize", &input).await;
    let output = crate::json_output(&outcome);
    assert_eq!(output["summary"], "Every guest call is traced.");
    let prompt = output["prompt_tokens"].as_u64().expect("prompt tokens");
    assert_eq!(prompt, (text.len() as u64).div_ceil(4));
    let span = outcome
        .report
        .spans
        .iter()
        .find(|s| s.name == "llm.completion")
        .expect("llm span");
    assert!(
        span.attributes
            .iter()
            .any(|(k, v)| k == "llm.model" && *v == tta_host::bindings::Value::Str("extractive-large".into()))
    );
    let metrics = host.telemetry().metrics().render();
    let line = |prefix: &str| metrics.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    let tokens = line("llm_tokens_total{kind=\"prompt\",model=\"extractive-large\"").expect("token metric");
    assert!(tokens.ends_with(&format!(" {prompt}")), "{tokens}");
    let unknown = crate::call(&host, "summarize", r#"{"text":"x","model":"gpt-9"}"#).await;
    assert!(
        matches!(&unknown.output, Err(tta_host::CallError::Guest(e)) if e.message.contains("unknown model `gpt-9`"))
    );
}
