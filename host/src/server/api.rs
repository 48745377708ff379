//! The routes of the HTTP API and what each does before any guest runs: authenticate,
//! admit against the tenant's quotas, find what the tenant may see, bound the body, and
//! only then take one of the host's slots — in that order, so a refused request costs
//! almost nothing and a client sending its body slowly holds its own tenant's slot, never
//! the host's.
//!
//! Another tenant's primitive or workflow answers 404, exactly like one that does not
//! exist. The tenant of a call comes from its key, never from the request.
#![allow(
    clippy::result_large_err,
    reason = "the errors are the HTTP responses themselves, built once per refused request"
)]

use super::problem::Problem;
use super::{App, uploads};
use crate::credentials::{self, BearerError};
use crate::host::CallOptions;
use crate::plugin::Plugin;
use crate::report::{SpanIds, parse_traceparent};
use crate::telemetry::Metrics;
use crate::tenant::{Permit, Refusal, Tenant};
use crate::text;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// The API's routes.
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/v1/primitives", get(list_primitives))
        .route("/v1/primitives/{name}", put(uploads::upload).delete(uploads::remove))
        .route("/v1/primitives/{name}/execute", post(execute))
        .route("/v1/workflows", get(list_workflows))
        .route("/v1/workflows/{name}/run", post(run_workflow))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if app.config.metrics {
        router = router.route("/metrics", get(metrics));
    }
    router
        .fallback(not_found_route)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), access_log))
        .with_state(app)
}

/// The ids of one request: its correlation id and the trace it belongs to.
#[derive(Debug, Clone)]
pub(super) struct RequestIds {
    correlation_id: String,
    traceparent: Option<String>,
    tracestate: Option<String>,
    /// The caller's trace id, or a new one when it sent none (for problems before any call).
    trace_id: u128,
}

impl RequestIds {
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let correlation_id = text("x-correlation-id")
            .filter(|id| valid_correlation_id(id))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let traceparent = text("traceparent");
        let trace_id = traceparent
            .as_deref()
            .and_then(|t| parse_traceparent(t).ok())
            .map_or_else(rand::random, |(trace, _, _)| trace);
        RequestIds {
            correlation_id,
            traceparent,
            // W3C: a `tracestate` past 512 characters may be discarded; a longer one would
            // ride on every span of the call.
            tracestate: text("tracestate").filter(|t| t.len() <= MAX_TRACESTATE),
            trace_id,
        }
    }

    pub(super) fn problem(&self, problem: Problem) -> Response {
        let mut response = problem
            .with_ids(&self.correlation_id, &format!("{:032x}", self.trace_id))
            .into_response();
        self.stamp(&mut response);
        response
    }

    /// The answer to a request that ran guest code: its output, or its problem with the ids
    /// of the run; either way the run's `traceparent` and the correlation id.
    fn ran(&self, result: Result<Response, Problem>, span: &SpanIds, tenant: &Tenant) -> Response {
        let mut response = match result {
            Ok(response) => response,
            Err(problem) => problem
                .with_ids(&self.correlation_id, &format!("{:032x}", span.trace_id))
                .into_response(),
        };
        self.stamp(&mut response);
        response
            .headers_mut()
            .insert("traceparent", header_value(&span.traceparent()));
        with_tenant(response, tenant)
    }

    pub(super) fn stamp(&self, response: &mut Response) {
        if let Ok(value) = HeaderValue::from_str(&self.correlation_id) {
            response.headers_mut().insert("x-correlation-id", value);
        }
    }

    fn options(&self, tenant: &Tenant) -> CallOptions {
        CallOptions {
            correlation_id: Some(self.correlation_id.clone()),
            tenant: Some(tenant.id.clone()),
            traceparent: self.traceparent.clone(),
            tracestate: self.tracestate.clone(),
            data: Vec::new(),
            limits: Some(tenant.limits),
            access: Some(Arc::clone(&tenant.access)),
        }
    }
}

/// The longest `tracestate` kept (W3C Trace Context's 512 characters).
const MAX_TRACESTATE: usize = 512;

/// A caller's correlation id is kept if it is short printable ASCII; otherwise a new one is made.
fn valid_correlation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The tenant of a request, recorded for the access log and metrics.
#[derive(Clone)]
struct TenantId(String);

/// A request admitted by its tenant's quotas: the tenant and the slot it holds until the
/// response is done. The host's slot is taken once the body has arrived ([`capacity`]).
struct Admitted {
    tenant: Arc<Tenant>,
    _quota: Permit,
}

/// Authenticates a request: the tenant its bearer key belongs to, or 401.
pub(super) fn authenticate(app: &App, headers: &HeaderMap, ids: &RequestIds) -> Result<Arc<Tenant>, Response> {
    let unauthorized = |detail: &str| {
        app.host
            .telemetry()
            .metrics()
            .http_rejected
            .with_label_values(&["unauthorized", "anonymous"])
            .inc();
        let mut response = ids.problem(Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail));
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    };
    // Two keys are ambiguous: a proxy and the host could each believe a different one
    // (the fuzzer found that the first was used and the second ignored).
    let key = match credentials::bearer(headers) {
        Ok(key) => Some(key),
        Err(BearerError::Missing) => {
            return Err(unauthorized(
                "missing `Authorization: Bearer <key>` header; ask the operator for an API key",
            ));
        }
        Err(BearerError::Several) => {
            return Err(unauthorized(
                "more than one `Authorization` header; send exactly one `Authorization: Bearer <key>`",
            ));
        }
        Err(BearerError::NotBearer) => None,
    };
    match key.and_then(|key| app.tenants.authenticate(key)) {
        Some(tenant) => Ok(tenant),
        None => Err(unauthorized("the API key is not valid")),
    }
}

/// Authenticates and admits a request that will run guest code.
fn admit(app: &Arc<App>, headers: &HeaderMap, ids: &RequestIds) -> Result<Admitted, Response> {
    let tenant = authenticate(app, headers, ids)?;
    let quota = tenant.admit().map_err(|refusal| refused(app, &tenant, ids, refusal))?;
    Ok(Admitted { tenant, _quota: quota })
}

/// The 429 of a tenant over its quota, counted under its reason.
pub(super) fn refused(app: &App, tenant: &Tenant, ids: &RequestIds, refusal: Refusal) -> Response {
    let (kind, retry_after) = match refusal {
        Refusal::RateLimited { retry_after, .. } => ("rate_limited", retry_after),
        Refusal::UploadRateLimited { retry_after, .. } => ("upload_rate_limited", retry_after),
        Refusal::TooManyInFlight { .. } => ("concurrency_limited", Duration::from_secs(1)),
    };
    reject(app, kind, &tenant.id);
    let detail = format!("{refusal}; retry after the time in `Retry-After`, or ask for a higher quota");
    with_tenant(
        ids.problem(Problem::new(StatusCode::TOO_MANY_REQUESTS, kind, detail).retry_after(retry_after)),
        tenant,
    )
}

fn reject(app: &App, reason: &str, tenant: &str) {
    let metrics = app.host.telemetry().metrics();
    metrics
        .http_rejected
        .with_label_values(&[reason, &metrics.tenant_label(tenant)])
        .inc();
}

/// One of the host's `max_in_flight` slots, taken once a request's body has arrived, or 503.
pub(super) fn capacity(app: &Arc<App>, tenant: &Tenant, ids: &RequestIds) -> Result<OwnedSemaphorePermit, Response> {
    Arc::clone(&app.in_flight).try_acquire_owned().map_err(|_| {
        reject(app, "overloaded", &tenant.id);
        let detail = format!(
            "the host is serving its maximum of {} requests; retry shortly",
            app.max_in_flight
        );
        with_tenant(
            ids.problem(
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail).retry_after(Duration::from_secs(1)),
            ),
            tenant,
        )
    })
}

pub(super) fn with_tenant(mut response: Response, tenant: &Tenant) -> Response {
    response.extensions_mut().insert(TenantId(tenant.id.clone()));
    response
}

/// A request body held in memory, counted in the server's buffered bytes while it lives.
pub(super) struct Buffered {
    bytes: Vec<u8>,
    counter: Arc<AtomicUsize>,
}

impl Drop for Buffered {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes.len(), Ordering::AcqRel);
    }
}

/// The 413 of a body over its limit.
pub(super) fn too_large(what: &str, size: &str, limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("{what} is {size} bytes, over the limit of {limit}; send less or ask for a higher quota"),
    )
}

/// Refuses a body whose declared length is over `limit`, before any of it is read.
pub(super) fn check_declared_length(headers: &HeaderMap, limit: usize, what: &str) -> Result<(), Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(too_large(what, &length.to_string(), limit)),
        _ => Ok(()),
    }
}

/// The 408 of a body slower than `server.body_timeout_ms`.
pub(super) fn body_timeout(what: &str, timeout: Duration) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "{what} did not arrive within {} ms; send the body at once",
            timeout.as_millis()
        ),
    )
}

/// Reads the body, refusing it by its declared length before reading, by its actual length
/// while reading, and when it arrives slower than `server.body_timeout_ms` allows.
async fn read_body(app: &App, body: Body, headers: &HeaderMap, limit: usize, what: &str) -> Result<Buffered, Problem> {
    check_declared_length(headers, limit, what)?;
    let timeout = Duration::from_millis(app.config.body_timeout_ms);
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            app.buffered.fetch_add(bytes.len(), Ordering::AcqRel);
            Ok(Buffered {
                bytes: bytes.to_vec(),
                counter: Arc::clone(&app.buffered),
            })
        }
        Ok(Err(_)) => Err(too_large(what, "more than that", limit)),
        Err(_) => Err(body_timeout(what, timeout)),
    }
}

pub(super) fn not_found(what: &str, name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no {what} named `{}`; `GET /v1/{what}s` lists the ones this key may use",
            text::bounded(name, 64)
        ),
    )
}

async fn execute(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let admitted = match admit(&app, &headers, &ids) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let tenant = &admitted.tenant;
    let Some(plugin) = app.host.registry().resolve(Some(&tenant.access), &name) else {
        return with_tenant(ids.problem(not_found("primitive", &name)), tenant);
    };
    let input = match read_body(&app, body, &headers, tenant.max_request_bytes, "the input").await {
        Ok(input) => input,
        Err(problem) => return with_tenant(ids.problem(problem), tenant),
    };
    let _capacity = match capacity(&app, tenant, &ids) {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let outcome = app.host.call_plugin(&plugin, &input.bytes, ids.options(tenant)).await;
    let report = &outcome.report;
    let result = match outcome.output {
        Ok(output) => {
            let mut response = output_response(output);
            let h = response.headers_mut();
            h.insert("x-tta-fuel-consumed", HeaderValue::from(report.stats.fuel_consumed));
            h.insert(
                "server-timing",
                header_value(&format!(
                    "instantiate;dur={:.3}, total;dur={:.3}",
                    report.stats.instantiate.as_secs_f64() * 1e3,
                    report.stats.wall.as_secs_f64() * 1e3
                )),
            );
            Ok(response)
        }
        Err(error) => Err(Problem::from_call(&error)),
    };
    ids.ran(result, &report.ids, tenant)
}

async fn run_workflow(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let admitted = match admit(&app, &headers, &ids) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let tenant = &admitted.tenant;
    let loaded = app.workflows.load().get(&name).cloned();
    let Some(loaded) = loaded.filter(|_| tenant.access.may_run(&name)) else {
        return with_tenant(ids.problem(not_found("workflow", &name)), tenant);
    };
    let input = match read_body(&app, body, &headers, tenant.max_request_bytes, "the input").await {
        Ok(input) => input,
        Err(problem) => return with_tenant(ids.problem(problem), tenant),
    };
    let _capacity = match capacity(&app, tenant, &ids) {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let outcome = loaded.workflow.run(&input.bytes, ids.options(tenant)).await;
    let result = match outcome.output {
        Ok(output) if output.len() > tenant.max_response_bytes => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "payload_too_large",
            format!(
                "the workflow's output is {} bytes, over this tenant's limit of {}",
                output.len(),
                tenant.max_response_bytes
            ),
        )),
        Ok(output) => Ok(output_response(output)),
        Err(error) => Err(Problem::from_step(&error)),
    };
    ids.ran(result, &outcome.report.ids, tenant)
}

/// A guest's output: JSON when it parses as JSON, bytes otherwise.
fn output_response(output: Vec<u8>) -> Response {
    let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&output).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    ([(header::CONTENT_TYPE, content_type)], output).into_response()
}

pub(super) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub(super) fn plugin_json(plugin: &Plugin, owned: bool) -> serde_json::Value {
    json!({
        "name": plugin.metadata.name,
        "version": plugin.metadata.version,
        "description": plugin.metadata.description,
        "language": plugin.language,
        "size": plugin.size,
        "digest": plugin.digest,
        "owner": if owned { "tenant" } else { "shared" },
    })
}

async fn list_primitives(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let registry = app.host.registry();
    let list: Vec<serde_json::Value> = registry
        .visible(Some(&tenant.access))
        .iter()
        .map(|p| {
            let owned = registry
                .owned(&tenant.id, &p.metadata.name)
                .is_some_and(|own| Arc::ptr_eq(&own, p));
            plugin_json(p, owned)
        })
        .collect();
    let mut response = axum::Json(json!({ "primitives": list })).into_response();
    ids.stamp(&mut response);
    with_tenant(response, &tenant)
}

async fn list_workflows(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let list: Vec<serde_json::Value> = app
        .workflows
        .load()
        .iter()
        .filter(|(name, _)| tenant.access.may_run(name))
        .map(|(name, w)| json!({ "name": name, "description": w.workflow.description() }))
        .collect();
    let mut response = axum::Json(json!({ "workflows": list })).into_response();
    ids.stamp(&mut response);
    with_tenant(response, &tenant)
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.scrape.respond(app.host.telemetry().metrics(), &headers)
}

async fn not_found_route(headers: HeaderMap, method: Method, uri: axum::http::Uri) -> Response {
    let ids = RequestIds::from_headers(&headers);
    ids.problem(Problem::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route {} {}; the API is POST /v1/primitives/{{name}}/execute, POST /v1/workflows/{{name}}/run, GET /v1/primitives, GET /v1/workflows, PUT|DELETE /v1/primitives/{{name}}",
            text::bounded(method.as_str(), 16),
            text::bounded(uri.path(), 128)
        ),
    ))
}

/// Logs one line per request and records the HTTP metrics.
async fn access_log(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = Metrics::method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let path = text::for_log(request.uri().path()).into_owned();
    let metrics = app.host.telemetry().metrics();
    let active = metrics.http_active.with_label_values(&[] as &[&str]);
    active.inc();
    let response = next.run(request).await;
    active.dec();
    let elapsed = started.elapsed();
    let tenant = response
        .extensions()
        .get::<TenantId>()
        .map_or_else(|| "anonymous".to_owned(), |t| metrics.tenant_label(&t.0));
    let status = response.status().as_u16();
    metrics
        .http_requests
        .with_label_values(&[&route, method, &status.to_string(), &tenant])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[&route, method, &tenant])
        .observe(elapsed.as_secs_f64());
    if route != "/healthz" && route != "/readyz" && route != "/metrics" {
        let headers = response.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let trace = parse_traceparent(text("traceparent")).ok();
        tracing::info!(
            correlation_id = text("x-correlation-id"),
            trace_id = trace.map(|(t, _, _)| format!("{t:032x}")).unwrap_or_default(),
            span_id = trace.map(|(_, s, _)| format!("{s:016x}")).unwrap_or_default(),
            method,
            path = %path,
            route = %route,
            status,
            tenant = %tenant,
            duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "http_request"
        );
    }
    response
}
