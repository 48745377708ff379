//! `retry = { step = "a", max_attempts = 3, … }`: a step run again on retryable failures,
//! with exponential backoff and jitter (never less than a dependency's `Retry-After`), each
//! attempt a span of its own.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, Scope, StepCall, StepRef, StepResult, StepSpan, required};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use std::ops::Range;
use std::time::{Duration, Instant};
use tta_core::bindings::Value;
use tta_core::error::StepError;

/// `retry = { step = "a", max_attempts = 3, … }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// The step to retry.
    #[schemars(with = "Option<String>")]
    pub step: Option<StepRef>,
    /// Attempts in all, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest delay between attempts. A failed dependency's `Retry-After` (reported by
    /// the guest) is waited for when it is no longer than this, and ends the retries when it is.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Also retry traps (by default only retryable guest errors and deadline overruns).
    #[serde(default)]
    pub retry_traps: bool,
}

fn default_attempts() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    100
}

fn default_max_backoff_ms() -> u64 {
    5_000
}

impl Definition for Retry {
    fn key(&self) -> &'static str {
        "retry"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.step.iter().map(|r| ("retry.step".into(), r)).collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span.clone(),
            format!("{at}.retry.step"),
            self.step.is_some(),
            "`step`, the step to retry",
        );
        if self.max_attempts == 0 {
            c.report(
                span.clone(),
                format!("{at}.retry.max_attempts"),
                "must be at least 1 (the first attempt counts)",
            );
        }
        if self.backoff_ms > self.max_backoff_ms {
            c.report(
                span,
                format!("{at}.retry.backoff_ms"),
                "is larger than `max_backoff_ms`",
            );
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.combinator(Attempts {
            step: cx.at(required(cx, self.step.as_ref())?),
            max_attempts: self.max_attempts,
            backoff: Duration::from_millis(self.backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            retry_traps: self.retry_traps,
        })
    }
}

struct Attempts {
    step: usize,
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    retry_traps: bool,
}

impl Combinator for Attempts {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                let mut attempt_span = StepSpan::new(&format!("{name}.attempt"), "retry.attempt", scope.parent);
                attempt_span.attr("retry.attempt", Value::Int(i64::from(attempt)));
                let mut data = scope.data.clone();
                data.retain(|(k, _)| k != "retry.attempt");
                data.push(("retry.attempt".into(), attempt.to_string()));
                let inner = Scope {
                    parent: attempt_span.id(),
                    deadline: scope.deadline,
                    data,
                };
                let result = run.step(self.step, input.clone(), inner).await;
                if let Err(StepError {
                    retry_after: Some(after),
                    ..
                }) = &result
                {
                    attempt_span.attr(
                        "retry.retry_after_ms",
                        Value::Int(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
                    );
                }
                run.finish(attempt_span, &result);
                if attempt > 1 {
                    let (workflow, tenant) = run.labels();
                    run.metrics()
                        .retry_attempts
                        .with_label_values(&[workflow, name, tenant])
                        .inc();
                }
                let error = match result {
                    Ok(done) => {
                        span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                        return Ok(done);
                    }
                    Err(e) => e,
                };
                let retryable = error.retryable || (self.retry_traps && error.trap);
                if !retryable || attempt >= self.max_attempts {
                    span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                    span.attr("retry.exhausted", Value::Boolean(retryable));
                    return Err(error);
                }
                let base = self
                    .backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(self.max_backoff);
                let mut delay = base.mul_f64(0.5 + rand::random::<f64>() * 0.5);
                // A dependency's own `Retry-After` is a floor; one longer than this step's
                // `max_backoff_ms` is not waited for.
                if let Some(after) = error.retry_after {
                    if after > self.max_backoff {
                        span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                        span.attr("retry.exhausted", Value::Boolean(false));
                        return Err(error);
                    }
                    delay = delay.max(after);
                }
                if scope.deadline.is_some_and(|d| Instant::now() + delay >= d) {
                    span.attr("retry.attempts", Value::Int(i64::from(attempt)));
                    return Err(error);
                }
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        })
    }
}
