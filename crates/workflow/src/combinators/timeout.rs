//! `timeout = { step = "a", ms = 500 }`: a deadline for a step and everything under it.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, Scope, StepCall, StepRef, StepResult, required};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use std::ops::Range;
use std::time::{Duration, Instant};
use tta_core::bindings::Value;
use tta_core::error::{ErrorClass, StepError, StepErrorKind};

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

/// How long after a timeout step's deadline its subtree is dropped if it has not stopped.
const TIMEOUT_GRACE: Duration = Duration::from_millis(250);

impl Definition for Timeout {
    fn key(&self) -> &'static str {
        "timeout"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.step.iter().map(|r| ("timeout.step".into(), r)).collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span.clone(),
            format!("{at}.timeout.step"),
            self.step.is_some(),
            "`step`, the step to bound",
        );
        match self.ms {
            None => c.need(
                span,
                format!("{at}.timeout.ms"),
                false,
                "`ms`, the deadline in milliseconds",
            ),
            Some(0) => c.report(span, format!("{at}.timeout.ms"), "must be at least 1"),
            Some(_) => {}
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.combinator(Deadline {
            step: cx.at(required(cx, self.step.as_ref())?),
            limit: Duration::from_millis(self.ms.unwrap_or(1)),
        })
    }
}

struct Deadline {
    step: usize,
    limit: Duration,
}

impl Combinator for Deadline {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let limit = self.limit;
            let deadline = Instant::now() + limit;
            let inner = Scope {
                deadline: Some(scope.deadline.map_or(deadline, |d| d.min(deadline))),
                ..scope
            };
            span.attr(
                "timeout.ms",
                Value::Int(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            );
            // Calls stop themselves at the deadline (epoch interruption) and report it; the
            // timer is only a backstop for host-side waits, with a little grace.
            let result = match tokio::time::timeout(limit + TIMEOUT_GRACE, run.step(self.step, input, inner)).await {
                Ok(result) => result,
                Err(_) => Err(StepError {
                    retryable: true,
                    ..StepError::new(
                        name,
                        StepErrorKind::Call(ErrorClass::DeadlineExceeded),
                        format!("took longer than {} ms", limit.as_millis()),
                    )
                }),
            };
            if let Err(e) = &result
                && e.kind == StepErrorKind::Call(ErrorClass::DeadlineExceeded)
                && Instant::now() >= deadline
            {
                let (workflow, tenant) = run.labels();
                run.metrics()
                    .timeout_exceeded
                    .with_label_values(&[workflow, name, tenant])
                    .inc();
                span.attr("timeout.exceeded", Value::Boolean(true));
            }
            result
        })
    }
}
