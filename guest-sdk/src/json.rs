//! Typed JSON input and output, the convention the host's CLI and workflows use.

use crate::{Context, Error, Metadata, Primitive};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A primitive with typed JSON input and output.
///
/// Input that does not parse as `Input` is answered with an `invalid-input` error that
/// names the problem and its position, before [`JsonPrimitive::run`] is called.
pub trait JsonPrimitive {
    /// What the primitive accepts.
    type Input: DeserializeOwned;
    /// What the primitive returns.
    type Output: Serialize;

    /// Name, version and description.
    fn describe() -> Metadata;

    /// Runs once on the parsed input.
    fn run(ctx: &Context, input: Self::Input) -> Result<Self::Output, Error>;
}

impl<P: JsonPrimitive> Primitive for P {
    fn describe() -> Metadata {
        <P as JsonPrimitive>::describe()
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
