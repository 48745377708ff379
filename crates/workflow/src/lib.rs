//! Workflows: trees of combinators over guest primitives, described in a TOML file.
//!
//! [`definition`] is the file as written (lenient, so that [`validate`] can report every
//! problem at once with its location); [`plan`] compiles a valid file against the loaded
//! primitives, and [`run`] runs it, each combinator a span with its decisions on it. Each
//! kind of step — its TOML, its checks, its compiled form, its run — is one file under
//! [`combinators`]; the driver knows none of them by name.

pub mod builder;
mod check;
pub mod combinators;
pub mod definition;
pub mod metrics;
pub mod plan;
pub mod run;
pub mod step;
pub mod validate;

pub use definition::WorkflowFile;
pub use plan::{CompileError, Workflow};
pub use run::WorkflowOutcome;
pub use tta_core::error::StepError;
pub use validate::{Problem, parse, validate};

/// The JSON Schema of the workflow file, as `workflows/workflow.schema.json` holds it.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(WorkflowFile);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
