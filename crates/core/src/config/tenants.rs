//! `[[tenants]]`: who may call, what they may reach, the quotas that fence them in, and
//! the outgoing HTTP their guests may make; with the checks of each.

use super::guest::{GuestValues, check_guest_values};
use super::http::HttpPolicy;
use super::limits::Limits;
use super::secret::Secret;
use crate::credentials;
use crate::guest_config::GuestConfig;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One tenant as the config file declares it (`[[tenants]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant id: `tenant` on every span and metric of its calls. Lowercase letters,
    /// digits, `-` and `_`, at most 64 characters.
    pub id: String,
    /// SHA-256 (hex) of each API key the tenant authenticates with (`tta-host keygen`).
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    /// Shared primitives the tenant may call: names, `prefix*`, or `*`. Its own uploads are
    /// always callable. Nothing by default.
    #[serde(default)]
    pub primitives: Vec<String>,
    /// Workflows the tenant may run: names, `prefix*`, or `*`. Nothing by default.
    #[serde(default)]
    pub workflows: Vec<String>,
    /// Whether the tenant may upload and delete its own primitives.
    #[serde(default)]
    pub uploads: bool,
    /// How many primitives of its own the tenant may keep.
    #[serde(default = "default_max_uploads")]
    pub max_uploads: usize,
    /// Uploads the tenant may start per minute (a token bucket as large as a minute's
    /// worth); more get 429. Every upload writes to disk and compiles.
    #[serde(default = "default_uploads_per_minute")]
    pub uploads_per_minute: u32,
    /// The tenant's quotas; unset ones take the host's limits.
    #[serde(default)]
    pub quotas: Quotas,
    /// Whether each input is checked against the primitive's or workflow's input schema
    /// before any guest is instantiated; a mismatch is `invalid_input` with the schema
    /// location of the first error. Off by default: the guest checks its own input.
    #[serde(default)]
    pub validate_input: bool,
    /// Outgoing HTTP from the tenant's guests (`wasi:http`); denied unless hosts are listed.
    #[serde(default)]
    pub http: HttpPolicy,
    /// Plain values its guests read through `wasi:config/store` (`[tenants.config]`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secret values its guests read the same way, as references: `env:NAME`, `file:PATH`
    /// (`[tenants.secrets]`). Scrubbed from every signal of the tenant's calls.
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// Values one primitive sees over the tenant's (`[tenants.overlay."<primitive>"]`, with
    /// `config` and `secrets` tables of its own).
    #[serde(default)]
    pub overlay: BTreeMap<String, GuestValues>,
}

impl TenantConfig {
    /// A tenant that may call every shared primitive and run every workflow, with no key,
    /// no uploads and no quotas of its own: the one tenant of `tta-host mcp` on stdio.
    #[must_use]
    pub fn local(id: &str) -> Self {
        TenantConfig {
            id: id.to_owned(),
            api_key_sha256: Vec::new(),
            primitives: vec!["*".to_owned()],
            workflows: vec!["*".to_owned()],
            uploads: false,
            max_uploads: default_max_uploads(),
            uploads_per_minute: default_uploads_per_minute(),
            quotas: Quotas::default(),
            validate_input: false,
            http: HttpPolicy::default(),
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
            overlay: BTreeMap::new(),
        }
    }

    /// The tenant's own values for its guests (without the overlays).
    #[must_use]
    pub fn guest_values(&self) -> GuestValues {
        GuestValues {
            config: self.config.clone(),
            secrets: self.secrets.clone(),
        }
    }
}

fn default_max_uploads() -> usize {
    16
}

fn default_uploads_per_minute() -> u32 {
    10
}

/// What one tenant may consume. Every value is optional; an unset one is taken from
/// `[server.default_quotas]`, and then from the host's limits.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Fuel per call.
    pub fuel: Option<u64>,
    /// Wall-clock limit per call, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory per instance, in bytes (at most the host's `limits.max_memory_bytes`).
    pub max_memory_bytes: Option<usize>,
    /// Calls in flight at once; more get 429.
    pub max_concurrent: Option<u32>,
    /// Largest request body, in bytes.
    pub max_request_bytes: Option<usize>,
    /// Largest response body, in bytes.
    pub max_response_bytes: Option<usize>,
    /// Sustained calls per second (a token bucket); more get 429.
    pub calls_per_second: Option<f64>,
    /// How many calls may come at once above the sustained rate (the bucket's size).
    pub burst: Option<u32>,
}

impl Quotas {
    /// These quotas, each unset one taken from `defaults`.
    #[must_use]
    pub fn or(&self, defaults: &Quotas) -> Quotas {
        Quotas {
            fuel: self.fuel.or(defaults.fuel),
            timeout_ms: self.timeout_ms.or(defaults.timeout_ms),
            max_memory_bytes: self.max_memory_bytes.or(defaults.max_memory_bytes),
            max_concurrent: self.max_concurrent.or(defaults.max_concurrent),
            max_request_bytes: self.max_request_bytes.or(defaults.max_request_bytes),
            max_response_bytes: self.max_response_bytes.or(defaults.max_response_bytes),
            calls_per_second: self.calls_per_second.or(defaults.calls_per_second),
            burst: self.burst.or(defaults.burst),
        }
    }
}

/// Whether `id` is a valid tenant id: 1–64 of `a-z0-9-_`.
pub fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Every problem with the tenants of a config, each naming the tenant and key.
pub fn check_tenants(tenants: &[TenantConfig], host_limits: &Limits) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut hashes = std::collections::HashMap::new();
    for (i, t) in tenants.iter().enumerate() {
        let at = format!("tenants[{i}] (`{}`)", t.id);
        if !valid_tenant_id(&t.id) {
            problems.push(format!("{at}: id must be 1–64 characters of a-z, 0-9, `-` and `_`"));
        }
        if !ids.insert(t.id.as_str()) {
            problems.push(format!("{at}: id is declared twice"));
        }
        if t.api_key_sha256.is_empty() {
            problems.push(format!(
                "{at}: no `api_key_sha256`; the tenant could never authenticate (make one with `tta-host keygen`)"
            ));
        }
        for hash in &t.api_key_sha256 {
            if credentials::parse_hash(hash).is_none() {
                problems.push(format!(
                    "{at}: api_key_sha256 `{}` is not 64 hex digits; store the key's SHA-256 (`tta-host keygen`), never the key",
                    hash.chars().take(80).collect::<String>()
                ));
            } else if let Some(other) = hashes.insert(hash.to_ascii_lowercase(), t.id.clone()) {
                problems.push(format!("{at}: an api key is also a key of tenant `{other}`"));
            }
        }
        problems.extend(check_quotas(&at, &t.quotas, host_limits));
        if t.uploads_per_minute == 0 {
            problems.push(format!("{at}: uploads_per_minute must be greater than 0"));
        }
        problems.extend(t.http.check(&at));
        problems.extend(check_guest_values(&at, &t.guest_values(), &t.overlay));
        if let Err(unresolved) = GuestConfig::resolve(&t.guest_values(), &t.overlay, &|name| std::env::var(name).ok()) {
            problems.extend(
                unresolved
                    .into_iter()
                    .map(|why| format!("{at}: {why}; set it, or fix the reference (`env:NAME` or `file:PATH`)")),
            );
        }
        for pattern in t.primitives.iter().chain(&t.workflows) {
            if pattern.is_empty() || pattern[..pattern.len() - 1].contains('*') {
                problems.push(format!(
                    "{at}: pattern `{pattern}` is invalid; use a name, `prefix*` or `*`"
                ));
            }
        }
    }
    problems
}

/// Every problem with one set of quotas (a tenant's, or `[server.default_quotas]`), each
/// prefixed with `at`.
pub fn check_quotas(at: &str, q: &Quotas, host_limits: &Limits) -> Vec<String> {
    let mut problems = Vec::new();
    let zero: [(&str, Option<u64>); 6] = [
        ("fuel", q.fuel),
        ("timeout_ms", q.timeout_ms),
        ("max_memory_bytes", q.max_memory_bytes.map(|v| v as u64)),
        ("max_concurrent", q.max_concurrent.map(u64::from)),
        ("max_request_bytes", q.max_request_bytes.map(|v| v as u64)),
        ("max_response_bytes", q.max_response_bytes.map(|v| v as u64)),
    ];
    for (key, value) in zero {
        if value == Some(0) {
            problems.push(format!("{at}: quotas.{key} must be greater than 0"));
        }
    }
    if let Some(memory) = q.max_memory_bytes
        && memory > host_limits.max_memory_bytes
    {
        problems.push(format!(
            "{at}: quotas.max_memory_bytes {memory} is over the host's limits.max_memory_bytes {}; raise the host's limit",
            host_limits.max_memory_bytes
        ));
    }
    if let Some(rate) = q.calls_per_second
        && !(rate.is_finite() && rate > 0.0)
    {
        problems.push(format!("{at}: quotas.calls_per_second must be a positive number"));
    }
    if q.burst == Some(0) {
        problems.push(format!("{at}: quotas.burst must be greater than 0"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported() {
        let tenants: Vec<TenantConfig> = vec![
            toml::from_str("id = \"Bad Id\"\napi_key_sha256 = [\"xyz\"]\n[quotas]\nfuel = 0\n").expect("toml"),
            toml::from_str("id = \"b\"\n").expect("toml"),
        ];
        let problems = check_tenants(&tenants, &Limits::default());
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }
}
