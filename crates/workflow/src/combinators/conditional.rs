//! `conditional = { if = {...}, then = "a", else = "b" }`: one of two steps by a test on the
//! JSON input.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Kind, StepCall, StepRef, StepResult, required};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use std::ops::Range;
use toml::Spanned;
use tta_core::bindings::Value;
use tta_core::error::{StepError, StepErrorKind};

/// `conditional = { if = {...}, then = "a", else = "b" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditional {
    /// The test.
    #[serde(rename = "if")]
    pub test: Option<Predicate>,
    /// The step when the test holds.
    #[schemars(with = "Option<String>")]
    pub then: Option<StepRef>,
    /// The step otherwise; without it the input passes through unchanged.
    #[serde(rename = "else")]
    #[schemars(with = "Option<String>")]
    pub otherwise: Option<StepRef>,
}

/// A test on the JSON input: the value at `pointer` compared with `value`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// A JSON pointer (RFC 6901) into the input, e.g. `/order/total`.
    #[schemars(with = "Option<String>")]
    pub pointer: Option<Spanned<String>>,
    /// The comparison.
    #[serde(default)]
    pub op: Comparison,
    /// The value to compare with (not needed for `exists`).
    #[schemars(with = "Option<serde_json::Value>")]
    pub value: Option<toml::Value>,
}

/// How a predicate compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Equal.
    #[default]
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers).
    Gt,
    /// Greater than or equal (numbers).
    Ge,
    /// Less than (numbers).
    Lt,
    /// Less than or equal (numbers).
    Le,
    /// The string contains `value`, or the array contains an element equal to it.
    Contains,
    /// The pointer resolves to anything.
    Exists,
}

impl Definition for Conditional {
    fn key(&self) -> &'static str {
        "conditional"
    }

    fn children(&self) -> Vec<(String, &StepRef)> {
        let mut out = Vec::new();
        if let Some(r) = &self.then {
            out.push(("conditional.then".into(), r));
        }
        if let Some(r) = &self.otherwise {
            out.push(("conditional.else".into(), r));
        }
        out
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, span: Range<usize>) {
        c.need(
            span.clone(),
            format!("{at}.conditional.then"),
            self.then.is_some(),
            "`then`, the step to run when the test holds",
        );
        let Some(test) = &self.test else {
            c.need(
                span,
                format!("{at}.conditional.if"),
                false,
                "`if = { pointer = \"/…\", op = \"eq\", value = … }`",
            );
            return;
        };
        match &test.pointer {
            Some(p) => c.pointer(&format!("{at}.conditional.if.pointer"), p),
            None => c.need(
                span.clone(),
                format!("{at}.conditional.if.pointer"),
                false,
                "`pointer`, where in the input to look",
            ),
        }
        let numeric = matches!(
            test.op,
            Comparison::Gt | Comparison::Ge | Comparison::Lt | Comparison::Le
        );
        match &test.value {
            None if test.op != Comparison::Exists => c.need(
                span,
                format!("{at}.conditional.if.value"),
                false,
                "`value` to compare with",
            ),
            Some(v) if numeric && !(v.is_integer() || v.is_float()) => c.report(
                span,
                format!("{at}.conditional.if.value"),
                format!("`{v}` is not a number, and `{:?}` compares numbers", test.op).to_lowercase(),
            ),
            _ => {}
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        let test = self.test.as_ref().ok_or_else(|| cx.missing())?;
        cx.combinator(Choose {
            pointer: test.pointer.as_ref().map(|p| p.get_ref().clone()).unwrap_or_default(),
            op: test.op,
            value: test.value.as_ref().and_then(|v| serde_json::to_value(v).ok()),
            then: cx.at(required(cx, self.then.as_ref())?),
            otherwise: self.otherwise.as_ref().map(|r| cx.at(r)),
        })
    }
}

struct Choose {
    pointer: String,
    op: Comparison,
    value: Option<Json>,
    then: usize,
    otherwise: Option<usize>,
}

impl Combinator for Choose {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            let document = serde_json::from_slice::<Json>(&input).map_err(|e| {
                StepError::new(
                    name,
                    StepErrorKind::NotJson,
                    format!("the input is not JSON ({e}); a condition reads JSON"),
                )
            })?;
            let holds = compare(document.pointer(&self.pointer), self.op, self.value.as_ref());
            span.attr("condition.result", Value::Boolean(holds));
            match (holds, self.otherwise) {
                (true, _) => run.step(self.then, input, scope).await,
                (false, Some(other)) => run.step(other, input, scope).await,
                (false, None) => Ok((input, scope.data)),
            }
        })
    }
}

fn number(v: &Json) -> Option<f64> {
    v.as_f64()
}

/// Whether `found` compares to `expected` by `op`.
fn compare(found: Option<&Json>, op: Comparison, expected: Option<&Json>) -> bool {
    let Some(found) = found else {
        return op == Comparison::Ne;
    };
    let Some(expected) = expected else {
        return op == Comparison::Exists;
    };
    let equal = match (number(found), number(expected)) {
        (Some(a), Some(b)) => a == b,
        _ => found == expected,
    };
    match op {
        Comparison::Exists => true,
        Comparison::Eq => equal,
        Comparison::Ne => !equal,
        Comparison::Gt | Comparison::Ge | Comparison::Lt | Comparison::Le => match (number(found), number(expected)) {
            (Some(a), Some(b)) => match op {
                Comparison::Gt => a > b,
                Comparison::Ge => a >= b,
                Comparison::Lt => a < b,
                _ => a <= b,
            },
            _ => false,
        },
        Comparison::Contains => match (found, expected) {
            (Json::String(s), Json::String(needle)) => s.contains(needle.as_str()),
            (Json::Array(items), needle) => items.contains(needle),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparisons_follow_json_values() {
        let doc = json!({"n": 5, "s": "hello", "a": [1, 2]});
        let at = |p: &str| doc.pointer(p);
        assert!(compare(at("/n"), Comparison::Eq, Some(&json!(5.0))));
        assert!(compare(at("/n"), Comparison::Gt, Some(&json!(4))));
        assert!(!compare(at("/n"), Comparison::Lt, Some(&json!(4))));
        assert!(compare(at("/s"), Comparison::Contains, Some(&json!("ell"))));
        assert!(compare(at("/a"), Comparison::Contains, Some(&json!(2))));
        assert!(compare(at("/s"), Comparison::Exists, None));
        assert!(!compare(at("/missing"), Comparison::Exists, None));
        assert!(compare(at("/missing"), Comparison::Ne, Some(&json!(1))));
    }
}
