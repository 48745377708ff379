//! `tta-host run`: one primitive, or a workflow file, once; and what `run` and `bench` share:
//! the target, its input, the plugin directory it resolves names in.

use super::exit::{self, exit_code, step_exit_code};
use super::output::{human_duration, print_guest_logs, summary, write_output};
use anyhow::Context as _;
use clap::Args;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tta_catalog::{self as catalog, Policy, WorkflowFileError};
use tta_core::config::guest::valid_key;
use tta_core::config::{HttpPolicy, Secret};
use tta_core::guest_config::GuestConfig;
use tta_core::recording::{Outcome, Payload, WorkflowRecord};
use tta_core::trace_context::parse_traceparent;
use tta_runtime::host::{CallOptions, Host};
use tta_runtime::primitive::Primitive;
use tta_runtime::tenant::Access;
use tta_telemetry::LogFormat;
use tta_telemetry::cost::Costs;

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
    /// Flame graphs of the finished call.
    #[command(flatten)]
    pub profile: super::profile::ProfileArgs,
    /// A recording of the call, for `replay`.
    #[command(flatten)]
    pub record: super::record::RecordArgs,
    /// A value the primitive reads through `wasi:config/store`, `key=value` (repeatable).
    #[arg(long = "config-value", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config_values: Vec<(String, String)>,
    /// A secret the primitive reads through `wasi:config/store`, `key=env:VAR` or
    /// `key=file:PATH` (repeatable); its value is scrubbed from every log, span, metric and
    /// error of the run.
    #[arg(long = "secret", value_name = "KEY=env:VAR|KEY=file:PATH", value_parser = parse_secret)]
    pub secrets: Vec<(String, Secret)>,
    /// Lets the primitive reach a destination over `wasi:http` (repeatable):
    /// `https://api.openai.com`, `http://127.0.0.1:11434`, `https://*.internal.example`.
    /// A bare host means https only. Without it, every outgoing request is refused.
    #[arg(long = "allow-http", value_name = "ORIGIN", value_parser = parse_allow)]
    pub allow_http: Vec<String>,
    /// A CA certificate file (PEM) trusted for outgoing HTTPS besides the Mozilla roots
    /// (repeatable), for a private service or a local proxy.
    #[arg(long = "ca-file", value_name = "PATH", requires = "allow_http")]
    pub ca_files: Vec<PathBuf>,
    /// The time limit of each outgoing request, from sending it to the end of its body, and
    /// of the wait for its first byte, in milliseconds.
    #[arg(long = "http-timeout-ms", value_name = "MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_timeout_ms: u64,
}

/// An `--allow-http` entry, checked as the config file's `[http] allow` entries are.
fn parse_allow(s: &str) -> Result<String, String> {
    let policy = HttpPolicy {
        allow: vec![s.to_owned()],
        ..HttpPolicy::default()
    };
    match policy.check("--allow-http").into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(s.to_owned()),
    }
}

/// What the primitive may reach over `wasi:http`: nothing unless `--allow-http` says.
fn access(args: &RunArgs) -> anyhow::Result<Option<Arc<Access>>> {
    if args.allow_http.is_empty() {
        return Ok(None);
    }
    let policy = HttpPolicy {
        allow: args.allow_http.clone(),
        ca_files: args.ca_files.clone(),
        timeout_ms: args.http_timeout_ms,
        first_byte_timeout_ms: args.http_timeout_ms,
        between_bytes_timeout_ms: args.http_timeout_ms,
        ..HttpPolicy::default()
    };
    let problems = policy.check("--ca-file");
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    let all = ["*".to_owned()];
    Ok(Some(Arc::new(Access::new(&args.tenant, &all, &all, policy))))
}

/// A `--secret`: a reference only, since a value on the command line is visible to every
/// user of the machine (`ps`) and stays in shell history.
pub(super) fn parse_secret(s: &str) -> Result<(String, Secret), String> {
    let (key, reference) = parse_key_value(s)?;
    let secret = Secret(reference);
    if !secret.is_reference() {
        return Err(format!(
            "the secret `{key}` must be a reference, `{key}=env:VAR` or `{key}=file:PATH`: a value on the command line is visible to every user of the machine"
        ));
    }
    Ok((key, secret))
}

/// What the primitive reads through `wasi:config`: the `--config-value`s and the resolved
/// `--secret`s; the error names every key whose reference cannot be read.
fn guest_config(args: &RunArgs) -> anyhow::Result<Arc<GuestConfig>> {
    for key in args
        .config_values
        .iter()
        .map(|(k, _)| k)
        .chain(args.secrets.iter().map(|(k, _)| k))
    {
        if !valid_key(key) {
            anyhow::bail!("config key `{key}` is invalid; use letters, digits, `_`, `-` and `.`");
        }
    }
    GuestConfig::from_pairs(&args.config_values, &args.secrets)
        .map(Arc::new)
        .map_err(|problems| {
            let named: Vec<&str> = problems
                .iter()
                .map(|p| p.strip_prefix("secrets.").unwrap_or(p))
                .collect();
            anyhow::anyhow!("--secret {}", named.join("; --secret "))
        })
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
    let config = guest_config(args)?;
    let access = access(args)?;
    let input = args.call.read_input()?;
    let target_path = Path::new(&args.call.target);
    if target_path.extension().is_some_and(|e| e == "toml") {
        return run_workflow(host, args, target_path, &input, config, access).await;
    }
    let primitive = match resolve_primitive(host, &args.call.target, &args.call.plugin_dir).await {
        Ok(primitive) => primitive,
        Err(code) => return Ok(code),
    };
    let recorder = args.record.start(host);
    let mut options = call_options(args, config, access);
    options.recording = recorder.as_ref().map(super::record::Recorder::session);
    let outcome = host.call_primitive(&primitive, &input, options).await;
    if let Some(recorder) = recorder {
        recorder.finish(None)?;
    }
    let json = host.config().telemetry.logs.format == LogFormat::Json;
    if !json {
        print_guest_logs(&outcome.report, 0);
    }
    let mut open_line = false;
    let code = match &outcome.output {
        Ok(output) => {
            open_line = write_output(output)?;
            exit::OK
        }
        Err(e) if json => {
            let r = &outcome.report;
            tracing::error!(
                correlation_id = %r.correlation_id,
                trace_id = %format!("{:032x}", r.ids.trace_id),
                span_id = %format!("{:016x}", r.ids.span_id),
                primitive = %primitive.metadata.name,
                tenant = %r.tenant,
                error_type = e.error_type(),
                "{e}"
            );
            exit_code(e)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", primitive.metadata.name);
            exit_code(e)
        }
    };
    if !json {
        eprintln!("{}{}", if open_line { "\n" } else { "" }, summary(&outcome.report));
    }
    if args.trace {
        eprint!("{}", tta_telemetry::tree::render(&outcome.report));
    }
    if args.profile.wanted() {
        let title = format!(
            "{} · trace {:032x}",
            primitive.metadata.name, outcome.report.ids.trace_id
        );
        args.profile.write(&Costs::of_call(&outcome.report), &title)?;
    }
    if args.print_metrics {
        eprint!("{}", host.telemetry().metrics().render());
    }
    Ok(code)
}

/// The primitive `target` names: a component file, or a name in `plugin_dir`. Only what the
/// call can reach is loaded: the target, and the rest of the plugin directory only when it
/// imports `invoke` (a Python or JavaScript guest costs tens of MiB to load). `Err` is the
/// exit code, the problem already printed.
pub(super) async fn resolve_primitive(host: &Host, target: &str, plugin_dir: &Path) -> Result<Arc<Primitive>, u8> {
    let target_path = Path::new(target);
    let is_file = target_path.extension().is_some_and(|e| e == "wasm") || target_path.is_file();
    if is_file {
        let primitive = match load_file(host, target_path).await {
            Some(Ok(primitive)) => primitive,
            Some(Err(e)) => {
                eprintln!("error: {e}");
                return Err(exit::LOAD);
            }
            None => return Err(exit::LOAD),
        };
        if primitive.invokes() {
            load_plugin_dir(host, plugin_dir).await;
        }
        return Ok(primitive);
    }
    load_named(host, plugin_dir, std::iter::once(target.to_owned())).await;
    match host.registry().get(target) {
        Some(primitive) => Ok(primitive),
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

/// Loads the component file at `path`.
async fn load_file(host: &Host, path: &Path) -> Option<Result<Arc<Primitive>, tta_core::error::LoadError>> {
    catalog::load_primitives(host, vec![path.to_owned()], Policy::FailFast, |_, _, _| {})
        .await
        .pop()
        .map(|loaded| loaded.result)
}

/// Loads the primitives `names` from `plugin_dir`, each from `<name>.wasm` where that file
/// provides it; the whole directory when one is elsewhere or one of them imports `invoke`.
async fn load_named(host: &Host, plugin_dir: &Path, names: impl IntoIterator<Item = String>) {
    let mut whole_dir = false;
    for name in names {
        if host.registry().get(&name).is_some() {
            continue;
        }
        let path = plugin_dir.join(format!("{name}.wasm"));
        let paths = if path.is_file() { vec![path] } else { Vec::new() };
        catalog::load_primitives(host, paths, Policy::Supplement, |_, _, _| {}).await;
        whole_dir |= host.registry().get(&name).is_none_or(|p| p.invokes());
    }
    if whole_dir {
        load_plugin_dir(host, plugin_dir).await;
    }
}

fn call_options(args: &RunArgs, config: Arc<GuestConfig>, access: Option<Arc<Access>>) -> CallOptions {
    CallOptions {
        config: Some(config),
        access,
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
) -> anyhow::Result<Result<tta_workflow::Workflow, u8>> {
    let text = catalog::read_workflow_text(path)?;
    // The primitives the file names, if it parses; every problem is reported below.
    if let Ok(file) = tta_workflow::parse(&text) {
        load_named(host, plugin_dir, file.primitives()).await;
    }
    match catalog::compile_workflow(host, path, &text) {
        Ok(workflow) => Ok(Ok(workflow)),
        Err(WorkflowFileError::Invalid { problems, .. }) => {
            for p in &problems {
                eprintln!("{}", p.in_file(path));
            }
            Ok(Err(exit::INVALID_WORKFLOW))
        }
        Err(e) => Err(e.into()),
    }
}

async fn run_workflow(
    host: &Host,
    args: &RunArgs,
    path: &Path,
    input: &[u8],
    config: Arc<GuestConfig>,
    access: Option<Arc<Access>>,
) -> anyhow::Result<u8> {
    let workflow = match load_workflow(host, path, &args.call.plugin_dir).await? {
        Ok(workflow) => workflow,
        Err(code) => return Ok(code),
    };
    let recorder = args.record.start(host);
    let redactor = Arc::clone(&config);
    let mut options = call_options(args, config, access);
    options.recording = recorder.as_ref().map(super::record::Recorder::session);
    let outcome = workflow.run(input, options).await;
    if let Some(recorder) = recorder {
        let mut record = WorkflowRecord {
            name: workflow.name().to_owned(),
            source: workflow.source().to_owned(),
            input: Payload(input.to_vec()),
            outcome: match &outcome.output {
                Ok(output) => Outcome::Ok(Payload(output.clone())),
                Err(e) => Outcome::Err {
                    error_type: e.error_type().to_owned(),
                    message: e.to_string(),
                },
            },
        };
        record.scrub(redactor.redactor());
        recorder.finish(Some(record))?;
    }
    let json = host.config().telemetry.logs.format == LogFormat::Json;
    if !json {
        for call in &outcome.report.calls {
            print_guest_logs(call, 0);
        }
    }
    let mut open_line = false;
    let code = match &outcome.output {
        Ok(output) => {
            open_line = write_output(output)?;
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
            "{}{} workflow {}: wall {}, {} calls, fuel {}, correlation_id {}, trace_id {:032x}",
            if open_line { "\n" } else { "" },
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
        eprint!("{}", tta_telemetry::tree::render_workflow(r));
    }
    if args.profile.wanted() {
        let title = format!("workflow {} · trace {:032x}", r.workflow, r.ids.trace_id);
        args.profile.write(&Costs::of_workflow(r), &title)?;
    }
    if args.print_metrics {
        eprint!("{}", host.telemetry().metrics().render());
    }
    Ok(code)
}

/// Registers every loadable component of `dir` not loaded yet, so `invoke` and names
/// resolve; files that fail to load are skipped with a warning (they are not the target).
pub(super) async fn load_plugin_dir(host: &Host, dir: &Path) {
    let paths = catalog::list(dir, "wasm").into_keys().collect();
    for loaded in catalog::load_primitives(host, paths, Policy::Supplement, |_, _, _| {}).await {
        if let Err(e) = loaded.result {
            tracing::warn!("skipping {}: {e}", loaded.path.display());
        }
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
