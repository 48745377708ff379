//! A tenant's configuration as its guests read it through `wasi:config/store`: resolved
//! once (at start-up, and again when a `file:` secret changes), shared by every call of
//! the tenant, read with a hash lookup and no lock.
//!
//! A primitive sees its tenant's values with its own overlay on top, and nothing of any
//! other tenant's. Every secret value is also kept in the [`Redactor`] that scrubs the
//! tenant's calls' reports and errors before any signal is made of them.

use crate::config::{GuestValues, Secret};
use crate::redact::Redactor;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

type Values = HashMap<String, String>;

/// The resolved values of one tenant (or of one `run`).
#[derive(Debug, Default)]
pub struct GuestConfig {
    base: Values,
    overlays: HashMap<String, Values>,
    redactor: Redactor,
    /// The files `file:` secrets were read from, with their modification time then.
    files: Vec<(PathBuf, Option<SystemTime>)>,
}

static EMPTY: LazyLock<Arc<GuestConfig>> = LazyLock::new(Arc::default);

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl GuestConfig {
    /// No values: what a call without configuration reads.
    #[must_use]
    pub fn empty() -> Arc<GuestConfig> {
        Arc::clone(&EMPTY)
    }

    /// Resolves `base` and each primitive's `overlay`, reading secret references through
    /// `var` and the file system. The error lists every reference that could not be read,
    /// each naming its key (``secrets.api_key: the environment variable `X` is not set``),
    /// never a value.
    pub fn resolve(
        base: &GuestValues,
        overlay: &BTreeMap<String, GuestValues>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GuestConfig, Vec<String>> {
        let mut problems = Vec::new();
        let mut secrets = Vec::new();
        let mut files = Vec::new();
        let mut resolve = |values: &GuestValues, prefix: &str| {
            let mut out: Values = values.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            for (key, secret) in &values.secrets {
                if let Some(path) = secret.file() {
                    files.push((path.to_owned(), modified(path)));
                }
                match secret.resolve(var) {
                    Ok(value) => {
                        secrets.push(value.clone());
                        out.insert(key.clone(), value);
                    }
                    Err(why) => problems.push(format!("{prefix}secrets.{key}: {why}")),
                }
            }
            out
        };
        let base_values = resolve(base, "");
        let overlays = overlay
            .iter()
            .map(|(primitive, values)| {
                let prefix = format!("overlay.\"{primitive}\".");
                (primitive.clone(), resolve(values, &prefix))
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(GuestConfig {
            base: base_values,
            overlays,
            redactor: Redactor::new(secrets),
            files,
        })
    }

    /// Values given on a command line: `config` plain, `secrets` references.
    pub fn from_pairs(config: &[(String, String)], secrets: &[(String, Secret)]) -> Result<GuestConfig, Vec<String>> {
        let values = GuestValues {
            config: config.iter().cloned().collect(),
            secrets: secrets.iter().cloned().collect(),
        };
        Self::resolve(&values, &BTreeMap::new(), &|name| std::env::var(name).ok())
    }

    /// The value of `key` for `primitive`: its overlay's, else the tenant's.
    #[must_use]
    pub fn get(&self, primitive: &str, key: &str) -> Option<&str> {
        self.overlays
            .get(primitive)
            .and_then(|o| o.get(key))
            .or_else(|| self.base.get(key))
            .map(String::as_str)
    }

    /// Every key and value `primitive` sees, sorted by key.
    #[must_use]
    pub fn all(&self, primitive: &str) -> Vec<(String, String)> {
        let mut all: BTreeMap<&str, &str> = self.base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some(overlay) = self.overlays.get(primitive) {
            all.extend(overlay.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        all.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// What scrubs this configuration's secret values from a call's signals.
    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Whether a file a secret was read from has changed since (or appeared or vanished).
    #[must_use]
    pub fn files_changed(&self) -> bool {
        self.files.iter().any(|(path, then)| modified(path) != *then)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(config: &[(&str, &str)], secrets: &[(&str, &str)]) -> GuestValues {
        GuestValues {
            config: config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            secrets: secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret((*v).to_owned())))
                .collect(),
        }
    }

    #[test]
    fn an_overlay_wins_for_its_primitive_only() {
        let base = values(&[("model", "small"), ("region", "eu")], &[("key", "env:K")]);
        let overlay = BTreeMap::from([("llm".to_owned(), values(&[("model", "large")], &[]))]);
        let config =
            GuestConfig::resolve(&base, &overlay, &|n| (n == "K").then(|| "s3cr3t".to_owned())).expect("resolves");
        assert_eq!(config.get("llm", "model"), Some("large"));
        assert_eq!(config.get("other", "model"), Some("small"));
        assert_eq!(config.get("llm", "key"), Some("s3cr3t"));
        assert_eq!(config.get("llm", "missing"), None);
        assert_eq!(
            config.all("llm"),
            [("key", "s3cr3t"), ("model", "large"), ("region", "eu")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(!config.redactor().is_empty());
    }

    #[test]
    fn every_unresolvable_reference_is_named_without_a_value() {
        let base = values(&[], &[("a", "env:NOPE"), ("b", "file:/nonexistent/x")]);
        let overlay = BTreeMap::from([("p".to_owned(), values(&[], &[("c", "env:NOPE2")]))]);
        let problems = GuestConfig::resolve(&base, &overlay, &|_| None).expect_err("fails");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("secrets.a: the environment variable `NOPE`"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("secrets.b: the file `/nonexistent/x`"),
            "{problems:?}"
        );
        assert!(problems[2].starts_with("overlay.\"p\".secrets.c:"), "{problems:?}");
    }
}
