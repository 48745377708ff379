//! `tta-host serve`: checks the config (every problem at once), binds, serves until a
//! signal, drains.

use super::exit;
use anyhow::Context as _;
use clap::Args;
use std::time::Duration;
use tta_catalog::{self as catalog, Policy, WorkflowFileError};
use tta_core::config::ServerFlags;
use tta_runtime::host::Host;

pub(super) const SERVE_HELP: &str = "Exit codes: 0 stopped cleanly (or --check found nothing wrong), 1 the config is invalid \
or the listener cannot bind, 3 --check: a primitive is rejected, 7 --check: a workflow is invalid.";

/// `tta-host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Validate the config, the plugins and the workflows, report every problem, and exit.
    #[arg(long)]
    pub check: bool,
    /// Directories and address instead of the config's.
    #[command(flatten)]
    pub dirs: ServerFlags,
}

/// `tta-host serve`: checks the config (all problems at once), binds, serves until a
/// signal, drains.
pub(super) async fn serve(host: Host, args: &ServeArgs) -> anyhow::Result<u8> {
    let mut problems = tta_core::config::server::check(host.config());
    let sources = tta_catalog::sources::parse_all(&host.config().server.plugins).unwrap_or_else(|errors| {
        problems.extend(errors.iter().map(ToString::to_string));
        Vec::new()
    });
    for problem in &problems {
        eprintln!("error: config: {problem}");
    }
    if args.check {
        let (rejected, invalid) = check_files(&host, &sources).await;
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
    let server = tta_server::Server::bind(host.clone())
        .await
        .with_context(|| format!("cannot serve on {listen}"))?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, tenants = host.config().tenants.len(), primitives = host.registry().names().len(), "serving the HTTP API");
    eprintln!("tta-host serving on http://{addr}");
    let drained = server.run(tta_server::shutdown_signal()).await;
    let flushed = tokio::task::spawn_blocking(move || host.telemetry().flush(Duration::from_secs(5)))
        .await
        .unwrap_or(false);
    if !flushed {
        tracing::warn!("telemetry was not fully flushed within 5 s");
    }
    tracing::info!(drained, "stopped");
    Ok(exit::OK)
}

/// `serve --check`: loads every plugin (pulling those of registries) and compiles every
/// workflow of the configured directories, reporting each failure on stderr; returns how
/// many plugins were rejected and workflows invalid.
async fn check_files(host: &Host, sources: &[catalog::sources::Source]) -> (usize, usize) {
    let server = &host.config().server;
    let mut rejected = 0;
    let mut paths: Vec<std::path::PathBuf> = server
        .plugins_dir
        .as_deref()
        .map(|dir| catalog::list(dir, "wasm").into_keys().collect())
        .unwrap_or_default();
    let cache = catalog::oci::cache_root(host.config());
    let client = catalog::oci::Client::new(&host.config().registry);
    for source in sources {
        match source {
            catalog::sources::Source::Oci(reference) => {
                match client.pull(reference, &cache, server.max_upload_bytes as u64).await {
                    Ok((path, _)) => paths.push(path),
                    Err(e) => {
                        eprintln!("error: plugin: {e}");
                        rejected += 1;
                    }
                }
            }
            files => paths.extend(files.files(&cache).into_keys()),
        }
    }
    for loaded in catalog::load_primitives(host, paths, Policy::ReportAll, |_, _, _| {}).await {
        if let Err(e) = loaded.result {
            eprintln!("error: plugin: {e}");
            rejected += 1;
        }
    }
    let mut invalid = 0;
    if let Some(dir) = &server.workflows_dir {
        for path in catalog::list(dir, "toml").into_keys() {
            match catalog::read_workflow(host, &path) {
                Ok(_) => {}
                Err(WorkflowFileError::Invalid { problems, .. }) => {
                    invalid += 1;
                    for p in problems {
                        eprintln!("{}", p.in_file(&path));
                    }
                }
                Err(e @ WorkflowFileError::Read { .. }) => {
                    invalid += 1;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    (rejected, invalid)
}
