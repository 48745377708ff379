//! What checking a workflow file works with: a problem with its place, and the checker
//! every kind of step reports its problems to (`validate` drives it).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key path, e.g. `steps.answer.router.default`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// The problem as a compiler would print it: `file:line:col: error: key: message`.
    pub fn in_file(&self, file: &std::path::Path) -> String {
        format!(
            "{}:{}:{}: error: {}: {}",
            file.display(),
            self.line,
            self.column,
            self.path,
            self.message
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.line, self.column, self.path, self.message)
    }
}

/// Maps byte offsets of the source to lines and columns.
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    pub(crate) fn at(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.starts[line - 1] + 1)
    }
}

/// What the checks of a file have found so far, and what they look names up in.
pub(crate) struct Checker<'a> {
    pub(crate) lines: Lines,
    pub(crate) problems: Vec<Problem>,
    pub(crate) steps: HashSet<&'a str>,
    pub(crate) step_names: Vec<&'a str>,
    pub(crate) is_primitive: &'a dyn Fn(&str) -> bool,
    pub(crate) primitives_known: bool,
}

impl Checker<'_> {
    /// Records `missing field: what` under `path` unless `present`.
    pub(crate) fn need(&mut self, span: Range<usize>, path: String, present: bool, what: &str) {
        if !present {
            self.report(span, path, format!("missing field: {what}"));
        }
    }

    /// Records a problem at `span` of the file, under key path `path`.
    pub(crate) fn report(&mut self, span: Range<usize>, path: impl Into<String>, message: impl Into<String>) {
        let (line, column) = self.lines.at(span.start);
        self.problems.push(Problem {
            line,
            column,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records a problem if `r` names no step.
    pub(crate) fn step_ref(&mut self, at: &str, r: &Spanned<String>) {
        if !self.steps.contains(r.get_ref().as_str()) {
            let message = format!(
                "unknown step `{}`; defined steps: {}",
                r.get_ref(),
                self.step_names.join(", ")
            );
            self.report(r.span(), at, message);
        }
    }

    /// Records a problem if `p` names no loaded primitive (when primitives are known).
    pub(crate) fn primitive_ref(&mut self, at: &str, p: &Spanned<String>) {
        if self.primitives_known && !(self.is_primitive)(p.get_ref()) {
            let message = format!(
                "unknown primitive `{}`: no loaded plugin has that name (load it from the plugin directory, or fix the name)",
                p.get_ref()
            );
            self.report(p.span(), at, message);
        }
    }

    /// Records a problem if `p` is not a JSON pointer.
    pub(crate) fn pointer(&mut self, at: &str, p: &Spanned<String>) {
        let text = p.get_ref();
        if !(text.is_empty() || text.starts_with('/')) {
            let message = format!(
                "`{text}` is not a JSON pointer: it starts with `/` (e.g. `/order/total`), or is empty for the whole input"
            );
            self.report(p.span(), at, message);
        }
    }
}
