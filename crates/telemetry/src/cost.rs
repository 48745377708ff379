//! Where a call's fuel and time went: every span of a call (or of a workflow run) with
//! what it cost, everything under it included, and what it cost itself.
//!
//! The sandbox reads the store's fuel when a guest span opens and ends and when a nested
//! call returns, so the report knows each guest span's fuel; the spans the host makes (a
//! workflow step, an outgoing request) cost what ran under them. A span's own part is its
//! total less its children's, which is what a flame graph draws and `run --trace` shows.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tta_core::report::{CallReport, WorkflowReport};

/// What a span is, for those who draw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A workflow run's root span.
    Workflow,
    /// A workflow step (a combinator's span).
    Step,
    /// A primitive call's host span.
    Call,
    /// Instantiating the component.
    Instantiate,
    /// A span the guest opened (or an outgoing request it made).
    Guest,
}

/// One span and its cost.
#[derive(Debug, Clone)]
pub struct Node {
    /// The span's id.
    pub span_id: u64,
    /// Its parent's id, `None` for the root.
    pub parent: Option<u64>,
    /// The span's name.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// When it started.
    pub start: SystemTime,
    /// How long it was open.
    pub wall: Duration,
    /// Its wall time less its children's (zero when children overlap, as in `parallel`).
    pub wall_self: Duration,
    /// Fuel burned under it, everything below included.
    pub fuel: u64,
    /// Its fuel less its children's.
    pub fuel_self: u64,
    /// Its children, in order of start.
    pub children: Vec<usize>,
}

/// The spans of one trace with their costs; the root is the first node.
#[derive(Debug, Clone, Default)]
pub struct Costs {
    nodes: Vec<Node>,
    by_id: HashMap<u64, usize>,
}

/// A node as read from a report: its total fuel when the report knows it.
struct Raw {
    node: Node,
    fuel: Option<u64>,
}

fn raw(
    span_id: u64,
    parent: Option<u64>,
    name: String,
    kind: NodeKind,
    start: SystemTime,
    end: SystemTime,
    fuel: Option<u64>,
) -> Raw {
    Raw {
        node: Node {
            span_id,
            parent,
            name,
            kind,
            start,
            wall: end.duration_since(start).unwrap_or_default(),
            wall_self: Duration::ZERO,
            fuel: 0,
            fuel_self: 0,
            children: Vec::new(),
        },
        fuel,
    }
}

fn call_nodes(report: &CallReport, out: &mut Vec<Raw>) {
    let id = report.ids.span_id;
    let end = report.start + report.stats.wall;
    out.push(raw(
        id,
        report.ids.parent_span_id,
        format!("{}.execute", report.primitive),
        NodeKind::Call,
        report.start,
        end,
        Some(report.stats.fuel_consumed),
    ));
    if !report.stats.instantiate.is_zero() {
        out.push(raw(
            report.instantiate_span_id,
            Some(id),
            "wasm.instantiate".into(),
            NodeKind::Instantiate,
            report.start,
            report.start + report.stats.instantiate,
            Some(report.stats.instantiate_fuel),
        ));
    }
    for span in &report.spans {
        let span_end = span.end.unwrap_or(end);
        out.push(raw(
            span.span_id,
            Some(span.parent_span_id),
            span.name.clone(),
            NodeKind::Guest,
            span.start,
            span_end,
            span.fuel,
        ));
    }
    for nested in &report.nested {
        call_nodes(nested, out);
    }
}

impl Costs {
    /// The costs of a call and everything under it.
    pub fn of_call(report: &CallReport) -> Self {
        let mut raw = Vec::new();
        call_nodes(report, &mut raw);
        Costs::build(raw)
    }

    /// The costs of a workflow run: its root, its steps and every call they made.
    pub fn of_workflow(report: &WorkflowReport) -> Self {
        let root = report.ids.span_id;
        let mut nodes = vec![raw(
            root,
            report.ids.parent_span_id,
            format!("workflow.{}", report.workflow),
            NodeKind::Workflow,
            report.start,
            report.start + report.wall,
            None,
        )];
        let end = report.start + report.wall;
        for span in &report.spans {
            nodes.push(raw(
                span.span_id,
                Some(span.parent_span_id),
                span.name.clone(),
                NodeKind::Step,
                span.start,
                span.end.unwrap_or(end),
                span.fuel,
            ));
        }
        for call in &report.calls {
            call_nodes(call, &mut nodes);
        }
        Costs::build(nodes)
    }

    /// Links nodes to their parents (a node whose parent is not in the trace hangs under
    /// the root), fills in the totals the report did not know from the children, and
    /// works out each node's own part.
    fn build(raw: Vec<Raw>) -> Self {
        let mut by_id = HashMap::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            by_id.entry(r.node.span_id).or_insert(i);
        }
        let known: Vec<Option<u64>> = raw.iter().map(|r| r.fuel).collect();
        let mut nodes: Vec<Node> = raw.into_iter().map(|r| r.node).collect();
        for i in 1..nodes.len() {
            let parent = nodes[i]
                .parent
                .and_then(|p| by_id.get(&p).copied())
                .filter(|&p| p != i)
                .unwrap_or(0);
            nodes[parent].children.push(i);
        }
        let starts: Vec<SystemTime> = nodes.iter().map(|n| n.start).collect();
        for node in &mut nodes {
            node.children.sort_by_key(|&c| starts[c]);
        }
        let mut costs = Costs { nodes, by_id };
        if !costs.nodes.is_empty() {
            costs.total(0, &known, 0);
        }
        costs
    }

    /// Fills in node `i`'s fuel and own parts, its children's first.
    fn total(&mut self, i: usize, known: &[Option<u64>], depth: usize) -> u64 {
        let children = self.nodes[i].children.clone();
        let mut fuel_below = 0u64;
        let mut wall_below = Duration::ZERO;
        // A report's spans cannot form a cycle (each names an earlier-minted parent), but the
        // depth is bounded anyway so a malformed one cannot overflow the stack.
        if depth < 256 {
            for &c in &children {
                fuel_below = fuel_below.saturating_add(self.total(c, known, depth + 1));
                wall_below += self.nodes[c].wall;
            }
        }
        let node = &mut self.nodes[i];
        node.fuel = known[i].unwrap_or(fuel_below);
        node.fuel_self = node.fuel.saturating_sub(fuel_below);
        node.wall_self = node.wall.saturating_sub(wall_below);
        node.fuel
    }

    /// Every node; the root first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The root, unless there are no nodes.
    pub fn root(&self) -> Option<&Node> {
        self.nodes.first()
    }

    /// The node of span `span_id`.
    pub fn get(&self, span_id: u64) -> Option<&Node> {
        self.by_id.get(&span_id).and_then(|&i| self.nodes.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tta_core::report::{CallStats, GuestSpanRecord};

    fn report(fuel: u64) -> CallReport {
        let mut report = crate::tests_support::report("t", 1);
        report.stats = CallStats {
            wall: Duration::from_millis(10),
            instantiate: Duration::from_millis(1),
            fuel_consumed: fuel,
            instantiate_fuel: 100,
            ..CallStats::default()
        };
        report
    }

    fn span(id: u64, parent: u64, fuel: Option<u64>, start_ms: u64, end_ms: u64) -> GuestSpanRecord {
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_secs(1) + Duration::from_millis(ms);
        GuestSpanRecord {
            span_id: id,
            parent_span_id: parent,
            name: format!("s{id}"),
            start: at(start_ms),
            end: Some(at(end_ms)),
            attributes: Vec::new(),
            events: Vec::new(),
            error: None,
            client: false,
            fuel,
        }
    }

    #[test]
    fn own_parts_are_totals_less_children() {
        let mut outer = report(10_000);
        // A guest span of 6 000 holding a nested call of 4 000 and an HTTP span the host
        // made (no fuel of its own); a second span opened before the first ends below it.
        outer.spans = vec![span(20, 10, Some(6_000), 2, 8), span(21, 20, None, 3, 4)];
        let mut nested = report(4_000);
        nested.ids.span_id = 30;
        nested.ids.parent_span_id = Some(20);
        nested.instantiate_span_id = 31;
        nested.start += Duration::from_millis(5);
        nested.stats.wall = Duration::from_millis(2);
        outer.nested.push(nested);
        let costs = Costs::of_call(&outer);
        let root = costs.root().expect("a root");
        assert_eq!((root.fuel, root.fuel_self), (10_000, 10_000 - 100 - 6_000));
        let guest = costs.get(20).expect("the guest span");
        assert_eq!((guest.fuel, guest.fuel_self), (6_000, 2_000));
        assert_eq!(costs.get(21).map(|n| n.fuel), Some(0));
        let call = costs.get(30).expect("the nested call");
        assert_eq!((call.fuel, call.fuel_self), (4_000, 3_900));
        assert_eq!(guest.wall, Duration::from_millis(6));
        assert_eq!(guest.wall_self, Duration::from_millis(6 - 1 - 2));
    }
}
