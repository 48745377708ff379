//! `parallel = { branches = [...] }` or `{ named = {...} }`: branches run concurrently on the
//! same input; their outputs combined into a JSON array, or an object by name.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, StepCall, StepRef, StepResult, as_json, json_bytes};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::ops::Range;
use tta_core::bindings::Value;
use tta_core::error::StepError;

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

impl Definition for Parallel {
    fn key(&self) -> &'static str {
        "parallel"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        let mut out: Vec<(String, &StepRef)> = self
            .branches
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("parallel.branches[{i}]"), r))
            .collect();
        out.extend(self.named.iter().map(|(k, r)| (format!("parallel.named.{k}"), r)));
        out
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        match (self.branches.is_empty(), self.named.is_empty()) {
            (true, true) => c.need(
                span,
                format!("{at}.parallel"),
                false,
                "`branches = [...]` or `named = { … }`",
            ),
            (false, false) => c.report(span, format!("{at}.parallel"), "give `branches` or `named`, not both"),
            _ => {}
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        let mut branches: Vec<(Option<String>, usize)> = self.branches.iter().map(|r| (None, cx.at(r))).collect();
        branches.extend(self.named.iter().map(|(k, r)| (Some(k.clone()), cx.at(r))));
        cx.combinator(Branches {
            branches,
            fail_fast: self.on_failure == FailurePolicy::FailFast,
        })
    }
}

struct Branches {
    branches: Vec<(Option<String>, usize)>,
    fail_fast: bool,
}

impl Combinator for Branches {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let branches = &self.branches;
            span.attr("parallel.branches", Value::Int(branches.len() as i64));
            let mut pending: FuturesUnordered<_> = branches
                .iter()
                .enumerate()
                .map(|(i, (_, step))| {
                    let future = run.step(*step, input.clone(), scope.clone());
                    async move { (i, future.await) }
                })
                .collect();
            let mut results: Vec<Option<StepResult>> = vec![None; branches.len()];
            while let Some((i, result)) = pending.next().await {
                if self.fail_fast
                    && let Err(e) = &result
                {
                    // Dropping the other branches cancels their calls.
                    span.attr("parallel.cancelled", Value::Int(pending.len() as i64));
                    return Err(e.clone());
                }
                results[i] = Some(result);
            }
            let mut errors = Vec::new();
            let mut outputs = Vec::new();
            let mut data = scope.data.clone();
            for result in results.into_iter().flatten() {
                match result {
                    Ok((output, branch_data)) => {
                        for (k, v) in branch_data {
                            if !data.iter().any(|(dk, dv)| *dk == k && *dv == v) {
                                data.retain(|(dk, _)| *dk != k);
                                data.push((k, v));
                            }
                        }
                        outputs.push(as_json(&output));
                    }
                    Err(e) => errors.push(e),
                }
            }
            if !errors.is_empty() {
                return Err(StepError {
                    step: name.to_owned(),
                    kind: errors[0].kind,
                    message: format!(
                        "{} of {} branches failed: {}",
                        errors.len(),
                        branches.len(),
                        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ),
                    retryable: errors.iter().all(|e| e.retryable),
                    trap: errors.iter().any(|e| e.trap),
                    retry_after: errors.iter().filter_map(|e| e.retry_after).max(),
                });
            }
            let combined = if branches.iter().all(|(n, _)| n.is_some()) {
                Json::Object(
                    branches
                        .iter()
                        .zip(outputs)
                        .map(|((n, _), o)| (n.clone().unwrap_or_default(), o))
                        .collect(),
                )
            } else {
                Json::Array(outputs)
            };
            Ok((json_bytes(&combined), data))
        })
    }
}
