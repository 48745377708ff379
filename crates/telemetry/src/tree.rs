//! A finished call as a tree for the terminal, like the TTA.dev span hierarchy diagram:
//! each span with its duration and key facts, events and log records under the span that
//! emitted them, guest spans and `invoke`d calls nested under the host span of their call.

use crate::cost::Costs;
use crate::logs::level_name;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};
use tta_core::report::{CallReport, GuestLog, GuestSpanRecord, WorkflowReport};

enum Node<'a> {
    Instantiate(&'a CallReport),
    Guest(&'a CallReport, &'a GuestSpanRecord),
    Call(&'a CallReport),
    Log(&'a GuestLog),
}

impl Node<'_> {
    fn start(&self) -> SystemTime {
        match self {
            Node::Instantiate(r) => r.start,
            Node::Guest(_, s) => s.start,
            Node::Call(r) => r.start,
            Node::Log(l) => l.time,
        }
    }
}

/// The fuel of span `id` as the tree shows it: everything under it, its share of the
/// trace's, and its own part when something ran below it.
fn fuel(costs: &Costs, id: u64) -> String {
    let Some(node) = costs.get(id) else {
        return String::new();
    };
    let total = costs.root().map_or(0, |r| r.fuel);
    let share = if total == 0 {
        0.0
    } else {
        node.fuel as f64 * 100.0 / total as f64
    };
    if node.fuel_self == node.fuel {
        format!("fuel={} ({share:.1}%)", node.fuel)
    } else {
        format!("fuel={} ({share:.1}%, self {})", node.fuel, node.fuel_self)
    }
}

/// The tree of `report` (a call and everything under it), ending in a newline.
pub fn render(report: &CallReport) -> String {
    let mut out = format!("trace {:032x}\n", report.ids.trace_id);
    call(report, &Costs::of_call(report), "", "", &mut out);
    out
}

/// The tree of a workflow run: the root span, each combinator step with its decisions,
/// and every call under the step that made it.
pub fn render_workflow(report: &WorkflowReport) -> String {
    let mut out = format!("trace {:032x}\n", report.ids.trace_id);
    let status = match &report.error {
        None => "ok".to_owned(),
        Some(e) => format!(
            "ERROR {}: {}",
            e.error_type(),
            e.message.lines().next().unwrap_or_default()
        ),
    };
    let costs = Costs::of_workflow(report);
    let _ = writeln!(
        out,
        "workflow.{}  {}  [{status}]  {}  tenant={} span={:016x}",
        report.workflow,
        duration(report.wall),
        fuel(&costs, report.ids.span_id),
        report.tenant,
        report.ids.span_id
    );
    workflow_children(report, &costs, report.ids.span_id, "", &mut out);
    out
}

fn workflow_children(report: &WorkflowReport, costs: &Costs, parent: u64, prefix: &str, out: &mut String) {
    enum Item<'a> {
        Step(&'a GuestSpanRecord),
        Call(&'a CallReport),
    }
    let mut items: Vec<(SystemTime, Item<'_>)> = report
        .spans
        .iter()
        .filter(|s| s.parent_span_id == parent)
        .map(|s| (s.start, Item::Step(s)))
        .collect();
    items.extend(
        report
            .calls
            .iter()
            .filter(|c| c.ids.parent_span_id == Some(parent))
            .map(|c| (c.start, Item::Call(c))),
    );
    items.sort_by_key(|(start, _)| *start);
    let count = items.len();
    for (i, (_, item)) in items.into_iter().enumerate() {
        let last = i + 1 == count;
        let first = format!("{prefix}{}", if last { "└─ " } else { "├─ " });
        let rest = format!("{prefix}{}", if last { "   " } else { "│  " });
        match item {
            Item::Call(call_report) => call(call_report, costs, &first, &rest, out),
            Item::Step(span) => {
                // The step's name is the span's name already.
                let shown: Vec<(String, tta_core::bindings::Value)> = span
                    .attributes
                    .iter()
                    .filter(|(k, _)| k != "workflow.step")
                    .cloned()
                    .collect();
                span_lines(span, &shown, costs, &first, &rest, out);
                workflow_children(report, costs, span.span_id, &rest, out);
            }
        }
    }
}

fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn attributes(list: &[(String, tta_core::bindings::Value)], max: usize) -> String {
    let mut out = String::new();
    for (k, v) in list.iter().take(max) {
        let mut v = crate::value_text(v);
        if v.chars().count() > 40 {
            v = v.chars().take(39).collect::<String>() + "…";
        }
        let _ = write!(out, " {k}={v}");
    }
    if list.len() > max {
        let _ = write!(out, " (+{} more)", list.len() - max);
    }
    out
}

/// A span's line (name, duration, status, `attributes`) and a line per event.
fn span_lines(
    span: &GuestSpanRecord,
    shown: &[(String, tta_core::bindings::Value)],
    costs: &Costs,
    first: &str,
    rest: &str,
    out: &mut String,
) {
    let took = span
        .end
        .and_then(|e| e.duration_since(span.start).ok())
        .unwrap_or_default();
    let status = match &span.error {
        Some(e) => format!("  [ERROR: {e}]"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "{first}{}  {}  {}{status}{}",
        span.name,
        duration(took),
        fuel(costs, span.span_id),
        attributes(shown, 8)
    );
    for event in &span.events {
        let _ = writeln!(out, "{rest}• event {}{}", event.name, attributes(&event.attributes, 6));
    }
}

fn call(report: &CallReport, costs: &Costs, first: &str, rest: &str, out: &mut String) {
    let s = &report.stats;
    let status = match &report.error {
        None => "ok".to_owned(),
        Some(e) => format!(
            "ERROR {}: {}",
            e.error_type(),
            e.to_string().lines().next().unwrap_or_default()
        ),
    };
    let _ = writeln!(
        out,
        "{first}{}.execute  {}  [{status}]  {} memory_peak={} tenant={} span={:016x}",
        report.primitive,
        duration(s.wall),
        fuel(costs, report.ids.span_id),
        s.memory_peak_bytes,
        report.tenant,
        report.ids.span_id,
    );
    children(report, costs, report.ids.span_id, true, rest, out);
}

fn children(report: &CallReport, costs: &Costs, parent: u64, host: bool, prefix: &str, out: &mut String) {
    let mut nodes: Vec<Node<'_>> = Vec::new();
    if host && !report.stats.instantiate.is_zero() {
        nodes.push(Node::Instantiate(report));
    }
    nodes.extend(
        report
            .spans
            .iter()
            .filter(|s| s.parent_span_id == parent)
            .map(|s| Node::Guest(report, s)),
    );
    nodes.extend(
        report
            .nested
            .iter()
            .filter(|n| n.ids.parent_span_id == Some(parent))
            .map(Node::Call),
    );
    nodes.extend(report.logs.iter().filter(|l| l.span_id == parent).map(Node::Log));
    nodes.sort_by_key(Node::start);
    let count = nodes.len();
    for (i, node) in nodes.into_iter().enumerate() {
        let last = i + 1 == count;
        let first = format!("{prefix}{}", if last { "└─ " } else { "├─ " });
        let rest = format!("{prefix}{}", if last { "   " } else { "│  " });
        match node {
            Node::Instantiate(r) => {
                let _ = writeln!(
                    out,
                    "{first}wasm.instantiate  {}  {}",
                    duration(r.stats.instantiate),
                    fuel(costs, r.instantiate_span_id)
                );
            }
            Node::Call(nested) => call(nested, costs, &first, &rest, out),
            Node::Log(log) => {
                let _ = writeln!(
                    out,
                    "{first}log {} {}{}",
                    level_name(log.level),
                    log.message,
                    attributes(&log.fields, 6)
                );
            }
            Node::Guest(r, span) => {
                span_lines(span, &span.attributes, costs, &first, &rest, out);
                children(r, costs, span.span_id, false, &rest, out);
            }
        }
    }
}
