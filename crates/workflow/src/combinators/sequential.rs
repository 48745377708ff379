//! `sequential = ["a", "b"]`: steps in order, each one's output the next one's input.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, Scope, StepCall, StepRef, StepResult};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::ops::Range;

/// The steps of a sequence.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Sequential(pub Vec<StepRef>);

impl Definition for Sequential {
    fn key(&self) -> &'static str {
        "sequential"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("sequential[{i}]"), r))
            .collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span,
            format!("{at}.sequential"),
            !self.0.is_empty(),
            "at least one step to run",
        );
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.combinator(Sequence {
            steps: self.0.iter().map(|r| cx.at(r)).collect(),
        })
    }
}

struct Sequence {
    steps: Vec<usize>,
}

impl Combinator for Sequence {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall { run, input, scope, .. } = step;
        Box::pin(async move {
            let mut current = (input, scope.data.clone());
            for step in &self.steps {
                let inner = Scope {
                    data: current.1,
                    ..scope.clone()
                };
                current = run.step(*step, current.0, inner).await?;
            }
            Ok(current)
        })
    }
}
