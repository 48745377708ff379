//! A value the operator keeps out of sight: an OTLP header, a tenant's secret for its
//! guests. It is written in the config as a reference — `env:NAME` or `file:PATH` — or, if
//! the operator insists, in clear; it is resolved when the host starts (and, for files, when
//! they change), and no `Debug`, log line or `--check` report ever shows its value.

use serde::Deserialize;

/// A value that must never be shown: `Debug` prints `[redacted]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Secret {
    /// The value, reading `env:NAME` and `file:PATH` references through `var` and the file
    /// system; the error names the reference, never a value.
    pub fn resolve(&self, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        if let Some(name) = self.0.strip_prefix("env:") {
            return var(name).ok_or_else(|| format!("the environment variable `{name}` is not set"));
        }
        if let Some(path) = self.0.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|v| v.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("the file `{path}` cannot be read: {e}"));
        }
        Ok(self.0.clone())
    }

    /// The file a `file:` reference reads, whose changes a running host picks up.
    #[must_use]
    pub fn file(&self) -> Option<&std::path::Path> {
        self.0.strip_prefix("file:").map(std::path::Path::new)
    }

    /// Whether the value is a reference (`env:` or `file:`) rather than the value in clear.
    #[must_use]
    pub fn is_reference(&self) -> bool {
        self.0.starts_with("env:") || self.0.starts_with("file:")
    }
}
