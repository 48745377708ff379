//! `fallback = ["a", "b"]`: alternatives tried in order until one succeeds.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, StepCall, StepRef, StepResult, text};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::ops::Range;
use tta_core::bindings::Value;
use tta_core::error::{StepError, StepErrorKind};

/// The alternatives of a fallback, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Fallback(pub Vec<StepRef>);

impl Definition for Fallback {
    fn key(&self) -> &'static str {
        "fallback"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("fallback[{i}]"), r))
            .collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span,
            format!("{at}.fallback"),
            !self.0.is_empty(),
            "at least one step to try",
        );
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.combinator(Alternatives {
            steps: self.0.iter().map(|r| cx.at(r)).collect(),
        })
    }
}

struct Alternatives {
    steps: Vec<usize>,
}

impl Combinator for Alternatives {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let mut errors = Vec::new();
            for (position, step) in self.steps.iter().enumerate() {
                match run.step(*step, input.clone(), scope.clone()).await {
                    Ok(done) => {
                        let used = run.step_name(*step);
                        span.attr("fallback.used", text(used));
                        span.attr("fallback.index", Value::Int(position as i64));
                        if position > 0 {
                            let (workflow, tenant) = run.labels();
                            run.metrics()
                                .fallback_used
                                .with_label_values(&[workflow, used, tenant])
                                .inc();
                        }
                        return Ok(done);
                    }
                    Err(e) => errors.push(e),
                }
            }
            let last = errors.last().cloned();
            Err(StepError {
                step: name.to_owned(),
                kind: StepErrorKind::AllFailed,
                message: format!(
                    "all {} alternatives failed: {}",
                    errors.len(),
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                ),
                retryable: last.as_ref().is_some_and(|e| e.retryable),
                trap: false,
                retry_after: last.and_then(|e| e.retry_after),
            })
        })
    }
}
