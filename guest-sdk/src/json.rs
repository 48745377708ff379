//! Typed JSON input and output, the convention the host's CLI and workflows use, and the
//! JSON Schemas of both derived from the types, so a typed primitive describes itself to
//! tool listings (MCP's `tools/list`) with no extra code.

use crate::{Context, Error, Metadata, Primitive};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A primitive with typed JSON input and output.
///
/// Input that does not parse as `Input` is answered with an `invalid-input` error that
/// names the problem and its position, before [`JsonPrimitive::run`] is called.
/// `describe`'s schemas, when it sets none, are `Input`'s and `Output`'s (an input schema
/// only when `Input` is a JSON object: tool arguments always are); doc comments on the
/// types and fields become their descriptions.
pub trait JsonPrimitive {
    /// What the primitive accepts.
    type Input: DeserializeOwned + JsonSchema;
    /// What the primitive returns.
    type Output: Serialize + JsonSchema;

    /// Name, version, description and hints.
    fn describe() -> Metadata;

    /// Runs once on the parsed input.
    fn run(ctx: &Context, input: Self::Input) -> Result<Self::Output, Error>;
}

impl<P: JsonPrimitive> Primitive for P {
    fn describe() -> Metadata {
        let mut metadata = <P as JsonPrimitive>::describe();
        if metadata.input_schema.is_none() {
            let schema = schemars::schema_for!(P::Input);
            if schema.get("type").and_then(serde_json::Value::as_str) == Some("object") {
                metadata.input_schema = serde_json::to_string(&schema).ok();
            }
        }
        if metadata.output_schema.is_none() {
            metadata.output_schema = serde_json::to_string(&schemars::schema_for!(P::Output)).ok();
        }
        metadata
    }

    fn execute(ctx: &Context, input: &[u8]) -> Result<Vec<u8>, Error> {
        let parsed = from_json(input)?;
        to_json(&P::run(ctx, parsed)?)
    }
}

/// Parses JSON input, turning a parse failure into a specific `invalid-input` error.
pub fn from_json<T: DeserializeOwned>(input: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(input).map_err(|e| {
        Error::invalid_input(format!(
            "input is not the expected JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Serializes output as JSON.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("output could not be serialized as JSON: {e}")))
}
