//! `primitive = "name"`: a leaf, one call of a loaded primitive of this host.

use super::{Compiler, Definition};
use crate::workflow::definition::Step;
use crate::workflow::plan::Kind;
use crate::workflow::validate::{Checker, Problem};
use serde::Deserialize;
use toml::Spanned;

/// The primitive a leaf calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Primitive(pub Spanned<String>);

impl Definition for Primitive {
    fn key(&self) -> &'static str {
        "primitive"
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, _step: &Spanned<Step>) {
        c.primitive_ref(&format!("{at}.primitive"), &self.0);
    }

    fn compile(&self, cx: &Compiler<'_>, _step: &Step) -> Result<Kind, Problem> {
        cx.primitive(self.0.get_ref()).map(Kind::Primitive)
    }
}
