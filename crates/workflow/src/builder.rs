//! Workflows composed in Rust: `primitive("a") >> primitive("b")` runs in sequence,
//! `primitive("a") | primitive("b")` in parallel, and methods add the other combinators
//! (`.retry(3)`, `.or(fallback)`, `.timeout_ms(500)`, `.cache_ms(60_000)`, …). A [`Flow`]
//! compiles to the same plan a workflow file does, through the same validation.
//!
//! ```no_run
//! # async fn demo(host: &tta_runtime::Host) -> Result<(), Box<dyn std::error::Error>> {
//! use tta_workflow::builder::{primitive, router_by};
//! let flow = router_by("/tier", [("fast", primitive("uppercase")), ("slow", primitive("word-count"))], Some("slow"))
//!     >> (primitive("echo") | primitive("word-count").retry(3));
//! let workflow = flow.compile("demo", host)?;
//! let outcome = workflow.run(br#"{"tier": "fast", "text": "a b"}"#, Default::default()).await;
//! # Ok(()) }
//! ```

use crate::combinators::cache::{Cache, Store};
use crate::combinators::circuit_breaker::CircuitBreaker;
use crate::combinators::conditional::{Comparison, Conditional, Predicate};
use crate::combinators::fallback::Fallback;
use crate::combinators::parallel::{FailurePolicy, Parallel};
use crate::combinators::primitive::PrimitiveName;
use crate::combinators::retry::Retry;
use crate::combinators::router::Router;
use crate::combinators::saga::Saga;
use crate::combinators::sequential::Sequential;
use crate::combinators::timeout::Timeout;
use crate::definition::{Step, WorkflowFile};
use crate::plan::{CompileError, Workflow};
use std::collections::BTreeMap;
use std::ops::{BitOr, Shr};
use toml::Spanned;
use tta_runtime::host::Host;

/// A workflow, or a part of one, built in code.
#[derive(Debug, Clone)]
pub struct Flow {
    node: Node,
    name: Option<String>,
    set_data: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum Node {
    Primitive(String),
    Sequential(Vec<Flow>),
    Parallel(Vec<(Option<String>, Flow)>, FailurePolicy),
    Conditional(
        String,
        Comparison,
        Option<serde_json::Value>,
        Box<Flow>,
        Option<Box<Flow>>,
    ),
    Router(Choice, Vec<(String, Flow)>, Option<String>),
    Retry(Box<Flow>, u32, u64, bool),
    Fallback(Vec<Flow>),
    Timeout(Box<Flow>, u64),
    Cache(Box<Flow>, u64, usize),
    Breaker(Box<Flow>, u32, u64, u64),
    Saga(Vec<(Flow, Option<String>)>),
}

#[derive(Debug, Clone)]
enum Choice {
    Pointer(String),
    Classifier(String),
}

fn flow(node: Node) -> Flow {
    Flow {
        node,
        name: None,
        set_data: Vec::new(),
    }
}

/// A call of the loaded primitive `name`.
pub fn primitive(name: &str) -> Flow {
    flow(Node::Primitive(name.to_owned()))
}

/// Steps in order, each one's output the next one's input (also `a >> b`).
pub fn sequential(steps: impl IntoIterator<Item = Flow>) -> Flow {
    flow(Node::Sequential(steps.into_iter().collect()))
}

/// Branches run concurrently on the same input; outputs as a JSON array (also `a | b`).
pub fn parallel(branches: impl IntoIterator<Item = Flow>, policy: FailurePolicy) -> Flow {
    flow(Node::Parallel(
        branches.into_iter().map(|b| (None, b)).collect(),
        policy,
    ))
}

/// Named branches, outputs as a JSON object by name.
pub fn parallel_named<'a>(branches: impl IntoIterator<Item = (&'a str, Flow)>, policy: FailurePolicy) -> Flow {
    flow(Node::Parallel(
        branches.into_iter().map(|(n, b)| (Some(n.to_owned()), b)).collect(),
        policy,
    ))
}

/// `then` when the value at `pointer` compares to `value` by `op`, else `otherwise` (or the input unchanged).
pub fn when(
    pointer: &str,
    op: Comparison,
    value: Option<serde_json::Value>,
    then: Flow,
    otherwise: Option<Flow>,
) -> Flow {
    flow(Node::Conditional(
        pointer.to_owned(),
        op,
        value,
        Box::new(then),
        otherwise.map(Box::new),
    ))
}

/// A route by the string at `pointer` in the input.
pub fn router_by<'a>(pointer: &str, routes: impl IntoIterator<Item = (&'a str, Flow)>, default: Option<&str>) -> Flow {
    flow(Node::Router(
        Choice::Pointer(pointer.to_owned()),
        routes.into_iter().map(|(n, f)| (n.to_owned(), f)).collect(),
        default.map(str::to_owned),
    ))
}

/// A route named by the output of the `classifier` primitive.
pub fn router_classified<'a>(
    classifier: &str,
    routes: impl IntoIterator<Item = (&'a str, Flow)>,
    default: Option<&str>,
) -> Flow {
    flow(Node::Router(
        Choice::Classifier(classifier.to_owned()),
        routes.into_iter().map(|(n, f)| (n.to_owned(), f)).collect(),
        default.map(str::to_owned),
    ))
}

/// Steps in order; on a failure, the compensating primitives of completed steps run in reverse.
pub fn saga<'a>(steps: impl IntoIterator<Item = (Flow, Option<&'a str>)>) -> Flow {
    flow(Node::Saga(
        steps.into_iter().map(|(f, c)| (f, c.map(str::to_owned))).collect(),
    ))
}

impl Flow {
    /// Names this step (its span name; the key of its metrics); otherwise a name is made up.
    pub fn named(mut self, name: &str) -> Flow {
        self.name = Some(name.to_owned());
        self
    }

    /// Copies the value at `pointer` of this step's JSON output into `data[key]` for later steps.
    pub fn set_data(mut self, key: &str, pointer: &str) -> Flow {
        self.set_data.push((key.to_owned(), pointer.to_owned()));
        self
    }

    /// Retries retryable failures, `max_attempts` in all, from a 100 ms backoff.
    pub fn retry(self, max_attempts: u32) -> Flow {
        flow(Node::Retry(Box::new(self), max_attempts, 100, false))
    }

    /// Retries with a given first backoff, traps included if `retry_traps`.
    pub fn retry_with(self, max_attempts: u32, backoff_ms: u64, retry_traps: bool) -> Flow {
        flow(Node::Retry(Box::new(self), max_attempts, backoff_ms, retry_traps))
    }

    /// Falls back to `other` when this fails.
    pub fn or(self, other: Flow) -> Flow {
        match self.node {
            Node::Fallback(mut list) if self.name.is_none() && self.set_data.is_empty() => {
                list.push(other);
                flow(Node::Fallback(list))
            }
            _ => flow(Node::Fallback(vec![self, other])),
        }
    }

    /// Bounds this step to `ms` milliseconds.
    pub fn timeout_ms(self, ms: u64) -> Flow {
        flow(Node::Timeout(Box::new(self), ms))
    }

    /// Caches this step's outputs for `ttl_ms`, at most 1,000 entries.
    pub fn cache_ms(self, ttl_ms: u64) -> Flow {
        flow(Node::Cache(Box::new(self), ttl_ms, 1_000))
    }

    /// Guards this step with a circuit breaker.
    pub fn breaker(self, failures: u32, window_ms: u64, cooldown_ms: u64) -> Flow {
        flow(Node::Breaker(Box::new(self), failures, window_ms, cooldown_ms))
    }

    /// Validates and compiles the flow as workflow `name` against the primitives in `host`.
    pub fn compile(self, name: &str, host: &Host) -> Result<Workflow, CompileError> {
        let mut lowering = Lowering::default();
        let root = lowering.lower(self);
        let file = WorkflowFile {
            name: spanned(name.to_owned()),
            description: String::new(),
            root: spanned(root),
            steps: lowering.steps,
            input_schema: None,
        };
        Workflow::compile(&file, "", host)
    }
}

impl Shr for Flow {
    type Output = Flow;

    fn shr(self, next: Flow) -> Flow {
        match self.node {
            Node::Sequential(mut list) if self.name.is_none() && self.set_data.is_empty() => {
                list.push(next);
                flow(Node::Sequential(list))
            }
            _ => flow(Node::Sequential(vec![self, next])),
        }
    }
}

impl BitOr for Flow {
    type Output = Flow;

    fn bitor(self, other: Flow) -> Flow {
        match self.node {
            Node::Parallel(mut list, policy) if self.name.is_none() && self.set_data.is_empty() => {
                list.push((None, other));
                flow(Node::Parallel(list, policy))
            }
            _ => flow(Node::Parallel(
                vec![(None, self), (None, other)],
                FailurePolicy::FailFast,
            )),
        }
    }
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// Turns a tree of flows into named steps.
#[derive(Default)]
struct Lowering {
    steps: BTreeMap<Spanned<String>, Spanned<Step>>,
    counter: usize,
}

impl Lowering {
    fn name_for(&mut self, flow: &Flow, kind: &str) -> String {
        match &flow.name {
            Some(name) => name.clone(),
            None => {
                self.counter += 1;
                format!("{kind}-{}", self.counter)
            }
        }
    }

    /// Adds the steps of `flow` and returns the name of its top step.
    fn lower(&mut self, flow: Flow) -> String {
        let kind = match &flow.node {
            Node::Primitive(p) => p.clone(),
            Node::Sequential(_) => "sequential".into(),
            Node::Parallel(..) => "parallel".into(),
            Node::Conditional(..) => "conditional".into(),
            Node::Router(..) => "router".into(),
            Node::Retry(..) => "retry".into(),
            Node::Fallback(_) => "fallback".into(),
            Node::Timeout(..) => "timeout".into(),
            Node::Cache(..) => "cache".into(),
            Node::Breaker(..) => "circuit-breaker".into(),
            Node::Saga(_) => "saga".into(),
        };
        let name = self.name_for(&flow, &kind);
        let mut step = Step {
            set_data: flow
                .set_data
                .iter()
                .map(|(k, p)| (k.clone(), spanned(p.clone())))
                .collect(),
            ..Step::default()
        };
        match flow.node {
            Node::Primitive(p) => step.primitive = Some(PrimitiveName(spanned(p))),
            Node::Sequential(list) => {
                step.sequential = Some(Sequential(list.into_iter().map(|f| spanned(self.lower(f))).collect()))
            }
            Node::Parallel(list, policy) => {
                let mut branches = Vec::new();
                let mut named = BTreeMap::new();
                for (n, f) in list {
                    let child = spanned(self.lower(f));
                    match n {
                        Some(n) => {
                            named.insert(n, child);
                        }
                        None => branches.push(child),
                    }
                }
                step.parallel = Some(Parallel {
                    branches,
                    named,
                    on_failure: policy,
                });
            }
            Node::Conditional(pointer, op, value, then, otherwise) => {
                step.conditional = Some(Conditional {
                    test: Some(Predicate {
                        pointer: Some(spanned(pointer)),
                        op,
                        value: value.and_then(|v| toml::Value::try_from(v).ok()),
                    }),
                    then: Some(spanned(self.lower(*then))),
                    otherwise: otherwise.map(|o| spanned(self.lower(*o))),
                });
            }
            Node::Router(choice, routes, default) => {
                let (by, classifier) = match choice {
                    Choice::Pointer(p) => (Some(spanned(p)), None),
                    Choice::Classifier(c) => (None, Some(spanned(c))),
                };
                step.router = Some(Router {
                    routes: routes.into_iter().map(|(n, f)| (n, spanned(self.lower(f)))).collect(),
                    by,
                    classifier,
                    default: default.map(spanned),
                });
            }
            Node::Retry(inner, max_attempts, backoff_ms, retry_traps) => {
                step.retry = Some(Retry {
                    step: Some(spanned(self.lower(*inner))),
                    max_attempts,
                    backoff_ms,
                    max_backoff_ms: backoff_ms.max(5_000),
                    retry_traps,
                });
            }
            Node::Fallback(list) => {
                step.fallback = Some(Fallback(list.into_iter().map(|f| spanned(self.lower(f))).collect()))
            }
            Node::Timeout(inner, ms) => {
                step.timeout = Some(Timeout {
                    step: Some(spanned(self.lower(*inner))),
                    ms: Some(ms),
                });
            }
            Node::Cache(inner, ttl_ms, max_entries) => {
                step.cache = Some(Cache {
                    step: Some(spanned(self.lower(*inner))),
                    ttl_ms: Some(ttl_ms),
                    max_entries,
                    max_bytes: 16 << 20,
                    key_data: Vec::new(),
                    store: Store::Local,
                    max_entry_bytes: 1 << 20,
                });
            }
            Node::Breaker(inner, failures, window_ms, cooldown_ms) => {
                step.circuit_breaker = Some(CircuitBreaker {
                    step: Some(spanned(self.lower(*inner))),
                    failures,
                    window_ms,
                    cooldown_ms,
                    shared: false,
                });
            }
            Node::Saga(list) => {
                let mut steps = Vec::new();
                let mut compensate = BTreeMap::new();
                for (f, undo) in list {
                    let child = self.lower(f);
                    if let Some(undo) = undo {
                        compensate.insert(child.clone(), spanned(undo));
                    }
                    steps.push(spanned(child));
                }
                step.saga = Some(Saga { steps, compensate });
            }
        }
        // A primitive used twice is one step; anything else gets a fresh name above.
        self.steps.entry(spanned(name.clone())).or_insert_with(|| spanned(step));
        name
    }
}
