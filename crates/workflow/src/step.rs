//! What every kind of step is built from, below the driver and the combinators alike: the
//! two traits of a kind ([`Definition`], [`Combinator`]), what a running combinator may
//! ask of its run ([`Driver`]), the compiled form of a step, and the span and scope a step
//! runs in. Nothing here names a combinator or the driver's types, so imports run one way:
//! `definition` → `combinators/*` → `step` ← `validate`, `plan`, `run`.

use super::check::{Checker, Problem};
use super::metrics::WorkflowMetrics;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use toml::Spanned;
use tta_core::bindings::Value;
use tta_core::error::StepError;
use tta_core::report::{GuestSpanRecord, SpanEvent};
use tta_core::trace_context::new_span_id;
use tta_runtime::invocation::Invocation;
use tta_runtime::primitive::Primitive;
use tta_runtime::registry::Registry;

/// A name of a step, with where it appears in the file.
pub type StepRef = Spanned<String>;

/// A kind of step as the file declares it.
pub(crate) trait Definition {
    /// Its key in the file.
    fn key(&self) -> &'static str;

    /// The `workflow.step.kind` of its span.
    fn span_kind(&self) -> &'static str {
        self.key()
    }

    /// The steps it runs, each with the key path it sits at below the step
    /// (`retry.step`, `sequential[1]`); the driver checks that they exist and form no cycle.
    fn children(&self) -> Vec<(String, &StepRef)> {
        Vec::new()
    }

    /// Reports its own problems; `at` is the step's key path (`steps.<name>`), `span` its
    /// place in the file.
    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>);

    /// Its compiled form, against the loaded primitives.
    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem>;
}

/// A combinator compiled to run: it runs its children through its [`Driver`].
pub(crate) trait Combinator: Send + Sync {
    /// Runs one step of this kind.
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult>;
}

/// One run of a combinator step: the step `name` on `input` under `scope`, its decisions
/// recorded on `span`, its children run through `run`.
pub(crate) struct StepCall<'a> {
    pub(crate) run: &'a dyn Driver,
    pub(crate) name: &'a str,
    pub(crate) input: Vec<u8>,
    pub(crate) scope: Scope,
    pub(crate) span: &'a mut StepSpan,
}

/// What compiling one step can look up: the other steps' places and the loaded primitives.
pub(crate) struct Compiler<'a> {
    /// The step's name.
    pub(crate) name: &'a str,
    /// The step's `api_key_env`, which a remote leaf reads.
    pub(crate) api_key_env: Option<&'a str>,
    pub(crate) index: &'a HashMap<&'a str, usize>,
    pub(crate) registry: &'a Registry,
}

impl Compiler<'_> {
    /// The index of the step `r` names (validation has checked that it exists).
    pub(crate) fn at(&self, r: &StepRef) -> usize {
        self.index.get(r.get_ref().as_str()).copied().unwrap_or(0)
    }

    /// The loaded primitive `name` (validation has checked that it is loaded).
    pub(crate) fn primitive(&self, name: &str) -> Result<Arc<Primitive>, Problem> {
        self.registry.get(name).ok_or_else(|| self.missing())
    }

    /// The problem of a step validation should have refused: unreachable in practice.
    pub(crate) fn missing(&self) -> Problem {
        Problem {
            line: 1,
            column: 1,
            path: format!("steps.{}", self.name),
            message: "incomplete step".into(),
        }
    }

    /// The compiled form of a combinator.
    pub(crate) fn combinator(&self, combinator: impl Combinator + 'static) -> Result<Kind, Problem> {
        Ok(Kind::Combinator(Box::new(combinator)))
    }
}

/// A required reference, or the problem of its absence (validation reports it first).
pub(crate) fn required<'r>(cx: &Compiler<'_>, r: Option<&'r StepRef>) -> Result<&'r StepRef, Problem> {
    r.ok_or_else(|| cx.missing())
}

/// A compiled step: a call of a loaded primitive, or a combinator over other steps.
pub(crate) enum Kind {
    Primitive(Arc<Primitive>),
    Combinator(Box<dyn Combinator>),
}

/// What a running combinator may ask of its run.
pub(crate) trait Driver: Sync {
    /// Runs step `index` on `input` under `scope`.
    fn step<'s>(&'s self, index: usize, input: Vec<u8>, scope: Scope) -> BoxFuture<'s, StepResult>;

    /// Calls `plugin` on `input` as step `step` under `scope`.
    fn call<'s>(
        &'s self,
        step: &'s str,
        primitive: &'s Arc<Primitive>,
        input: &'s [u8],
        scope: &'s Scope,
    ) -> BoxFuture<'s, Result<Vec<u8>, StepError>>;

    /// Ends `span` with `result` and keeps it for the run's report.
    fn finish(&self, span: StepSpan, result: &StepResult);

    /// The `workflow_name` and `tenant` labels of this run's metrics.
    fn labels(&self) -> (&str, &str);

    /// The engine's instruments.
    fn metrics(&self) -> &WorkflowMetrics;

    /// The name of step `index`.
    fn step_name(&self, index: usize) -> &str;

    /// The workflow's name.
    fn workflow_name(&self) -> &str;

    /// The tenant the run is for.
    fn tenant(&self) -> &str;

    /// The run's own invocation.
    fn invocation(&self) -> &Invocation;

    /// The store the host's cluster shares, if it is in one.
    fn shared_store(&self) -> Option<&std::sync::Arc<dyn tta_core::shared_store::SharedStore>>;
}

/// The longest value `set_data` copies into the context, and a step's own `data` may hold.
pub(crate) const MAX_DATA_VALUE: usize = 8 * 1024;

/// The context `data` a step passes on.
pub(crate) type Data = Vec<(String, String)>;
/// A step's output and the data after it, or why it failed.
pub(crate) type StepResult = Result<(Vec<u8>, Data), StepError>;

/// Where a step runs: under which span, by when, with which data.
#[derive(Clone)]
pub(crate) struct Scope {
    /// The span the step's spans and calls are children of.
    pub(crate) parent: u64,
    /// When the step must be done, if a `timeout` above it says.
    pub(crate) deadline: Option<Instant>,
    /// The context data the step's calls see.
    pub(crate) data: Data,
}

/// A span being recorded for a combinator step.
pub(crate) struct StepSpan {
    pub(crate) record: GuestSpanRecord,
}

impl StepSpan {
    /// A span of step `name` of kind `kind`, a child of `parent`, starting now.
    pub(crate) fn new(name: &str, kind: &str, parent: u64) -> Self {
        StepSpan {
            record: GuestSpanRecord {
                span_id: new_span_id(),
                parent_span_id: parent,
                name: name.to_owned(),
                start: SystemTime::now(),
                end: None,
                attributes: vec![
                    ("workflow.step".into(), Value::Str(name.to_owned())),
                    ("workflow.step.kind".into(), Value::Str(kind.to_owned())),
                ],
                events: Vec::new(),
                error: None,
                client: false,
                fuel: None,
            },
        }
    }

    /// Its span id.
    pub(crate) fn id(&self) -> u64 {
        self.record.span_id
    }

    /// Adds an attribute.
    pub(crate) fn attr(&mut self, key: &str, value: Value) {
        self.record.attributes.push((key.to_owned(), value));
    }

    /// Adds an event, now.
    pub(crate) fn event(&mut self, name: &str, attributes: Vec<(String, Value)>) {
        self.record.events.push(SpanEvent {
            name: name.to_owned(),
            time: SystemTime::now(),
            attributes,
        });
    }
}

/// A string attribute value.
pub(crate) fn text(value: &str) -> Value {
    Value::Str(value.to_owned())
}

/// The output as JSON: parsed if it is JSON, else a JSON string of its text.
pub(crate) fn as_json(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Json::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// `value` as JSON bytes.
pub(crate) fn json_bytes(value: &Json) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
