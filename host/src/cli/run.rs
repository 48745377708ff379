//! `tta-host run`: one primitive, or a workflow file, once; and what `run` and `bench` share:
//! the target, its input, the plugin directory it resolves names in.

use super::output::{human_duration, print_guest_logs, summary, write_output};
use super::{exit, exit_code, step_exit_code};
use crate::host::{CallOptions, Host};
use crate::plugin::Plugin;
use crate::telemetry::LogFormat;
use crate::trace_context::parse_traceparent;
use anyhow::Context as _;
use clap::Args;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `run` and `bench` call, and its input.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A component file, the name of a primitive in the plugin directory, or a workflow file (`.toml`).
    pub target: String,
    /// Input (JSON by convention).
    #[arg(long, conflicts_with = "input_file")]
    pub input: Option<String>,
    /// Read the input from a file (`-` for stdin).
    #[arg(long)]
    pub input_file: Option<PathBuf>,
    /// Where primitives named by `invoke` (and by name) are found.
    #[arg(long, default_value = "plugins", env = "TTA_PLUGIN_DIR")]
    pub plugin_dir: PathBuf,
}

/// `tta-host run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to call, with what.
    #[command(flatten)]
    pub call: TargetArgs,
    /// Correlation id (default: a new UUID).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// W3C traceparent to run under.
    #[arg(long)]
    pub traceparent: Option<String>,
    /// W3C tracestate to pass along.
    #[arg(long)]
    pub tracestate: Option<String>,
    /// Tenant to run as.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Workflow data for the context, `key=value` (repeatable).
    #[arg(long = "data", value_parser = parse_key_value)]
    pub data: Vec<(String, String)>,
    /// Print the finished trace as a tree on stderr: spans, durations, fuel, events, logs.
    #[arg(long)]
    pub trace: bool,
    /// Print this run's Prometheus metrics (the `/metrics` text) on stderr when it ends.
    #[arg(long)]
    pub print_metrics: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

pub(super) async fn run(host: &Host, args: &RunArgs) -> anyhow::Result<u8> {
    if let Some(tp) = &args.traceparent {
        parse_traceparent(tp).map_err(|e| anyhow::anyhow!("--traceparent: {e}"))?;
    }
    let input = args.call.read_input()?;
    let target_path = Path::new(&args.call.target);
    if target_path.extension().is_some_and(|e| e == "toml") {
        return run_workflow(host, args, target_path, &input).await;
    }
    let plugin = match resolve_primitive(host, &args.call.target, &args.call.plugin_dir).await {
        Ok(plugin) => plugin,
        Err(code) => return Ok(code),
    };
    let outcome = host.call_plugin(&plugin, &input, call_options(args)).await;
    let json = host.config().telemetry.logs.format == LogFormat::Json;
    if !json {
        print_guest_logs(&outcome.report, 0);
    }
    let code = match &outcome.output {
        Ok(output) => {
            write_output(output)?;
            exit::OK
        }
        Err(e) if json => {
            let r = &outcome.report;
            tracing::error!(
                correlation_id = %r.correlation_id,
                trace_id = %format!("{:032x}", r.ids.trace_id),
                span_id = %format!("{:016x}", r.ids.span_id),
                primitive = %plugin.metadata.name,
                tenant = %r.tenant,
                error_type = e.error_type(),
                "{e}"
            );
            exit_code(e)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", plugin.metadata.name);
            exit_code(e)
        }
    };
    if !json {
        eprintln!("{}", summary(&outcome.report));
    }
    if args.trace {
        eprint!("{}", crate::telemetry::tree::render(&outcome.report));
    }
    if args.print_metrics {
        eprint!("{}", host.telemetry().metrics().render());
    }
    Ok(code)
}

/// The primitive `target` names: a component file (loaded), or a name in `plugin_dir`; the
/// plugin directory is loaded either way, for `invoke`. `Err` is the exit code, the problem
/// already printed.
pub(super) async fn resolve_primitive(host: &Host, target: &str, plugin_dir: &Path) -> Result<Arc<Plugin>, u8> {
    let target_path = Path::new(target);
    let is_file = target_path.extension().is_some_and(|e| e == "wasm") || target_path.is_file();
    let loaded = if is_file {
        match host.load(target_path).await {
            Ok(plugin) => Some(plugin),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(exit::LOAD);
            }
        }
    } else {
        None
    };
    load_plugin_dir(host, plugin_dir).await;
    match loaded.or_else(|| host.registry().get(target)) {
        Some(plugin) => Ok(plugin),
        None => {
            eprintln!(
                "error: no primitive named `{target}` in {} (loaded: {}); pass a .wasm file or build the plugins with `cargo xtask plugins`",
                plugin_dir.display(),
                host.registry().names().join(", ")
            );
            Err(exit::LOAD)
        }
    }
}

fn call_options(args: &RunArgs) -> CallOptions {
    CallOptions {
        correlation_id: args.correlation_id.clone(),
        tenant: Some(args.tenant.clone()),
        traceparent: args.traceparent.clone(),
        tracestate: args.tracestate.clone(),
        data: args.data.clone(),
        ..CallOptions::default()
    }
}

/// `tta-host run workflow.toml`: loads the plugin directory, compiles the workflow (every
/// problem reported, exit 7), runs it once.
/// The workflow file `path` compiled against the primitives of `plugin_dir`; `Ok(Err(code))`
/// when it is invalid, every problem printed with its line and column.
pub(super) async fn load_workflow(
    host: &Host,
    path: &Path,
    plugin_dir: &Path,
) -> anyhow::Result<Result<crate::workflow::Workflow, u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    load_plugin_dir(host, plugin_dir).await;
    Ok(crate::workflow::Workflow::from_text(&text, host).map_err(|problems| {
        for p in &problems {
            eprintln!("{}", p.in_file(path));
        }
        exit::INVALID_WORKFLOW
    }))
}

async fn run_workflow(host: &Host, args: &RunArgs, path: &Path, input: &[u8]) -> anyhow::Result<u8> {
    let workflow = match load_workflow(host, path, &args.call.plugin_dir).await? {
        Ok(workflow) => workflow,
        Err(code) => return Ok(code),
    };
    let outcome = workflow.run(input, call_options(args)).await;
    let json = host.config().telemetry.logs.format == LogFormat::Json;
    if !json {
        for call in &outcome.report.calls {
            print_guest_logs(call, 0);
        }
    }
    let code = match &outcome.output {
        Ok(output) => {
            write_output(output)?;
            exit::OK
        }
        Err(e) => {
            if json {
                tracing::error!(workflow = %workflow.name(), error_type = e.error_type(), "{e}");
            } else {
                eprintln!("error: workflow {}: {e}", workflow.name());
            }
            step_exit_code(e)
        }
    };
    let r = &outcome.report;
    if !json {
        let fuel: u64 = r.calls.iter().map(|c| c.stats.fuel_consumed).sum();
        eprintln!(
            "{} workflow {}: wall {}, {} calls, fuel {}, correlation_id {}, trace_id {:032x}",
            if r.error.is_none() { "ok" } else { "failed" },
            r.workflow,
            human_duration(r.wall),
            r.calls.len(),
            fuel,
            r.correlation_id,
            r.ids.trace_id
        );
    }
    if args.trace {
        eprint!("{}", crate::telemetry::tree::render_workflow(r));
    }
    if args.print_metrics {
        eprint!("{}", host.telemetry().metrics().render());
    }
    Ok(code)
}

/// Registers every loadable component of `dir`, so `invoke` and names resolve; files that
/// fail to load are skipped with a warning (they are not the target of this run).
pub(super) async fn load_plugin_dir(host: &Host, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    let registered: Vec<PathBuf> = host.registry().plugins().map(|p| p.path.clone()).collect();
    for path in paths {
        if registered.iter().any(|r| same_file(r, &path)) {
            continue;
        }
        match host.inspect(&path).await {
            Ok(plugin) => {
                if host.registry().get(&plugin.metadata.name).is_none() {
                    let _ = host.register(plugin);
                }
            }
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl TargetArgs {
    /// The input: `--input`, `--input-file` (`-` for stdin), or nothing.
    pub(super) fn read_input(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.input, &self.input_file) {
            (Some(text), _) => Ok(text.clone().into_bytes()),
            (None, Some(path)) if path == Path::new("-") => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .context("reading input from stdin")?;
                Ok(buf)
            }
            (None, Some(path)) => {
                std::fs::read(path).with_context(|| format!("reading --input-file {}", path.display()))
            }
            (None, None) => Ok(Vec::new()),
        }
    }
}
