//! The kinds of step, one file each: its definition (the TOML it reads and the checks of
//! it), its compiled form, and how it runs. The driver (`validate`, `plan`, `run`) knows
//! none of them by name: it asks a step for the one kind it was given ([`Step::kinds`]) and
//! goes through the two traits here.
//!
//! A new combinator is one file here, with its definition, [`Definition`] and
//! [`Combinator`], and its registration in `definition.rs`: a field of [`Step`] and one
//! line of [`Step::kinds`].

pub mod cache;
pub mod circuit_breaker;
pub mod conditional;
pub mod fallback;
pub mod parallel;
pub mod primitive;
pub mod remote;
pub mod retry;
pub mod router;
pub mod saga;
pub mod sequential;
pub mod timeout;

use super::definition::{Step, StepRef};
use super::plan::Kind;
use super::run::{Run, Scope, StepResult, StepSpan};
use super::validate::{Checker, Problem};
use crate::plugin::Plugin;
use crate::registry::Registry;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use toml::Spanned;

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

    /// Reports its own problems; `at` is the step's key path (`steps.<name>`).
    fn check(&self, c: &mut Checker<'_>, at: &str, step: &Spanned<Step>);

    /// Its compiled form, against the loaded primitives.
    fn compile(&self, cx: &Compiler<'_>, step: &Step) -> Result<Kind, Problem>;
}

/// A combinator compiled to run: it runs its children through [`Run::step`].
pub(crate) trait Combinator: Send + Sync {
    /// Runs the step `name` on `input` under `scope`, its decisions recorded on `span`.
    fn run<'a>(
        &'a self,
        run: &'a Run<'a>,
        name: &'a str,
        input: Vec<u8>,
        scope: Scope,
        span: &'a mut StepSpan,
    ) -> BoxFuture<'a, StepResult>;
}

/// What compiling one step can look up: the other steps' places and the loaded primitives.
pub(crate) struct Compiler<'a> {
    /// The step's name.
    pub(crate) name: &'a str,
    pub(crate) index: &'a HashMap<&'a str, usize>,
    pub(crate) registry: &'a Registry,
}

impl Compiler<'_> {
    /// The index of the step `r` names (validation has checked that it exists).
    pub(crate) fn at(&self, r: &StepRef) -> usize {
        self.index.get(r.get_ref().as_str()).copied().unwrap_or(0)
    }

    /// The loaded primitive `name` (validation has checked that it is loaded).
    pub(crate) fn primitive(&self, name: &str) -> Result<Arc<Plugin>, Problem> {
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
