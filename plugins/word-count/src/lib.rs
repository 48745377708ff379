//! `word-count`: counts the words, lines and characters of `{"text": …}`.
//!
//! Shows guest telemetry: a child span around the counting, an attribute and an
//! event on it, and a guest counter of words seen.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, JsonSchema)]
struct Input {
    /// The text whose words, lines and characters are counted.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    words: usize,
    lines: usize,
    chars: usize,
}

struct WordCount;

impl JsonPrimitive for WordCount {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("word-count", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Count words")
            .read_only()
            .idempotent()
            .open_world(false)
    }

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let span = tta_guest::span("word-count.tokenize");
        let output = Output {
            words: input.text.split_whitespace().count(),
            lines: input.text.lines().count(),
            chars: input.text.chars().count(),
        };
        span.attr("words", output.words);
        span.event("tokenized");
        drop(span);
        tta_guest::counter_add("words_counted", output.words as f64, &[]);
        tta_guest::info!(words = output.words, lines = output.lines; "counted words");
        Ok(output)
    }
}

tta_guest::export!(WordCount);
