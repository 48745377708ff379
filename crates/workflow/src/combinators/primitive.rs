//! `primitive = "name"`: a leaf, one call of a loaded primitive of this host.

use crate::check::{Checker, Problem};
use crate::step::{Compiler, Definition, Kind};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// The name of the primitive a leaf calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct PrimitiveName(pub Spanned<String>);

impl Definition for PrimitiveName {
    fn key(&self) -> &'static str {
        "primitive"
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, _span: Range<usize>) {
        c.primitive_ref(&format!("{at}.primitive"), &self.0);
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        cx.primitive(self.0.get_ref()).map(Kind::Primitive)
    }
}
