//! `tta-host mcp`: the MCP server on stdio, for an agent that starts the host itself (Claude
//! Desktop, an IDE, `mcp` clients' stdio transport): the plugin directory's primitives and
//! the workflow directory's workflows as one tenant's tools.

use super::exit;
use clap::Args;
use std::path::PathBuf;
use tta_core::config::{HostConfig, TenantConfig};
use tta_runtime::host::Host;

pub(super) const MCP_HELP: &str = "Stdout carries the protocol only; logs and errors go to stderr. \
Exit codes: 0 stdin ended, 1 the directories or the config cannot be used, 2 usage (an unknown --tenant).";

/// `tta-host mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Primitives (`*.wasm`) to serve as tools.
    #[arg(long, default_value = "plugins", env = "TTA_PLUGIN_DIR")]
    pub plugin_dir: PathBuf,
    /// Workflows (`*.toml`) to serve as tools; default `workflows` when that directory exists.
    #[arg(long)]
    pub workflows_dir: Option<PathBuf>,
    /// Serve as this `[[tenants]]` entry of the config (its access, quotas, config and
    /// secrets) instead of a local tenant that may call everything.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Check each call's arguments against the tool's input schema before any guest runs
    /// (a mismatch is a tool error naming the schema location), as `validate_input = true`
    /// does for a tenant of `serve`.
    #[arg(long)]
    pub validate_input: bool,
}

impl McpArgs {
    /// Points the server's directories at this command's.
    pub(super) fn apply(&self, config: &mut HostConfig) {
        let server = &mut config.server;
        server.plugins_dir = Some(self.plugin_dir.clone());
        server.workflows_dir = self
            .workflows_dir
            .clone()
            .or_else(|| Some(PathBuf::from("workflows")).filter(|d| d.is_dir()));
        server.uploads_dir = None;
    }
}

/// `tta-host mcp`: serves until stdin ends.
pub(super) async fn mcp(host: Host, args: &McpArgs) -> anyhow::Result<u8> {
    let mut tenant = match &args.tenant {
        None => TenantConfig::local("local"),
        Some(id) => match host.config().tenants.iter().find(|t| &t.id == id) {
            Some(tenant) => tenant.clone(),
            None => {
                let known: Vec<&str> = host.config().tenants.iter().map(|t| t.id.as_str()).collect();
                eprintln!(
                    "error: --tenant {id}: no such tenant in the config (it has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
                return Ok(exit::USAGE);
            }
        },
    };
    tenant.validate_input |= args.validate_input;
    let server = &host.config().server;
    for (flag, dir) in [
        ("--plugin-dir", &server.plugins_dir),
        ("--workflows-dir", &server.workflows_dir),
    ] {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            eprintln!("error: {flag} {}: not a directory", dir.display());
            return Ok(exit::HOST);
        }
    }
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    tracing::info!(tenant = %tenant.id, "serving MCP on stdio");
    tta_server::mcp::stdio::serve(host.clone(), tenant, stdin, tokio::io::stdout()).await?;
    let flushed = tokio::task::spawn_blocking(move || host.telemetry().flush(std::time::Duration::from_secs(5)))
        .await
        .unwrap_or(false);
    if !flushed {
        tracing::warn!("telemetry was not fully flushed within 5 s");
    }
    Ok(exit::OK)
}
