//! `{{name}}`: a tta-host primitive. Edit `run`; `./build.sh` makes `{{name}}.wasm`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tta_guest::{Context, Error, JsonPrimitive, Metadata};

/// The input's JSON Schema, which tool listings (MCP `tools/list`) show, is derived from
/// this type; doc comments become descriptions.
#[derive(Deserialize, JsonSchema)]
struct Input {
    /// Who to greet.
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    /// The greeting.
    greeting: String,
}

struct Primitive;

impl JsonPrimitive for Primitive {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("{{name}}", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Greet someone")
            .read_only()
            .idempotent()
    }

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.name.trim().is_empty() {
            return Err(Error::invalid_input(r#"`name` is empty: send {"name": "Ada"}"#));
        }
        let span = tta_guest::span("{{name}}.greet");
        span.attr("name.length", input.name.len());
        // Configuration from the host (`wasi:config`): `run --config-value greeting=Howdy`,
        // or the tenant's `[tenants.config]` under `serve`.
        let word = tta_guest::config::get("greeting").unwrap_or_else(|| "Hello".to_owned());
        let greeting = format!("{word}, {}!", input.name);
        drop(span);
        tta_guest::counter_add("greetings", 1.0, &[]);
        tta_guest::info!(name = input.name.as_str(); "greeted");
        Ok(Output { greeting })
    }
}

tta_guest::export!(Primitive);
