//! Configuration and secrets from the host, through the standard `wasi:config/store`
//! (0.2.0-rc.1, the version wasmtime, Spin and wasmCloud provide).
//!
//! tta-host gives a primitive its tenant's `[tenants.config]` and `[tenants.secrets]`, with
//! the primitive's overlay on top (`tta-host run` takes `--config-value k=v` and
//! `--secret k=env:VAR`). A secret's value is scrubbed by the host from everything the
//! primitive logs, traces, counts or returns as an error; what it returns as output is its
//! own business.
//!
//! ```no_run
//! let model = tta_guest::config::get("model").unwrap_or_else(|| "small".to_owned());
//! ```

use crate::bindings::wasi::config::store;

/// Why the host could not answer (tta-host never fails a read; other hosts may, when their
/// config comes from a remote store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The host's config source failed.
    Upstream(String),
    /// An I/O error in the host.
    Io(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Upstream(m) => write!(f, "config source: {m}"),
            ConfigError::Io(m) => write!(f, "config I/O: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<store::Error> for ConfigError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Upstream(m) => ConfigError::Upstream(m),
            store::Error::Io(m) => ConfigError::Io(m),
        }
    }
}

/// The value of `key`, or `None` when the host has none (or cannot answer).
#[must_use]
pub fn get(key: &str) -> Option<String> {
    try_get(key).ok().flatten()
}

/// The value of `key`: `Ok(None)` when there is none, `Err` when the host cannot answer.
pub fn try_get(key: &str) -> Result<Option<String>, ConfigError> {
    store::get(key).map_err(ConfigError::from)
}

/// Every key and value the primitive may read.
pub fn get_all() -> Result<Vec<(String, String)>, ConfigError> {
    store::get_all().map_err(ConfigError::from)
}
