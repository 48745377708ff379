//! A call (or a workflow run) as a flame graph: by fuel or by wall time.
//!
//! Two forms: the folded stacks flame-graph tools read (`frame;frame;frame value`, one line
//! per stack, a stack's own cost as its value), and a self-contained SVG. The SVG keeps the
//! trace's order: children from left to right as they started, each as wide as its share
//! of its parent, so a workflow reads as its steps and their calls, one graph across them.

use crate::cost::{Costs, Node, NodeKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the width of a frame stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Fuel (roughly, wasm instructions).
    Fuel,
    /// Wall time, in nanoseconds.
    Time,
}

impl By {
    fn total(self, node: &Node) -> u64 {
        match self {
            By::Fuel => node.fuel,
            By::Time => u64::try_from(node.wall.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn own(self, node: &Node) -> u64 {
        match self {
            By::Fuel => node.fuel_self,
            By::Time => u64::try_from(node.wall_self.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            By::Fuel => "fuel",
            By::Time => "ns",
        }
    }
}

/// A frame name as the folded format allows it: no `;` (the separator) and no line breaks.
fn frame(name: &str) -> String {
    name.chars()
        .map(|c| if c == ';' || c.is_control() { '_' } else { c })
        .collect()
}

/// The folded stacks of `costs`: each stack with a cost of its own, once, sorted.
pub fn folded(costs: &Costs, by: By) -> String {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut path = Vec::new();
    if costs.root().is_some() {
        collect(costs, 0, by, &mut path, &mut stacks, 0);
    }
    let mut out = String::new();
    for (stack, value) in stacks {
        let _ = writeln!(out, "{stack} {value}");
    }
    out
}

fn collect(costs: &Costs, i: usize, by: By, path: &mut Vec<String>, out: &mut BTreeMap<String, u64>, depth: usize) {
    let node = &costs.nodes()[i];
    path.push(frame(&node.name));
    let own = by.own(node);
    if own > 0 {
        *out.entry(path.join(";")).or_default() += own;
    }
    if depth < MAX_DEPTH {
        for &c in &node.children {
            collect(costs, c, by, path, out, depth + 1);
        }
    }
    path.pop();
}

/// The deepest frame drawn; a report's nesting is bounded far below it.
const MAX_DEPTH: usize = 256;
const WIDTH: f64 = 1200.0;
const ROW: f64 = 18.0;
const TOP: f64 = 44.0;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn color(kind: NodeKind, name: &str) -> String {
    // A stable shade per name, within a hue per kind.
    let shade = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 40;
    let (hue, sat) = match kind {
        NodeKind::Workflow => (210, 55),
        NodeKind::Step => (190, 50),
        NodeKind::Call => (20, 80),
        NodeKind::Instantiate => (0, 0),
        NodeKind::Guest => (45, 85),
    };
    format!("hsl({hue},{sat}%,{}%)", 55 + shade / 2)
}

/// Groups digits by thousands, as the graph's labels show counts.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn label(node: &Node, by: By, root_total: u64) -> String {
    let share = |v: u64| {
        if root_total == 0 {
            0.0
        } else {
            v as f64 * 100.0 / root_total as f64
        }
    };
    let total = by.total(node);
    format!(
        "{} — {} {} ({:.1}%), self {} ({:.1}%); fuel {}, wall {:.1} µs",
        node.name,
        grouped(total),
        by.unit(),
        share(total),
        grouped(by.own(node)),
        share(by.own(node)),
        grouped(node.fuel),
        node.wall.as_secs_f64() * 1e6
    )
}

/// The flame graph of `costs` as an SVG document titled `title`.
pub fn svg(costs: &Costs, by: By, title: &str) -> String {
    let mut frames = String::new();
    let mut depth_max = 0;
    if let Some(root) = costs.root() {
        let total = by.total(root).max(1);
        draw(costs, 0, by, 0.0, WIDTH - 20.0, 0, total, &mut frames, &mut depth_max);
    }
    let height = TOP + (depth_max as f64 + 1.0) * ROW + 20.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fafafa"/>
<text x="{x}" y="22" text-anchor="middle" font-size="16">{title}</text>
<text x="10" y="{legend}" font-size="11" fill="#555">width: {unit} · hover a frame for its cost</text>
{frames}</svg>
"##,
        x = WIDTH / 2.0,
        title = escape(title),
        legend = height - 6.0,
        unit = match by {
            By::Fuel => "fuel",
            By::Time => "wall time",
        },
    );
    out
}

#[allow(clippy::too_many_arguments)]
fn draw(
    costs: &Costs,
    i: usize,
    by: By,
    x: f64,
    width: f64,
    depth: usize,
    root_total: u64,
    out: &mut String,
    depth_max: &mut usize,
) {
    let node = &costs.nodes()[i];
    *depth_max = (*depth_max).max(depth);
    let y = TOP + depth as f64 * ROW;
    let _ = writeln!(
        out,
        r#"<g><title>{}</title><rect x="{:.2}" y="{y:.1}" width="{:.2}" height="{:.1}" rx="2" fill="{}"/>"#,
        escape(&label(node, by, root_total)),
        x + 10.0,
        width.max(0.5),
        ROW - 1.0,
        color(node.kind, &node.name)
    );
    let fits = (width / 7.0) as usize;
    if fits >= 3 {
        let mut text: String = node.name.chars().take(fits).collect();
        if text.chars().count() < node.name.chars().count() {
            text = text.chars().take(fits.saturating_sub(2)).collect::<String>() + "..";
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.2}" y="{:.1}">{}</text>"#,
            x + 13.0,
            y + 13.0,
            escape(&text)
        );
    }
    out.push_str("</g>\n");
    if depth >= MAX_DEPTH {
        return;
    }
    let total = by.total(node);
    let below: u64 = node.children.iter().map(|&c| by.total(&costs.nodes()[c])).sum();
    // Children that overlap (parallel steps) can add up to more than their parent: they
    // are drawn at their share of what they add up to.
    let scale = if below > total {
        total as f64 / below as f64
    } else {
        1.0
    };
    let mut left = x;
    for &c in &node.children {
        let child = by.total(&costs.nodes()[c]);
        let w = if total == 0 {
            0.0
        } else {
            width * child as f64 * scale / total as f64
        };
        if w >= 0.1 {
            draw(costs, c, by, left, w, depth + 1, root_total, out, depth_max);
        }
        left += w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_never_carry_the_separator() {
        assert_eq!(frame("a;b\nc"), "a_b_c");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
        assert_eq!(escape("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }
}
