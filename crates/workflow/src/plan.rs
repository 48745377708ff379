//! A validated workflow compiled for running: steps by index, primitives resolved to
//! loaded plugins, and each combinator's compiled form with the state that lives across
//! runs (cache entries, breaker state). Compile once, run many times.

use crate::definition::WorkflowFile;
use crate::metrics::WorkflowMetrics;
use crate::step::{Compiler, Kind};
use crate::validate::{Problem, validate};
use std::collections::HashMap;
use std::sync::Arc;
use tta_core::schema::{InputSchema, Mismatch};
use tta_runtime::host::Host;

/// A workflow ready to run.
pub struct Workflow {
    pub(crate) name: String,
    /// The engine's instruments, in the host's registry.
    pub(crate) metrics: Arc<WorkflowMetrics>,
    pub(crate) description: String,
    pub(crate) root: usize,
    pub(crate) nodes: Vec<Node>,
    pub(crate) host: Host,
    /// The primitive the input reaches first, whose input schema is the workflow's.
    pub(crate) entry: Option<String>,
    /// The schema the file declares (JSON text), which wins over the entry's.
    pub(crate) input_schema: Option<String>,
    /// The declared schema, compiled.
    pub(crate) input_check: Option<InputSchema>,
    /// The file's text, for a recording of a run.
    pub(crate) source: Arc<str>,
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
    /// The `workflow.step.kind` of its span.
    pub(crate) span_kind: &'static str,
    pub(crate) kind: Kind,
    /// `data` keys set from JSON pointers into the step's output.
    pub(crate) set_data: Vec<(String, String)>,
    /// `data` the step and the steps it runs see (and the steps after it do not).
    pub(crate) data: Vec<(String, String)>,
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
        let mut nodes = Vec::with_capacity(file.steps.len());
        for (name, step) in &file.steps {
            let s = step.get_ref();
            let cx = Compiler {
                name: name.get_ref(),
                api_key_env: s.api_key_env.as_deref(),
                index: &index,
                registry: &registry,
            };
            // Validation guarantees exactly one kind and every reference.
            let [kind] = s.kinds()[..] else {
                return Err(CompileError::Invalid(vec![cx.missing()]));
            };
            nodes.push(Node {
                name: name.get_ref().clone(),
                span_kind: kind.span_kind(),
                kind: kind
                    .compile(&cx)
                    .map_err(|problem| CompileError::Invalid(vec![problem]))?,
                set_data: s
                    .set_data
                    .iter()
                    .map(|(k, p)| (k.clone(), p.get_ref().clone()))
                    .collect(),
                data: s.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        }
        let root = index.get(file.root.get_ref().as_str()).copied().unwrap_or(0);
        // Validation compiled it once already; a failure here is still reported, not assumed away.
        let input_check = match &file.input_schema {
            Some(schema) => Some(InputSchema::compile(schema.get_ref()).map_err(|e| {
                CompileError::Invalid(vec![Problem {
                    line: 1,
                    column: 1,
                    path: "input_schema".into(),
                    message: format!("not a usable JSON Schema: {e}"),
                }])
            })?),
            None => None,
        };
        Ok(Workflow {
            name: file.name.get_ref().clone(),
            metrics: host.telemetry().metrics().instruments::<WorkflowMetrics>(),
            description: file.description.clone(),
            root,
            nodes,
            host: host.clone(),
            entry: file.entry_primitive(),
            input_schema: file.input_schema.as_ref().map(|s| s.get_ref().to_string()),
            input_check,
            source: Arc::from(text),
        })
    }

    /// Parses `text` and compiles it against the primitives loaded in `host`: the workflow,
    /// or every problem of the file.
    pub fn from_text(text: &str, host: &Host) -> Result<Self, Vec<Problem>> {
        let file = crate::parse(text)?;
        Workflow::compile(&file, text, host).map_err(|CompileError::Invalid(problems)| problems)
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of the file it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What it does, for people.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Checks `input` against the workflow's input schema: the declared one, or else that
    /// of the primitive the input reaches first, as loaded now.
    pub fn check_input(&self, input: &[u8]) -> Result<(), Mismatch> {
        if let Some(schema) = &self.input_check {
            return schema.check(input);
        }
        let Some(entry) = self.entry.as_deref() else {
            return Ok(());
        };
        self.host.registry().get(entry).map_or(Ok(()), |p| p.check_input(input))
    }

    /// The JSON Schema (text) of the workflow's input: the file's `input_schema`, or else
    /// that of the primitive its input reaches first, as loaded now (so a reload shows).
    pub fn input_schema(&self) -> Option<String> {
        self.input_schema.clone().or_else(|| {
            let entry = self.entry.as_deref()?;
            self.host.registry().get(entry)?.metadata.input_schema.clone()
        })
    }
}
