//! `uppercase`: `{"text": "hi"}` becomes `{"text": "HI"}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, JsonSchema)]
struct Input {
    /// The text to upper-case.
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    text: String,
}

struct Uppercase;

impl JsonPrimitive for Uppercase {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("uppercase", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Upper-case text")
            .read_only()
            .idempotent()
            .open_world(false)
    }

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        tta_guest::debug!(chars = input.text.chars().count(); "upper-casing");
        Ok(Output {
            text: input.text.to_uppercase(),
        })
    }
}

tta_guest::export!(Uppercase);
