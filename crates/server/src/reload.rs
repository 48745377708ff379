//! Keeping what the server runs in step with its directories, and tenants' uploads on disk.
//!
//! The plugin and workflow directories and the files of `server.plugins` are polled
//! (portable, and cheap: one `stat` per file per interval); its OCI references are asked
//! again on their own, longer interval ([`super::pulls`]). A new or changed file is loaded
//! beside the running version and swapped in only when it is valid; a broken file is
//! reported and the old version keeps serving.
//! Calls in flight finish on the plugin they started with (each holds its `Arc`).
//!
//! Uploads are written to a temporary file, synced, and renamed into place, so a host
//! killed mid-upload restarts with the old or the new component, never half of one. An
//! upload loaded from the directory (another replica's) is fenced as one received over the
//! API: its `describe()` runs under its tenant's limits, and its series and artifact go
//! when its file does.

use super::{App, LoadedWorkflow, uploads};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tta_catalog::sources::Source;
use tta_catalog::{self as catalog, Fingerprint, Loaded, Policy, WorkflowFileError, fingerprint, list};

/// What the last scan saw of each watched file.
pub struct Watcher {
    plugins_dir: Option<PathBuf>,
    /// The entries of `server.plugins`.
    sources: Vec<Source>,
    /// Where the files that stand for their OCI references are.
    oci_cache: PathBuf,
    workflows_dir: Option<PathBuf>,
    uploads_dir: Option<PathBuf>,
    primitives: HashMap<PathBuf, Fingerprint>,
    workflows: HashMap<PathBuf, Fingerprint>,
    uploads: HashMap<PathBuf, Fingerprint>,
}

impl Watcher {
    /// A watcher of `host`'s directories and of `sources` (its `server.plugins`).
    pub(crate) fn new(host: &tta_core::config::HostConfig, sources: Vec<Source>) -> Self {
        let config = &host.server;
        Watcher {
            oci_cache: tta_catalog::oci::cache_root(host),
            sources,
            plugins_dir: config.plugins_dir.clone(),
            workflows_dir: config.workflows_dir.clone(),
            uploads_dir: config.uploads_dir.clone(),
            primitives: HashMap::new(),
            workflows: HashMap::new(),
            uploads: HashMap::new(),
        }
    }

    /// Records an upload the API wrote (or deleted) itself, so the next scan does not load it again.
    pub(crate) fn note_upload(&mut self, path: &Path) {
        match fingerprint(path) {
            Some(fp) => self.uploads.insert(path.to_owned(), fp),
            None => self.uploads.remove(path),
        };
    }

    /// Tenants' uploads written by another replica sharing the directory: loaded, replaced
    /// or removed like the plugin directory's files.
    async fn scan_uploads(&mut self, app: &App) {
        let Some(root) = self.uploads_dir.clone() else {
            return;
        };
        for tenant in app.tenants.iter() {
            let dir = root.join(&tenant.id);
            remove_stale_temporaries(&dir);
            let now = list(&dir, "wasm");
            let gone: Vec<PathBuf> = self
                .uploads
                .keys()
                .filter(|p| p.parent() == Some(dir.as_path()) && !now.contains_key(*p))
                .cloned()
                .collect();
            for path in gone {
                self.uploads.remove(&path);
                if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
                    let removed = app
                        .host
                        .update_registry(|r| Ok::<_, std::convert::Infallible>(r.remove_owned(&tenant.id, name)))
                        .unwrap_or(None);
                    if let Some(removed) = removed {
                        app.host.retire_upload(&tenant.access, &removed, false);
                    }
                    tracing::info!(tenant = %tenant.id, primitive = %name, "upload removed: its file is gone");
                }
            }
            for (path, fp) in now {
                if self.uploads.get(&path) == Some(&fp) {
                    continue;
                }
                self.uploads.insert(path.clone(), fp);
                let loaded = match tta_runtime::compile::read(&path) {
                    Ok(bytes) => app.host.inspect_upload(&path, bytes, &tenant.limits).await,
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok(primitive) => {
                        tracing::info!(tenant = %tenant.id, primitive = %primitive.metadata.name, "upload loaded");
                        reload_metric(app, "upload", "loaded");
                        app.host.telemetry().metrics().prepare(primitive.metrics(), &tenant.id);
                        let previous = app
                            .host
                            .update_registry(|r| {
                                let previous = r.owned(&tenant.id, &primitive.metadata.name);
                                r.insert_owned(&tenant.id, primitive);
                                Ok::<_, std::convert::Infallible>(previous)
                            })
                            .unwrap_or(None);
                        if let Some(previous) = previous {
                            app.host.retire_upload(&tenant.access, &previous, true);
                        }
                    }
                    Err(e) => {
                        tracing::error!(tenant = %tenant.id, error_type = e.kind(), "stored upload not loaded: {e}");
                        reload_metric(app, "upload", "rejected");
                    }
                }
            }
        }
    }

    /// Loads what changed since the last scan; `initial` reports progress for the first.
    pub(crate) async fn scan(&mut self, app: &App, initial: bool) {
        app.tenants.refresh_config();
        self.scan_uploads(app).await;
        let mut plugins_changed = false;
        {
            let mut now = self
                .plugins_dir
                .as_deref()
                .map(|dir| list(dir, "wasm"))
                .unwrap_or_default();
            for source in &self.sources {
                now.extend(source.files(&self.oci_cache));
            }
            let removed: Vec<PathBuf> = self
                .primitives
                .keys()
                .filter(|p| !now.contains_key(*p))
                .cloned()
                .collect();
            for path in removed {
                self.primitives.remove(&path);
                let names = app
                    .host
                    .update_registry(|r| Ok::<_, std::convert::Infallible>(r.remove_path(&path)))
                    .unwrap_or_default();
                for name in names {
                    tracing::info!(primitive = %name, path = %path.display(), "primitive removed: its file is gone");
                    reload_metric(app, "primitive", "removed");
                }
                plugins_changed = true;
            }
            let changed: Vec<(PathBuf, Fingerprint)> = now
                .into_iter()
                .filter(|(path, fp)| self.primitives.get(path) != Some(fp))
                .collect();
            let total = changed.len();
            for (i, (path, fingerprint)) in changed.into_iter().enumerate() {
                if initial {
                    tracing::info!(file = %path.display(), "loading plugin {}/{total}", i + 1);
                }
                self.primitives.insert(path.clone(), fingerprint);
                plugins_changed |= load_shared(app, &path).await;
            }
        }
        if initial || plugins_changed {
            zero_series(app);
        }
        if let Some(dir) = self.workflows_dir.clone() {
            let now = list(&dir, "toml");
            if plugins_changed || now != self.workflows.iter().map(|(p, f)| (p.clone(), *f)).collect() {
                self.workflows = now.iter().map(|(p, f)| (p.clone(), *f)).collect();
                compile_workflows(app, now.keys());
            }
        }
    }
}

/// Makes the call series of every primitive each tenant may call at zero, up to
/// `metrics.zero_series` pairs, so Prometheus counts their first calls.
fn zero_series(app: &App) {
    let metrics = app.host.telemetry().metrics();
    let registry = app.host.registry();
    for tenant in app.tenants.iter() {
        for primitive in registry.visible(Some(&tenant.access)) {
            if !metrics.prepare(primitive.metrics(), &tenant.id) {
                return;
            }
        }
    }
}

/// Loads `path` and swaps it in; a failure is reported and changes nothing.
async fn load_shared(app: &App, path: &Path) -> bool {
    if app.host.config().reload.verify == tta_core::config::reload::Verify::Replay
        && let Ok(candidate) = app.host.inspect(path).await
        && !super::verify::shared(app, &candidate).await
    {
        tracing::error!(file = %path.display(), "not swapped in: it answers recorded calls differently (reload.verify); the previous version keeps serving");
        reload_metric(app, "primitive", "rejected");
        return false;
    }
    let loaded = catalog::load_primitives(&app.host, vec![path.to_owned()], Policy::KeepPrevious, |_, _, _| {}).await;
    let Some(Loaded { result, replaced, .. }) = loaded.into_iter().next() else {
        return false;
    };
    match result {
        Ok(primitive) => {
            let verb = if replaced { "reloaded" } else { "loaded" };
            tracing::info!(primitive = %primitive.metadata.name, file = %path.display(), digest = %&primitive.digest[..12], "primitive {verb}");
            reload_metric(app, "primitive", "loaded");
            true
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error_type = e.kind(), "{e}; the previous version (if any) keeps serving");
            reload_metric(app, "primitive", "rejected");
            false
        }
    }
}

/// Compiles every workflow file; one that fails keeps its previous version.
fn compile_workflows<'a>(app: &App, paths: impl Iterator<Item = &'a PathBuf>) {
    let previous = app.workflows.load_full();
    let mut next: BTreeMap<String, Arc<LoadedWorkflow>> = BTreeMap::new();
    for path in paths {
        let keep_previous = |next: &mut BTreeMap<String, Arc<LoadedWorkflow>>| {
            for (name, old) in previous.iter() {
                if &old.path == path {
                    next.insert(name.clone(), Arc::clone(old));
                }
            }
        };
        match catalog::read_workflow(&app.host, path) {
            Ok(workflow) => {
                let name = workflow.name().to_owned();
                if let Some(other) = next.get(&name) {
                    tracing::error!(
                        file = %path.display(),
                        "workflow `{name}` is also defined in {}; rename one", other.path.display()
                    );
                    reload_metric(app, "workflow", "rejected");
                    continue;
                }
                next.insert(
                    name,
                    Arc::new(LoadedWorkflow {
                        workflow: Arc::new(workflow),
                        path: path.clone(),
                    }),
                );
                reload_metric(app, "workflow", "loaded");
            }
            Err(WorkflowFileError::Invalid { problems, .. }) => {
                for p in &problems {
                    tracing::error!(file = %path.display(), "{p}");
                }
                reload_metric(app, "workflow", "rejected");
                keep_previous(&mut next);
            }
            Err(e @ WorkflowFileError::Read { .. }) => {
                tracing::error!("{e}");
                keep_previous(&mut next);
            }
        }
    }
    app.workflows.store(Arc::new(next));
}

fn reload_metric(app: &App, kind: &str, result: &str) {
    app.metrics.plugin_reloads.with_label_values(&[kind, result]).inc();
}

/// Starts the periodic rescan, unless reload is off; with a cluster, another replica's
/// announced upload or deletion also starts a scan at once.
pub(crate) fn spawn(app: Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = app.config.reload_interval_ms;
    let watched = [
        &app.config.plugins_dir,
        &app.config.workflows_dir,
        &app.config.uploads_dir,
    ];
    if interval == 0 || (watched.iter().all(|dir| dir.is_none()) && app.config.plugins.is_empty()) {
        return None;
    }
    let announced = app
        .cluster
        .as_ref()
        .filter(|_| app.config.uploads_dir.is_some())
        .map(tta_cluster::Cluster::changes);
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(interval));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            match &announced {
                Some(announced) => tokio::select! {
                    _ = ticker.tick() => {}
                    () = announced.notified() => {}
                },
                None => {
                    ticker.tick().await;
                }
            }
            if let Some(pulls) = &app.pulls {
                pulls.lock().await.poll(&app).await;
            }
            app.reloader.lock().await.scan(&app, false).await;
        }
    }))
}

/// A temporary upload file older than this was left by a host that died writing it (an
/// upload is written in well under a second); younger ones may be another replica's.
const STALE_TEMPORARY: Duration = Duration::from_secs(60);

/// Removes the temporary files of uploads that never finished (the host was killed while
/// writing): they were never renamed, so no plugin depends on them.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !(name.starts_with(uploads::TEMPORARY_PREFIX) && name.ends_with(".tmp")) {
            continue;
        }
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        if age.is_some_and(|age| age >= STALE_TEMPORARY) && std::fs::remove_file(&path).is_ok() {
            tracing::info!(file = %path.display(), "removed the temporary file of an unfinished upload");
        }
    }
}
