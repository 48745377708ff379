//! An LLM call in both spellings: the seed's `llm.*` attributes (`llm.model`,
//! `llm.prompt_tokens`, `llm.completion_tokens`, `llm.cost_usd`) and the OpenTelemetry GenAI
//! semantic conventions (`gen_ai.request.model`, `gen_ai.usage.input_tokens`, …). A guest
//! may set either; the host fills in the other before the call is metered and exported, so
//! dashboards built on the seed's names and GenAI-aware backends both recognise the call.
//! A call that reports tokens and no cost is priced from `[llm.prices]`; a model the table
//! does not know stays unpriced (`llm_unpriced_requests_total`), never guessed.

use crate::instruments::{OVERFLOW, counter, histogram, remove_matching};
use prometheus::{HistogramVec, IntCounterVec, Registry};
use tta_core::bindings::Value;
use tta_core::config::LlmConfig;
use tta_core::report::{CallReport, GuestSpanRecord};

/// Tokens per request, as the GenAI conventions advise: powers of 4 from 1 to 4^13.
const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// Seconds per request, as the GenAI conventions advise.
const OPERATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.operation.name` values of the conventions; a guest's other value is `other`.
const OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "create_agent",
    "invoke_agent",
    "execute_tool",
];

/// `gen_ai.provider.name` values of the conventions (and common local servers); a
/// guest's other value is `other`.
const PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "aws.bedrock",
    "azure.ai.inference",
    "azure.ai.openai",
    "cohere",
    "deepseek",
    "gcp.gemini",
    "gcp.gen_ai",
    "gcp.vertex_ai",
    "groq",
    "ibm.watsonx.ai",
    "mistral_ai",
    "perplexity",
    "x_ai",
    "ollama",
    "vllm",
];

/// The GenAI semantic-convention metrics, with labels from closed sets (operation,
/// provider, token type) and the capped model label of the `llm_*` metrics.
pub(crate) struct GenAiMetrics {
    /// `gen_ai_client_token_usage` (`gen_ai.client.token.usage`, `{token}`).
    tokens: HistogramVec,
    /// `gen_ai_client_operation_duration_seconds` (`gen_ai.client.operation.duration`).
    duration: HistogramVec,
    /// `llm_unpriced_requests_total`: requests with tokens and no cost the table could give.
    unpriced: IntCounterVec,
}

impl GenAiMetrics {
    pub(crate) fn register(r: &Registry) -> Self {
        const LABELS: [&str; 5] = [
            "primitive_name",
            "tenant",
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
        ];
        let mut with_type = LABELS.to_vec();
        with_type.push("gen_ai_token_type");
        GenAiMetrics {
            tokens: histogram(
                r,
                "gen_ai_client_token_usage",
                "Tokens per LLM request reported by guests (OpenTelemetry GenAI gen_ai.client.token.usage).",
                &with_type,
                TOKEN_BUCKETS,
            ),
            duration: histogram(
                r,
                "gen_ai_client_operation_duration_seconds",
                "Duration of LLM requests reported by guests: their spans' (OpenTelemetry GenAI gen_ai.client.operation.duration).",
                &LABELS,
                OPERATION_BUCKETS,
            ),
            unpriced: counter(
                r,
                "llm_unpriced_requests_total",
                "LLM requests that reported tokens but no cost, for a model [llm.prices] does not list.",
                &["primitive_name", "model", "tenant"],
            ),
        }
    }

    pub(crate) fn forget(&self, labels: &[(&str, &str)]) {
        remove_matching(&self.tokens, labels);
        remove_matching(&self.duration, labels);
        remove_matching(&self.unpriced, labels);
    }

    /// Records one completed LLM span; `model` is its label, already capped.
    pub(crate) fn record(&self, span: &GuestSpanRecord, primitive: &str, tenant: &str, model: &str) {
        let closed = |key: &str, known: &[&str], absent: &str| -> String {
            match get(span, key) {
                Some(Value::Str(v)) if known.contains(&v.as_str()) => v.clone(),
                Some(_) => OVERFLOW.to_owned(),
                None => absent.to_owned(),
            }
        };
        let operation = closed("gen_ai.operation.name", OPERATIONS, "chat");
        let provider = closed("gen_ai.provider.name", PROVIDERS, "unknown");
        let labels = [primitive, tenant, &operation, &provider, model];
        for (key, kind) in [("llm.prompt_tokens", "input"), ("llm.completion_tokens", "output")] {
            if let Some(n) = get(span, key).and_then(count) {
                let mut all = labels.to_vec();
                all.push(kind);
                self.tokens.with_label_values(&all).observe(n as f64);
            }
        }
        if let Some(seconds) = span
            .end
            .and_then(|end| end.duration_since(span.start).ok())
            .map(|d| d.as_secs_f64())
        {
            self.duration.with_label_values(&labels).observe(seconds);
        }
        let has_tokens = ["llm.prompt_tokens", "llm.completion_tokens"]
            .iter()
            .any(|k| get(span, k).and_then(count).is_some());
        if has_tokens && get(span, "llm.cost_usd").is_none() {
            self.unpriced.with_label_values(&[primitive, model, tenant]).inc();
        }
    }
}

/// The same fact under the seed's name and the GenAI convention's.
const SYNONYMS: [(&str, &str); 3] = [
    ("llm.model", "gen_ai.request.model"),
    ("llm.prompt_tokens", "gen_ai.usage.input_tokens"),
    ("llm.completion_tokens", "gen_ai.usage.output_tokens"),
];

/// Completes every LLM span of `report` (not of its nested calls: each is completed when
/// it is metered).
pub fn complete(report: &mut CallReport, llm: &LlmConfig) {
    for span in &mut report.spans {
        if is_llm(span) {
            complete_span(span, llm);
        }
    }
}

/// Whether a span describes an LLM call: it names a model or counts tokens, in either
/// spelling.
pub fn is_llm(span: &GuestSpanRecord) -> bool {
    span.attributes.iter().any(|(key, _)| {
        SYNONYMS.iter().any(|(seed, genai)| key == seed || key == genai) || key == "gen_ai.response.model"
    })
}

fn get<'a>(span: &'a GuestSpanRecord, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn set_missing(span: &mut GuestSpanRecord, key: &str, value: Value) {
    if get(span, key).is_none() {
        span.attributes.push((key.to_owned(), value));
    }
}

fn complete_span(span: &mut GuestSpanRecord, llm: &LlmConfig) {
    if get(span, "llm.model").is_none()
        && get(span, "gen_ai.request.model").is_none()
        && let Some(model) = get(span, "gen_ai.response.model").cloned()
    {
        span.attributes.push(("llm.model".into(), model));
    }
    for (seed, genai) in SYNONYMS {
        match (get(span, seed).cloned(), get(span, genai).cloned()) {
            (Some(value), None) => span.attributes.push((genai.to_owned(), value)),
            (None, Some(value)) => span.attributes.push((seed.to_owned(), value)),
            _ => {}
        }
    }
    set_missing(span, "gen_ai.operation.name", Value::Str("chat".into()));
    match (
        get(span, "gen_ai.provider.name").cloned(),
        get(span, "gen_ai.system").cloned(),
    ) {
        (Some(provider), None) => span.attributes.push(("gen_ai.system".into(), provider)),
        (None, Some(system)) => span.attributes.push(("gen_ai.provider.name".into(), system)),
        _ => {}
    }
    if get(span, "llm.cost_usd").is_some() {
        return;
    }
    let tokens = |key| get(span, key).and_then(count);
    let (input, output) = (tokens("llm.prompt_tokens"), tokens("llm.completion_tokens"));
    if input.is_none() && output.is_none() {
        return;
    }
    let model = match get(span, "llm.model") {
        Some(Value::Str(model)) => model.clone(),
        _ => return,
    };
    if let Some(cost) = llm.cost(&model, input.unwrap_or(0), output.unwrap_or(0)) {
        span.attributes.push(("llm.cost_usd".into(), Value::Float(cost)));
    }
}

/// A token count: a non-negative number, or a string of one.
pub(crate) fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Float(f) if *f >= 0.0 && f.is_finite() => Some(*f as u64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}
