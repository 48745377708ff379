//! `serve`'s recordings (`[recording]`): which calls are recorded, where they are kept, and
//! `GET /v1/recordings`, `GET /v1/recordings/{trace_id}` for the tenant that made them.
//!
//! With `failed = true` every call is recorded as it runs and the recording is kept only if
//! the call failed (or is sampled); `sample_ratio` keeps that share of all calls, chosen by
//! trace id. A recording is the tenant's data — its input and output — so it is served to
//! that tenant only, charged to its byte budget (its oldest go first), and the directory as
//! a whole is bounded too (the oldest of any tenant go first). Files are
//! `<dir>/<tenant, hex>/<trace id>.ttarec`, found again when the server restarts.
#![allow(
    clippy::result_large_err,
    reason = "the errors are the HTTP responses themselves, built once per refused request"
)]

use super::App;
use super::problem::Problem;
use super::request::{RequestIds, authenticate, with_tenant};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::{IntCounterVec, IntGaugeVec, Registry};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use tta_core::config::RecordingConfig;
use tta_core::recording::{Outcome, Recording, WorkflowRecord};
use tta_runtime::recording::Session;
use tta_telemetry::Metrics;
use tta_telemetry::instruments::{Instruments, counter, gauge};

/// The recordings' instruments.
pub struct RecordingMetrics {
    /// `recordings_kept_total{tenant}`.
    kept: IntCounterVec,
    /// `recordings_dropped_total{tenant,reason}`: made and not kept (`too_large`, `write_failed`).
    dropped: IntCounterVec,
    /// `recordings_evicted_total{tenant}`: removed to keep a budget.
    evicted: IntCounterVec,
    /// `recordings_bytes{tenant}`: bytes kept now.
    bytes: IntGaugeVec,
}

impl Instruments for RecordingMetrics {
    fn register(r: &Registry) -> Self {
        RecordingMetrics {
            kept: counter(
                r,
                "recordings_kept_total",
                "Calls recorded for replay and kept ([recording]), by tenant.",
                &["tenant"],
            ),
            dropped: counter(
                r,
                "recordings_dropped_total",
                "Recordings made and not kept, by reason: too_large (over recording.max_call_bytes), write_failed.",
                &["tenant", "reason"],
            ),
            evicted: counter(
                r,
                "recordings_evicted_total",
                "Recordings removed, oldest first, to keep a tenant's budget or the directory's bound.",
                &["tenant"],
            ),
            bytes: gauge(
                r,
                "recordings_bytes",
                "Bytes of recordings kept now, by tenant.",
                &["tenant"],
            ),
        }
    }
}

/// What a listing shows of one recording.
#[derive(Debug, Clone, serde::Serialize)]
struct Summary {
    trace_id: String,
    /// The primitive, or the workflow.
    name: String,
    workflow: bool,
    /// `ok`, or the error class.
    outcome: String,
    recorded_at_ms: u64,
    bytes: u64,
    calls: usize,
    fuel: u64,
    /// The component of the (first) call, hex SHA-256.
    digest: String,
}

struct Entry {
    seq: u64,
    summary: Summary,
}

#[derive(Default)]
struct Kept {
    tenants: HashMap<String, VecDeque<Entry>>,
    /// Every recording by age: sequence number → (tenant, trace id).
    by_age: BTreeMap<u64, (String, String)>,
    total: u64,
    next_seq: u64,
}

/// A call's recording in progress.
pub(crate) struct Taken {
    /// What the call records on.
    pub(crate) session: Arc<Session>,
    sampled: bool,
}

/// The recordings of a server.
pub(crate) struct Recordings {
    config: RecordingConfig,
    dir: PathBuf,
    kept: Mutex<Kept>,
    metrics: Arc<RecordingMetrics>,
    host_metrics: Arc<Metrics>,
}

fn summary(recording: &Recording, trace_id: String, bytes: u64) -> Summary {
    let first = recording.calls.first();
    let (name, outcome) = match &recording.workflow {
        Some(w) => (w.name.clone(), &w.outcome),
        None => (
            first.map(|c| c.primitive.clone()).unwrap_or_default(),
            match first {
                Some(c) => &c.outcome,
                None => &Outcome::Ok(tta_core::recording::Payload::default()),
            },
        ),
    };
    Summary {
        trace_id,
        name,
        workflow: recording.workflow.is_some(),
        outcome: match outcome {
            Outcome::Ok(_) => "ok".into(),
            Outcome::Err { error_type, .. } => error_type.clone(),
        },
        recorded_at_ms: recording.recorded_at_ms,
        bytes,
        calls: recording.calls.len(),
        fuel: recording.calls.iter().map(|c| c.fuel).sum(),
        digest: first.map(|c| c.digest.clone()).unwrap_or_default(),
    }
}

impl Recordings {
    /// The recordings of a host with `config`, found again in its directory.
    pub(crate) fn open(config: &RecordingConfig, cache_dir: Option<&std::path::Path>, metrics: &Arc<Metrics>) -> Self {
        let dir = config.dir.clone().unwrap_or_else(|| {
            cache_dir
                .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf)
                .join("recordings")
        });
        let recordings = Recordings {
            config: config.clone(),
            dir,
            kept: Mutex::default(),
            metrics: metrics.instruments::<RecordingMetrics>(),
            host_metrics: Arc::clone(metrics),
        };
        if config.enabled() {
            recordings.rescan();
        }
        recordings
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Indexes the recordings a previous run left, oldest first, within today's bounds.
    fn rescan(&self) {
        let mut found = Vec::new();
        for tenant_dir in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let Some(tenant) = tenant_dir
                .file_name()
                .to_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| String::from_utf8(b).ok())
            else {
                continue;
            };
            for file in std::fs::read_dir(tenant_dir.path()).into_iter().flatten().flatten() {
                let path = file.path();
                let Some(trace) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .filter(|_| path.extension().is_some_and(|e| e == "ttarec"))
                    .map(str::to_owned)
                else {
                    continue;
                };
                match Recording::read(&path) {
                    Ok(recording) => {
                        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                        found.push((tenant.clone(), summary(&recording, trace, bytes)));
                    }
                    Err(e) => {
                        tracing::warn!("removing an unreadable recording: {e}");
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort_by_key(|(_, s)| s.recorded_at_ms);
        let count = found.len();
        for (tenant, summary) in found {
            self.index(&tenant, summary);
        }
        if count > 0 {
            tracing::info!(count, dir = %self.dir.display(), "recordings found from an earlier run");
        }
    }

    /// The session a call records on, if it may be kept, and whether it is sampled (kept
    /// whatever its outcome): sampling is decided before the call, so an unsampled call
    /// records only when failed calls are kept.
    pub(crate) fn session(&self) -> Option<Taken> {
        let ratio = self.config.sample_ratio;
        let sampled = ratio >= 1.0 || (ratio > 0.0 && rand::random::<f64>() < ratio);
        (self.config.failed || sampled).then(|| Taken {
            session: Session::record(self.config.max_call_bytes),
            sampled,
        })
    }

    /// Keeps what `session` recorded of the call `trace_id` of `tenant`, if the policy says:
    /// a failed call when `failed`, any call sampled.
    pub(crate) fn keep(
        self: &Arc<Self>,
        tenant: &str,
        taken: &Taken,
        trace_id: u128,
        failed: bool,
        workflow: Option<WorkflowRecord>,
    ) {
        if !((failed && self.config.failed) || taken.sampled) {
            return;
        }
        let session = &taken.session;
        let label = self.host_metrics.tenant_label(tenant);
        let calls = match session.recorded() {
            Ok(calls) => calls,
            Err(tta_runtime::recording::RecordError::TooLarge { .. }) => {
                self.metrics.dropped.with_label_values(&[&label, "too_large"]).inc();
                return;
            }
            Err(tta_runtime::recording::RecordError::Empty) => return,
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut recording = Recording::new(u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        recording.workflow = workflow;
        recording.calls = calls;
        let trace = format!("{trace_id:032x}");
        let this = Arc::clone(self);
        let tenant = tenant.to_owned();
        // Compressing, the write and any eviction: off the request's worker.
        tokio::task::spawn_blocking(move || {
            let bytes = recording.to_bytes();
            if bytes.len() > this.config.max_call_bytes {
                this.metrics.dropped.with_label_values(&[&label, "too_large"]).inc();
                return;
            }
            let summary = summary(&recording, trace.clone(), bytes.len() as u64);
            let dir = this.dir.join(hex::encode(&tenant));
            let path = dir.join(format!("{trace}.ttarec"));
            let written = std::fs::create_dir_all(&dir).and_then(|()| {
                let mut file = tempfile::NamedTempFile::new_in(&dir)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.persist(&path).map(|_| ()).map_err(|e| e.error)
            });
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), "cannot keep a recording: {e}");
                this.metrics.dropped.with_label_values(&[&label, "write_failed"]).inc();
                return;
            }
            this.metrics.kept.with_label_values(&[&label]).inc();
            this.index(&tenant, summary);
        });
    }

    /// Adds a kept recording to the index and evicts, oldest first, past the budgets.
    fn index(&self, tenant: &str, summary: Summary) {
        let mut evict = Vec::new();
        {
            let mut kept = self.lock();
            let kept = &mut *kept;
            let seq = kept.next_seq;
            kept.next_seq += 1;
            kept.total += summary.bytes;
            kept.by_age.insert(seq, (tenant.to_owned(), summary.trace_id.clone()));
            let mine = kept.tenants.entry(tenant.to_owned()).or_default();
            // A second recording of one trace (a retried request) replaces the first.
            if let Some(at) = mine.iter().position(|e| e.summary.trace_id == summary.trace_id)
                && let Some(old) = mine.remove(at)
            {
                kept.total -= old.summary.bytes;
                kept.by_age.remove(&old.seq);
            }
            mine.push_back(Entry { seq, summary });
            let mut tenant_bytes: u64 = mine.iter().map(|e| e.summary.bytes).sum();
            while tenant_bytes > self.config.tenant_budget_bytes && mine.len() > 1 {
                let Some(old) = mine.pop_front() else { break };
                tenant_bytes -= old.summary.bytes;
                kept.total -= old.summary.bytes;
                kept.by_age.remove(&old.seq);
                evict.push((tenant.to_owned(), old.summary.trace_id));
            }
            while kept.total > self.config.max_bytes && kept.by_age.len() > 1 {
                let Some((_, (owner, trace))) = kept.by_age.pop_first() else {
                    break;
                };
                if let Some(theirs) = kept.tenants.get_mut(&owner)
                    && let Some(at) = theirs.iter().position(|e| e.summary.trace_id == trace)
                    && let Some(old) = theirs.remove(at)
                {
                    kept.total -= old.summary.bytes;
                }
                evict.push((owner, trace));
            }
            for (owner, list) in &kept.tenants {
                let label = self.host_metrics.tenant_label(owner);
                let bytes: u64 = list.iter().map(|e| e.summary.bytes).sum();
                self.metrics
                    .bytes
                    .with_label_values(&[&label])
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        for (owner, trace) in evict {
            let label = self.host_metrics.tenant_label(&owner);
            self.metrics.evicted.with_label_values(&[&label]).inc();
            let _ = std::fs::remove_file(self.dir.join(hex::encode(&owner)).join(format!("{trace}.ttarec")));
        }
    }

    /// The tenant's recordings, newest first.
    fn list(&self, tenant: &str) -> Vec<Summary> {
        self.lock()
            .tenants
            .get(tenant)
            .map(|l| l.iter().rev().map(|e| e.summary.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether the tenant has a recording of `trace`.
    pub(crate) fn has(&self, tenant: &str, trace: &str) -> bool {
        self.lock()
            .tenants
            .get(tenant)
            .is_some_and(|l| l.iter().any(|e| e.summary.trace_id == trace))
    }

    /// The tenant's recent recordings of calls of the component `digest` of `primitive`,
    /// newest first, at most `n`.
    pub(crate) fn recent_of(&self, tenant: &str, primitive: &str, digest: &str, n: usize) -> Vec<Recording> {
        let traces: Vec<String> = self
            .lock()
            .tenants
            .get(tenant)
            .map(|l| {
                l.iter()
                    .rev()
                    .filter(|e| !e.summary.workflow && e.summary.name == primitive && e.summary.digest == digest)
                    .take(n)
                    .map(|e| e.summary.trace_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        traces
            .iter()
            .filter_map(|t| Recording::read(&self.file(tenant, t)).ok())
            .collect()
    }

    fn file(&self, tenant: &str, trace: &str) -> PathBuf {
        self.dir.join(hex::encode(tenant)).join(format!("{trace}.ttarec"))
    }
}

/// `GET /v1/recordings`: the caller's tenant's recordings, newest first.
pub(crate) async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let list = app.recordings.list(&tenant.id);
    let body = serde_json::json!({
        "recording": {
            "failed": app.recordings.config.failed,
            "sample_ratio": app.recordings.config.sample_ratio,
            "tenant_budget_bytes": app.recordings.config.tenant_budget_bytes,
        },
        "recordings": list,
    });
    let mut response = axum::Json(body).into_response();
    ids.stamp(&mut response);
    with_tenant(response, &tenant)
}

/// `GET /v1/recordings/{trace_id}`: one recording, as the `.ttarec` file `replay` reads.
pub(crate) async fn get(State(app): State<Arc<App>>, Path(trace): Path<String>, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let valid = trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let missing = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no recording of trace `{}` for this tenant; `GET /v1/recordings` lists them",
                tta_core::text::bounded(&trace, 40)
            ),
        )
    };
    if !valid || !app.recordings.has(&tenant.id, &trace) {
        return with_tenant(ids.problem(missing()), &tenant);
    }
    let path = app.recordings.file(&tenant.id, &trace);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut response = bytes.into_response();
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.tta.ttarec"),
            );
            if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{trace}.ttarec\"")) {
                h.insert(header::CONTENT_DISPOSITION, value);
            }
            ids.stamp(&mut response);
            with_tenant(response, &tenant)
        }
        Err(_) => with_tenant(ids.problem(missing()), &tenant),
    }
}
