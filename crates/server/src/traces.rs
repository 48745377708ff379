//! `GET /v1/traces`, `GET /v1/traces/{id}` and `GET /v1/stats`: a tenant's own recent
//! traces and call totals, from the host's memory, for `/ui` and for scripts.
//!
//! A key sees only its tenant's traces: another tenant's trace id answers 404 exactly like
//! one that was never kept. Filters are parsed strictly, so a typo is a 400 naming it.
#![allow(
    clippy::result_large_err,
    reason = "the errors are the HTTP responses themselves, built once per refused request"
)]

use super::App;
use super::problem::Problem;
use super::request::{RequestIds, authenticate, with_tenant};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tta_core::text;
use tta_telemetry::recent::Filter;

/// The most traces one listing returns.
const MAX_LIMIT: usize = 1_000;

/// `%XX` and `+` decoded; `None` when an escape is not two hex digits or not UTF-8.
fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn bad(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail)
}

/// A trace id: 32 hex digits.
fn trace_id(text: &str) -> Option<u128> {
    (text.len() == 32)
        .then(|| u128::from_str_radix(text, 16).ok())
        .flatten()
}

/// The filter of `GET /v1/traces?primitive=&workflow=&status=&min_duration_ms=&trace_id=&limit=`.
fn filter(uri: &Uri) -> Result<Filter, Problem> {
    let mut filter = Filter {
        limit: 100,
        ..Filter::default()
    };
    for pair in uri.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value =
            decode(value).ok_or_else(|| bad(format!("`{}` is not percent-encoded text", text::bounded(key, 32))))?;
        match key {
            "primitive" | "workflow" | "name" => filter.name = Some(text::bounded(&value, 128).into_owned()),
            "status" => {
                filter.ok = match value.as_str() {
                    "ok" => Some(true),
                    "error" => Some(false),
                    other => {
                        return Err(bad(format!(
                            "status `{}` is neither `ok` nor `error`",
                            text::bounded(other, 32)
                        )));
                    }
                }
            }
            "min_duration_ms" => {
                let ms: f64 = value
                    .parse()
                    .ok()
                    .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0)
                    .ok_or_else(|| {
                        bad(format!(
                            "min_duration_ms `{}` is not a number of milliseconds",
                            text::bounded(&value, 32)
                        ))
                    })?;
                filter.min_duration = Some(Duration::from_secs_f64(ms.min(1e9) / 1e3));
            }
            "trace_id" => {
                filter.trace_id = Some(
                    trace_id(&value)
                        .ok_or_else(|| bad(format!("trace_id `{}` is not 32 hex digits", text::bounded(&value, 40))))?,
                )
            }
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit `{}` is not a count from 1 to {MAX_LIMIT}",
                            text::bounded(&value, 32)
                        ))
                    })?
            }
            other => {
                return Err(bad(format!(
                    "unknown filter `{}`; use primitive, workflow, status, min_duration_ms, trace_id, limit",
                    text::bounded(other, 32)
                )));
            }
        }
    }
    Ok(filter)
}

fn off() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "traces_off",
        "this server keeps no traces (`telemetry.traces.keep = 0`); use the exporters' backend",
    )
}

/// `GET /v1/traces`: the tenant's kept traces, newest first.
pub(crate) async fn list(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let Some(store) = app.host.telemetry().traces() else {
        return with_tenant(ids.problem(off()), &tenant);
    };
    let filter = match filter(&uri) {
        Ok(filter) => filter,
        Err(problem) => return with_tenant(ids.problem(problem), &tenant),
    };
    let traces: Vec<serde_json::Value> = store
        .list(&tenant.id, &filter)
        .iter()
        .map(|t| {
            let mut summary = t.summary();
            let recorded = summary["trace_id"]
                .as_str()
                .is_some_and(|id| app.recordings.has(&tenant.id, id));
            summary["recorded"] = json!(recorded);
            summary
        })
        .collect();
    let mut response = axum::Json(json!({ "traces": traces })).into_response();
    ids.stamp(&mut response);
    with_tenant(response, &tenant)
}

/// `GET /v1/traces/{id}`: one of the tenant's traces, every span with its fuel.
pub(crate) async fn one(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let Some(store) = app.host.telemetry().traces() else {
        return with_tenant(ids.problem(off()), &tenant);
    };
    let Some(trace) = trace_id(&id) else {
        let problem = bad(format!("trace id `{}` is not 32 hex digits", text::bounded(&id, 40)));
        return with_tenant(ids.problem(problem), &tenant);
    };
    let Some(kept) = store.get(&tenant.id, trace) else {
        let problem = Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no kept trace {trace:032x}; `GET /v1/traces` lists this key's recent ones"),
        );
        return with_tenant(ids.problem(problem), &tenant);
    };
    let mut body = kept.json();
    let id = format!("{trace:032x}");
    if app.recordings.has(&tenant.id, &id) {
        body["recording"] = json!(format!("/v1/recordings/{id}"));
    }
    let mut response = axum::Json(body).into_response();
    ids.stamp(&mut response);
    with_tenant(response, &tenant)
}

/// `GET /v1/stats`: each primitive the tenant called, with its totals since the host
/// started (a client takes rates from two readings).
pub(crate) async fn stats(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticate(&app, &headers, &ids) {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let primitives: Vec<serde_json::Value> = app
        .host
        .telemetry()
        .metrics()
        .totals(&tenant.id)
        .into_iter()
        .map(|t| {
            json!({
                "name": t.primitive,
                "success": t.success,
                "error": t.error,
                "p50_ms": t.p50.map(|s| s * 1e3),
                "p99_ms": t.p99.map(|s| s * 1e3),
                "fuel": t.fuel,
            })
        })
        .collect();
    let mut response = axum::Json(json!({ "tenant": tenant.id, "primitives": primitives })).into_response();
    ids.stamp(&mut response);
    with_tenant(response, &tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parsed_strictly() {
        let parse = |q: &str| filter(&format!("/v1/traces?{q}").parse::<Uri>().expect("a uri"));
        let f = parse("primitive=echo&status=error&min_duration_ms=1.5&limit=5").unwrap_or_else(|_| panic!("valid"));
        assert_eq!(f.name.as_deref(), Some("echo"));
        assert_eq!(f.ok, Some(false));
        assert_eq!(f.min_duration, Some(Duration::from_micros(1_500)));
        assert_eq!(f.limit, 5);
        assert!(parse("status=maybe").is_err());
        assert!(parse("limit=0").is_err());
        assert!(parse("trace_id=xyz").is_err());
        assert!(parse("colour=blue").is_err());
        assert!(parse("primitive=%zz").is_err());
        assert_eq!(decode("a%20b+c").as_deref(), Some("a b c"));
    }
}
