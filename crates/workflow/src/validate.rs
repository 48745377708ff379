//! Checks a workflow file and reports every problem at once, each with its line, column
//! and key path: unknown steps and primitives, missing fields, steps of no kind or of
//! two, routes with no target, bad pointers and numbers, cycles. Walks are iterative,
//! so a thousand-step chain cannot overflow the stack.

pub use super::check::Problem;
use super::check::{Checker, Lines};
use crate::definition::{Step, WorkflowFile};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;
use tta_core::schema::{self, InputSchema};

/// Parses `text`; a syntax or type error is the one problem reported.
pub fn parse(text: &str) -> Result<WorkflowFile, Vec<Problem>> {
    toml::from_str::<WorkflowFile>(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| Lines::new(text).at(s.start));
        let message = e.message().trim().to_owned();
        vec![Problem {
            line,
            column,
            path: "(file)".into(),
            message: format!("{message} (see workflows/workflow.schema.json for every key)"),
        }]
    })
}

/// Names a workflow or step may have: they become span names and metric labels.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Every problem of `file` (parsed from `text`); `is_primitive` says whether a primitive
/// is loaded, `None` skips that check.
pub fn validate(file: &WorkflowFile, text: &str, is_primitive: Option<&dyn Fn(&str) -> bool>) -> Vec<Problem> {
    let always = |_: &str| true;
    let mut c = Checker {
        lines: Lines::new(text),
        problems: Vec::new(),
        steps: file.steps.keys().map(|k| k.get_ref().as_str()).collect(),
        step_names: file.steps.keys().map(|k| k.get_ref().as_str()).collect(),
        is_primitive: is_primitive.unwrap_or(&always),
        primitives_known: is_primitive.is_some(),
    };
    if !valid_name(file.name.get_ref()) {
        c.report(
            file.name.span(),
            "name",
            format!(
                "`{}` is not a workflow name: 1 to 64 letters, digits, `-`, `_` or `.`",
                file.name.get_ref()
            ),
        );
    }
    if file.steps.is_empty() {
        c.report(
            0..0,
            "steps",
            "the workflow has no steps: add `[steps.main]` with a `primitive = \"…\"`",
        );
    } else if !c.steps.contains(file.root.get_ref().as_str()) {
        let message = if file.root.span().is_empty() {
            format!(
                "no `root` is given and there is no step named `main`; steps: {}",
                c.step_names.join(", ")
            )
        } else {
            format!(
                "the root step `{}` is not defined; steps: {}",
                file.root.get_ref(),
                c.step_names.join(", ")
            )
        };
        c.report(file.root.span(), "root", message);
    }
    for (name, step) in &file.steps {
        let at = format!("steps.{}", name.get_ref());
        if !valid_name(name.get_ref()) {
            c.report(
                name.span(),
                &at,
                "a step name is 1 to 64 letters, digits, `-`, `_` or `.`",
            );
        }
        check_step(&mut c, &at, step);
    }
    if let Some(schema) = &file.input_schema {
        if !schema::describes_object(schema.get_ref()) {
            c.report(
                schema.span(),
                "input_schema",
                "the input schema must have `type = \"object\"` at its root: a workflow's input, as a tool's arguments, is a JSON object",
            );
        } else if let Err(e) = InputSchema::compile(schema.get_ref()) {
            c.report(schema.span(), "input_schema", format!("not a usable JSON Schema: {e}"));
        }
    }
    check_cycles(&mut c, file);
    c.problems.sort_by_key(|p| (p.line, p.column));
    c.problems
}

fn check_step(c: &mut Checker<'_>, at: &str, step: &Spanned<Step>) {
    let span = step.span();
    let s = step.get_ref();
    let kinds = s.kinds();
    match kinds.as_slice() {
        [] => c.report(
            span.clone(),
            at,
            "a step needs one kind: primitive, url, sequential, parallel, conditional, router, retry, fallback, timeout, cache, circuit_breaker or saga",
        ),
        [_] => {}
        many => {
            let keys: Vec<&str> = many.iter().map(|k| k.key()).collect();
            c.report(
                span.clone(),
                at,
                format!("a step is one thing, this one is {}: split it into steps that name each other", keys.join(" and ")),
            );
        }
    }
    for (key, r) in s.children() {
        c.step_ref(&format!("{at}.{key}"), r);
    }
    if s.api_key_env.is_some() && s.url.is_none() {
        c.report(
            span.clone(),
            format!("{at}.api_key_env"),
            "`api_key_env` belongs to a remote step: add `url`, or remove it",
        );
    }
    for kind in kinds {
        kind.check(c, at, span.clone());
    }
    for (key, pointer) in &s.set_data {
        c.pointer(&format!("{at}.set_data.{key}"), pointer);
    }
    for (key, value) in &s.data {
        if key.is_empty() || value.len() > crate::step::MAX_DATA_VALUE {
            c.report(
                span.clone(),
                format!("{at}.data.{key}"),
                format!(
                    "a `data` entry needs a key and a value of at most {} bytes",
                    crate::step::MAX_DATA_VALUE
                ),
            );
        }
    }
}

/// Reports each cycle once, as the chain of step names that closes it.
fn check_cycles(c: &mut Checker<'_>, file: &WorkflowFile) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let names: Vec<&str> = file.steps.keys().map(|k| k.get_ref().as_str()).collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<(usize, Range<usize>)>> = file
        .steps
        .values()
        .map(|step| {
            step.get_ref()
                .children()
                .into_iter()
                .filter_map(|(_, r)| index.get(r.get_ref().as_str()).map(|&i| (i, r.span())))
                .collect()
        })
        .collect();
    let mut marks = vec![Mark::New; names.len()];
    for start in 0..names.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // An explicit stack of (node, next edge to follow) instead of recursion.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            match edges[node].get(*next) {
                Some((child, span)) => {
                    *next += 1;
                    match marks[*child] {
                        Mark::New => {
                            marks[*child] = Mark::Open;
                            stack.push((*child, 0));
                        }
                        Mark::Open => {
                            let from = stack.iter().position(|(n, _)| n == child).unwrap_or(0);
                            let mut chain: Vec<&str> = stack[from..].iter().map(|(n, _)| names[*n]).collect();
                            chain.push(names[*child]);
                            let message = format!(
                                "cycle: {}; a step cannot run itself, directly or through others",
                                chain.join(" → ")
                            );
                            c.report(span.clone(), format!("steps.{}", names[node]), message);
                        }
                        Mark::Done => {}
                    }
                }
                None => {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        let file = parse(text).unwrap_or_else(|p| panic!("parses: {p:?}"));
        let known = |name: &str| ["echo", "uppercase", "json-validate", "word-count"].contains(&name);
        validate(&file, text, Some(&known))
    }

    #[test]
    fn the_input_schema_is_declared_or_the_entry_primitives() {
        let declared = r#"
name = "w"
input_schema = { type = "object", required = ["text"], properties = { text = { type = "string" } } }
[steps.main]
sequential = ["wrap", "count"]
[steps.wrap]
retry = { step = "upper", max_attempts = 2 }
[steps.upper]
primitive = "uppercase"
[steps.count]
primitive = "word-count"
"#;
        assert!(problems(declared).is_empty(), "{:?}", problems(declared));
        let file = parse(declared).unwrap_or_else(|p| panic!("parses: {p:?}"));
        assert_eq!(file.entry_primitive().as_deref(), Some("uppercase"));
        let schema = file.input_schema.as_ref().map(|s| s.get_ref().clone());
        assert_eq!(
            schema.and_then(|s| s.get("required").cloned()),
            Some(serde_json::json!(["text"]))
        );
        let not_object = "name = \"w\"\ninput_schema = { type = \"string\" }\n[steps.main]\nprimitive = \"echo\"\n";
        let found = problems(not_object);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].path.as_str(), found[0].line),
            ("input_schema", 2),
            "{found:?}"
        );
        let unusable = "name = \"w\"\ninput_schema = { type = \"object\", properties = { a = { type = 5 } } }\n[steps.main]\nprimitive = \"echo\"\n";
        let found = problems(unusable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.starts_with("not a usable JSON Schema"), "{found:?}");
        let remote = "name = \"w\"\ninput_schema = { type = \"object\", \"$ref\" = \"https://example.com/s\" }\n[steps.main]\nprimitive = \"echo\"\n";
        let found = problems(remote);
        assert!(
            found.iter().any(|p| p.message.contains("fetches no schema")),
            "{found:?}"
        );
    }

    #[test]
    fn a_good_workflow_has_no_problems() {
        let text = r#"
name = "pipeline"
[steps.main]
sequential = ["check", "answer"]
[steps.check]
primitive = "json-validate"
[steps.answer]
router = { by = "/tier", routes = { fast = "up", slow = "count" }, default = "slow" }
[steps.up]
retry = { step = "upper", max_attempts = 2 }
[steps.upper]
primitive = "uppercase"
[steps.count]
primitive = "word-count"
"#;
        assert_eq!(problems(text), Vec::new());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line() {
        let text = r#"name = "broken"
[steps.main]
sequential = ["a", "nowhere"]
[steps.a]
primitive = "no-such-primitive"
[steps.b]
retry = { max_attempts = 2 }
[steps.c]
router = { by = "/kind", routes = { x = "a" }, default = "y" }
[steps.d]
primitive = "echo"
sequential = ["a"]
[steps.e]
sequential = ["f"]
[steps.f]
fallback = ["e"]
"#;
        let found = problems(text);
        let has = |line: usize, path: &str, words: &str| {
            found
                .iter()
                .any(|p| p.line == line && p.path == path && p.message.contains(words))
        };
        assert!(
            has(3, "steps.main.sequential[1]", "unknown step `nowhere`"),
            "{found:#?}"
        );
        assert!(
            has(5, "steps.a.primitive", "unknown primitive `no-such-primitive`"),
            "{found:#?}"
        );
        assert!(has(6, "steps.b.retry.step", "missing field"), "{found:#?}");
        assert!(
            has(9, "steps.c.router.default", "route `y` has no target"),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.path == "steps.d" && p.message.contains("primitive and sequential")),
            "{found:#?}"
        );
        assert!(has(16, "steps.f", "cycle: e → f → e"), "{found:#?}");
        assert_eq!(found.len(), 6, "{found:#?}");
    }

    #[test]
    fn a_syntax_error_points_at_its_place() {
        let found = parse("name = \"x\"\n[steps.main]\nprimitive = \n").expect_err("bad TOML");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 3, "{found:?}");
        let unknown = parse("name = \"x\"\n[steps.main]\nprimitiv = \"echo\"\n").expect_err("unknown key");
        assert!(unknown[0].message.contains("primitiv"), "{unknown:?}");
    }

    #[test]
    fn a_thousand_step_chain_validates_and_its_cycle_is_found_precisely() {
        let mut text = String::from("name = \"deep\"\n");
        for i in 0..1000 {
            text.push_str(&format!("[steps.s{i}]\nsequential = [\"s{}\"]\n", i + 1));
        }
        text.push_str("[steps.s1000]\nprimitive = \"echo\"\n");
        let mut text = text.replacen("[steps.s0]", "[steps.main]", 1);
        assert_eq!(problems(&text), Vec::new());
        text = text.replace(
            "[steps.s1000]\nprimitive = \"echo\"",
            "[steps.s1000]\nsequential = [\"s500\"]",
        );
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 2003);
        assert_eq!(found[0].path, "steps.s1000");
        assert!(
            found[0].message.starts_with("cycle: s500 → s501"),
            "{}",
            found[0].message
        );
    }
}
