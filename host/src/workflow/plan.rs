//! A validated workflow compiled for running: steps by index, primitives resolved to
//! loaded plugins, and the state that lives across runs (cache entries, breaker state).
//! Compile once, run many times.

use crate::host::Host;
use crate::plugin::Plugin;
use crate::workflow::definition::{Comparison, FailurePolicy, StepRef, WorkflowFile};
use crate::workflow::validate::{Problem, validate};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A workflow ready to run.
pub struct Workflow {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) root: usize,
    pub(crate) nodes: Vec<Node>,
    pub(crate) host: Host,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("steps", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// `data` keys set from JSON pointers into the step's output.
    pub(crate) set_data: Vec<(String, String)>,
}

pub(crate) enum Kind {
    Primitive(Arc<Plugin>),
    Sequential(Vec<usize>),
    Parallel {
        branches: Vec<(Option<String>, usize)>,
        fail_fast: bool,
    },
    Conditional {
        pointer: String,
        op: Comparison,
        value: Option<serde_json::Value>,
        then: usize,
        otherwise: Option<usize>,
    },
    Router {
        routes: BTreeMap<String, usize>,
        by: RouteBy,
        default: Option<String>,
    },
    Retry {
        step: usize,
        max_attempts: u32,
        backoff: Duration,
        max_backoff: Duration,
        retry_traps: bool,
    },
    Fallback(Vec<usize>),
    Timeout {
        step: usize,
        limit: Duration,
    },
    Cache {
        step: usize,
        ttl: Duration,
        key_data: Vec<String>,
        store: Mutex<LruStore>,
    },
    Breaker {
        step: usize,
        failures: u32,
        window: Duration,
        cooldown: Duration,
        state: Mutex<BreakerState>,
    },
    Saga {
        steps: Vec<usize>,
        compensate: HashMap<usize, Arc<Plugin>>,
    },
    /// A primitive on another tta-host, called over HTTP.
    Remote {
        url: String,
        api_key: Option<String>,
    },
}

impl Kind {
    /// The key the kind has in the file.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Kind::Primitive(_) => "primitive",
            Kind::Sequential(_) => "sequential",
            Kind::Parallel { .. } => "parallel",
            Kind::Conditional { .. } => "conditional",
            Kind::Router { .. } => "router",
            Kind::Retry { .. } => "retry",
            Kind::Fallback(_) => "fallback",
            Kind::Timeout { .. } => "timeout",
            Kind::Cache { .. } => "cache",
            Kind::Breaker { .. } => "circuit_breaker",
            Kind::Saga { .. } => "saga",
            Kind::Remote { .. } => "url",
        }
    }
}

pub(crate) enum RouteBy {
    Pointer(String),
    Classifier(Arc<Plugin>),
}

/// Cached outputs by key, least recently used first, bounded by entries and bytes.
pub(crate) struct LruStore {
    entries: HashMap<[u8; 32], (Vec<u8>, Instant)>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl LruStore {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        LruStore {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// The entry for `key` if it is younger than `ttl`; an expired one is removed.
    pub(crate) fn get(&mut self, key: &[u8; 32], ttl: Duration) -> Option<Vec<u8>> {
        let (value, at) = self.entries.get(key)?;
        if at.elapsed() > ttl {
            self.remove(key);
            return None;
        }
        let value = value.clone();
        self.order.retain(|k| k != key);
        self.order.push_back(*key);
        Some(value)
    }

    /// Stores `value`; returns how many entries were evicted to make room.
    pub(crate) fn insert(&mut self, key: [u8; 32], value: Vec<u8>) -> u64 {
        if value.len() > self.max_bytes {
            return 0;
        }
        self.remove(&key);
        let mut evicted = 0;
        while self.entries.len() >= self.max_entries || self.bytes + value.len() > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.bytes -= old.len();
                evicted += 1;
            }
        }
        self.bytes += value.len();
        self.entries.insert(key, (value, Instant::now()));
        self.order.push_back(key);
        evicted
    }

    fn remove(&mut self, key: &[u8; 32]) {
        if let Some((old, _)) = self.entries.remove(key) {
            self.bytes -= old.len();
            self.order.retain(|k| k != key);
        }
    }

    /// Bytes of outputs held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerPhase {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once until the cooldown ends.
    Open,
    /// One trial call goes through; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerPhase {
    /// The `circuit_breaker_state` gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerPhase::Closed => 0,
            BreakerPhase::Open => 1,
            BreakerPhase::HalfOpen => 2,
        }
    }

    /// Its name in span attributes and events.
    pub fn name(self) -> &'static str {
        match self {
            BreakerPhase::Closed => "closed",
            BreakerPhase::Open => "open",
            BreakerPhase::HalfOpen => "half_open",
        }
    }
}

pub(crate) struct BreakerState {
    pub(crate) phase: BreakerPhase,
    pub(crate) failures: VecDeque<Instant>,
    pub(crate) opened_at: Option<Instant>,
    pub(crate) trial_running: bool,
}

/// Why a workflow could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The file has problems; all of them, with their places.
    #[error("the workflow is invalid:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl Workflow {
    /// Validates `file` (parsed from `text`) against the primitives loaded in `host` and
    /// compiles it.
    pub fn compile(file: &WorkflowFile, text: &str, host: &Host) -> Result<Self, CompileError> {
        let registry = host.registry();
        let is_primitive = |name: &str| registry.get(name).is_some();
        let problems = validate(file, text, Some(&is_primitive));
        if !problems.is_empty() {
            return Err(CompileError::Invalid(problems));
        }
        let index: HashMap<&str, usize> = file
            .steps
            .keys()
            .enumerate()
            .map(|(i, k)| (k.get_ref().as_str(), i))
            .collect();
        let at = |r: &StepRef| index.get(r.get_ref().as_str()).copied().unwrap_or(0);
        let plugin = |name: &str| registry.get(name);
        let mut nodes = Vec::with_capacity(file.steps.len());
        for (name, step) in &file.steps {
            let s = step.get_ref();
            // Validation guarantees exactly one kind and every reference; `missing` is unreachable.
            let missing = || {
                CompileError::Invalid(vec![Problem {
                    line: 1,
                    column: 1,
                    path: format!("steps.{}", name.get_ref()),
                    message: "incomplete step".into(),
                }])
            };
            let kind = if let Some(p) = &s.primitive {
                Kind::Primitive(plugin(p.get_ref()).ok_or_else(missing)?)
            } else if let Some(list) = &s.sequential {
                Kind::Sequential(list.iter().map(at).collect())
            } else if let Some(p) = &s.parallel {
                let mut branches: Vec<(Option<String>, usize)> = p.branches.iter().map(|r| (None, at(r))).collect();
                branches.extend(p.named.iter().map(|(k, r)| (Some(k.clone()), at(r))));
                Kind::Parallel {
                    branches,
                    fail_fast: p.on_failure == FailurePolicy::FailFast,
                }
            } else if let Some(c) = &s.conditional {
                let test = c.test.as_ref().ok_or_else(missing)?;
                Kind::Conditional {
                    pointer: test.pointer.as_ref().map(|p| p.get_ref().clone()).unwrap_or_default(),
                    op: test.op,
                    value: test.value.as_ref().and_then(|v| serde_json::to_value(v).ok()),
                    then: at(c.then.as_ref().ok_or_else(missing)?),
                    otherwise: c.otherwise.as_ref().map(at),
                }
            } else if let Some(r) = &s.router {
                let by = match (&r.by, &r.classifier) {
                    (Some(p), _) => RouteBy::Pointer(p.get_ref().clone()),
                    (None, Some(c)) => RouteBy::Classifier(plugin(c.get_ref()).ok_or_else(missing)?),
                    (None, None) => return Err(missing()),
                };
                Kind::Router {
                    routes: r.routes.iter().map(|(k, v)| (k.clone(), at(v))).collect(),
                    by,
                    default: r.default.as_ref().map(|d| d.get_ref().clone()),
                }
            } else if let Some(r) = &s.retry {
                Kind::Retry {
                    step: at(r.step.as_ref().ok_or_else(missing)?),
                    max_attempts: r.max_attempts,
                    backoff: Duration::from_millis(r.backoff_ms),
                    max_backoff: Duration::from_millis(r.max_backoff_ms),
                    retry_traps: r.retry_traps,
                }
            } else if let Some(list) = &s.fallback {
                Kind::Fallback(list.iter().map(at).collect())
            } else if let Some(t) = &s.timeout {
                Kind::Timeout {
                    step: at(t.step.as_ref().ok_or_else(missing)?),
                    limit: Duration::from_millis(t.ms.unwrap_or(1)),
                }
            } else if let Some(c) = &s.cache {
                Kind::Cache {
                    step: at(c.step.as_ref().ok_or_else(missing)?),
                    ttl: Duration::from_millis(c.ttl_ms.unwrap_or(1)),
                    key_data: c.key_data.clone(),
                    store: Mutex::new(LruStore::new(c.max_entries, c.max_bytes)),
                }
            } else if let Some(b) = &s.circuit_breaker {
                Kind::Breaker {
                    step: at(b.step.as_ref().ok_or_else(missing)?),
                    failures: b.failures,
                    window: Duration::from_millis(b.window_ms),
                    cooldown: Duration::from_millis(b.cooldown_ms),
                    state: Mutex::new(BreakerState {
                        phase: BreakerPhase::Closed,
                        failures: VecDeque::new(),
                        opened_at: None,
                        trial_running: false,
                    }),
                }
            } else if let Some(saga) = &s.saga {
                let mut compensate = HashMap::new();
                for (position, r) in saga.steps.iter().enumerate() {
                    if let Some(undo) = saga.compensate.get(r.get_ref()) {
                        compensate.insert(position, plugin(undo.get_ref()).ok_or_else(missing)?);
                    }
                }
                Kind::Saga {
                    steps: saga.steps.iter().map(at).collect(),
                    compensate,
                }
            } else if let Some(url) = &s.url {
                let api_key = match &s.api_key_env {
                    None => None,
                    Some(var) => match std::env::var(var) {
                        Ok(key) => Some(key),
                        Err(_) => {
                            return Err(CompileError::Invalid(vec![Problem {
                                line: 1,
                                column: 1,
                                path: format!("steps.{}.api_key_env", name.get_ref()),
                                message: format!(
                                    "environment variable `{var}` is not set; set it to the remote host's API key"
                                ),
                            }]));
                        }
                    },
                };
                Kind::Remote {
                    url: url.get_ref().clone(),
                    api_key,
                }
            } else {
                return Err(missing());
            };
            nodes.push(Node {
                name: name.get_ref().clone(),
                kind,
                set_data: s
                    .set_data
                    .iter()
                    .map(|(k, p)| (k.clone(), p.get_ref().clone()))
                    .collect(),
            });
        }
        Ok(Workflow {
            name: file.name.get_ref().clone(),
            description: file.description.clone(),
            root: at(&file.root),
            nodes,
            host: host.clone(),
        })
    }

    /// Parses `text` and compiles it against the primitives loaded in `host`: the workflow,
    /// or every problem of the file.
    pub fn from_text(text: &str, host: &Host) -> Result<Self, Vec<Problem>> {
        let file = crate::workflow::parse(text)?;
        Workflow::compile(&file, text, host).map_err(|CompileError::Invalid(problems)| problems)
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it does, for people.
    pub fn description(&self) -> &str {
        &self.description
    }
}
