//! A telemetry setting that cannot work — a config key or an `OTEL_*` variable — with what
//! to do instead; shared by the sections that read them.

/// A setting that cannot work, with what to do instead.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{setting}: {problem}")]
pub struct TelemetryConfigError {
    /// The setting (environment variable or config key).
    pub setting: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

pub(crate) fn bad(setting: &str, problem: impl Into<String>) -> TelemetryConfigError {
    TelemetryConfigError {
        setting: setting.to_owned(),
        problem: problem.into(),
    }
}
