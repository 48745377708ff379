//! `run`'s flame graphs: `--flamegraph out.svg`, `--folded out.txt`, `--by fuel|time`.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tta_telemetry::cost::Costs;
use tta_telemetry::flame::{self, By};

/// What a flame graph's widths stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlameBy {
    /// Fuel burned (roughly, wasm instructions): the same on every run of the same input.
    Fuel,
    /// Wall time.
    Time,
}

/// Where `run` draws the finished call.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Write the call's flame graph here, an SVG: each span as wide as its fuel or time
    /// (`--by`), children in the order they started; a workflow is one graph across its steps.
    #[arg(long, value_name = "PATH")]
    pub flamegraph: Option<PathBuf>,
    /// Write the call's folded stacks here (`frame;frame;frame value`, a stack's own fuel
    /// or nanoseconds), the format `flamegraph.pl`, inferno and speedscope read.
    #[arg(long, value_name = "PATH")]
    pub folded: Option<PathBuf>,
    /// What the widths and values stand for.
    #[arg(long, value_enum, default_value_t = FlameBy::Fuel)]
    pub by: FlameBy,
}

impl ProfileArgs {
    /// Writes the files asked for, of `costs`, titled `title`.
    pub fn write(&self, costs: &Costs, title: &str) -> anyhow::Result<()> {
        let by = match self.by {
            FlameBy::Fuel => By::Fuel,
            FlameBy::Time => By::Time,
        };
        if let Some(path) = &self.flamegraph {
            std::fs::write(path, flame::svg(costs, by, title))
                .with_context(|| format!("writing the flame graph to {}", path.display()))?;
            eprintln!("flame graph: {}", path.display());
        }
        if let Some(path) = &self.folded {
            std::fs::write(path, flame::folded(costs, by))
                .with_context(|| format!("writing the folded stacks to {}", path.display()))?;
            eprintln!("folded stacks: {}", path.display());
        }
        Ok(())
    }

    /// Whether any file was asked for.
    pub fn wanted(&self) -> bool {
        self.flamegraph.is_some() || self.folded.is_some()
    }
}
