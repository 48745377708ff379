//! JSON Schemas of what a primitive or a workflow takes: the shape every tool's input has
//! (an object at the root), and the compiled check a tenant with `validate_input = true`
//! runs on each input before any guest is instantiated.
//!
//! A schema comes from a guest's `describe` or a workflow file, so it is untrusted: it is
//! compiled once, when it is loaded, and never fetches anything (a `$ref` outside the
//! document is a load error, not a request to the network or the disk). Checking an input
//! costs time linear in the input for every keyword but `uniqueItems` (hashed), and the
//! input is bounded by the tenant's `max_request_bytes` and serde_json's nesting limit.

use crate::text;
use serde_json::Value;

/// Where a schema is compiled from: its own document, nothing else.
const BASE: &str = "tta:input-schema";

/// Whether `schema` says its instances are objects (`"type": "object"` at the root), as
/// the schema of a tool's arguments must and an MCP `outputSchema` has to.
#[must_use]
pub fn describes_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
}

/// Why a schema cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(String);

/// Why an input does not satisfy its schema: the first error found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the input does not match the input schema {}: {message}{}", at(.instance_path), location(.schema_path))]
pub struct Mismatch {
    /// Where in the input, as a JSON Pointer (`""` is the whole input).
    pub instance_path: String,
    /// The keyword that failed, as a JSON Pointer into the schema document, after any
    /// `$ref` is followed (`/properties/text/type`).
    pub schema_path: String,
    /// What is wrong, for people.
    pub message: String,
}

fn at(instance_path: &str) -> String {
    if instance_path.is_empty() {
        "at its top level".to_owned()
    } else {
        format!("at `{instance_path}`")
    }
}

fn location(schema_path: &str) -> String {
    if schema_path.is_empty() {
        String::new()
    } else {
        format!(" (schema location `{schema_path}`)")
    }
}

/// A compiled input schema.
pub struct InputSchema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchema").finish_non_exhaustive()
    }
}

/// Refuses every document a schema refers to outside itself.
struct NoFetch;

impl boon::UrlLoader for NoFetch {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!(
            "the host fetches no schema (`{}`); put it under `$defs` and refer to it as `#/$defs/…`",
            text::bounded(url, 200)
        )
        .into())
    }
}

impl InputSchema {
    /// Compiles `schema` (draft 2020-12 unless its `$schema` names another draft; `format`
    /// is an annotation, as 2020-12 has it).
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.use_loader(Box::new(NoFetch));
        let mut schemas = boon::Schemas::new();
        let refused = |e: &boon::CompileError| SchemaError(text::bounded(&compile_reason(e), 600).into_owned());
        compiler.add_resource(BASE, schema.clone()).map_err(|e| refused(&e))?;
        let index = compiler.compile(BASE, &mut schemas).map_err(|e| refused(&e))?;
        Ok(InputSchema { schemas, index })
    }

    /// Checks `input` (JSON text) against the schema; the first error when it fails.
    pub fn check(&self, input: &[u8]) -> Result<(), Mismatch> {
        let value: Value = serde_json::from_slice(input).map_err(|e| Mismatch {
            instance_path: String::new(),
            schema_path: String::new(),
            message: format!("the input is not JSON ({e}); send a JSON object"),
        })?;
        self.check_value(&value)
    }

    /// Checks a parsed input against the schema.
    pub fn check_value(&self, input: &Value) -> Result<(), Mismatch> {
        let Err(error) = self.schemas.validate(input, self.index) else {
            return Ok(());
        };
        let mut first = &error;
        while let Some(cause) = first.causes.first() {
            first = cause;
        }
        let mut schema_path = first
            .schema_url
            .strip_prefix(BASE)
            .unwrap_or(first.schema_url)
            .trim_start_matches('#')
            .to_owned();
        if let Some(keyword) = first.kind.keyword_path() {
            schema_path.push('/');
            schema_path.push_str(&keyword.to_string());
        }
        Err(Mismatch {
            instance_path: text::bounded(&first.instance_location.to_string(), 256).into_owned(),
            schema_path: text::bounded(&schema_path, 256).into_owned(),
            message: text::bounded(&first.kind.to_string(), 300).into_owned(),
        })
    }
}

/// A compile error as one line, with its source (a failed load says why it failed).
fn compile_reason(error: &boon::CompileError) -> String {
    let mut reason = error.to_string().replace(BASE, "the schema");
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        reason.push_str(": ");
        reason.push_str(&inner.to_string());
        source = inner.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text_schema() -> InputSchema {
        InputSchema::compile(&json!({
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": { "type": "string", "maxLength": 5 },
                "items": { "type": "array", "items": { "$ref": "#/$defs/item" } },
            },
            "$defs": { "item": { "type": "integer", "minimum": 0 } },
        }))
        .expect("compiles")
    }

    #[test]
    fn a_matching_input_passes() {
        assert_eq!(text_schema().check(br#"{"text":"abc","items":[1,2]}"#), Ok(()));
    }

    #[test]
    fn the_first_error_names_where_in_the_input_and_the_schema() {
        let schema = text_schema();
        let missing = schema.check(b"{}").expect_err("missing text");
        assert_eq!(
            (missing.instance_path.as_str(), missing.schema_path.as_str()),
            ("", "/required")
        );
        assert!(missing.message.contains("text"), "{missing}");
        assert!(missing.to_string().contains("at its top level"), "{missing}");
        let wrong = schema.check(br#"{"text":3}"#).expect_err("a number");
        assert_eq!(
            (wrong.instance_path.as_str(), wrong.schema_path.as_str()),
            ("/text", "/properties/text/type")
        );
        let long = schema.check(br#"{"text":"abcdefgh"}"#).expect_err("too long");
        assert_eq!(long.schema_path, "/properties/text/maxLength");
        let through_ref = schema.check(br#"{"text":"a","items":[1,-1]}"#).expect_err("negative");
        assert_eq!(
            (through_ref.instance_path.as_str(), through_ref.schema_path.as_str()),
            ("/items/1", "/$defs/item/minimum")
        );
        let not_json = schema.check(b"{").expect_err("not JSON");
        assert!(not_json.message.contains("not JSON"), "{not_json}");
    }

    #[test]
    fn a_schema_that_refers_outside_itself_or_is_invalid_does_not_compile() {
        let remote = InputSchema::compile(&json!({ "type": "object", "$ref": "https://example.com/s.json" }))
            .expect_err("remote");
        assert!(remote.to_string().contains("fetches no schema"), "{remote}");
        let file = InputSchema::compile(&json!({ "$ref": "file:///etc/passwd" })).expect_err("file");
        assert!(file.to_string().contains("fetches no schema"), "{file}");
        let invalid = InputSchema::compile(&json!({ "type": 5 })).expect_err("invalid");
        assert!(!invalid.to_string().is_empty());
    }

    #[test]
    fn only_an_object_schema_describes_an_object() {
        assert!(describes_object(&json!({ "type": "object" })));
        assert!(!describes_object(&json!({ "type": "string" })));
        assert!(!describes_object(&json!({ "type": ["object", "null"] })));
    }
}
