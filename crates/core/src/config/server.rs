//! `[server]`: what `tta-host serve` listens on, loads, and bounds; and the checks of a
//! whole config for serving.

use super::tenants::{Quotas, check_quotas, check_tenants};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The `[server]` section of the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Shared primitives (`*.wasm`), loaded at start and reloaded when files change.
    pub plugins_dir: Option<PathBuf>,
    /// More shared primitives: component files, directories, `dir/*.wasm` patterns and
    /// OCI references (`oci://registry/repository:tag` or `…@sha256:<digest>`), loaded at
    /// start and reloaded when a file changes or a tag moves (`registry.poll_interval_ms`).
    pub plugins: Vec<String>,
    /// Workflows (`*.toml`), loaded at start and reloaded when files change.
    pub workflows_dir: Option<PathBuf>,
    /// Where tenants' uploads are kept (`<dir>/<tenant>/<name>.wasm`); uploads are off without it.
    pub uploads_dir: Option<PathBuf>,
    /// How often the directories are checked for changes, in milliseconds; 0 turns reload off.
    pub reload_interval_ms: u64,
    /// Requests served at once across all tenants; more get 503. Default: `max_instances`.
    pub max_in_flight: Option<u32>,
    /// Largest component upload, in bytes.
    pub max_upload_bytes: usize,
    /// Uploads compiled at once; more wait up to `compile_timeout_ms`.
    pub compile_workers: u32,
    /// Longest an upload may take to validate and compile, in milliseconds.
    pub compile_timeout_ms: u64,
    /// How long in-flight requests may take to finish after a shutdown signal, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// How long a client may take to send its request headers, in milliseconds; also how
    /// long a keep-alive connection may wait for its next request.
    pub header_timeout_ms: u64,
    /// Connections open at once; past it a new one gets 503 and is closed. Keep it under
    /// the process's file-descriptor limit (`ulimit -n`).
    pub max_connections: u32,
    /// How long a client may take to send its request body, in milliseconds (408 after).
    pub body_timeout_ms: u64,
    /// Also serve `/metrics` on the API listener, behind the same scrape credential as the
    /// metrics port (`telemetry.metrics.bearer_sha256`).
    pub metrics: bool,
    /// Quotas of every tenant that does not set its own (`[server.default_quotas]`). A
    /// `max_concurrent` set nowhere is half of `max_in_flight`, so that no tenant can take
    /// every slot of the host.
    pub default_quotas: Quotas,
    /// The MCP endpoint, `/mcp` (`[server.mcp]`).
    pub mcp: McpConfig,
}

/// `[server.mcp]`: the Model Context Protocol endpoint (`/mcp`, and `tta-host mcp` on stdio).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Serve MCP at `/mcp`.
    pub enabled: bool,
    /// Tools per `tools/list` page (1–1000); a longer list is paged with `nextCursor`.
    pub page_size: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            enabled: true,
            page_size: 100,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            plugins_dir: None,
            plugins: Vec::new(),
            workflows_dir: None,
            uploads_dir: None,
            reload_interval_ms: 1_000,
            max_in_flight: None,
            max_upload_bytes: 64 << 20,
            compile_workers: 1,
            compile_timeout_ms: 60_000,
            shutdown_grace_ms: 10_000,
            header_timeout_ms: 10_000,
            max_connections: 1_024,
            body_timeout_ms: 30_000,
            metrics: false,
            default_quotas: Quotas::default(),
            mcp: McpConfig::default(),
        }
    }
}

/// Every problem with a config for `serve`, each naming its key; empty when it can serve.
pub fn check(config: &super::HostConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = config.validate() {
        problems.push(e.to_string());
    }
    let s = &config.server;
    for (key, dir) in [
        ("server.plugins_dir", &s.plugins_dir),
        ("server.workflows_dir", &s.workflows_dir),
    ] {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            problems.push(format!("{key}: {} is not a directory", dir.display()));
        }
    }
    if let Some(dir) = &s.uploads_dir
        && dir.exists()
        && !dir.is_dir()
    {
        problems.push(format!(
            "server.uploads_dir: {} exists and is not a directory",
            dir.display()
        ));
    }
    let positive: [(&str, u64); 7] = [
        ("server.body_timeout_ms", s.body_timeout_ms),
        ("server.max_connections", u64::from(s.max_connections)),
        ("server.max_upload_bytes", s.max_upload_bytes as u64),
        ("server.compile_workers", u64::from(s.compile_workers)),
        ("server.compile_timeout_ms", s.compile_timeout_ms),
        ("server.header_timeout_ms", s.header_timeout_ms),
        ("server.max_in_flight", s.max_in_flight.map_or(1, u64::from)),
    ];
    for (key, value) in positive {
        if value == 0 {
            problems.push(format!("{key} must be greater than 0"));
        }
    }
    if !(1..=1000).contains(&s.mcp.page_size) {
        problems.push(format!(
            "server.mcp.page_size must be between 1 and 1000, not {}",
            s.mcp.page_size
        ));
    }
    problems.extend(check_quotas("server.default_quotas", &s.default_quotas, &config.limits));
    if config.tenants.is_empty() {
        problems.push(
            "no [[tenants]]: every request would be refused; declare at least one tenant with an api_key_sha256 (`tta-host keygen`)"
                .to_owned(),
        );
    }
    problems.extend(check_tenants(&config.tenants, &config.limits));
    problems.extend(config.llm.check());
    problems.extend(config.cluster.check());
    problems.extend(config.registry.check());
    problems.extend(config.recording.check());
    problems.extend(config.reload.check(&config.recording));
    problems
}
