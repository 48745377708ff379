//! `[registry]`: how components are pulled from and pushed to OCI registries
//! (`oci://…` in `load`, `push` and `server.plugins`).
//!
//! Credentials are never in the file: `TTA_REGISTRY_TOKEN` (a bearer token sent as is), or
//! `TTA_REGISTRY_USERNAME` and `TTA_REGISTRY_PASSWORD` (basic, or exchanged for a bearer
//! token when the registry answers with a token challenge). Plain HTTP is only for loopback
//! registries and the ones listed in `insecure` (or `TTA_INSECURE_REGISTRIES`), so a
//! credential or a component never crosses a network in clear by accident.

use serde::Deserialize;

/// The `[registry]` section of the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registries (`host` or `host:port`) reached over plain HTTP; loopback always is.
    pub insecure: Vec<String>,
    /// The longest one request to a registry may take, in milliseconds.
    pub timeout_ms: u64,
    /// How often `serve` asks the registry where each tag of `server.plugins` points, in
    /// milliseconds; a tag that moved is pulled and swapped in. A `@sha256:` pin never
    /// moves. 0 resolves tags only at start.
    pub poll_interval_ms: u64,
    /// Bytes of pulled components kept on disk (`<cache_dir>/oci`); past it the least
    /// recently pulled ones that no `server.plugins` entry serves are removed.
    pub cache_max_bytes: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            timeout_ms: 30_000,
            poll_interval_ms: 60_000,
            cache_max_bytes: 1 << 30,
        }
    }
}

impl RegistryConfig {
    /// Adds the registries of `TTA_INSECURE_REGISTRIES` (comma-separated) to `insecure`.
    pub fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) {
        if let Some(list) = var("TTA_INSECURE_REGISTRIES") {
            self.insecure.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned),
            );
        }
    }

    /// Every problem with the section, each naming its key.
    #[must_use]
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("registry.timeout_ms", self.timeout_ms),
            ("registry.cache_max_bytes", self.cache_max_bytes),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        for name in &self.insecure {
            if name.is_empty() || name.contains('/') || name.contains("://") {
                problems.push(format!(
                    "registry.insecure: {name:?} is not a registry: write host or host:port, without a scheme or a path"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_adds_insecure_registries_and_bad_names_are_named() {
        let mut config = RegistryConfig::default();
        config.apply_env(&|name| (name == "TTA_INSECURE_REGISTRIES").then(|| " a:5000, b ,".to_owned()));
        assert_eq!(config.insecure, ["a:5000", "b"]);
        assert!(config.check().is_empty());
        config.insecure.push("http://c/".to_owned());
        config.timeout_ms = 0;
        let problems = config.check();
        assert!(
            problems.iter().any(|p| p.contains("registry.timeout_ms")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("\"http://c/\"")), "{problems:?}");
    }
}
