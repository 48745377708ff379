//! The driver of a compiled workflow: each combinator step is a span with its decisions on
//! it (what a combinator decides is its own file's, under `combinators/`), each leaf is a
//! primitive call under its step's span, and the same context (correlation id, trace,
//! tenant, data) reaches every guest. Steps recurse through boxed futures, so depth costs
//! heap, not stack.

use crate::metrics::WorkflowMetrics;
use crate::plan::Workflow;
use crate::step::{Data, Driver, Kind, MAX_DATA_VALUE, Scope, StepCall, StepResult, StepSpan, text};
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tta_core::error::StepError;
use tta_core::report::{CallReport, GuestSpanRecord, WorkflowReport};
use tta_runtime::host::CallOptions;
use tta_runtime::invocation::Invocation;
use tta_runtime::primitive::Primitive;

/// The result of one run and its report.
#[derive(Debug)]
pub struct WorkflowOutcome {
    /// The workflow's output, or why there is none.
    pub output: Result<Vec<u8>, StepError>,
    /// Every span and call of the run; shared with the exporters.
    pub report: Arc<WorkflowReport>,
}

#[derive(Default)]
struct Collected {
    spans: Vec<GuestSpanRecord>,
    calls: Vec<CallReport>,
}

/// One run of a workflow: what its steps share.
pub(crate) struct Run<'w> {
    wf: &'w Workflow,
    /// The run's own invocation: its ids, tenant and limits; each leaf's is a step of it.
    invocation: Invocation,
    /// The tenant as a metric label (bounded), looked up once per run.
    tenant_label: String,
    collected: Mutex<Collected>,
    /// Told of every step that ends, with whether it succeeded ([`Workflow::run_observed`]).
    on_step: Option<&'w OnStep<'w>>,
}

/// What [`Workflow::run_observed`] calls as each step ends: its name and whether it succeeded.
pub type OnStep<'a> = dyn Fn(&str, bool) + Send + Sync + 'a;

impl Workflow {
    /// Runs the workflow once on `input`.
    pub async fn run(&self, input: &[u8], options: CallOptions) -> WorkflowOutcome {
        self.run_inner(input, options, None).await
    }

    /// Runs the workflow once on `input`, calling `on_step` as each step (combinator or
    /// primitive call) ends: what the MCP server turns into progress notifications.
    pub async fn run_observed(&self, input: &[u8], options: CallOptions, on_step: &OnStep<'_>) -> WorkflowOutcome {
        self.run_inner(input, options, Some(on_step)).await
    }

    async fn run_inner(&self, input: &[u8], options: CallOptions, on_step: Option<&OnStep<'_>>) -> WorkflowOutcome {
        let host = &self.host;
        let invocation = host.invocation(options);
        let telemetry = host.telemetry();
        let metrics = telemetry.metrics();
        let tenant_label = metrics.tenant_label(&invocation.tenant);
        let run = Run {
            wf: self,
            invocation: invocation.clone(),
            tenant_label: tenant_label.clone(),
            collected: Mutex::new(Collected::default()),
            on_step,
        };
        let active = self.metrics.active_workflows.with_label_values(&[&tenant_label]);
        active.inc();
        let start = SystemTime::now();
        let began = Instant::now();
        let scope = Scope {
            parent: invocation.ids.span_id,
            deadline: None,
            data: invocation.data.clone(),
        };
        let result = run.step(self.root, input.to_vec(), scope).await;
        let wall = began.elapsed();
        active.dec();
        let status = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .workflow_executions
            .with_label_values(&[&self.name, status, &tenant_label])
            .inc();
        self.metrics
            .workflow_duration
            .with_label_values(&[&self.name, &tenant_label])
            .observe(wall.as_secs_f64());
        let collected = run
            .collected
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let report = Arc::new(WorkflowReport {
            workflow: self.name.clone(),
            correlation_id: invocation.correlation_id,
            tenant: invocation.tenant,
            ids: invocation.ids,
            remote_parent: invocation.remote_parent,
            tracestate: invocation.tracestate,
            start,
            wall,
            error: result.as_ref().err().cloned(),
            spans: collected.spans,
            calls: collected.calls,
            attributes: invocation.attributes,
        });
        telemetry.export_workflow(&report);
        WorkflowOutcome {
            output: result.map(|(output, _)| output),
            report,
        }
    }
}

impl Driver for Run<'_> {
    fn finish(&self, mut span: StepSpan, result: &StepResult) {
        span.record.end = Some(SystemTime::now());
        if let Err(e) = result {
            span.record.error = Some(e.to_string());
            span.attr("error.type", text(e.error_type()));
        }
        self.collected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spans
            .push(span.record);
    }

    fn labels(&self) -> (&str, &str) {
        (&self.wf.name, &self.tenant_label)
    }

    fn metrics(&self) -> &WorkflowMetrics {
        &self.wf.metrics
    }

    fn step_name(&self, index: usize) -> &str {
        &self.wf.nodes[index].name
    }

    fn workflow_name(&self) -> &str {
        &self.wf.name
    }

    fn tenant(&self) -> &str {
        &self.invocation.tenant
    }

    fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    fn shared_store(&self) -> Option<&Arc<dyn tta_core::shared_store::SharedStore>> {
        self.wf.host.shared_store()
    }

    /// Calls `plugin` on `input` as step `step` under `scope`.
    fn call<'s>(
        &'s self,
        step: &'s str,
        primitive: &'s Arc<Primitive>,
        input: &'s [u8],
        scope: &'s Scope,
    ) -> BoxFuture<'s, Result<Vec<u8>, StepError>> {
        Box::pin(async move {
            let invocation = self.invocation.step(scope.parent, scope.data.clone(), scope.deadline);
            let (result, report) = self.wf.host.execute(primitive, invocation, input).await;
            let result = result.map_err(|e| StepError {
                retry_after: report.retry_after(),
                ..StepError::from_call(step, &e)
            });
            self.collected
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .calls
                .push(report);
            result
        })
    }

    fn step<'s>(&'s self, index: usize, input: Vec<u8>, scope: Scope) -> BoxFuture<'s, StepResult> {
        Box::pin(GrowStack(Box::pin(async move {
            let node = &self.wf.nodes[index];
            let outer = (!node.data.is_empty()).then(|| scope.data.clone());
            let mut scope = scope;
            for (key, value) in &node.data {
                scope.data.retain(|(k, _)| k != key);
                scope.data.push((key.clone(), value.clone()));
            }
            let result = match &node.kind {
                Kind::Primitive(primitive) => self
                    .call(&node.name, primitive, &input, &scope)
                    .await
                    .map(|output| (output, scope.data.clone())),
                Kind::Combinator(combinator) => {
                    let mut span = StepSpan::new(&node.name, node.span_kind, scope.parent);
                    let inner = Scope {
                        parent: span.id(),
                        ..scope.clone()
                    };
                    let result = combinator
                        .run(StepCall {
                            run: self,
                            name: &node.name,
                            input,
                            scope: inner,
                            span: &mut span,
                        })
                        .await;
                    self.finish(span, &result);
                    result
                }
            };
            if let Some(on_step) = self.on_step {
                on_step(&node.name, result.is_ok());
            }
            result.map(|(output, data)| {
                let data = match outer {
                    Some(outer) => scoped(&node.data, data, &outer),
                    None => data,
                };
                let data = set_data(&node.set_data, &output, data);
                (output, data)
            })
        })))
    }
}

/// Polls its future on a fresh stack segment when the current one runs low: nested steps
/// poll each other recursively, and a deeply nested workflow would otherwise overflow.
struct GrowStack<F>(std::pin::Pin<Box<F>>);

/// Room left on the stack below which a new segment is taken, and the segment's size.
const STACK_RED_ZONE: usize = 256 * 1024;
const STACK_SEGMENT: usize = 2 * 1024 * 1024;

impl<F: std::future::Future> std::future::Future for GrowStack<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let inner = self.0.as_mut();
        stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, move || inner.poll(cx))
    }
}

/// The data after a step with its own `data`: those keys are the step's alone, so they
/// go back to the values they had before it (or away).
fn scoped(own: &[(String, String)], mut data: Data, outer: &Data) -> Data {
    data.retain(|(k, _)| !own.iter().any(|(own, _)| own == k));
    data.extend(
        outer
            .iter()
            .filter(|(k, _)| own.iter().any(|(own, _)| own == k))
            .cloned(),
    );
    data
}

/// Copies values of `output` (JSON) at each pointer into `data`.
fn set_data(pointers: &[(String, String)], output: &[u8], mut data: Data) -> Data {
    if pointers.is_empty() {
        return data;
    }
    let Ok(document) = serde_json::from_slice::<Json>(output) else {
        return data;
    };
    for (key, pointer) in pointers {
        if let Some(value) = document.pointer(pointer) {
            let mut value = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            if value.len() > MAX_DATA_VALUE {
                let mut cut = MAX_DATA_VALUE;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
            }
            data.retain(|(k, _)| k != key);
            data.push((key.clone(), value));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_data_copies_values_by_pointer() {
        let data = set_data(
            &[("category".into(), "/c".into()), ("count".into(), "/n".into())],
            br#"{"c":"billing","n":3}"#,
            vec![("category".into(), "old".into())],
        );
        assert_eq!(
            data,
            vec![("category".into(), "billing".into()), ("count".into(), "3".into())]
        );
    }

    #[test]
    fn a_steps_own_data_does_not_outlive_it() {
        let own = [
            ("model_tier".to_owned(), "large".to_owned()),
            ("fresh".to_owned(), "x".to_owned()),
        ];
        let outer = vec![
            ("model_tier".to_owned(), "small".to_owned()),
            ("kept".to_owned(), "1".to_owned()),
        ];
        let after = vec![
            ("kept".to_owned(), "1".to_owned()),
            ("model_tier".to_owned(), "large".to_owned()),
            ("fresh".to_owned(), "x".to_owned()),
            ("set".to_owned(), "2".to_owned()),
        ];
        assert_eq!(
            scoped(&own, after, &outer),
            vec![
                ("kept".to_owned(), "1".to_owned()),
                ("set".to_owned(), "2".to_owned()),
                ("model_tier".to_owned(), "small".to_owned())
            ]
        );
    }
}
