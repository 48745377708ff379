//! The workflow file: a TOML document of named steps. A step is a primitive (a leaf) or a
//! combinator over other steps, which it names; `root` names the step a run starts at.
//!
//! Steps refer to each other by name rather than nesting, so deep trees and shared
//! sub-flows stay flat and readable in TOML, and every reference has a line and column
//! for error messages. References make cycles possible; validation finds them.
//!
//! ```toml
//! name = "checkout"
//! root = "main"
//!
//! [steps.main]
//! sequential = ["validate", "charge"]
//!
//! [steps.validate]
//! primitive = "json-validate"
//!
//! [steps.charge]
//! retry = { step = "call-bank", max_attempts = 3 }
//!
//! [steps.call-bank]
//! primitive = "bank"
//! ```

use super::combinators::cache::Cache;
use super::combinators::circuit_breaker::CircuitBreaker;
use super::combinators::conditional::Conditional;
use super::combinators::fallback::Fallback;
use super::combinators::parallel::Parallel;
use super::combinators::primitive::PrimitiveName;
use super::combinators::remote::Remote;
use super::combinators::retry::Retry;
use super::combinators::router::Router;
use super::combinators::saga::Saga;
use super::combinators::sequential::Sequential;
use super::combinators::timeout::Timeout;
use super::step::Definition;
pub use super::step::StepRef;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A workflow file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "tta-host workflow",
    description = "A workflow of WASM primitives and combinators (tta-host)."
)]
pub struct WorkflowFile {
    /// The workflow's name: its root span is `workflow.<name>` and its metrics carry `workflow_name`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What it does, for people.
    #[serde(default)]
    pub description: String,
    /// The step a run starts at.
    #[serde(default = "default_root")]
    #[schemars(with = "String")]
    pub root: StepRef,
    /// The steps, by name.
    #[schemars(with = "BTreeMap<String, Step>")]
    pub steps: BTreeMap<Spanned<String>, Spanned<Step>>,
    /// The JSON Schema of the workflow's input, as a table (`type = "object"` at its root),
    /// which MCP clients see as the tool's `inputSchema`. Without it, the input schema of
    /// the primitive the root step hands its input to first.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub input_schema: Option<Spanned<serde_json::Value>>,
}

impl WorkflowFile {
    /// The primitive the workflow's input reaches first: the root step's, or the first step
    /// it runs (every combinator hands its first step the input it got), down to a leaf.
    pub fn entry_primitive(&self) -> Option<String> {
        let mut name = self.root.get_ref().clone();
        for _ in 0..=self.steps.len() {
            let step = self.steps.iter().find(|(k, _)| *k.get_ref() == name)?.1.get_ref();
            if let Some(primitive) = &step.primitive {
                return Some(primitive.0.get_ref().clone());
            }
            let (_, next) = step.children().into_iter().next()?;
            name = next.get_ref().clone();
        }
        None
    }

    /// The names of the primitives the file calls: leaves, classifiers and compensations.
    pub fn primitives(&self) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for step in self.steps.values().map(Spanned::get_ref) {
            names.extend(step.primitive.iter().map(|p| p.0.get_ref().clone()));
            names.extend(
                step.router
                    .iter()
                    .flat_map(|r| &r.classifier)
                    .map(|c| c.get_ref().clone()),
            );
            names.extend(
                step.saga
                    .iter()
                    .flat_map(|s| s.compensate.values())
                    .map(|c| c.get_ref().clone()),
            );
        }
        names
    }
}

fn default_root() -> StepRef {
    Spanned::new(0..0, "main".to_owned())
}

/// One step. Exactly one of the kinds must be given.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A leaf: call the loaded primitive of this name.
    #[schemars(with = "Option<String>")]
    pub primitive: Option<PrimitiveName>,
    /// Run these steps in order; each one's output is the next one's input.
    #[schemars(with = "Option<Vec<String>>")]
    pub sequential: Option<Sequential>,
    /// Run branches concurrently on the same input.
    pub parallel: Option<Parallel>,
    /// Choose `then` or `else` by a test on the input.
    pub conditional: Option<Conditional>,
    /// Choose one route by a rule on the input or by a classifier primitive.
    pub router: Option<Router>,
    /// Run a step again on retryable failures.
    pub retry: Option<Retry>,
    /// Try steps in order until one succeeds.
    #[schemars(with = "Option<Vec<String>>")]
    pub fallback: Option<Fallback>,
    /// Give a step a deadline.
    pub timeout: Option<Timeout>,
    /// Remember a step's outputs by input.
    pub cache: Option<Cache>,
    /// Stop calling a failing step for a while.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Run steps in order; on a failure, undo the completed ones in reverse order.
    pub saga: Option<Saga>,
    /// A leaf on another tta-host: POST the input to this `execute` URL
    /// (`http://host:port/v1/primitives/<name>/execute`) with `traceparent` injected, so
    /// the run stays one trace across hosts.
    #[schemars(with = "Option<String>")]
    pub url: Option<Remote>,
    /// With `url`: the environment variable holding the API key for the remote host (the
    /// key itself never goes in the file).
    pub api_key_env: Option<String>,
    /// After this step succeeds, copy values of its JSON output (by JSON pointer) into the
    /// context `data` of the steps after it: `set_data = { category = "/category" }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub set_data: BTreeMap<String, Spanned<String>>,
    /// Context `data` this step and the steps it runs see, and the steps after it do not:
    /// `data = { model_tier = "large" }` (a primitive reads it from its context).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

impl Step {
    /// The kinds given, in the order of the file format's documentation; a valid step has
    /// exactly one. Every kind of step is registered here, and nowhere else.
    pub(crate) fn kinds(&self) -> Vec<&dyn Definition> {
        let kinds: [Option<&dyn Definition>; 12] = [
            self.primitive.as_ref().map(|k| k as &dyn Definition),
            self.sequential.as_ref().map(|k| k as &dyn Definition),
            self.parallel.as_ref().map(|k| k as &dyn Definition),
            self.conditional.as_ref().map(|k| k as &dyn Definition),
            self.router.as_ref().map(|k| k as &dyn Definition),
            self.retry.as_ref().map(|k| k as &dyn Definition),
            self.fallback.as_ref().map(|k| k as &dyn Definition),
            self.timeout.as_ref().map(|k| k as &dyn Definition),
            self.cache.as_ref().map(|k| k as &dyn Definition),
            self.circuit_breaker.as_ref().map(|k| k as &dyn Definition),
            self.saga.as_ref().map(|k| k as &dyn Definition),
            self.url.as_ref().map(|k| k as &dyn Definition),
        ];
        kinds.into_iter().flatten().collect()
    }

    /// The steps this one runs, with the key path each reference sits at.
    pub fn children(&self) -> Vec<(String, &StepRef)> {
        self.kinds().into_iter().flat_map(|kind| kind.children()).collect()
    }
}
