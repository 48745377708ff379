//! `run --record call.ttarec`: the call (or workflow run) kept for `tta-host replay`.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tta_core::recording::{Recording, WorkflowRecord};
use tta_runtime::host::Host;
use tta_runtime::recording::Session;

/// Where `run` records the call.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Record the call here (`.ttarec`): its component digest, input, context, limits and
    /// every answer the host gave it (clocks, random, config, `invoke`, HTTP), secrets
    /// left out, for `tta-host replay`.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
}

/// A recording in progress.
pub struct Recorder {
    path: PathBuf,
    session: Arc<Session>,
    started: SystemTime,
}

impl RecordArgs {
    /// The session to run the call on, if asked for.
    pub fn start(&self, host: &Host) -> Option<Recorder> {
        self.record.as_ref().map(|path| Recorder {
            path: path.clone(),
            session: Session::record(host.config().recording.max_call_bytes),
            started: SystemTime::now(),
        })
    }
}

impl Recorder {
    /// The session for the call's options.
    pub fn session(&self) -> Arc<Session> {
        Arc::clone(&self.session)
    }

    /// Writes what was recorded (with the workflow run, if it was one).
    pub fn finish(self, workflow: Option<WorkflowRecord>) -> anyhow::Result<()> {
        let calls = self.session.recorded()?;
        let since = self.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut recording = Recording::new(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        recording.workflow = workflow;
        recording.calls = calls;
        recording
            .write(&self.path)
            .with_context(|| format!("writing the recording to {}", self.path.display()))?;
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "recorded: {} ({} call{}, {size} bytes); replay it with `tta-host replay {}`",
            self.path.display(),
            recording.calls.len(),
            if recording.calls.len() == 1 { "" } else { "s" },
            self.path.display()
        );
        Ok(())
    }
}
