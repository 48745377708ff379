//! What every request of the API goes through before its own work: its ids, its tenant
//! (authenticated by key, admitted by its quotas), the host's capacity, and a bounded body;
//! shared by the call and workflow routes (`api`) and the upload routes (`uploads`).
#![allow(
    clippy::result_large_err,
    reason = "the errors are the HTTP responses themselves, built once per refused request"
)]

use super::problem::Problem;
use super::{App, admission};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tta_core::credentials::{self, BearerError};
use tta_core::text;
use tta_core::trace_context::{self, SpanIds, parse_traceparent};
use tta_runtime::host::CallOptions;
use tta_runtime::primitive::Primitive;
use tta_runtime::tenant::{Permit, Refusal, Tenant};

/// The ids of one request: its correlation id and the trace it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    pub(crate) correlation_id: String,
    pub(crate) traceparent: Option<String>,
    pub(crate) tracestate: Option<String>,
    /// The caller's trace id, or a new one when it sent none (for problems before any call).
    pub(crate) trace_id: u128,
}

impl RequestIds {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let correlation_id = text("x-correlation-id")
            .filter(|id| valid_correlation_id(id))
            .unwrap_or_else(trace_context::new_correlation_id);
        let traceparent = text("traceparent");
        let trace_id = traceparent
            .as_deref()
            .and_then(|t| parse_traceparent(t).ok())
            .map_or_else(trace_context::new_trace_id, |p| p.trace_id);
        RequestIds {
            correlation_id,
            traceparent,
            // W3C: a `tracestate` past 512 characters may be discarded; a longer one would
            // ride on every span of the call.
            tracestate: text("tracestate").filter(|t| t.len() <= MAX_TRACESTATE),
            trace_id,
        }
    }

    pub(crate) fn problem(&self, problem: Problem) -> Response {
        let mut response = problem
            .with_ids(&self.correlation_id, &format!("{:032x}", self.trace_id))
            .into_response();
        self.stamp(&mut response);
        response
    }

    /// The answer to a request that ran guest code: its output, or its problem with the ids
    /// of the run; either way the run's `traceparent` and the correlation id.
    pub(crate) fn ran(&self, result: Result<Response, Problem>, span: &SpanIds, tenant: &Tenant) -> Response {
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

    pub(crate) fn stamp(&self, response: &mut Response) {
        if let Ok(value) = HeaderValue::from_str(&self.correlation_id) {
            response.headers_mut().insert("x-correlation-id", value);
        }
    }

    pub(crate) fn options(&self, tenant: &Tenant) -> CallOptions {
        CallOptions {
            correlation_id: Some(self.correlation_id.clone()),
            tenant: Some(tenant.id.clone()),
            traceparent: self.traceparent.clone(),
            tracestate: self.tracestate.clone(),
            data: Vec::new(),
            limits: Some(tenant.limits),
            access: Some(Arc::clone(&tenant.access)),
            config: Some(tenant.config()),
            attributes: Vec::new(),
            recording: None,
        }
    }
}

/// The longest `tracestate` kept (W3C Trace Context's 512 characters).
const MAX_TRACESTATE: usize = 512;

/// A caller's correlation id is kept if it is short printable ASCII; otherwise a new one is made.
pub(crate) fn valid_correlation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The tenant of a request, recorded for the access log and metrics.
#[derive(Clone)]
pub(crate) struct TenantId(pub(crate) String);

/// A request admitted by its tenant's quotas: the tenant and the slot it holds until the
/// response is done. The host's slot is taken once the body has arrived ([`capacity`]).
pub(crate) struct Admitted {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) _quota: Permit,
    /// Its lease in the cluster's shared concurrency quota, with a cluster.
    pub(crate) _lease: Option<tta_cluster::Lease>,
}

/// Authenticates a request: the tenant its bearer key belongs to, or 401.
pub(crate) fn authenticate(app: &App, headers: &HeaderMap, ids: &RequestIds) -> Result<Arc<Tenant>, Response> {
    authenticated(app, headers).map_err(|problem| {
        let mut response = ids.problem(problem);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    })
}

/// The tenant a request's bearer key belongs to, or the 401 problem (counted as refused);
/// the answer's shape is the caller's (a problem document, a JSON-RPC error).
pub(crate) fn authenticated(app: &App, headers: &HeaderMap) -> Result<Arc<Tenant>, Problem> {
    let unauthorized = |detail: &str| {
        app.metrics
            .http_rejected
            .with_label_values(&["unauthorized", "anonymous"])
            .inc();
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
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

/// Authenticates and admits a request that will run guest code: the tenant's local slot,
/// then its rate token and, with a cluster, its lease across the replicas.
pub(crate) async fn admit(app: &Arc<App>, headers: &HeaderMap, ids: &RequestIds) -> Result<Admitted, Response> {
    let tenant = authenticate(app, headers, ids)?;
    let refused = |refusal| refused(app, &tenant, ids, refusal);
    let quota = if admission::shared(app) {
        tenant.hold().map_err(refused)?
    } else {
        tenant.admit().map_err(refused)?
    };
    let lease = admission::admit(app, &tenant)
        .await
        .map_err(|problem| with_tenant(ids.problem(problem), &tenant))?;
    Ok(Admitted {
        tenant,
        _quota: quota,
        _lease: lease,
    })
}

/// The 429 of a tenant over its quota, counted under its reason.
pub(crate) fn refused(app: &App, tenant: &Tenant, ids: &RequestIds, refusal: Refusal) -> Response {
    with_tenant(ids.problem(refusal_problem(app, tenant, refusal)), tenant)
}

/// The 429 problem of a tenant over its quota, counted under its reason.
pub(crate) fn refusal_problem(app: &App, tenant: &Tenant, refusal: Refusal) -> Problem {
    let (kind, retry_after) = match refusal {
        Refusal::RateLimited { retry_after, .. } => ("rate_limited", retry_after),
        Refusal::UploadRateLimited { retry_after, .. } => ("upload_rate_limited", retry_after),
        Refusal::TooManyInFlight { .. } => ("concurrency_limited", Duration::from_secs(1)),
    };
    reject(app, kind, &tenant.id);
    let detail = format!("{refusal}; retry after the time in `Retry-After`, or ask for a higher quota");
    Problem::new(StatusCode::TOO_MANY_REQUESTS, kind, detail).retry_after(retry_after)
}

pub(crate) fn reject(app: &App, reason: &str, tenant: &str) {
    app.metrics
        .http_rejected
        .with_label_values(&[reason, &app.host.telemetry().metrics().tenant_label(tenant)])
        .inc();
}

/// One of the host's `max_in_flight` slots, taken once a request's body has arrived, or 503.
pub(crate) fn capacity(app: &Arc<App>, tenant: &Tenant, ids: &RequestIds) -> Result<OwnedSemaphorePermit, Response> {
    slot(app, tenant).map_err(|problem| with_tenant(ids.problem(problem), tenant))
}

/// One of the host's `max_in_flight` slots, or the 503 problem (counted as refused).
pub(crate) fn slot(app: &Arc<App>, tenant: &Tenant) -> Result<OwnedSemaphorePermit, Problem> {
    Arc::clone(&app.in_flight).try_acquire_owned().map_err(|_| {
        reject(app, "overloaded", &tenant.id);
        let detail = format!(
            "the host is serving its maximum of {} requests; retry shortly",
            app.max_in_flight
        );
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail).retry_after(Duration::from_secs(1))
    })
}

pub(crate) fn with_tenant(mut response: Response, tenant: &Tenant) -> Response {
    response.extensions_mut().insert(TenantId(tenant.id.clone()));
    response
}

/// A request body held in memory, counted in the server's buffered bytes while it lives.
pub(crate) struct Buffered {
    pub(crate) bytes: Vec<u8>,
    pub(crate) counter: Arc<AtomicUsize>,
}

impl Drop for Buffered {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes.len(), Ordering::AcqRel);
    }
}

/// The 413 of a body over its limit.
pub(crate) fn too_large(what: &str, size: &str, limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("{what} is {size} bytes, over the limit of {limit}; send less or ask for a higher quota"),
    )
}

/// Refuses a body whose declared length is over `limit`, before any of it is read.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: usize, what: &str) -> Result<(), Problem> {
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
pub(crate) fn body_timeout(what: &str, timeout: Duration) -> Problem {
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
pub(crate) async fn read_body(
    app: &App,
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    what: &str,
) -> Result<Buffered, Problem> {
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

/// The 404 of a primitive or workflow the key may not use, or that does not exist.
pub(crate) fn not_found(what: &str, name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no {what} named `{}`; `GET /v1/{what}s` lists the ones this key may use",
            text::bounded(name, 64)
        ),
    )
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub(crate) fn primitive_json(primitive: &Primitive, owned: bool) -> serde_json::Value {
    let m = &primitive.metadata;
    let schema = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
    };
    json!({
        "name": m.name,
        "version": m.version,
        "contract": m.contract.as_str(),
        "title": m.title,
        "description": m.description,
        "input_schema": schema(&m.input_schema),
        "output_schema": schema(&m.output_schema),
        "language": primitive.language,
        "size": primitive.size,
        "digest": primitive.digest,
        "owner": if owned { "tenant" } else { "shared" },
    })
}
