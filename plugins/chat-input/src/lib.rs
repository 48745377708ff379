//! `chat-input`: the input processor of an assistant. It checks `{"question": …,
//! "system": …}` (a question of 1 to 16 000 characters, an optional system prompt of up
//! to 4 000) and answers `{"prompt", "system", "words", "size"}`, where `size` is `short`
//! for up to `max_short_words` words (config, default 40) and `long` above, for a router
//! to pick a model by.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    question: String,
    #[serde(default)]
    system: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    words: usize,
    size: &'static str,
}

const MAX_QUESTION: usize = 16_000;
const MAX_SYSTEM: usize = 4_000;

struct ChatInput;

impl JsonPrimitive for ChatInput {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("chat-input", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Chat input")
            .read_only()
            .idempotent()
            .open_world(false)
    }

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let question = input.question.trim();
        if question.is_empty() {
            return Err(Error::invalid_input("`question` is empty: ask something"));
        }
        let chars = question.chars().count();
        if chars > MAX_QUESTION {
            return Err(Error::invalid_input(format!(
                "`question` has {chars} characters, over the limit of {MAX_QUESTION}: shorten it"
            )));
        }
        let system = input.system.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        if let Some(system) = &system
            && system.chars().count() > MAX_SYSTEM
        {
            return Err(Error::invalid_input(format!(
                "`system` has {} characters, over the limit of {MAX_SYSTEM}",
                system.chars().count()
            )));
        }
        let max_short = tta_guest::config::get("max_short_words")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(40);
        let words = question.split_whitespace().count();
        let size = if words <= max_short { "short" } else { "long" };
        let span = tta_guest::span("validate_input");
        span.attr("input.words", words);
        span.attr("input.size", size);
        span.event("validation_complete");
        Ok(Output {
            prompt: question.to_owned(),
            system,
            words,
            size,
        })
    }
}

tta_guest::export!(ChatInput);
