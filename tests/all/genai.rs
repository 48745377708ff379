//! LLM calls in both spellings, through a real OTLP receiver on loopback: a guest that
//! reports the seed's `llm.*` attributes gets the GenAI ones (`gen_ai.*`) filled in, one
//! that reports GenAI gets the seed's; tokens without a cost are priced from `[llm.prices]`,
//! and a model the table does not know is counted unpriced, never guessed. The GenAI
//! histograms sit beside the seed's counters, with bounded labels.

use crate::otlp_receiver::{self, attr, text};
use crate::telemetry::{otlp_config, sample};
use crate::{call, fixture};
use tta_host::Host;
use tta_host::config::telemetry::OtlpProtocol;
use tta_host::telemetry::Telemetry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_spans_carry_both_spellings_and_tokens_are_priced_from_the_table() {
    let (addr, received) = otlp_receiver::grpc().await;
    let mut config = crate::config();
    config.llm = toml::from_str("[prices.\"gpt-4o-mini\"]\ninput_per_million = 0.15\noutput_per_million = 0.6\n")
        .expect("prices");
    let telemetry = Telemetry::builder(otlp_config(format!("http://{addr}"), OtlpProtocol::Grpc))
        .build()
        .expect("telemetry");
    let host = Host::with_telemetry(config, telemetry).expect("host");
    host.load(&fixture("llm-sim")).await.expect("loads");

    let calls = [
        // The seed's spelling, priced by the guest.
        r#"{"model":"claude","prompt_tokens":150,"completion_tokens":200,"cost_usd":0.015}"#,
        // GenAI only, no cost: priced from the table (1000 × 0.15 + 500 × 0.6 per million).
        r#"{"model":"gpt-4o-mini","prompt_tokens":1000,"completion_tokens":500,"spelling":"genai","provider":"openai"}"#,
        // GenAI, a model the table does not know: unpriced.
        r#"{"model":"mystery-7b","prompt_tokens":10,"completion_tokens":20,"spelling":"genai","provider":"my-own-llm"}"#,
    ];
    for input in calls {
        assert!(call(&host, "llm-sim", input).await.output.is_ok(), "{input}");
    }
    assert!(host.telemetry().flush(std::time::Duration::from_secs(30)));

    let spans: Vec<_> = received.spans().into_iter().map(|(_, s)| s).collect();
    let by_model = |model: &str| {
        spans
            .iter()
            .find(|s| attr(&s.attributes, "llm.model").map(|v| text(&v)).as_deref() == Some(model))
            .unwrap_or_else(|| panic!("a span with llm.model {model}"))
    };
    let value =
        |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| attr(&span.attributes, key).map(|v| text(&v));
    let seed = by_model("claude");
    assert_eq!(value(seed, "gen_ai.request.model").as_deref(), Some("claude"));
    assert_eq!(value(seed, "gen_ai.usage.input_tokens").as_deref(), Some("150"));
    assert_eq!(value(seed, "gen_ai.usage.output_tokens").as_deref(), Some("200"));
    assert_eq!(value(seed, "gen_ai.operation.name").as_deref(), Some("chat"));
    let genai = by_model("gpt-4o-mini");
    assert_eq!(value(genai, "llm.prompt_tokens").as_deref(), Some("1000"));
    assert_eq!(value(genai, "llm.completion_tokens").as_deref(), Some("500"));
    assert_eq!(value(genai, "gen_ai.system").as_deref(), Some("openai"));
    let cost: f64 = value(genai, "llm.cost_usd").expect("priced").parse().expect("number");
    assert!((cost - 0.00045).abs() < 1e-12, "{cost}");
    let unknown = by_model("mystery-7b");
    assert_eq!(value(unknown, "llm.cost_usd"), None, "never guessed");

    let metrics = host.telemetry().metrics().render();
    let s = |name: &str, labels: &[(&str, &str)]| sample(&metrics, name, labels);
    let cost = s(
        "llm_cost_usd_total",
        &[("primitive_name", "llm-sim"), ("model", "gpt-4o-mini")],
    )
    .expect("the table's price is counted");
    assert!((cost - 0.00045).abs() < 1e-12, "{cost}");
    assert_eq!(
        s("llm_unpriced_requests_total", &[("model", "mystery-7b")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(s("llm_unpriced_requests_total", &[("model", "claude")]), None);
    let tokens = [
        ("gen_ai_request_model", "gpt-4o-mini"),
        ("gen_ai_provider_name", "openai"),
        ("gen_ai_token_type", "input"),
    ];
    assert_eq!(s("gen_ai_client_token_usage_sum", &tokens), Some(1000.0), "{metrics}");
    assert_eq!(s("gen_ai_client_token_usage_count", &tokens), Some(1.0));
    assert_eq!(
        s(
            "gen_ai_client_operation_duration_seconds_count",
            &[("gen_ai_request_model", "claude"), ("gen_ai_operation_name", "chat")]
        ),
        Some(1.0)
    );
    // A provider outside the conventions' list is a bounded `other`, not the guest's text.
    assert!(!metrics.contains("my-own-llm"), "{metrics}");
    assert_eq!(
        s(
            "gen_ai_client_token_usage_count",
            &[("gen_ai_provider_name", "other"), ("gen_ai_token_type", "output")]
        ),
        Some(1.0)
    );
    crate::telemetry::promtool_check(&metrics);
}
