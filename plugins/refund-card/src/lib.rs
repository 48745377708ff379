//! `refund-card`: the compensation of `charge-card`. Gets `{"input", "output"}` of the
//! charge and refunds it.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, JsonSchema)]
struct Compensation {
    output: Value,
}

struct Refund;

impl JsonPrimitive for Refund {
    type Input = Compensation;
    type Output = Value;

    fn describe() -> Metadata {
        Metadata::new("refund-card", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Refund a card")
            .destructive()
    }

    fn run(_ctx: &Context, input: Compensation) -> Result<Value, Error> {
        let charge = input.output["charge"]
            .as_str()
            .ok_or_else(|| Error::invalid_input("no `charge` to refund in `output`"))?;
        tta_guest::info!(charge = charge; "charge refunded");
        Ok(json!({ "refunded": charge }))
    }
}

tta_guest::export!(Refund);
