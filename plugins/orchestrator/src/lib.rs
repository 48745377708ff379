//! `orchestrator`: runs `uppercase` and `word-count` on the same text through `invoke`.
//!
//! Shows nested calls: each callee runs as a child of this call, with the same
//! correlation id, and its failure comes back as this primitive's error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, Serialize, JsonSchema)]
struct Input {
    text: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    upper: Value,
    counts: Value,
    correlation_id: String,
}

struct Orchestrator;

impl JsonPrimitive for Orchestrator {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("orchestrator", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Orchestrate sub-calls")
    }

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        let upper = tta_guest::invoke_json("uppercase", &input)?;
        let counts = tta_guest::invoke_json("word-count", &input)?;
        Ok(Output {
            upper,
            counts,
            correlation_id: ctx.correlation_id.clone(),
        })
    }
}

tta_guest::export!(Orchestrator);
