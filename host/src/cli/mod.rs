//! The `tta-host` command line, one file per command: `load`, `run`, `validate`, `serve`,
//! `mcp`, `keygen`, `new` and `bench`; what they print in `output`.
//!
//! Output for people goes to stdout (the load table, a call's output); progress, guest
//! logs, summaries and errors go to stderr. Exit codes say what kind of failure it was,
//! taken from the error's type ([`exit_code`], [`step_exit_code`]).

mod bench;
pub mod exit;
mod keygen;
mod load;
mod mcp;
mod new;
mod output;
mod profile;
mod push;
mod record;
mod replay;
mod run;
mod serve;
mod validate;

pub use exit::{exit_code, step_exit_code};
pub use output::summary;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tta_core::config::{HostConfig, Layers, LimitFlags, TelemetryFlags};
use tta_runtime::host::Host;
use tta_telemetry::{Exporter, LogFormat, Telemetry};

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
    /// More host logs (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub limits: LimitFlags,
    #[command(flatten)]
    pub telemetry: TelemetryFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate components and print what each one is.
    ///
    /// Prints a table: name, version, source language, size, compile time, and OK or
    /// the exact reason a file was rejected. Exits 3 if any file was rejected.
    #[command(after_help = EXIT_CODES_HELP)]
    Load(load::LoadArgs),
    /// Push a component to an OCI registry as a Wasm component artifact.
    ///
    /// The layout `wkg`, Spin and wasmCloud use: config `application/vnd.wasm.config.v0+json`,
    /// one `application/wasm` layer. The component is validated first. Prints the reference
    /// and the manifest's digest (pin it with `oci://…@sha256:…`). Credentials come from
    /// TTA_REGISTRY_TOKEN or TTA_REGISTRY_USERNAME/TTA_REGISTRY_PASSWORD; plain HTTP only for
    /// loopback and TTA_INSECURE_REGISTRIES.
    #[command(
        after_help = "Exit codes: 0 pushed, 1 the registry refused or failed, 2 a bad reference, 3 not a component tta-host loads."
    )]
    Push(push::PushArgs),
    /// Run one primitive, or a workflow file (`.toml`), once and print its output.
    ///
    /// The output goes to stdout; guest logs and a summary (status, wall time, fuel,
    /// peak memory) go to stderr.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(Box<run::RunArgs>),
    /// Check workflow files and report every problem with its line, column and key.
    ///
    /// Steps must exist, primitives must be loadable from the plugin directory, routes must
    /// have targets, and no step may run itself. Exits 7 if any file is invalid.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate(validate::ValidateArgs),
    /// Serve the HTTP API: tenants run primitives and workflows, upload components; `/metrics`,
    /// `/healthz`, `/readyz`.
    ///
    /// Tenants, quotas and directories come from the config file (`[server]`, `[[tenants]]`;
    /// see docs/serving.md). Plugins and workflows are reloaded when their files change. SIGTERM
    /// or Ctrl-C stops accepting, lets in-flight requests finish, and flushes telemetry.
    #[command(after_help = serve::SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Serve the plugin and workflow directories as MCP tools on stdin/stdout, for an agent
    /// that starts tta-host as its local tool server.
    ///
    /// Newline-delimited JSON-RPC (MCP 2026-07-28, and 2025-11-25 and older through
    /// `initialize`); every tool call is sandboxed, metered and traced as with `run`. The
    /// same server is at `/mcp` of `serve` (docs/mcp.md).
    #[command(after_help = mcp::MCP_HELP)]
    Mcp(mcp::McpArgs),
    /// Make a new API key and print it with the SHA-256 that goes in the config.
    ///
    /// The key is shown once: give it to the tenant; put only `api_key_sha256` in `tta.toml`.
    Keygen(keygen::KeygenArgs),
    /// Make a new primitive project in Rust, Python, JavaScript or C.
    ///
    /// Writes the source of a working primitive on its language's SDK (a Rust project depends
    /// on the `tta-guest` crate; Python, JavaScript and C carry theirs), the WIT of the
    /// contract, a `build.sh` that installs its toolchain when missing and builds
    /// `<name>.wasm`, an `input.json` to try it with, and a README. Then: `cd <name> &&
    /// ./build.sh && tta-host run <name>.wasm --input-file input.json --trace`.
    #[command(
        after_help = "Exit codes: 0 made, 1 the directory exists or cannot be written, 2 a bad name, a bad --sdk or usage."
    )]
    New(new::NewArgs),
    /// Measure a primitive or a workflow the way tta-host's benchmarks do.
    ///
    /// Calls it `--iterations` times after a warm-up, each call as `run` and `serve` make it
    /// (a fresh instance, the host's instrumentation on), and prints mean, p50, p99 and
    /// minimum of the whole call, its instantiation and its execution, with fuel per call.
    #[command(after_help = EXIT_CODES_HELP)]
    Bench(bench::BenchArgs),
    /// Run a recorded call (`run --record`, `GET /v1/recordings/{trace_id}`) again and say
    /// whether it came out the same.
    ///
    /// The guest gets the recorded answers of the host (clocks, random, config, `invoke`,
    /// HTTP: nothing is sent), so the same component gives the same output, spans and fuel.
    /// With `--with new.wasm` it says what a new version does differently with the recorded
    /// call: the first import it asks for differently, its output, error, spans or fuel.
    #[command(after_help = replay::REPLAY_HELP)]
    Replay(replay::ReplayArgs),
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
        keygen::keygen(args);
        return exit::OK;
    }
    if let Command::New(args) = &cli.command {
        return new::new_project(args);
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
    let mut builder = Telemetry::builder(config.telemetry.clone()).install_logger(tta_telemetry::log_filter(&level));
    // A server keeps its recent traces for `GET /v1/traces` and `/ui`; one-shot commands do not.
    if matches!(cli.command, Command::Serve(_)) {
        builder = builder.keep_traces();
    }
    let telemetry = match builder.build() {
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

/// The config of this invocation: the file, the `OTEL_*` environment and the flags, in that
/// order ([`HostConfig::build`]), then what the command itself implies.
fn host_config(cli: &Cli) -> anyhow::Result<HostConfig> {
    // `load`, `run` and the like end at once: nothing could scrape them unless asked for.
    let metrics_port = matches!(&cli.command, Command::Serve(args) if !args.check);
    let serve = match &cli.command {
        Command::Serve(args) => Some(&args.dirs),
        _ => None,
    };
    let env = |name: &str| std::env::var(name).ok();
    let mut config = HostConfig::build(&Layers {
        file: cli.config.as_deref(),
        env: &env,
        limits: &cli.limits,
        telemetry: &cli.telemetry,
        server: serve,
        metrics_port,
    })?;
    let t = &mut config.telemetry;
    // In JSON mode a run's records are the JSON lines themselves, so they go to stderr.
    if t.logs.format == LogFormat::Json
        && matches!(cli.command, Command::Run(_))
        && !t.logs.exporters.contains(&Exporter::Console)
    {
        t.logs.exporters.push(Exporter::Console);
    }
    if let Command::Mcp(args) = &cli.command {
        args.apply(&mut config);
    }
    // `serve --check` reports every problem itself.
    if !matches!(&cli.command, Command::Serve(args) if args.check) {
        config.validate()?;
    }
    Ok(config)
}

async fn run_command(cli: Cli, config: HostConfig, telemetry: Telemetry) -> anyhow::Result<u8> {
    let host = Host::with_telemetry(config, telemetry)?;
    match cli.command {
        Command::Load(args) => load::load(&host, &args).await,
        Command::Push(args) => push::push(&host, &args).await,
        Command::Run(args) => run::run(&host, &args).await,
        Command::Validate(args) => validate::validate(&host, &args).await,
        Command::Serve(args) => serve::serve(host, &args).await,
        Command::Mcp(args) => mcp::mcp(host, &args).await,
        Command::Keygen(args) => {
            keygen::keygen(&args);
            Ok(exit::OK)
        }
        Command::New(args) => Ok(new::new_project(&args)),
        Command::Bench(args) => bench::bench(&host, &args).await,
        Command::Replay(args) => replay::replay(&host, &args).await,
    }
}
