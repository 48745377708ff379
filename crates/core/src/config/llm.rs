//! `[llm]`: what the host knows about LLM calls its guests report — the price of each
//! model, so a call that reports tokens and no cost is charged from the operator's table.
//! A model not in the table is counted as unpriced; a cost is never guessed.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The `[llm]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Prices by model name as the guest reports it (`[llm.prices."gpt-4o-mini"]`).
    pub prices: BTreeMap<String, Price>,
}

/// The price of one model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input (prompt) tokens.
    pub input_per_million: f64,
    /// Per million output (completion) tokens.
    pub output_per_million: f64,
}

impl LlmConfig {
    /// The cost of `input` and `output` tokens of `model`, if the table prices it.
    pub fn cost(&self, model: &str, input: u64, output: u64) -> Option<f64> {
        let price = self.prices.get(model)?;
        Some((input as f64 * price.input_per_million + output as f64 * price.output_per_million) / 1e6)
    }

    /// Every problem with the table.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (model, price) in &self.prices {
            for (key, value) in [
                ("input_per_million", price.input_per_million),
                ("output_per_million", price.output_per_million),
            ] {
                if !(value.is_finite() && value >= 0.0) {
                    problems.push(format!(
                        "llm.prices.\"{model}\".{key} must be a number of US dollars, 0 or more (got {value})"
                    ));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_priced_model_costs_its_tokens_and_an_unknown_one_is_unpriced() {
        let llm: LlmConfig = toml::from_str(
            "[prices.\"gpt-4o-mini\"]\ninput_per_million = 0.15\noutput_per_million = 0.6\n\
             [prices.bad]\ninput_per_million = -1.0\noutput_per_million = 0.0\n",
        )
        .expect("toml");
        let cost = llm.cost("gpt-4o-mini", 1_000, 500).expect("priced");
        assert!((cost - 0.00045).abs() < 1e-12, "{cost}");
        assert_eq!(llm.cost("unknown", 1, 1), None);
        assert_eq!(llm.check().len(), 1, "{:?}", llm.check());
    }
}
