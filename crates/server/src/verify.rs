//! `reload.verify = "replay"`: a new version of a primitive replays the tenant's recent
//! recorded calls of it before it replaces the old one.
//!
//! Each recording's call is run on the new version with its recorded answers (nothing is
//! sent, no nested call runs) and the tenant's own secrets; the replays are not the
//! tenant's calls, so they are neither metered nor exported. A replay whose output or error
//! differs is a difference; a changed span tree or fuel alone is not (a new version may
//! well work differently for the same answer), but it is logged.

use super::App;
use super::problem::Problem;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use tta_core::config::reload::{OnDifference, Verify};
use tta_core::recording::Recording;
use tta_runtime::host::CallOptions;
use tta_runtime::primitive::Primitive;
use tta_runtime::recording::{Difference, Session, compare};
use tta_runtime::tenant::Tenant;

/// What the replays of a new version said.
pub(crate) struct Verdict {
    /// Recordings replayed.
    pub replayed: usize,
    /// The differences in output or error, one line each.
    pub differences: Vec<String>,
}

impl Verdict {
    fn result(&self) -> &'static str {
        match (self.replayed, self.differences.is_empty()) {
            (0, _) => "no_recordings",
            (_, true) => "identical",
            (_, false) => "different",
        }
    }
}

/// Replays `tenant`'s recent recorded calls of the version `new` replaces on `new`; `Err`
/// is the answer to an upload refused by it.
pub(crate) async fn upload(app: &App, tenant: &Tenant, new: &Arc<Primitive>) -> Result<(), Problem> {
    let reload = app.host.config().reload;
    if reload.verify == Verify::Off {
        return Ok(());
    }
    let name = &new.metadata.name;
    let old = app.host.registry().resolve(Some(&tenant.access), name);
    let recordings = old.map_or_else(Vec::new, |old| {
        app.recordings
            .recent_of(&tenant.id, name, &old.digest, reload.recordings.0)
    });
    let verdict = replay(app, new, &recordings, tenant).await;
    let refused = judge(app, "upload", &tenant.id, new, &verdict);
    if !refused {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "replay_differs",
        format!(
            "{}. Replay one with `tta-host replay` (GET /v1/recordings) to see why, or upload again once it answers the same",
            verdict.detail(name, "this tenant's")
        ),
    ))
}

/// Replays every tenant's recent recorded calls of the shared version `new` replaces on
/// `new`; whether it may be swapped in.
pub(crate) async fn shared(app: &App, new: &Arc<Primitive>) -> bool {
    let reload = app.host.config().reload;
    let name = &new.metadata.name;
    let Some(old) = app.host.registry().get(name) else {
        return true;
    };
    if reload.verify == Verify::Off || old.digest == new.digest {
        return true;
    }
    let mut verdict = Verdict {
        replayed: 0,
        differences: Vec::new(),
    };
    for tenant in app.tenants.iter() {
        let recordings = app
            .recordings
            .recent_of(&tenant.id, name, &old.digest, reload.recordings.0);
        let theirs = replay(app, new, &recordings, tenant).await;
        verdict.replayed += theirs.replayed;
        verdict.differences.extend(theirs.differences);
    }
    !judge(app, "reload", "*", new, &verdict)
}

impl Verdict {
    fn detail(&self, name: &str, whose: &str) -> String {
        format!(
            "the new version of `{name}` answers {} of {whose} {} most recent recorded calls differently: {}",
            self.differences.len(),
            self.replayed,
            self.differences.join("; ")
        )
    }
}

/// Logs and counts `verdict`; whether it refuses the version.
fn judge(app: &App, kind: &str, tenant: &str, new: &Primitive, verdict: &Verdict) -> bool {
    let result = verdict.result();
    app.metrics
        .reload_verifications
        .with_label_values(&[kind, result])
        .inc();
    let name = &new.metadata.name;
    if verdict.differences.is_empty() {
        tracing::info!(tenant, primitive = %name, replayed = verdict.replayed, result, "new version verified against recorded calls");
        return false;
    }
    let detail = verdict.detail(name, "the");
    if app.host.config().reload.on_difference == OnDifference::Refuse {
        tracing::warn!(tenant, primitive = %name, "new version refused: {detail}");
        true
    } else {
        tracing::warn!(tenant, primitive = %name, "new version swapped in despite differences: {detail}");
        false
    }
}

/// Replays each recording's call on `new`.
async fn replay(app: &App, new: &Arc<Primitive>, recordings: &[Recording], tenant: &Tenant) -> Verdict {
    let config = tenant.config();
    let secrets: HashMap<String, String> = config.all(&new.metadata.name).into_iter().collect();
    let mut differences = Vec::new();
    let mut replayed = 0;
    for recording in recordings {
        let Some(call) = recording.calls.first() else { continue };
        let session = Session::replay(vec![call.clone()], secrets.clone());
        let options = CallOptions {
            tenant: Some(call.context.tenant.clone()),
            correlation_id: Some(call.context.correlation_id.clone()),
            limits: Some(call.limits),
            recording: Some(Arc::clone(&session)),
            config: Some(Arc::clone(&config)),
            ..CallOptions::default()
        };
        app.host.call_primitive_unobserved(new, &call.input.0, options).await;
        replayed += 1;
        let (calls, _) = session.replayed();
        for d in calls.iter().flat_map(compare) {
            match d {
                Difference::Output { .. } | Difference::Error { .. } => {
                    let trace = call.context.traceparent.get(3..35).unwrap_or_default();
                    differences.push(format!("trace {trace}: {d}"));
                }
                other => {
                    tracing::debug!(primitive = %new.metadata.name, "a replay differs only in {}: {other}", other.kind())
                }
            }
        }
    }
    Verdict { replayed, differences }
}
