//! `release-stock`: the compensation of `reserve-stock`. Gets `{"input": order,
//! "output": order with reservation}` and releases the reservation.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Deserialize, JsonSchema)]
struct Compensation {
    output: Value,
}

struct Release;

impl JsonPrimitive for Release {
    type Input = Compensation;
    type Output = Value;

    fn describe() -> Metadata {
        Metadata::new(
            "release-stock",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    }

    fn run(_ctx: &Context, input: Compensation) -> Result<Value, Error> {
        let reservation = input.output["reservation"]
            .as_str()
            .ok_or_else(|| Error::invalid_input("no `reservation` to release in `output`"))?;
        tta_guest::info!(reservation = reservation; "stock released");
        Ok(json!({ "released": reservation }))
    }
}

tta_guest::export!(Release);
