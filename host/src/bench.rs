//! `tta-host bench`: a user's own primitive or workflow measured the way the benchmarks
//! measure ours, on the real call path with the host's instrumentation on.
//!
//! Each iteration is one call as `run` and `serve` make it (a fresh instance from the
//! pre-linked component, the call, metrics, the span hand-over). The report splits it into
//! instantiation and execution from the call's own stats, and gives fuel per call, so a
//! slow primitive shows whether its time goes to start-up or to its own work.

use crate::Host;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tta_runtime::host::CallOptions;
use tta_runtime::primitive::Primitive;

/// Nanosecond samples of one measure.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

/// The summary of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The mean, in nanoseconds.
    pub mean: f64,
    /// The median.
    pub p50: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The least.
    pub min: u64,
}

impl Extend<Duration> for Samples {
    fn extend<I: IntoIterator<Item = Duration>>(&mut self, durations: I) {
        for duration in durations {
            self.push(duration);
        }
    }
}

impl Samples {
    /// Adds one sample.
    pub fn push(&mut self, duration: Duration) {
        self.0.push(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Mean, median, 99th percentile and minimum; `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        if self.0.is_empty() {
            return None;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Summary {
            mean: sorted.iter().map(|&n| n as f64).sum::<f64>() / sorted.len() as f64,
            p50: at(0.50),
            p99: at(0.99),
            min: sorted[0],
        })
    }
}

/// What a benchmark of a primitive measured.
#[derive(Debug, Default, Clone)]
pub struct PrimitiveBench {
    /// Whole calls, as the caller waits for them.
    pub call: Samples,
    /// Instantiation, from each call's stats.
    pub instantiate: Samples,
    /// The guest's own work: the call's wall time less instantiation.
    pub execute: Samples,
    /// Fuel of each call.
    pub fuel: Vec<u64>,
    /// Calls that failed.
    pub failures: usize,
    /// Wall time of the measured iterations.
    pub elapsed: Duration,
}

/// Calls `plugin` `warmup` times, then `iterations` times measured.
pub async fn primitive(
    host: &Host,
    primitive: &Arc<Primitive>,
    input: &[u8],
    iterations: usize,
    warmup: usize,
) -> PrimitiveBench {
    for _ in 0..warmup {
        host.call_primitive(primitive, input, CallOptions::default()).await;
    }
    let mut bench = PrimitiveBench::default();
    let started = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        let outcome = host.call_primitive(primitive, input, CallOptions::default()).await;
        bench.call.push(t.elapsed());
        let stats = &outcome.report.stats;
        bench.instantiate.push(stats.instantiate);
        bench.execute.push(stats.wall.saturating_sub(stats.instantiate));
        bench.fuel.push(stats.fuel_consumed);
        bench.failures += usize::from(outcome.output.is_err());
    }
    bench.elapsed = started.elapsed();
    bench
}

/// What a benchmark of a workflow measured.
#[derive(Debug, Default, Clone)]
pub struct WorkflowBench {
    /// Whole runs.
    pub run: Samples,
    /// Primitive calls of each run.
    pub calls: Vec<usize>,
    /// Fuel of each run, all its calls.
    pub fuel: Vec<u64>,
    /// Runs that failed.
    pub failures: usize,
    /// Wall time of the measured iterations.
    pub elapsed: Duration,
}

/// Runs `workflow` `warmup` times, then `iterations` times measured.
pub async fn workflow(
    workflow: &tta_workflow::Workflow,
    input: &[u8],
    iterations: usize,
    warmup: usize,
) -> WorkflowBench {
    for _ in 0..warmup {
        workflow.run(input, CallOptions::default()).await;
    }
    let mut bench = WorkflowBench::default();
    let started = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        let outcome = workflow.run(input, CallOptions::default()).await;
        bench.run.push(t.elapsed());
        bench.calls.push(outcome.report.calls.len());
        bench
            .fuel
            .push(outcome.report.calls.iter().map(|c| c.stats.fuel_consumed).sum());
        bench.failures += usize::from(outcome.output.is_err());
    }
    bench.elapsed = started.elapsed();
    bench
}

/// The table `tta-host bench` prints for a workflow.
pub fn render_workflow(name: &str, bench: &WorkflowBench, iterations: usize) -> String {
    let mut out = String::new();
    header(&mut out, name);
    row(&mut out, "run", &bench.run);
    let runs = bench.calls.len().max(1) as f64;
    let calls = bench.calls.iter().sum::<usize>() as f64 / runs;
    let fuel = bench.fuel.iter().sum::<u64>() as f64 / runs;
    let per_second = iterations as f64 / bench.elapsed.as_secs_f64().max(f64::EPSILON);
    let _ = writeln!(
        out,
        "{calls:.1} calls and {fuel:.0} fuel per run, {per_second:.0} runs/s on one task, {} of {iterations} failed",
        bench.failures
    );
    out
}

/// The header of a table, with `name` over the labels.
fn header(out: &mut String, name: &str) {
    let _ = writeln!(
        out,
        "{:<26} {:>10} {:>10} {:>10} {:>10} {:>12}",
        name, "mean", "p50", "p99", "min", "ns/op"
    );
}

/// One row of a table: the summary of `samples`, if there are any.
fn row(out: &mut String, label: &str, samples: &Samples) {
    if let Some(s) = samples.summary() {
        let _ = writeln!(
            out,
            "{label:<26} {:>10} {:>10} {:>10} {:>10} {:>12.0}",
            human_ns(s.mean),
            human_ns(s.p50 as f64),
            human_ns(s.p99 as f64),
            human_ns(s.min as f64),
            s.mean
        );
    }
}

/// A duration in nanoseconds for people: `812 ns`, `31.2 µs`, `2.41 ms`.
pub fn human_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// The table `tta-host bench` prints for a primitive.
pub fn render(name: &str, bench: &PrimitiveBench, iterations: usize) -> String {
    let mut out = String::new();
    header(&mut out, name);
    row(&mut out, "call (fresh instance)", &bench.call);
    row(&mut out, "  instantiate", &bench.instantiate);
    row(&mut out, "  execute (warm instance)", &bench.execute);
    let fuel = if bench.fuel.is_empty() {
        0
    } else {
        bench.fuel.iter().sum::<u64>() / bench.fuel.len() as u64
    };
    let per_second = iterations as f64 / bench.elapsed.as_secs_f64().max(f64::EPSILON);
    let _ = writeln!(
        out,
        "fuel per call {fuel}, {per_second:.0} calls/s on one task, {} of {iterations} failed",
        bench.failures
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let mut samples = Samples::default();
        for n in 1..=100u64 {
            samples.push(Duration::from_nanos(n * 10));
        }
        let s = samples.summary().expect("samples");
        assert_eq!((s.p50, s.p99, s.min), (510, 990, 10));
        assert!((s.mean - 505.0).abs() < 1e-9);
        assert_eq!(Samples::default().summary(), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ns(812.0), "812 ns");
        assert_eq!(human_ns(31_200.0), "31.2 µs");
        assert_eq!(human_ns(2_410_000.0), "2.41 ms");
    }
}
