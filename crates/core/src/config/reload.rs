//! `[reload]`: what `serve` checks before a new version of a primitive replaces the old one.
//!
//! With `verify = "replay"`, a tenant's upload (or a new file in the plugin directory) is
//! first run on the most recent recorded calls of that primitive (`[recording]`), each fed
//! its recorded answers; if one comes out with another output or error, the version is
//! refused (`on_difference = "refuse"`) or swapped in with a warning (`"warn"`). Either way
//! the verdict is logged and counted (`reload_verifications_total`).

use serde::Deserialize;

/// The `[reload]` section.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// What is checked before a swap.
    pub verify: Verify,
    /// What a difference does.
    pub on_difference: OnDifference,
    /// How many of the most recent recordings of the primitive are replayed (per tenant).
    pub recordings: Recordings,
}

/// What is checked before a new version replaces the old.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Nothing: the new version is swapped in once it loads.
    #[default]
    Off,
    /// The new version replays the recent recordings of the primitive first.
    Replay,
}

/// What a new version that answers a recorded call differently does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnDifference {
    /// It is refused: an upload answers 409, a file in the directory is not loaded.
    #[default]
    Refuse,
    /// It is swapped in, with a warning.
    Warn,
}

/// How many recordings are replayed.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Recordings(pub usize);

impl Default for Recordings {
    fn default() -> Self {
        Recordings(5)
    }
}

impl ReloadConfig {
    /// Every problem with the section, each naming its key.
    #[must_use]
    pub fn check(&self, recording: &super::RecordingConfig) -> Vec<String> {
        let mut problems = Vec::new();
        if self.verify == Verify::Replay && !recording.enabled() {
            problems.push(
                "reload.verify = \"replay\" needs recordings to replay: set recording.failed = true or recording.sample_ratio"
                    .into(),
            );
        }
        if !(1..=100).contains(&self.recordings.0) {
            problems.push(format!(
                "reload.recordings must be 1 to 100 (got {})",
                self.recordings.0
            ));
        }
        problems
    }
}
