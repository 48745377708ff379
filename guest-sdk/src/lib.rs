//! Write [tta-host](https://example.invalid/tta-host) workflow primitives in Rust.
//!
//! This crate owns the WIT bindings of `tta:primitives@0.2.0` so a primitive depends on
//! nothing else: implement [`Primitive`] (bytes in, bytes out) or [`JsonPrimitive`]
//! (typed JSON in and out, its JSON Schemas derived from the types), then call [`export!`].
//!
//! ```no_run
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use tta_guest::{Context, Error, JsonPrimitive, Metadata};
//!
//! /// What to shout.
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { text: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output { shout: String }
//!
//! struct Shout;
//!
//! impl JsonPrimitive for Shout {
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn describe() -> Metadata {
//!         Metadata::new("shout", "1.0.0", "Upper-cases `text`.").title("Shout").read_only()
//!     }
//!
//!     fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
//!         if input.text.is_empty() {
//!             return Err(Error::invalid_input("`text` is empty: send {\"text\": \"hi\"}"));
//!         }
//!         let _span = tta_guest::span("shout.transform");
//!         tta_guest::info!(chars = input.text.len() as i64; "shouting for {}", ctx.correlation_id);
//!         Ok(Output { shout: input.text.to_uppercase() })
//!     }
//! }
//!
//! tta_guest::export!(Shout);
//! ```
//!
//! Everything a guest reports through [`log`], [`span`], [`counter_add`] and
//! [`histogram_record`] lands on the host's span of the current call, with no further setup.
//!
//! Configuration and secrets the operator gives the primitive's tenant are read with
//! [`config::get`] (`wasi:config/store`, so the same code reads config under Spin or
//! wasmCloud); a component that never reads one does not import the interface.

#[doc(hidden)]
pub use wit_bindgen;

// The generated bindings name this crate by its external path, also from inside it.
extern crate self as tta_guest;

#[doc(hidden)]
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        path: ["wit/0.2.0", "wit/deps/config"],
        inline: "
            package tta:guest;

            world primitive-plugin {
                include tta:primitives/primitive-plugin@0.2.0;
                import wasi:config/store@0.2.0-rc.1;
            }
        ",
        world: "tta:guest/primitive-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_primitive_plugin",
        default_bindings_module: "tta_guest::bindings",
        runtime_path: "tta_guest::wit_bindgen::rt",
        generate_all,
    });
}

use bindings::tta::primitives::{invoke as wit_invoke, telemetry};

pub use bindings::tta::primitives::telemetry::{Level, Span, Value};
pub use bindings::tta::primitives::types::{Context, Error, ErrorKind, Hints, Metadata};

pub mod config;
mod json;
mod macros;
mod types;

pub use json::{JsonPrimitive, from_json, to_json};

/// A workflow primitive: bytes in, bytes out.
///
/// Implement this for a unit struct and hand it to [`export!`]. Each call runs in a
/// fresh instance, so statics do not carry state from one call to the next.
pub trait Primitive {
    /// Name, version, description and what a tool listing shows; the name is how
    /// workflows, `invoke` and MCP clients call it.
    fn describe() -> Metadata;

    /// Runs once on `input` within the workflow context `ctx`.
    fn execute(ctx: &Context, input: &[u8]) -> Result<Vec<u8>, Error>;
}

/// The span attribute a failed call records a dependency's HTTP `Retry-After` under
/// (delta-seconds): a workflow `retry` over the call waits at least that long.
pub const RETRY_AFTER: &str = "http.response.header.retry-after";

/// Key/value attributes for [`log`], [`span_with`] and the metric functions; see [`attributes!`].
pub type Attributes = Vec<(String, Value)>;

/// Emits a structured log record on the current call; see also [`info!`] and friends.
pub fn log(level: Level, message: &str, fields: &[(String, Value)]) {
    telemetry::log(level, message, fields);
}

/// Starts a child span of the current span; it ends when dropped or on [`Span::end`].
pub fn span(name: &str) -> Span {
    Span::new(name, &[])
}

/// Starts a child span with attributes.
pub fn span_with(name: &str, attributes: &[(String, Value)]) -> Span {
    Span::new(name, attributes)
}

/// Adds `value` to the counter `name`, exported by the host as `tta_guest_<name>_total`.
pub fn counter_add(name: &str, value: f64, attributes: &[(String, Value)]) {
    telemetry::counter_add(name, value, attributes);
}

/// Records `value` in the histogram `name`, exported by the host as `tta_guest_<name>`.
pub fn histogram_record(name: &str, value: f64, attributes: &[(String, Value)]) {
    telemetry::histogram_record(name, value, attributes);
}

/// Calls another loaded primitive as a child of this call and returns its output.
pub fn invoke(primitive: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
    wit_invoke::call(primitive, input)
}

/// Calls another loaded primitive with a JSON value and parses its JSON output.
pub fn invoke_json<I, O>(primitive: &str, input: &I) -> Result<O, Error>
where
    I: serde::Serialize + ?Sized,
    O: serde::de::DeserializeOwned,
{
    let output = invoke(primitive, &to_json(input)?)?;
    serde_json::from_slice(&output).map_err(|e| {
        Error::internal(format!(
            "primitive `{primitive}` returned output that is not the expected JSON: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_constructors_set_kind_and_retryable() {
        let e = Error::unavailable("backend down");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.retryable);
        let e = Error::invalid_input("bad");
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(!e.retryable);
        assert_eq!(e.kind.as_str(), "invalid-input");
    }

    #[test]
    fn context_data_lookup() {
        let ctx = Context {
            correlation_id: "c".into(),
            traceparent: String::new(),
            tracestate: String::new(),
            tenant: "t".into(),
            data: vec![("user".into(), "ada".into())],
            deadline_ms: None,
        };
        assert_eq!(ctx.get("user"), Some("ada"));
        assert_eq!(ctx.get("missing"), None);
    }

    #[test]
    fn attributes_macro_converts_values() {
        let attrs = attributes!["a" => 1, "b" => 2.5, "c" => true, "d" => "x"];
        assert!(matches!(attrs[0].1, Value::Int(1)));
        assert!(matches!(attrs[1].1, Value::Float(f) if f == 2.5));
        assert!(matches!(attrs[2].1, Value::Boolean(true)));
        assert!(matches!(&attrs[3].1, Value::Str(s) if s == "x"));
    }
}
