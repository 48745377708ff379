//! What the CLI prints about a call: the guest's output, its logs, the one-line summary.

use crate::bindings::Level;
use crate::report::CallReport;
use crate::telemetry::value_text;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Writes a result to stdout, ending the line on a terminal.
pub(super) fn write_output(output: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output)?;
    if stdout.is_terminal() && !output.ends_with(b"\n") {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()
}

pub(super) fn print_guest_logs(report: &CallReport, depth: usize) {
    let indent = "  ".repeat(depth);
    for log in &report.logs {
        let level = match log.level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let mut line = format!("{indent}[{level}] {}: {}", report.primitive, log.message);
        for (k, v) in &log.fields {
            line.push_str(&format!(" {k}={}", value_text(v)));
        }
        eprintln!("{line}");
    }
    for nested in &report.nested {
        print_guest_logs(nested, depth + 1);
    }
}

/// The one-line summary of a call.
pub fn summary(report: &CallReport) -> String {
    let s = &report.stats;
    format!(
        "{} {} {}: wall {}, instantiate {}, fuel {}, memory peak {}, correlation_id {}, trace_id {:032x}",
        match &report.error {
            None => "ok".to_owned(),
            Some(e) => format!("failed ({})", e.error_type()),
        },
        report.primitive,
        report.version,
        human_duration(s.wall),
        human_duration(s.instantiate),
        s.fuel_consumed,
        human_bytes(s.memory_peak_bytes),
        report.correlation_id,
        report.ids.trace_id,
    )
}

pub(super) fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(super) fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}
