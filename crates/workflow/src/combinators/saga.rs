//! `saga = { steps = [...], compensate = { step = "undo" } }`: steps in order; on a failure
//! the completed ones are undone in reverse order by their compensating primitives.

use crate::check::{Checker, Problem};
use crate::step::{
    Combinator, Compiler, Definition, Driver, Kind, Scope, StepCall, StepRef, StepResult, StepSpan, as_json,
    json_bytes, text,
};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;
use tta_core::error::StepError;
use tta_runtime::primitive::Primitive;

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

impl Definition for Saga {
    fn key(&self) -> &'static str {
        "saga"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("saga.steps[{i}]"), r))
            .collect()
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span,
            format!("{at}.saga.steps"),
            !self.steps.is_empty(),
            "at least one step",
        );
        for (name, undo) in &self.compensate {
            if !self.steps.iter().any(|r| r.get_ref() == name) {
                c.report(
                    undo.span(),
                    format!("{at}.saga.compensate.{name}"),
                    format!("`{name}` is not one of this saga's steps"),
                );
            }
            c.primitive_ref(&format!("{at}.saga.compensate.{name}"), undo);
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        let mut compensate = HashMap::new();
        for (position, r) in self.steps.iter().enumerate() {
            if let Some(undo) = self.compensate.get(r.get_ref()) {
                compensate.insert(position, cx.primitive(undo.get_ref())?);
            }
        }
        cx.combinator(Transaction {
            steps: self.steps.iter().map(|r| cx.at(r)).collect(),
            compensate,
        })
    }
}

struct Transaction {
    steps: Vec<usize>,
    compensate: HashMap<usize, Arc<Primitive>>,
}

impl Transaction {
    /// Undoes the `done` steps (position, input, output) in reverse order; says what was undone.
    async fn compensate(&self, run: &dyn Driver, scope: &Scope, done: &[(usize, Vec<u8>, Vec<u8>)]) -> Vec<String> {
        let mut undone = Vec::new();
        for (position, step_input, step_output) in done.iter().rev() {
            let Some(primitive) = self.compensate.get(position) else {
                continue;
            };
            let step_name = run.step_name(self.steps[*position]);
            let mut undo = StepSpan::new(&format!("{step_name}.compensate"), "compensation", scope.parent);
            let undo_scope = Scope {
                parent: undo.id(),
                ..scope.clone()
            };
            let payload = json_bytes(&serde_json::json!({
                "input": as_json(step_input),
                "output": as_json(step_output),
            }));
            let result = run
                .call(step_name, primitive, &payload, &undo_scope)
                .await
                .map(|o| (o, Vec::new()));
            undo.attr("compensation.of", text(step_name));
            let (workflow, tenant) = run.labels();
            run.metrics()
                .compensations
                .with_label_values(&[workflow, step_name, tenant])
                .inc();
            undone.push(format!(
                "{step_name}{}",
                if result.is_ok() { "" } else { " (compensation failed)" }
            ));
            run.finish(undo, &result);
        }
        undone
    }
}

impl Combinator for Transaction {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            input,
            scope,
            span,
            ..
        } = step;
        Box::pin(async move {
            let mut done: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
            let mut input = input;
            let mut data = scope.data.clone();
            for (position, step) in self.steps.iter().enumerate() {
                let inner = Scope {
                    data: data.clone(),
                    ..scope.clone()
                };
                match run.step(*step, input.clone(), inner).await {
                    Ok((output, next_data)) => {
                        done.push((position, input, output.clone()));
                        input = output;
                        data = next_data;
                    }
                    Err(error) => {
                        span.event("saga.compensating", vec![("failed_step".into(), text(&error.step))]);
                        let undone = self.compensate(run, &scope, &done).await;
                        return Err(StepError {
                            message: format!(
                                "{}; compensated: {}",
                                error.message,
                                if undone.is_empty() {
                                    "nothing".to_owned()
                                } else {
                                    undone.join(", ")
                                }
                            ),
                            ..error
                        });
                    }
                }
            }
            Ok((input, data))
        })
    }
}
