//! What a tenant's guests may read through `wasi:config/store`, as the config file writes it:
//! `[tenants.config]` plain values, `[tenants.secrets]` references (`env:NAME`,
//! `file:PATH`), and `[tenants.overlay."<primitive>"]` with the same two tables for one
//! primitive. The checks here name the tenant and the key; resolving the references is
//! [`crate::guest_config::GuestConfig::resolve`]'s.

use super::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Values and secrets for guests: a tenant's, or one primitive's overlay on them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuestValues {
    /// Plain values, by key.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secret values by key: `env:NAME`, `file:PATH`, or (not advised) the value in clear.
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
}

/// The most keys one tenant may give its guests, overlays included.
pub const MAX_KEYS: usize = 1024;
/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value, in bytes: a guest's `get-all` copies every value into its memory.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Whether `key` may name a value: 1–256 of ASCII letters, digits, `_`, `-` and `.`.
#[must_use]
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl GuestValues {
    /// Every problem with these values that needs no resolving, each prefixed with `at`
    /// (e.g. ``tenants[0] (`acme`)``) and `prefix` (``""`` or ``overlay."llm-chat".``).
    #[must_use]
    pub fn check(&self, at: &str, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for key in self.config.keys().chain(self.secrets.keys()) {
            if !valid_key(key) {
                problems.push(format!(
                    "{at}: {prefix}config/secrets key `{}` is invalid; use 1–{MAX_KEY_BYTES} of a-z, A-Z, 0-9, `_`, `-` and `.`",
                    key.chars().take(80).collect::<String>()
                ));
            }
            if self.config.contains_key(key) && self.secrets.contains_key(key) {
                problems.push(format!(
                    "{at}: {prefix}key `{key}` is in both `config` and `secrets`; keep it in one"
                ));
                break;
            }
        }
        for (key, value) in &self.config {
            if value.len() > MAX_VALUE_BYTES {
                problems.push(format!(
                    "{at}: {prefix}config.{key} is {} bytes, over the {MAX_VALUE_BYTES} a value may have",
                    value.len()
                ));
            }
        }
        problems
    }

    /// How many keys these values have.
    #[must_use]
    pub fn len(&self) -> usize {
        self.config.len() + self.secrets.len()
    }

    /// Whether there are no values.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.config.is_empty() && self.secrets.is_empty()
    }
}

/// Every problem with a tenant's values and overlays that needs no resolving.
#[must_use]
pub fn check_guest_values(at: &str, base: &GuestValues, overlay: &BTreeMap<String, GuestValues>) -> Vec<String> {
    let mut problems = base.check(at, "");
    for (primitive, values) in overlay {
        problems.extend(values.check(at, &format!("overlay.\"{primitive}\".")));
    }
    let keys = base.len() + overlay.values().map(GuestValues::len).sum::<usize>();
    if keys > MAX_KEYS {
        problems.push(format!(
            "{at}: {keys} config and secret keys, over the {MAX_KEYS} a tenant may have"
        ));
    }
    problems
}
