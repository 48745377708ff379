//! The summary of a run: every item as a markdown table, from criterion's estimates of this
//! run and the latencies the load measures kept, with the machine it ran on.
//!
//! Printed, written to `target/criterion/summary.md`, and with `TTA_BENCH_SUMMARY=<file>`
//! spliced into that file between `<!-- summary:begin -->` and `<!-- summary:end -->`.
//! A measure left out by a filter is left out of the summary.

use crate::backends::{COLLECTORS, GROUP as BACKENDS_GROUP, SCRAPERS};
use crate::calls::{
    BARE_FRESH, BARE_FRESH_MADVISE, BARE_WARM, BASELINE, CONFIG_GROUP, CONFIG_MANY, CONFIG_ONE, CONFIG_READS, GROUP,
    PARTS, PARTS_GROUP, SAMPLED, UNSAMPLED,
};
use crate::engine_modes::{FUEL_GROUP, FUEL_MODES, PAYLOAD_GROUP, PAYLOAD_SIZES};
use crate::growth::{PLUGIN_COLD, PLUGIN_COUNTS, PLUGIN_GROUP, STEP_COUNTS, STEP_GROUP, TENANT_COUNTS, TENANT_GROUP};
use crate::load::{
    CALLS_QUIET, CALLS_SCRAPED, CONNECTIONS, HTTP_GET, RENDER, SCALING_GROUP, SCRAPE_GROUP, SCRAPE_SERIES, SERVE_BARE,
    SERVE_GROUP, SERVE_MCP, SERVE_TTA, WORKERS,
};
use crate::percentiles;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- summary:begin -->";
const END: &str = "<!-- summary:end -->";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Criterion's estimate `stat` (`mean`, `median`) of `group/id` in this run, in ns.
fn estimate(group: &str, id: &str, stat: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json[stat]["point_estimate"].as_f64()
}

fn mean(group: &str, id: &str) -> Option<f64> {
    estimate(group, id, "mean")
}

/// `ns` the way a person reads it.
fn time(ns: f64) -> String {
    match ns {
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e4 => format!("{:.1} µs", n / 1e3),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// `n word`, with an `s` unless `n` is 1.
fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn signed(ns: f64) -> String {
    format!("{}{}", if ns < 0.0 { "−" } else { "+" }, time(ns.abs()))
}

/// What the run ran on, from `/proc` and `rustc`.
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or(0.0, |kb| kb / (1024.0 * 1024.0));
    let kernel = read("/proc/sys/kernel/osrelease");
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {memory_gib:.0} GiB, Linux {}, {rustc}, wasmtime 48, release profile",
        kernel.trim()
    )
}

/// A markdown table of `header` and the rows that have values.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let align: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

fn calls(out: &mut String) {
    let (Some(fresh), Some(base)) = (mean(GROUP, BARE_FRESH), mean(GROUP, BASELINE)) else {
        return;
    };
    let _ = writeln!(out, "### 1–2. The `echo` call, 64 bytes\n");
    let rows: Vec<Vec<String>> = [BARE_WARM, BARE_FRESH_MADVISE, BARE_FRESH, BASELINE, UNSAMPLED, SAMPLED]
        .iter()
        .filter_map(|id| {
            let (m, p50) = (mean(GROUP, id)?, estimate(GROUP, id, "median")?);
            let delta = if [UNSAMPLED, SAMPLED].contains(id) {
                signed(m - base)
            } else {
                String::new()
            };
            Some(vec![
                id.replace('_', " "),
                time(m),
                time(p50),
                format!("{:.2}×", m / fresh),
                delta,
            ])
        })
        .collect();
    table(
        out,
        &["measure", "mean", "p50", "vs bare fresh", "vs uninstrumented"],
        &rows,
    );
    let rows: Vec<Vec<String>> = PARTS
        .iter()
        .filter_map(|id| Some(vec![id.replace('_', " "), time(mean(PARTS_GROUP, id)?)]))
        .collect();
    table(out, &["part of the instrumentation", "mean"], &rows);
}

fn guest_config(out: &mut String) {
    let (Some(one), Some(many)) = (mean(CONFIG_GROUP, CONFIG_ONE), mean(CONFIG_GROUP, CONFIG_MANY)) else {
        return;
    };
    let _ = writeln!(
        out,
        "### `wasi:config` reads (`config-probe`, 32 values and a secret)\n"
    );
    let per_read = (many - one) / f64::from(CONFIG_READS);
    let rows = vec![
        vec!["call reading one key".to_owned(), time(one)],
        vec![format!("call reading it {} more times", CONFIG_READS), time(many)],
        vec!["one read (the difference over the count)".to_owned(), time(per_read)],
    ];
    table(out, &["measure", "mean"], &rows);
}

fn engine_modes(out: &mut String) {
    if let Some(neither) = mean(FUEL_GROUP, "neither") {
        let _ = writeln!(
            out,
            "### 3. Metering a compute-bound call (`format`, 4 000 fields, warm)\n"
        );
        let rows: Vec<Vec<String>> = FUEL_MODES
            .iter()
            .filter_map(|mode| {
                let m = mean(FUEL_GROUP, mode)?;
                Some(vec![mode.replace('_', " "), time(m), format!("{:.2}×", m / neither)])
            })
            .collect();
        table(out, &["engine", "mean", "slowdown"], &rows);
    }
    let rows: Vec<Vec<String>> = PAYLOAD_SIZES
        .iter()
        .filter_map(|(label, size)| {
            let call = mean(PAYLOAD_GROUP, &format!("echo_{label}"))?;
            let copy = mean(PAYLOAD_GROUP, &format!("memcpy_{label}"))?;
            let gbps = |ns: f64| format!("{:.2}", *size as f64 / ns);
            Some(vec![label.to_string(), time(call), gbps(call), time(copy), gbps(copy)])
        })
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(out, "### 4. Payload in and out through `echo` (sampled)\n");
    }
    table(out, &["size", "call", "GB/s", "memcpy", "GB/s"], &rows);
}

/// Calls or requests per second, p50 and p99 of the load measure `group/id`.
fn load_row(group: &str, id: &str, label: String, base: Option<f64>) -> Option<Vec<String>> {
    let per_second = 1e9 / mean(group, id)?;
    let (p50, p99, n) = percentiles(&format!("{group}/{id}"))?;
    let ratio = base.map_or(String::new(), |b| format!("{:.2}×", per_second / b));
    Some(vec![
        label,
        format!("{per_second:.0}"),
        ratio,
        time(p50),
        time(p99),
        n.to_string(),
    ])
}

fn load(out: &mut String) {
    let base = mean(SCALING_GROUP, "1_workers").map(|ns| 1e9 / ns);
    let rows: Vec<Vec<String>> = WORKERS
        .iter()
        .filter_map(|w| load_row(SCALING_GROUP, &format!("{w}_workers"), count(*w, "worker thread"), base))
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(out, "### 5. Scaling: `echo`, sampled, 8 tasks calling\n");
    }
    table(out, &["runtime", "calls/s", "vs 1", "p50", "p99", "calls"], &rows);

    let mut rows: Vec<Vec<String>> = [(RENDER, "render (encode only)"), (HTTP_GET, "GET /metrics over HTTP")]
        .iter()
        .filter_map(|(id, label)| {
            Some(vec![
                label.to_string(),
                time(mean(SCRAPE_GROUP, id)?),
                String::new(),
                String::new(),
            ])
        })
        .collect();
    let quiet = mean(SCRAPE_GROUP, CALLS_QUIET).map(|ns| 1e9 / ns);
    for (id, label) in [
        (CALLS_QUIET, "calls, not scraped"),
        (CALLS_SCRAPED, "calls, scraped at 10 Hz"),
    ] {
        if let Some(row) = load_row(SCRAPE_GROUP, id, label.into(), quiet) {
            rows.push(vec![
                row[0].clone(),
                format!("{} calls/s ({})", row[1], row[2]),
                row[3].clone(),
                row[4].clone(),
            ]);
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(out, "### 6. `/metrics` with {SCRAPE_SERIES}+ series\n");
    }
    table(out, &["measure", "mean / throughput", "call p50", "call p99"], &rows);

    let bare = mean(SERVE_GROUP, SERVE_BARE).map(|ns| 1e9 / ns);
    let rows: Vec<Vec<String>> = [
        (SERVE_BARE, "bare hyper + wasmtime"),
        (SERVE_TTA, "tta-host serve"),
        (SERVE_MCP, "tta-host serve, MCP `tools/call`"),
    ]
    .iter()
    .filter_map(|(id, label)| load_row(SERVE_GROUP, id, label.to_string(), bare))
    .collect();
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "### 7. HTTP `echo` on loopback, {CONNECTIONS} keep-alive connections\n"
        );
    }
    table(
        out,
        &["server", "requests/s", "vs bare", "p50", "p99", "requests"],
        &rows,
    );
}

fn backends(out: &mut String) {
    let base = mean(BACKENDS_GROUP, COLLECTORS[0].0).map(|ns| 1e9 / ns);
    let rows: Vec<Vec<String>> = COLLECTORS
        .iter()
        .chain(&SCRAPERS)
        .filter_map(|(id, label)| load_row(BACKENDS_GROUP, id, label.to_string(), base))
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "### 9. `echo`, sampled, 8 tasks on 2 workers, while the backends misbehave\n"
        );
    }
    table(out, &["backends", "calls/s", "vs none", "p50", "p99", "calls"], &rows);
}

fn growth(out: &mut String) {
    let mut rows = Vec::new();
    if let Some(one) = mean(TENANT_GROUP, "1") {
        for tenants in TENANT_COUNTS {
            if let Some(m) = mean(TENANT_GROUP, &tenants.to_string()) {
                rows.push(vec![count(tenants, "tenant"), time(m), format!("{:.2}×", m / one)]);
            }
        }
    }
    if let Some(one) = mean(PLUGIN_GROUP, "1") {
        for id in PLUGIN_COUNTS
            .iter()
            .map(usize::to_string)
            .chain([PLUGIN_COLD.to_owned()])
        {
            if let Some(m) = mean(PLUGIN_GROUP, &id) {
                let label = if id == PLUGIN_COLD {
                    "1000 plugins, every call a cold slot".to_owned()
                } else {
                    format!("{} loaded", count(id.parse().unwrap_or(0), "plugin"))
                };
                rows.push(vec![label, time(m), format!("{:.2}×", m / one)]);
            }
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(out, "### 8. Cost growth\n");
    }
    table(out, &["the call with", "mean", "vs 1"], &rows);
    let Some(call) = mean(GROUP, SAMPLED) else {
        return;
    };
    let rows: Vec<Vec<String>> = STEP_COUNTS
        .iter()
        .filter_map(|steps| {
            let run = mean(STEP_GROUP, &steps.to_string())?;
            let per_step = (run - *steps as f64 * call) / *steps as f64;
            Some(vec![count(*steps, "sequential echo step"), time(run), signed(per_step)])
        })
        .collect();
    table(out, &["workflow", "run", "a step over its call"], &rows);
}

fn span_fuel(out: &mut String) {
    use crate::spans::{CALLS, SPAN_GROUP, WITH, WITHOUT};
    let (Some(without), Some(with)) = (mean(SPAN_GROUP, WITHOUT), mean(SPAN_GROUP, WITH)) else {
        return;
    };
    let _ = writeln!(
        out,
        "### 11. Reading fuel at span boundaries (the sandbox's call hook, {CALLS} guest calls into the host)\n"
    );
    let per_call = (with - without) / f64::from(CALLS);
    let rows = vec![
        vec![
            "a host call, no hook".to_owned(),
            time(without / f64::from(CALLS)),
            "1.00×".to_owned(),
        ],
        vec![
            "a host call, fuel read by the hook".to_owned(),
            time(with / f64::from(CALLS)),
            format!("{:.2}×", with / without),
        ],
        vec![
            "**a guest span** (opened and ended: two reads)".to_owned(),
            time(2.0 * per_call),
            String::new(),
        ],
    ];
    table(out, &["measure", "mean", "vs no hook"], &rows);
}

fn recording(out: &mut String) {
    use crate::recording::{ECHO_FILE, ECHO_PLAIN, ECHO_RECORDED, GROUP, LLM_FILE, LLM_PLAIN, LLM_RECORDED, SIZES};
    let sizes = SIZES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let size = |id: &str| sizes.iter().find(|(i, _)| *i == id).map_or(0, |(_, n)| *n);
    let mut rows = Vec::new();
    for (what, plain, recorded, file) in [
        ("`echo` (64 bytes)", ECHO_PLAIN, ECHO_RECORDED, ECHO_FILE),
        (
            "`llm-chat` (a prompt over HTTP, the answer streamed)",
            LLM_PLAIN,
            LLM_RECORDED,
            LLM_FILE,
        ),
    ] {
        let (Some(p), Some(r)) = (mean(GROUP, plain), mean(GROUP, recorded)) else {
            continue;
        };
        rows.push(vec![
            what.to_owned(),
            time(p),
            time(r),
            signed(r - p),
            format!("{:.2}×", r / p),
            mean(GROUP, file).map_or_else(String::new, time),
            format!("{} B", size(recorded)),
        ]);
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### 12. Recording a call for replay (the tape, and the `.ttarec` bytes `serve` keeps)\n"
    );
    table(
        out,
        &[
            "the call",
            "not recorded",
            "recorded (the tape)",
            "added",
            "ratio",
            "the file, off the path",
            "its size",
        ],
        &rows,
    );
}

/// Builds the summary, prints it and writes it where asked.
fn admission(out: &mut String) {
    use crate::cluster::{ADMISSION_GROUP, LOCAL, REDIS, REDIS_8};
    let Some(local) = mean(ADMISSION_GROUP, LOCAL) else {
        return;
    };
    let _ = writeln!(
        out,
        "### 10. Admitting a call: the tenant's quota, local and shared through Redis (loopback)\n"
    );
    let mut rows = vec![vec![
        "local slot and token bucket".to_owned(),
        time(local),
        "1.00×".to_owned(),
    ]];
    if let Some(redis) = mean(ADMISSION_GROUP, REDIS) {
        rows.push(vec![
            "`[cluster]`: one script on Redis (rate, lease), lease released".to_owned(),
            time(redis),
            format!("{:.0}×", redis / local),
        ]);
    }
    if let Some(eight) = mean(ADMISSION_GROUP, REDIS_8) {
        rows.push(vec![
            "`[cluster]`, 8 admissions at once (pipelined), per admission".to_owned(),
            time(eight / 8.0),
            format!("{:.0}×", eight / 8.0 / local),
        ]);
    }
    table(out, &["admission", "mean", "vs local"], &rows);
}

pub fn write() {
    let mut out = format!("Measured on {}.\n\n", machine());
    calls(&mut out);
    guest_config(&mut out);
    engine_modes(&mut out);
    load(&mut out);
    growth(&mut out);
    backends(&mut out);
    admission(&mut out);
    span_fuel(&mut out);
    recording(&mut out);
    println!("\n{out}");
    let path = target_dir().join("criterion/summary.md");
    if let Err(e) = std::fs::write(&path, &out) {
        eprintln!("cannot write {}: {e}", path.display());
    }
    let Some(file) = std::env::var_os("TTA_BENCH_SUMMARY") else {
        return;
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            let spliced = format!("{}{BEGIN}\n{out}{}", &text[..begin], &text[end..]);
            if let Err(e) = std::fs::write(&file, spliced) {
                eprintln!("cannot write {}: {e}", Path::new(&file).display());
            }
        }
        _ => eprintln!(
            "{}: no `{BEGIN}` … `{END}` section to replace; the summary is in {}",
            Path::new(&file).display(),
            path.display()
        ),
    }
}
