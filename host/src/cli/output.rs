//! What the CLI prints about a call: the guest's output, its logs, the one-line summary.

use std::io::{IsTerminal, Write};
use std::time::Duration;
use tta_core::bindings::Level;
use tta_core::report::CallReport;
use tta_telemetry::value_text;

/// Writes a result to stdout, ending the line on a terminal. Returns whether what is
/// printed next on stderr must first start a line of its own: the output did not end with
/// one and lands where stderr does (`2>&1`, one log file).
pub(super) fn write_output(output: &[u8]) -> std::io::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output)?;
    let open_line = !output.is_empty() && !output.ends_with(b"\n");
    let terminal = stdout.is_terminal();
    if open_line && terminal {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(open_line && !terminal && same_destination())
}

/// Whether stdout and stderr are the same file, pipe or terminal.
fn same_destination() -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt as _;
        let id = |fd: u8| std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| (m.dev(), m.ino()));
        matches!((id(1), id(2)), (Ok(a), Ok(b)) if a == b)
    }
    #[cfg(not(target_os = "linux"))]
    false
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
