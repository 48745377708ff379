//! `json-validate`: checks a user record against a small schema and says exactly what is wrong.
//!
//! Schema: `name` (string, 1 to 64 characters, required), `age` (integer 0 to 150,
//! required), `email` (string containing `@`, optional). Nothing else is allowed.

use serde_json::{Map, Value};
use tta_guest::{Context, Error, Metadata, Primitive};

struct JsonValidate;

const FIELDS: [&str; 3] = ["name", "age", "email"];

fn validate(record: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    match record.get("name") {
        None => problems.push("`name` is missing: add a string of 1 to 64 characters".to_owned()),
        Some(Value::String(s)) if (1..=64).contains(&s.chars().count()) => {}
        Some(Value::String(s)) => problems.push(format!(
            "`name` must have 1 to 64 characters, it has {}",
            s.chars().count()
        )),
        Some(other) => problems.push(format!("`name` must be a string, got {}", kind(other))),
    }
    match record.get("age") {
        None => problems.push("`age` is missing: add an integer from 0 to 150".to_owned()),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(age) if (0..=150).contains(&age) => {}
            _ => problems.push(format!("`age` must be an integer from 0 to 150, got {n}")),
        },
        Some(other) => problems.push(format!("`age` must be an integer, got {}", kind(other))),
    }
    match record.get("email") {
        None => {}
        Some(Value::String(s)) if s.contains('@') => {}
        Some(Value::String(s)) => problems.push(format!("`email` must contain `@`, got {s:?}")),
        Some(other) => problems.push(format!("`email` must be a string, got {}", kind(other))),
    }
    for key in record.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        problems.push(format!("`{key}` is not allowed: the fields are name, age and email"));
    }
    problems
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Primitive for JsonValidate {
    fn describe() -> Metadata {
        Metadata::new(
            "json-validate",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
    }

    fn execute(_ctx: &Context, input: &[u8]) -> Result<Vec<u8>, Error> {
        let value: Value = tta_guest::from_json(input)?;
        let Value::Object(record) = value else {
            return Err(Error::invalid_input(format!(
                "expected a JSON object with name, age and email, got {}",
                kind(&value)
            )));
        };
        let problems = validate(&record);
        if problems.is_empty() {
            tta_guest::to_json(&serde_json::json!({ "valid": true }))
        } else {
            tta_guest::warn!(problems = problems.len(); "record rejected");
            Err(Error::invalid_input(problems.join("; ")))
        }
    }
}

tta_guest::export!(JsonValidate);
