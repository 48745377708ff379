//! `summarize`: an LLM-style primitive without a network. It "summarizes" `{"text": …}` by
//! keeping its first sentences up to `max_words`, and reports what a real LLM client
//! would: a `llm.completion` span with `llm.model`, `llm.prompt_tokens`,
//! `llm.completion_tokens` and `llm.cost_usd`, which the host turns into the
//! `llm_tokens_total`, `llm_requests_total` and `llm_cost_usd_total` metrics.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, JsonSchema)]
struct Input {
    text: String,
    #[serde(default = "default_max_words")]
    max_words: usize,
    #[serde(default = "default_model")]
    model: String,
}

fn default_max_words() -> usize {
    25
}

fn default_model() -> String {
    "extractive-small".into()
}

#[derive(Serialize, JsonSchema)]
struct Output {
    summary: String,
    model: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

/// US dollars per 1,000 tokens, prompt and completion, by model.
fn price(model: &str) -> Option<(f64, f64)> {
    match model {
        "extractive-small" => Some((0.000_15, 0.000_6)),
        "extractive-large" => Some((0.002_5, 0.01)),
        _ => None,
    }
}

/// Roughly four characters a token, as for English text.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

struct Summarize;

impl JsonPrimitive for Summarize {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("summarize", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Summarize text")
            .read_only()
            .idempotent()
            .open_world(false)
    }

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let Some((prompt_price, completion_price)) = price(&input.model) else {
            return Err(Error::invalid_input(format!(
                "unknown model `{}`: use extractive-small or extractive-large",
                input.model
            )));
        };
        if input.text.trim().is_empty() {
            return Err(Error::invalid_input("`text` is empty: nothing to summarize"));
        }
        let span = tta_guest::span("llm.completion");
        span.attr("llm.model", input.model.as_str());
        span.event("api_call_started");
        let mut summary = String::new();
        for sentence in input.text.split_inclusive(['.', '!', '?']) {
            let words = summary.split_whitespace().count() + sentence.split_whitespace().count();
            if !summary.is_empty() && words > input.max_words {
                break;
            }
            summary.push_str(sentence);
        }
        let summary: String = summary
            .split_whitespace()
            .take(input.max_words)
            .collect::<Vec<_>>()
            .join(" ");
        let prompt_tokens = tokens(&input.text);
        let completion_tokens = tokens(&summary);
        // To the nano-dollar: a whole number divided once prints as `0.0000135`, not with
        // the float noise of the products (`0.000013499999999999998`).
        let nano_usd = (prompt_tokens as f64 * prompt_price + completion_tokens as f64 * completion_price) * 1e6;
        let cost_usd = nano_usd.round() / 1e9;
        span.attr("llm.prompt_tokens", prompt_tokens);
        span.attr("llm.completion_tokens", completion_tokens);
        span.attr("llm.cost_usd", cost_usd);
        span.event("api_call_completed");
        tta_guest::info!(model = input.model.as_str(), tokens = prompt_tokens + completion_tokens; "summarized");
        Ok(Output {
            summary,
            model: input.model,
            prompt_tokens,
            completion_tokens,
            cost_usd,
        })
    }
}

tta_guest::export!(Summarize);
