//! `format`: renders a JSON object as text, one `key: value` line per field (nested values
//! as compact JSON), the last step of a pipeline that answers people.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

#[derive(Serialize, JsonSchema)]
struct Output {
    text: String,
}

struct Format;

impl JsonPrimitive for Format {
    type Input = Map<String, Value>;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("format", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Format a report")
            .read_only()
            .idempotent()
            .open_world(false)
    }

    fn run(_ctx: &Context, input: Map<String, Value>) -> Result<Output, Error> {
        let lines: Vec<String> = input
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect();
        Ok(Output { text: lines.join("\n") })
    }
}

tta_guest::export!(Format);
