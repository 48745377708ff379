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

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A name of a step, with where it appears in the file.
pub type StepRef = Spanned<String>;

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
}

impl WorkflowFile {
    /// The names of the primitives the file calls: leaves, classifiers and compensations.
    pub fn primitives(&self) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for step in self.steps.values().map(Spanned::get_ref) {
            names.extend(step.primitive.iter().map(|p| p.get_ref().clone()));
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
    pub primitive: Option<Spanned<String>>,
    /// Run these steps in order; each one's output is the next one's input.
    #[schemars(with = "Option<Vec<String>>")]
    pub sequential: Option<Vec<StepRef>>,
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
    pub fallback: Option<Vec<StepRef>>,
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
    pub url: Option<Spanned<String>>,
    /// With `url`: the environment variable holding the API key for the remote host (the
    /// key itself never goes in the file).
    pub api_key_env: Option<String>,
    /// After this step succeeds, copy values of its JSON output (by JSON pointer) into the
    /// context `data` of the steps after it: `set_data = { category = "/category" }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub set_data: BTreeMap<String, Spanned<String>>,
}

/// `parallel = { branches = [...] }` or `parallel = { named = { a = "...", b = "..." } }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parallel {
    /// Branches whose outputs are combined into a JSON array, in this order.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub branches: Vec<StepRef>,
    /// Branches whose outputs are combined into a JSON object under these names.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub named: BTreeMap<String, StepRef>,
    /// `fail_fast` (default): the first failure fails the step and cancels the rest;
    /// `collect`: wait for all, and fail with every error.
    #[serde(default)]
    pub on_failure: FailurePolicy,
}

/// What a parallel step does when a branch fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Fail at the first failure, cancelling the other branches.
    #[default]
    FailFast,
    /// Run every branch, then fail with all the errors.
    Collect,
}

/// A test on the JSON input: the value at `pointer` compared with `value`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// A JSON pointer (RFC 6901) into the input, e.g. `/order/total`.
    #[schemars(with = "Option<String>")]
    pub pointer: Option<Spanned<String>>,
    /// The comparison.
    #[serde(default)]
    pub op: Comparison,
    /// The value to compare with (not needed for `exists`).
    #[schemars(with = "Option<serde_json::Value>")]
    pub value: Option<toml::Value>,
}

/// How a predicate compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Equal.
    #[default]
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers).
    Gt,
    /// Greater than or equal (numbers).
    Ge,
    /// Less than (numbers).
    Lt,
    /// Less than or equal (numbers).
    Le,
    /// The string contains `value`, or the array contains an element equal to it.
    Contains,
    /// The pointer resolves to anything.
    Exists,
}

/// `conditional = { if = {...}, then = "a", else = "b" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditional {
    /// The test.
    #[serde(rename = "if")]
    pub test: Option<Predicate>,
    /// The step when the test holds.
    #[schemars(with = "Option<String>")]
    pub then: Option<StepRef>,
    /// The step otherwise; without it the input passes through unchanged.
    #[serde(rename = "else")]
    #[schemars(with = "Option<String>")]
    pub otherwise: Option<StepRef>,
}

/// `router = { routes = {...}, by = "/pointer" | classifier = "primitive", default = "route" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Router {
    /// Route names and the step each one runs.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub routes: BTreeMap<String, StepRef>,
    /// A JSON pointer into the input whose string value names the route.
    #[schemars(with = "Option<String>")]
    pub by: Option<Spanned<String>>,
    /// A primitive whose output (a JSON string, or `{"route": …}`) names the route.
    #[schemars(with = "Option<String>")]
    pub classifier: Option<Spanned<String>>,
    /// The route taken when the rule or classifier names none of `routes`.
    #[schemars(with = "Option<String>")]
    pub default: Option<Spanned<String>>,
}

/// `retry = { step = "a", max_attempts = 3, … }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// The step to retry.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// Attempts in all, the first included.
    #[serde(default = "defaults::attempts")]
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time, with jitter.
    #[serde(default = "defaults::backoff_ms")]
    pub backoff_ms: u64,
    /// The longest delay between attempts.
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Also retry traps (by default only retryable guest errors and deadline overruns).
    #[serde(default)]
    pub retry_traps: bool,
}

/// `timeout = { step = "a", ms = 500 }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// The step to bound.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// Its deadline, in milliseconds.
    pub ms: Option<u64>,
}

/// `cache = { step = "a", ttl_ms = 60000, … }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// The step whose outputs are cached.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// How long an entry stays valid, in milliseconds.
    pub ttl_ms: Option<u64>,
    /// Entries kept at most (least recently used go first).
    #[serde(default = "defaults::cache_entries")]
    pub max_entries: usize,
    /// Bytes of outputs kept at most.
    #[serde(default = "defaults::cache_bytes")]
    pub max_bytes: usize,
    /// Context `data` keys that are part of the key besides the input (the tenant always is).
    #[serde(default)]
    pub key_data: Vec<String>,
}

/// `circuit_breaker = { step = "a", failures = 5, window_ms = 10000, cooldown_ms = 30000 }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// The step guarded.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// Failures within `window_ms` that open the breaker.
    #[serde(default = "defaults::breaker_failures")]
    pub failures: u32,
    /// The window failures are counted in, in milliseconds.
    #[serde(default = "defaults::breaker_window_ms")]
    pub window_ms: u64,
    /// How long the breaker stays open before letting one call through, in milliseconds.
    #[serde(default = "defaults::breaker_cooldown_ms")]
    pub cooldown_ms: u64,
}

/// `saga = { steps = [...], compensate = { step = "undo" } }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Saga {
    /// The steps, in order, output to input.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub steps: Vec<StepRef>,
    /// For a step, the primitive that undoes it; it gets that step's input and output.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub compensate: BTreeMap<String, Spanned<String>>,
}

mod defaults {
    pub fn attempts() -> u32 {
        3
    }
    pub fn backoff_ms() -> u64 {
        100
    }
    pub fn max_backoff_ms() -> u64 {
        5_000
    }
    pub fn cache_entries() -> usize {
        1_000
    }
    pub fn cache_bytes() -> usize {
        16 << 20
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_window_ms() -> u64 {
        10_000
    }
    pub fn breaker_cooldown_ms() -> u64 {
        30_000
    }
}

impl Step {
    /// The kinds given, by their key; a valid step has exactly one.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        let mut add = |present: bool, key: &'static str| {
            if present {
                kinds.push(key);
            }
        };
        add(self.primitive.is_some(), "primitive");
        add(self.sequential.is_some(), "sequential");
        add(self.parallel.is_some(), "parallel");
        add(self.conditional.is_some(), "conditional");
        add(self.router.is_some(), "router");
        add(self.retry.is_some(), "retry");
        add(self.fallback.is_some(), "fallback");
        add(self.timeout.is_some(), "timeout");
        add(self.cache.is_some(), "cache");
        add(self.circuit_breaker.is_some(), "circuit_breaker");
        add(self.saga.is_some(), "saga");
        add(self.url.is_some(), "url");
        kinds
    }

    /// The steps this one runs, with the key path each reference sits at.
    pub fn children(&self) -> Vec<(String, &StepRef)> {
        let mut out: Vec<(String, &StepRef)> = Vec::new();
        if let Some(refs) = &self.sequential {
            out.extend(refs.iter().enumerate().map(|(i, r)| (format!("sequential[{i}]"), r)));
        }
        if let Some(p) = &self.parallel {
            out.extend(
                p.branches
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("parallel.branches[{i}]"), r)),
            );
            out.extend(p.named.iter().map(|(k, r)| (format!("parallel.named.{k}"), r)));
        }
        if let Some(c) = &self.conditional {
            if let Some(r) = &c.then {
                out.push(("conditional.then".into(), r));
            }
            if let Some(r) = &c.otherwise {
                out.push(("conditional.else".into(), r));
            }
        }
        if let Some(r) = &self.router {
            out.extend(r.routes.iter().map(|(k, s)| (format!("router.routes.{k}"), s)));
        }
        if let Some(r) = self.retry.as_ref().and_then(|r| r.step.as_ref()) {
            out.push(("retry.step".into(), r));
        }
        if let Some(refs) = &self.fallback {
            out.extend(refs.iter().enumerate().map(|(i, r)| (format!("fallback[{i}]"), r)));
        }
        if let Some(r) = self.timeout.as_ref().and_then(|t| t.step.as_ref()) {
            out.push(("timeout.step".into(), r));
        }
        if let Some(r) = self.cache.as_ref().and_then(|c| c.step.as_ref()) {
            out.push(("cache.step".into(), r));
        }
        if let Some(r) = self.circuit_breaker.as_ref().and_then(|b| b.step.as_ref()) {
            out.push(("circuit_breaker.step".into(), r));
        }
        if let Some(s) = &self.saga {
            out.extend(s.steps.iter().enumerate().map(|(i, r)| (format!("saga.steps[{i}]"), r)));
        }
        out
    }
}
