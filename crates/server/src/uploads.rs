//! Tenants' own primitives: `PUT /v1/primitives/{name}` and `DELETE`.
//!
//! An upload is the tenant's work, fenced like its calls: it holds one of the tenant's
//! in-flight slots and a token of its upload rate, reserves its place under `max_uploads`
//! before the body is read (concurrent uploads cannot pass the quota together), streams its
//! body to a temporary file beside its destination (memory per upload is a constant, not
//! the body's size), and takes one of the host's slots only once the body is there. It
//! compiles on the shared workers one upload per tenant at a time, so a tenant waits for
//! at most one compile of each other tenant, and `compile_timeout_ms` bounds the wait and
//! the compile each. `describe()` runs under the tenant's limits. The file is synced and
//! renamed into place, so a kill at any moment leaves the old or the new component.
//!
//! Deleting (or replacing) an upload takes what it left with it: its metric series and its
//! compiled artifact. Errors name the upload, never the host's directories.
#![allow(
    clippy::result_large_err,
    reason = "the errors are the HTTP responses themselves, built once per refused request"
)]

use super::App;
use super::problem::Problem;
use super::request::{self as api, RequestIds};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::json;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tta_runtime::primitive::Primitive;
use tta_runtime::tenant::{Tenant, UploadRefusal};

/// The prefix of an upload's temporary file, which the directory scan removes once it is
/// surely abandoned (see `reload.rs`).
pub(crate) const TEMPORARY_PREFIX: &str = ".upload-";

pub(super) async fn upload(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match api::authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let response = match store(&app, &tenant, &name, &headers, &ids, body).await {
        Ok((status, body)) => {
            let mut response = (status, axum::Json(body)).into_response();
            ids.stamp(&mut response);
            response
        }
        Err(response) => response,
    };
    api::with_tenant(response, &tenant)
}

/// Checks that the tenant may manage its uploads here; the uploads directory if so.
fn uploads_root(app: &App, tenant: &Tenant) -> Result<PathBuf, Problem> {
    if !tenant.uploads {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "uploads_forbidden",
            "this tenant may not upload primitives; the operator can set `uploads = true` on it",
        ));
    }
    app.config.uploads_dir.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "uploads_disabled",
            "uploads are off on this host; the operator can set `server.uploads_dir`",
        )
    })
}

fn valid_primitive_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

fn storage(e: &dyn std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        format!("cannot store the component: {e}"),
    )
}

async fn store(
    app: &Arc<App>,
    tenant: &Arc<Tenant>,
    name: &str,
    headers: &HeaderMap,
    ids: &RequestIds,
    body: Body,
) -> Result<(StatusCode, serde_json::Value), Response> {
    let fail = |problem: Problem| ids.problem(problem);
    let root = uploads_root(app, tenant).map_err(fail)?;
    if !valid_primitive_name(name) {
        return Err(fail(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!(
                "`{}` is not a primitive name: use 1 to 64 characters of a-z, 0-9, '-', '_', '.'",
                tta_core::text::bounded(name, 64)
            ),
        )));
    }
    let _slot = tenant
        .admit_upload()
        .map_err(|refusal| api::refused(app, tenant, ids, refusal))?;
    let _reservation = {
        let registry = app.host.registry();
        tenant
            .reserve_upload(
                name,
                |n| registry.owned(&tenant.id, n).is_some(),
                registry.owned_count(&tenant.id),
            )
            .map_err(|refusal: UploadRefusal| {
                fail(Problem::new(
                    StatusCode::FORBIDDEN,
                    "upload_quota_exceeded",
                    refusal.to_string(),
                ))
            })?
    };
    let path = upload_path(&root, &tenant.id, name);
    let shown = PathBuf::from(format!("{name}.wasm"));
    let received = receive(app, &path, headers, body).await.map_err(fail)?;
    let _capacity = api::capacity(app, tenant, ids)?;
    let started = Instant::now();
    let primitive = compile(app, tenant, &path, &received)
        .await
        .map_err(|e| fail(e.into_problem(&shown)))?;
    if primitive.metadata.name != name {
        return Err(fail(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_mismatch",
            format!(
                "the component describes itself as `{}` but was uploaded as `{name}`; upload it to /v1/primitives/{}",
                primitive.metadata.name, primitive.metadata.name
            ),
        )));
    }
    super::verify::upload(app, tenant, &primitive).await.map_err(fail)?;
    // The watcher waits while the file is written and registered, so it never loads this
    // upload a second time (or makes a new upload look like a replacement).
    let mut watcher = app.reloader.lock().await;
    let stored = {
        let path = path.clone();
        // The fsyncs take milliseconds per megabyte: off the workers that serve requests.
        tokio::task::spawn_blocking(move || persist(received.file, &path)).await
    };
    stored.map_err(|e| fail(storage(&e)))?.map_err(|e| fail(storage(&e)))?;
    watcher.note_upload(&path);
    let previous = app
        .host
        .update_registry(|r| {
            let previous = r.owned(&tenant.id, name);
            r.insert_owned(&tenant.id, Arc::clone(&primitive));
            Ok::<_, std::convert::Infallible>(previous)
        })
        .unwrap_or(None);
    drop(watcher);
    app.host.telemetry().metrics().prepare(primitive.metrics(), &tenant.id);
    announce(app).await;
    if let Some(previous) = &previous {
        app.host.retire_upload(&tenant.access, previous, true);
    }
    app.metrics
        .plugin_reloads
        .with_label_values(&["upload", "loaded"])
        .inc();
    let replaced = previous.is_some();
    tracing::info!(tenant = %tenant.id, primitive = %name, digest = %primitive.digest, replaced, "primitive uploaded");
    let mut body = api::primitive_json(&primitive, true);
    body["compile_ms"] = json!((started.elapsed().as_secs_f64() * 1e6).round() / 1e3);
    let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, body))
}

/// An upload's body on disk, in a temporary file beside its destination: removed when
/// dropped unless it was renamed into place.
struct Received {
    file: tempfile::NamedTempFile,
}

/// Streams the body into a temporary file: refused by its declared length before reading,
/// by its actual length while reading, and when slower than `server.body_timeout_ms`.
/// Memory per upload is the transport's chunk, whatever the body's size.
async fn receive(
    app: &App,
    destination: &std::path::Path,
    headers: &HeaderMap,
    body: Body,
) -> Result<Received, Problem> {
    let limit = app.config.max_upload_bytes;
    api::check_declared_length(headers, limit, "the component")?;
    let dir = destination.parent().unwrap_or(std::path::Path::new(".")).to_owned();
    let temporary = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        tempfile::Builder::new()
            .prefix(TEMPORARY_PREFIX)
            .suffix(".tmp")
            .tempfile_in(&dir)
    })
    .await
    .map_err(|e| storage(&e))?
    .map_err(|e| storage(&e))?;
    let mut file = Some(temporary.as_file().try_clone().map_err(|e| storage(&e))?);
    let timeout = Duration::from_millis(app.config.body_timeout_ms);
    let copy = async {
        let mut chunks = body.into_data_stream();
        let mut received = 0usize;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "incomplete_body",
                    "the component's body ended early or broke off; send it again",
                )
            })?;
            received += chunk.len();
            if received > limit {
                return Err(api::too_large("the component", "more than that", limit));
            }
            // Each chunk is written where it was received, no copy kept: one chunk of the
            // transport's in memory per upload, whatever the body's size.
            let mut open = file.take().ok_or_else(|| storage(&"the temporary file is gone"))?;
            let written = tokio::task::spawn_blocking(move || open.write_all(&chunk).map(|()| open))
                .await
                .map_err(|e| storage(&e))?
                .map_err(|e| storage(&e))?;
            file = Some(written);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, copy).await {
        Ok(result) => result?,
        Err(_) => return Err(api::body_timeout("the component", timeout)),
    }
    Ok(Received { file: temporary })
}

/// Why an upload did not compile into a primitive.
enum CompileFailure {
    /// No worker, or the compile itself, within `compile_timeout_ms`.
    Busy(Duration),
    /// Rejected as a component.
    Load(tta_core::error::LoadError),
    /// The compile task failed.
    Internal(String),
}

impl CompileFailure {
    fn into_problem(self, shown: &std::path::Path) -> Problem {
        match self {
            CompileFailure::Busy(timeout) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "compile_timeout",
                format!(
                    "the component was not validated and compiled within {} ms; retry, or ask the operator to raise `server.compile_timeout_ms`",
                    timeout.as_millis()
                ),
            )
            .retry_after(Duration::from_secs(5)),
            CompileFailure::Load(e) => {
                let e = e.shown_as(shown);
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.kind(), e.to_string())
            }
            CompileFailure::Internal(reason) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("validation failed unexpectedly: {reason}"),
            ),
        }
    }
}

/// Validates and compiles the received upload: first the tenant's turn (one compile per
/// tenant), then a shared worker (first come, first served), each waited for at most
/// `compile_timeout_ms`; then the compile, in its own task holding both, so a compile that
/// outlives its request still counts against the bound until it really ends.
async fn compile(
    app: &App,
    tenant: &Tenant,
    path: &std::path::Path,
    received: &Received,
) -> Result<Arc<Primitive>, CompileFailure> {
    let timeout = Duration::from_millis(app.config.compile_timeout_ms);
    let waited = Instant::now();
    let turn = tokio::time::timeout(timeout, tenant.compile_turn().acquire_owned())
        .await
        .map_err(|_| CompileFailure::Busy(timeout))?
        .map_err(|e| CompileFailure::Internal(e.to_string()))?;
    let worker = tokio::time::timeout(
        timeout.saturating_sub(waited.elapsed()),
        Arc::clone(&app.compile).acquire_owned(),
    )
    .await
    .map_err(|_| CompileFailure::Busy(timeout))?
    .map_err(|e| CompileFailure::Internal(e.to_string()))?;
    // The scan removes temporaries a minute after their last write; this one is alive.
    if let Ok(file) = received.file.as_file().try_clone() {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
    let host = app.host.clone();
    let limits = tenant.limits;
    let source = received.file.path().to_owned();
    let path = path.to_owned();
    let task = tokio::spawn(async move {
        let _held = (turn, worker);
        let bytes = tokio::fs::read(&source)
            .await
            .map_err(|source| tta_core::error::LoadError::Io {
                path: path.clone(),
                source,
            })?;
        host.inspect_upload(&path, bytes, &limits).await
    });
    match tokio::time::timeout(timeout, task).await {
        Err(_) => Err(CompileFailure::Busy(timeout)),
        Ok(Err(join)) => Err(CompileFailure::Internal(join.to_string())),
        Ok(Ok(Err(e))) => Err(CompileFailure::Load(e)),
        Ok(Ok(Ok(primitive))) => Ok(primitive),
    }
}

pub(super) async fn remove(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match api::authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let mut watcher = app.reloader.lock().await;
    let result = (|| {
        let root = uploads_root(&app, &tenant)?;
        let removed = app
            .host
            .update_registry(|r| Ok::<_, std::convert::Infallible>(r.remove_owned(&tenant.id, &name)))
            .unwrap_or(None);
        let Some(removed) = removed else {
            return Err(api::not_found("primitive", &name));
        };
        let path = upload_path(&root, &tenant.id, &name);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(file = %path.display(), "cannot delete a removed upload: {e}");
        }
        tracing::info!(tenant = %tenant.id, primitive = %name, "primitive deleted");
        Ok((path, removed))
    })();
    if let Ok((path, _)) = &result {
        watcher.note_upload(path);
    }
    drop(watcher);
    if result.is_ok() {
        announce(&app).await;
    }
    let response = match result {
        Ok((_, removed)) => {
            app.host.retire_upload(&tenant.access, &removed, false);
            let mut response = StatusCode::NO_CONTENT.into_response();
            ids.stamp(&mut response);
            response
        }
        Err(problem) => ids.problem(problem),
    };
    api::with_tenant(response, &tenant)
}

/// Where the tenant's upload `name` is kept.
pub(crate) fn upload_path(root: &std::path::Path, tenant: &str, name: &str) -> PathBuf {
    root.join(tenant).join(format!("{name}.wasm"))
}

/// Puts a received upload in place atomically: its temporary file (in the same directory)
/// synced, renamed over `path`, and the directory synced so the rename survives a crash.
pub(crate) fn persist(file: tempfile::NamedTempFile, path: &std::path::Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Tells the other replicas sharing the uploads directory to rescan it now (with a cluster).
async fn announce(app: &App) {
    if let Some(cluster) = &app.cluster {
        cluster.announce_change().await;
    }
}
