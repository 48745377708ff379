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

use super::metrics::ServerMetrics;
use super::problem::Problem;
use super::request::{
    RequestIds, TenantId, admit, authenticate, capacity, header_value, not_found, primitive_json, read_body,
    with_tenant,
};
use super::{App, mcp, recordings, traces, ui, uploads};
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tta_core::text;
use tta_core::trace_context::parse_traceparent;

/// The API's routes.
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/v1/primitives", get(list_primitives))
        .route("/v1/primitives/{name}", put(uploads::upload).delete(uploads::remove))
        .route("/v1/primitives/{name}/execute", post(execute))
        .route("/v1/workflows", get(list_workflows))
        .route("/v1/workflows/{name}/run", post(run_workflow))
        .route("/v1/traces", get(traces::list))
        .route("/v1/traces/{id}", get(traces::one))
        .route("/v1/stats", get(traces::stats))
        .route("/v1/recordings", get(recordings::list))
        .route("/v1/recordings/{trace_id}", get(recordings::get))
        .route("/ui", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/style.css", get(ui::style))
        .route("/ui/favicon.svg", get(ui::icon))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if app.config.metrics {
        router = router.route("/metrics", get(metrics));
    }
    if app.config.mcp.enabled {
        router = router.route(
            "/mcp",
            post(mcp::http::post)
                .get(mcp::http::no_session)
                .delete(mcp::http::no_session),
        );
    }
    router
        .fallback(not_found_route)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), access_log))
        .with_state(app)
}

async fn execute(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let admitted = match admit(&app, &headers, &ids).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let tenant = &admitted.tenant;
    let Some(primitive) = app.host.registry().resolve(Some(&tenant.access), &name) else {
        return with_tenant(ids.problem(not_found("primitive", &name)), tenant);
    };
    let input = match read_body(&app, body, &headers, tenant.max_request_bytes, "the input").await {
        Ok(input) => input,
        Err(problem) => return with_tenant(ids.problem(problem), tenant),
    };
    if tenant.validate_input
        && let Err(mismatch) = primitive.check_input(&input.bytes)
    {
        return with_tenant(ids.problem(Problem::input_mismatch(mismatch, &name)), tenant);
    }
    let _capacity = match capacity(&app, tenant, &ids) {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let taken = app.recordings.session();
    let mut options = ids.options(tenant);
    options.recording = taken.as_ref().map(|t| Arc::clone(&t.session));
    let outcome = app.host.call_primitive(&primitive, &input.bytes, options).await;
    let report = &outcome.report;
    if let Some(taken) = &taken {
        let failed = outcome.output.is_err();
        app.recordings
            .keep(&tenant.id, taken, report.ids.trace_id, failed, None);
    }
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
        Err(error) => Err(Problem::from_call(&error).waiting(report.retry_after())),
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
    let admitted = match admit(&app, &headers, &ids).await {
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
    if tenant.validate_input
        && let Err(mismatch) = loaded.workflow.check_input(&input.bytes)
    {
        return with_tenant(ids.problem(Problem::input_mismatch(mismatch, &name)), tenant);
    }
    let _capacity = match capacity(&app, tenant, &ids) {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let taken = app.recordings.session();
    let mut options = ids.options(tenant);
    options.recording = taken.as_ref().map(|t| Arc::clone(&t.session));
    let outcome = loaded.workflow.run(&input.bytes, options).await;
    if let Some(taken) = &taken {
        let record = loaded.record(&input.bytes, &outcome.output, &tenant.config());
        let failed = outcome.output.is_err();
        app.recordings
            .keep(&tenant.id, taken, outcome.report.ids.trace_id, failed, Some(record));
    }
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
            primitive_json(p, owned)
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
        .map(|(name, w)| {
            let schema = w
                .workflow
                .input_schema()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            json!({ "name": name, "description": w.workflow.description(), "input_schema": schema })
        })
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
            "no route {} {}; the API is POST /v1/primitives/{{name}}/execute, POST /v1/workflows/{{name}}/run, GET /v1/primitives, GET /v1/workflows, PUT|DELETE /v1/primitives/{{name}}, GET /v1/traces, GET /v1/stats, GET /ui, POST /mcp",
            text::bounded(method.as_str(), 16),
            text::bounded(uri.path(), 128)
        ),
    ))
}

/// Logs one line per request and records the HTTP metrics.
async fn access_log(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = ServerMetrics::method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let path = text::for_log(request.uri().path()).into_owned();
    let metrics = &app.metrics;
    let active = metrics.http_active.with_label_values(&[] as &[&str]);
    active.inc();
    let response = next.run(request).await;
    active.dec();
    let elapsed = started.elapsed();
    let tenant = response.extensions().get::<TenantId>().map_or_else(
        || "anonymous".to_owned(),
        |t| app.host.telemetry().metrics().tenant_label(&t.0),
    );
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
            trace_id = trace.map(|p| format!("{:032x}", p.trace_id)).unwrap_or_default(),
            span_id = trace.map(|p| format!("{:016x}", p.span_id)).unwrap_or_default(),
            method,
            path = %path,
            route = %route,
            status,
            tenant = %tenant,
            duration_ms = tta_telemetry::logs::millis(elapsed),
            "http_request"
        );
    }
    response
}
