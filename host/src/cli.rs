//! The `tta-host` command line: `load` and `run`.
//!
//! Output for people goes to stdout (the load table, a call's output); progress, guest
//! logs, summaries and errors go to stderr. Exit codes say what kind of failure it was.

use crate::bindings::Level;
use crate::config::HostConfig;
use crate::error::{CallError, LoadError};
use crate::host::{CallOptions, Host};
use crate::plugin::Plugin;
use crate::report::{CallReport, parse_traceparent};
use crate::telemetry::{Exporter, LogFormat, OtlpProtocol, SamplerKind, value_text};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Exit codes, stable for scripts.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A host-side failure (bad config, I/O).
    pub const HOST: u8 = 1;
    /// Bad command-line usage (from clap).
    pub const USAGE: u8 = 2;
    /// A component was rejected at load.
    pub const LOAD: u8 = 3;
    /// The primitive returned an error.
    pub const GUEST_ERROR: u8 = 4;
    /// The guest trapped.
    pub const TRAP: u8 = 5;
    /// The call hit a limit: fuel, deadline, memory, stack, payload size, nesting.
    pub const LIMIT: u8 = 6;
    /// A workflow file is invalid.
    pub const INVALID_WORKFLOW: u8 = 7;
}

const EXIT_CODES_HELP: &str = "Exit codes: 0 success, 1 host error, 2 usage, 3 component rejected at load, \
4 primitive returned an error, 5 guest trapped, 6 a limit was hit (fuel, deadline, memory, stack, size), \
7 a workflow file is invalid.";

/// Runs workflow primitives as sandboxed WebAssembly components and makes every call observable.
#[derive(Debug, Parser)]
#[command(name = "tta-host", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Config file (TOML); flags override it.
    #[arg(long, global = true, env = "TTA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr: `pretty` for people, `json` for the TTA.dev JSON lines.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// More host logs (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Telemetry settings that override the config file and the `OTEL_*` variables.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryArgs {
    /// OTLP endpoint for traces, logs and metrics (e.g. http://localhost:4317); turns OTLP on.
    #[arg(long, global = true)]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol.
    #[arg(long, global = true, value_enum)]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Where traces go (repeatable): otlp, console, file.
    #[arg(long = "traces-exporter", global = true, value_enum)]
    pub traces_exporters: Vec<Exporter>,
    /// Where call and guest log records go (repeatable): otlp, console, file.
    #[arg(long = "logs-exporter", global = true, value_enum)]
    pub logs_exporters: Vec<Exporter>,
    /// JSON-lines file of the `file` trace exporter.
    #[arg(long, global = true)]
    pub traces_file: Option<PathBuf>,
    /// JSON-lines file of the `file` log exporter.
    #[arg(long, global = true)]
    pub logs_file: Option<PathBuf>,
    /// Share of new traces recorded, 0.0 to 1.0 (parent-based: a caller's decision wins).
    #[arg(long, global = true)]
    pub sample_ratio: Option<f64>,
    /// Serve Prometheus `/metrics` on this address (default 0.0.0.0:9464 for long-running
    /// commands; `load` and `run` serve only when given this flag).
    #[arg(long, global = true)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve no metrics endpoint, whatever the config says.
    #[arg(long, global = true, conflicts_with = "metrics_addr")]
    pub no_metrics: bool,
    /// `service.name` on all telemetry.
    #[arg(long, global = true)]
    pub service_name: Option<String>,
}

/// Limits that override the config file.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Fuel one call may burn.
    #[arg(long, global = true)]
    pub fuel: Option<u64>,
    /// Wall-clock limit of one call, in milliseconds.
    #[arg(long, global = true)]
    pub timeout_ms: Option<u64>,
    /// Linear memory one instance may use, in MiB.
    #[arg(long, global = true)]
    pub max_memory_mb: Option<usize>,
    /// Largest input, in bytes.
    #[arg(long, global = true)]
    pub max_input_bytes: Option<usize>,
    /// Largest output, in bytes.
    #[arg(long, global = true)]
    pub max_output_bytes: Option<usize>,
    /// Where compiled components are cached (default: the user cache dir, or TTA_CACHE_DIR).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component afresh; do not read or write the cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate components and print what each one is.
    ///
    /// Prints a table: name, version, source language, size, compile time, and OK or
    /// the exact reason a file was rejected. Exits 3 if any file was rejected.
    #[command(after_help = EXIT_CODES_HELP)]
    Load(LoadArgs),
    /// Run one primitive, or a workflow file (`.toml`), once and print its output.
    ///
    /// The output goes to stdout; guest logs and a summary (status, wall time, fuel,
    /// peak memory) go to stderr.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Check workflow files and report every problem with its line, column and key.
    ///
    /// Steps must exist, primitives must be loadable from the plugin directory, routes must
    /// have targets, and no step may run itself. Exits 7 if any file is invalid.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate(ValidateArgs),
    /// Serve the HTTP API: tenants run primitives and workflows, upload components; `/metrics`,
    /// `/healthz`, `/readyz`.
    ///
    /// Tenants, quotas and directories come from the config file (`[server]`, `[[tenants]]`;
    /// see the README). Plugins and workflows are reloaded when their files change. SIGTERM
    /// or Ctrl-C stops accepting, lets in-flight requests finish, and flushes telemetry.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Make a new API key and print it with the SHA-256 that goes in the config.
    ///
    /// The key is shown once: give it to the tenant; put only `api_key_sha256` in `tta.toml`.
    Keygen(KeygenArgs),
    /// Make a new primitive project in Rust, Python, JavaScript or C.
    ///
    /// Writes the source of a working primitive, the WIT of the contract, a `build.sh` that
    /// installs its toolchain when missing and builds `<name>.wasm`, an `input.json` to try it
    /// with, and a README. Then: `cd <name> && ./build.sh && tta-host run <name>.wasm
    /// --input-file input.json --trace`.
    #[command(after_help = "Exit codes: 0 made, 1 the directory exists or cannot be written, 2 bad name or usage.")]
    New(NewArgs),
    /// Measure a primitive or a workflow the way tta-host's benchmarks do.
    ///
    /// Calls it `--iterations` times after a warm-up, each call as `run` and `serve` make it
    /// (a fresh instance, the host's instrumentation on), and prints mean, p50, p99 and
    /// minimum of the whole call, its instantiation and its execution, with fuel per call.
    #[command(after_help = EXIT_CODES_HELP)]
    Bench(BenchArgs),
}

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

/// `tta-host new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The primitive's name, also the directory's: a-z, 0-9, '-', '_', starting with a letter.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: crate::scaffold::Language,
    /// Where to make it (default: ./<name>); must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The tta-guest SDK the Rust template depends on (default: the guest-sdk this binary was built with).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

const SERVE_HELP: &str = "Exit codes: 0 stopped cleanly (or --check found nothing wrong), 1 the config is invalid \
or the listener cannot bind, 3 --check: a plugin is rejected, 7 --check: a workflow is invalid.";

/// `tta-host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Validate the config, the plugins and the workflows, report every problem, and exit.
    #[arg(long)]
    pub check: bool,
    /// Listen on this address instead of `server.listen`.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Shared primitives directory instead of `server.plugins_dir`.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
    /// Workflows directory instead of `server.workflows_dir`.
    #[arg(long)]
    pub workflows_dir: Option<PathBuf>,
    /// Uploads directory instead of `server.uploads_dir`.
    #[arg(long)]
    pub uploads_dir: Option<PathBuf>,
}

/// `tta-host keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Print the SHA-256 of this existing key instead of making a new one.
    #[arg(long)]
    pub hash: Option<String>,
}

/// `tta-host validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files (TOML).
    #[arg(required_unless_present = "schema")]
    pub files: Vec<PathBuf>,
    /// Where the primitives the workflows name are found.
    #[arg(long, default_value = "plugins", env = "TTA_PLUGIN_DIR")]
    pub plugin_dir: PathBuf,
    /// Print the JSON Schema of workflow files and exit.
    #[arg(long)]
    pub schema: bool,
}

/// `tta-host load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Component files (`plugins/*.wasm`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
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

/// Runs the CLI and returns the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    if let Command::Keygen(args) = &cli.command {
        keygen(args);
        return exit::OK;
    }
    if let Command::New(args) = &cli.command {
        return new_project(args);
    }
    let config = match host_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::HOST;
        }
    };
    let level = match cli.verbose {
        0 => config.telemetry.logs.level.clone(),
        1 => "debug".into(),
        _ => "trace".into(),
    };
    let telemetry = match crate::telemetry::Telemetry::builder(config.telemetry.clone())
        .install_logger(format!("warn,tta_host={level}"))
        .build()
    {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::HOST;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::HOST;
        }
    };
    let code = match runtime.block_on(run_command(cli, config, telemetry.clone())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::HOST
        }
    };
    if let Err(e) = telemetry.shutdown() {
        tracing::warn!("{e}");
    }
    code
}

fn host_config(cli: &Cli) -> anyhow::Result<HostConfig> {
    let mut config = match &cli.config {
        Some(path) => HostConfig::from_file(path)?,
        None => HostConfig::default(),
    };
    let l = &cli.limits;
    if let Some(v) = l.fuel {
        config.limits.fuel = v;
    }
    if let Some(v) = l.timeout_ms {
        config.limits.timeout_ms = v;
    }
    if let Some(v) = l.max_memory_mb {
        config.limits.max_memory_bytes = v.checked_mul(1 << 20).context("--max-memory-mb is too large")?;
    }
    if let Some(v) = l.max_input_bytes {
        config.limits.max_input_bytes = v;
    }
    if let Some(v) = l.max_output_bytes {
        config.limits.max_output_bytes = v;
    }
    if let Some(dir) = &l.cache_dir {
        config.cache_dir = Some(dir.clone());
    }
    if l.no_cache {
        config.cache_dir = None;
    }
    let t = &mut config.telemetry;
    t.apply_env(|name| std::env::var(name).ok())?;
    let a = &cli.telemetry;
    if let Some(endpoint) = &a.otlp_endpoint {
        t.otlp.endpoint = Some(endpoint.clone());
        for list in [&mut t.traces.exporters, &mut t.logs.exporters, &mut t.metrics.exporters] {
            if !list.contains(&Exporter::Otlp) {
                list.push(Exporter::Otlp);
            }
        }
    }
    if let Some(protocol) = a.otlp_protocol {
        t.otlp.protocol = protocol;
    }
    if !a.traces_exporters.is_empty() {
        t.traces.exporters = a.traces_exporters.clone();
    }
    if !a.logs_exporters.is_empty() {
        t.logs.exporters = a.logs_exporters.clone();
    }
    if let Some(path) = &a.traces_file {
        t.traces.file = Some(path.clone());
    }
    if let Some(path) = &a.logs_file {
        t.logs.file = Some(path.clone());
    }
    if let Some(ratio) = a.sample_ratio {
        t.traces.sampler = SamplerKind::ParentbasedTraceidratio;
        t.traces.sampler_arg = ratio;
    }
    // `load` and `run` end at once: nothing could scrape them unless asked for explicitly.
    if matches!(
        cli.command,
        Command::Load(_)
            | Command::Run(_)
            | Command::Validate(_)
            | Command::Keygen(_)
            | Command::New(_)
            | Command::Bench(_)
    ) || matches!(&cli.command, Command::Serve(args) if args.check)
    {
        t.metrics.listen = None;
    }
    if let Some(addr) = a.metrics_addr {
        t.metrics.listen = Some(addr);
    }
    if a.no_metrics {
        t.metrics.listen = None;
    }
    if let Some(name) = &a.service_name {
        t.service_name = name.clone();
    }
    if let Some(format) = cli.log_format {
        t.logs.format = format;
    }
    // In JSON mode a run's records are the JSON lines themselves, so they go to stderr.
    if t.logs.format == LogFormat::Json
        && matches!(cli.command, Command::Run(_))
        && !t.logs.exporters.contains(&Exporter::Console)
    {
        t.logs.exporters.push(Exporter::Console);
    }
    if let Command::Serve(args) = &cli.command {
        let s = &mut config.server;
        if let Some(listen) = args.listen {
            s.listen = listen;
        }
        for (flag, slot) in [
            (&args.plugins_dir, &mut s.plugins_dir),
            (&args.workflows_dir, &mut s.workflows_dir),
            (&args.uploads_dir, &mut s.uploads_dir),
        ] {
            if let Some(dir) = flag {
                *slot = Some(dir.clone());
            }
        }
        // `serve --check` reports every problem itself.
        if args.check {
            return Ok(config);
        }
    }
    config.validate()?;
    Ok(config)
}

async fn run_command(cli: Cli, config: HostConfig, telemetry: crate::telemetry::Telemetry) -> anyhow::Result<u8> {
    let host = Host::with_telemetry(config, telemetry)?;
    match cli.command {
        Command::Load(args) => load(&host, &args).await,
        Command::Run(args) => run(&host, &args).await,
        Command::Validate(args) => validate(&host, &args).await,
        Command::Serve(args) => serve(host, &args).await,
        Command::Keygen(args) => {
            keygen(&args);
            Ok(exit::OK)
        }
        Command::New(args) => Ok(new_project(&args)),
        Command::Bench(args) => bench(&host, &args).await,
    }
}

/// `tta-host bench`: measures the target and prints the table.
async fn bench(host: &Host, args: &BenchArgs) -> anyhow::Result<u8> {
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
    let plugin = match resolve_primitive(host, &args.call.target, &args.call.plugin_dir).await {
        Ok(plugin) => plugin,
        Err(code) => return Ok(code),
    };
    let first = host.call_plugin(&plugin, &input, CallOptions::default()).await;
    if let Err(e) = &first.output {
        eprintln!(
            "error: {}: {e} (fix the input or the primitive before measuring it)",
            plugin.metadata.name
        );
        return Ok(exit_code(e));
    }
    eprintln!(
        "benchmarking {} {} ({}): {warmup} warm-up calls, {iterations} measured",
        plugin.metadata.name,
        plugin.metadata.version,
        plugin.language.as_deref().unwrap_or("unknown language")
    );
    let result = crate::bench::primitive(host, &plugin, &input, iterations, warmup).await;
    print!("{}", crate::bench::render(&plugin.metadata.name, &result, iterations));
    Ok(if result.failures > 0 {
        exit::GUEST_ERROR
    } else {
        exit::OK
    })
}

/// `tta-host new`: makes the project and says what to do next.
fn new_project(args: &NewArgs) -> u8 {
    use crate::scaffold::{self, ScaffoldError};
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args.sdk.clone().unwrap_or_else(scaffold::default_sdk);
    match scaffold::create(&args.name, args.lang, &dir, &sdk) {
        Ok(files) => {
            println!("made {} ({}) in {}:", args.name, args.lang.display(), dir.display());
            for file in files
                .iter()
                .filter(|f| !f.starts_with("wit/") && !f.starts_with("sdk/"))
            {
                println!("  {file}");
            }
            println!("next:\n  cd {} && ./build.sh", dir.display());
            println!("  tta-host run {}.wasm --input-file input.json --trace", args.name);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, ScaffoldError::BadName(_)) {
                exit::USAGE
            } else {
                exit::HOST
            }
        }
    }
}

/// `tta-host keygen`: a new key and its hash, or the hash of a given key.
fn keygen(args: &KeygenArgs) {
    match &args.hash {
        Some(key) => println!("{}", crate::tenant::hash_key(key)),
        None => {
            let key = crate::tenant::generate_key();
            println!("key:            {key}");
            println!("api_key_sha256: {}", crate::tenant::hash_key(&key));
        }
    }
}

/// `tta-host serve`: checks the config (all problems at once), binds, serves until a
/// signal, drains.
async fn serve(host: Host, args: &ServeArgs) -> anyhow::Result<u8> {
    let problems = crate::server::check(host.config());
    for problem in &problems {
        eprintln!("error: config: {problem}");
    }
    if args.check {
        let (rejected, invalid) = crate::server::check_files(&host).await;
        let code = if !problems.is_empty() {
            exit::HOST
        } else if rejected > 0 {
            exit::LOAD
        } else if invalid > 0 {
            exit::INVALID_WORKFLOW
        } else {
            exit::OK
        };
        if code == exit::OK {
            eprintln!("config OK: {} tenant(s)", host.config().tenants.len());
        }
        return Ok(code);
    }
    if !problems.is_empty() {
        eprintln!(
            "error: {} problem(s) in the config; `tta-host serve --check` lists them without starting",
            problems.len()
        );
        return Ok(exit::HOST);
    }
    let listen = host.config().server.listen;
    let server = crate::server::Server::bind(host.clone())
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, tenants = host.config().tenants.len(), primitives = host.registry().names().len(), "serving the HTTP API");
    eprintln!("tta-host serving on http://{addr}");
    let drained = server.run(crate::server::shutdown_signal()).await;
    let flushed = tokio::task::spawn_blocking(move || host.telemetry().flush(Duration::from_secs(5)))
        .await
        .unwrap_or(false);
    if !flushed {
        tracing::warn!("telemetry was not fully flushed within 5 s");
    }
    tracing::info!(drained, "stopped");
    Ok(exit::OK)
}

async fn validate(host: &Host, args: &ValidateArgs) -> anyhow::Result<u8> {
    if args.schema {
        print!("{}", crate::workflow::json_schema());
        return Ok(exit::OK);
    }
    let have_plugins = args.plugin_dir.is_dir();
    if have_plugins {
        load_plugin_dir(host, &args.plugin_dir).await;
    } else {
        tracing::warn!(
            "plugin directory {} not found: primitive names are not checked",
            args.plugin_dir.display()
        );
    }
    let registry = host.registry();
    let is_primitive = |name: &str| registry.get(name).is_some();
    let mut invalid = 0;
    for path in &args.files {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let problems = match crate::workflow::parse(&text) {
            Ok(file) => {
                let check: Option<&dyn Fn(&str) -> bool> = if have_plugins { Some(&is_primitive) } else { None };
                let problems = crate::workflow::validate(&file, &text, check);
                if problems.is_empty() {
                    println!(
                        "{}: OK (workflow `{}`, {} steps)",
                        path.display(),
                        file.name.get_ref(),
                        file.steps.len()
                    );
                }
                problems
            }
            Err(problems) => problems,
        };
        if !problems.is_empty() {
            invalid += 1;
            for p in &problems {
                eprintln!("{}", p.in_file(path));
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
        }
    }
    Ok(if invalid > 0 { exit::INVALID_WORKFLOW } else { exit::OK })
}

async fn load(host: &Host, args: &LoadArgs) -> anyhow::Result<u8> {
    let total = args.files.len();
    let mut rows = Vec::with_capacity(total);
    let mut rejected = 0;
    for (i, path) in args.files.iter().enumerate() {
        if total > 1 {
            eprintln!("[{}/{total}] loading {}", i + 1, path.display());
        }
        let result = match host.inspect(path).await {
            Ok(plugin) => host.register(Arc::clone(&plugin)).map(|()| plugin),
            Err(e) => Err(e),
        };
        if result.is_err() {
            rejected += 1;
        }
        rows.push((path.clone(), result));
    }
    print_load_table(&rows);
    if rejected > 0 {
        for (_, result) in &rows {
            if let Err(e) = result {
                eprintln!("error: {e}");
            }
        }
        eprintln!("{rejected} of {total} file(s) rejected");
        return Ok(exit::LOAD);
    }
    Ok(exit::OK)
}

fn print_load_table(rows: &[(PathBuf, Result<Arc<Plugin>, LoadError>)]) {
    let mut table = vec![[
        "NAME".to_owned(),
        "VERSION".into(),
        "LANGUAGE".into(),
        "SIZE".into(),
        "COMPILE".into(),
        "STATUS".into(),
        "DESCRIPTION / REASON".into(),
    ]];
    for (path, result) in rows {
        table.push(match result {
            Ok(p) => [
                p.metadata.name.clone(),
                p.metadata.version.clone(),
                p.language.clone().unwrap_or_else(|| "unknown".into()),
                human_bytes(p.size),
                format!(
                    "{}{}",
                    human_duration(p.compile_time),
                    if p.origin == crate::cache::Origin::Cached {
                        " (cached)"
                    } else {
                        ""
                    }
                ),
                "OK".into(),
                p.metadata.description.clone(),
            ],
            Err(e) => [
                path.file_name()
                    .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
                "-".into(),
                "-".into(),
                std::fs::metadata(path).map_or_else(|_| "-".into(), |m| human_bytes(m.len() as usize)),
                "-".into(),
                "REJECTED".into(),
                one_line(&e.to_string()),
            ],
        });
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for row in &table {
        let mut line = String::new();
        for (c, width) in widths.iter().enumerate() {
            line.push_str(&format!("{:<width$}  ", row[c]));
        }
        line.push_str(&row[6]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

async fn run(host: &Host, args: &RunArgs) -> anyhow::Result<u8> {
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
async fn resolve_primitive(host: &Host, target: &str, plugin_dir: &Path) -> Result<Arc<Plugin>, u8> {
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

/// Writes a result to stdout, ending the line on a terminal.
fn write_output(output: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output)?;
    if stdout.is_terminal() && !output.ends_with(b"\n") {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()
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
async fn load_workflow(
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
                tracing::error!(workflow = %workflow.name(), error_type = %e.error_type, "{e}");
            } else {
                eprintln!("error: workflow {}: {e}", workflow.name());
            }
            match e.error_type.as_str() {
                "trap" => exit::TRAP,
                "fuel_exhausted" | "deadline_exceeded" | "memory_limit" | "stack_exhausted" | "payload_too_large"
                | "invoke_depth" => exit::LIMIT,
                _ => exit::GUEST_ERROR,
            }
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
async fn load_plugin_dir(host: &Host, dir: &Path) {
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
    fn read_input(&self) -> anyhow::Result<Vec<u8>> {
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

/// The exit code for a failed call.
pub fn exit_code(error: &CallError) -> u8 {
    match error {
        CallError::Guest(_) => exit::GUEST_ERROR,
        CallError::Trap { .. } => exit::TRAP,
        e if e.is_limit() => exit::LIMIT,
        CallError::UnknownPrimitive { .. } => exit::LOAD,
        _ => exit::HOST,
    }
}

fn print_guest_logs(report: &CallReport, depth: usize) {
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

fn human_bytes(n: usize) -> String {
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

fn human_duration(d: Duration) -> String {
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
