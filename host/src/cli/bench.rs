//! `tta-host bench`: measures a primitive or a workflow the way tta-host's benchmarks do.

use super::exit::{self, exit_code};
use super::run::{TargetArgs, load_workflow, resolve_primitive};
use clap::Args;
use std::path::Path;
use tta_runtime::host::{CallOptions, Host};

/// `tta-host bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to call, with what.
    #[command(flatten)]
    pub call: TargetArgs,
    /// Measured calls.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iterations: u64,
    /// Calls before measuring (default: a tenth of the iterations, at least 10).
    #[arg(long)]
    pub warmup: Option<u64>,
}

/// `tta-host bench`: measures the target and prints the table.
pub(super) async fn bench(host: &Host, args: &BenchArgs) -> anyhow::Result<u8> {
    let input = args.call.read_input()?;
    let iterations = usize::try_from(args.iterations).unwrap_or(usize::MAX);
    let warmup = args
        .warmup
        .map_or((iterations / 10).max(10), |w| usize::try_from(w).unwrap_or(usize::MAX));
    let target_path = Path::new(&args.call.target);
    if target_path.extension().is_some_and(|e| e == "toml") {
        let workflow = match load_workflow(host, target_path, &args.call.plugin_dir).await? {
            Ok(workflow) => workflow,
            Err(code) => return Ok(code),
        };
        eprintln!(
            "benchmarking workflow {}: {warmup} warm-up runs, {iterations} measured",
            workflow.name()
        );
        let result = crate::bench::workflow(&workflow, &input, iterations, warmup).await;
        print!(
            "{}",
            crate::bench::render_workflow(workflow.name(), &result, iterations)
        );
        return Ok(if result.failures > 0 {
            exit::GUEST_ERROR
        } else {
            exit::OK
        });
    }
    let primitive = match resolve_primitive(host, &args.call.target, &args.call.plugin_dir).await {
        Ok(primitive) => primitive,
        Err(code) => return Ok(code),
    };
    let first = host.call_primitive(&primitive, &input, CallOptions::default()).await;
    if let Err(e) = &first.output {
        eprintln!(
            "error: {}: {e} (fix the input or the primitive before measuring it)",
            primitive.metadata.name
        );
        return Ok(exit_code(e));
    }
    eprintln!(
        "benchmarking {} {} ({}): {warmup} warm-up calls, {iterations} measured",
        primitive.metadata.name,
        primitive.metadata.version,
        primitive.language.as_deref().unwrap_or("unknown language")
    );
    let result = crate::bench::primitive(host, &primitive, &input, iterations, warmup).await;
    print!(
        "{}",
        crate::bench::render(&primitive.metadata.name, &result, iterations)
    );
    Ok(if result.failures > 0 {
        exit::GUEST_ERROR
    } else {
        exit::OK
    })
}
