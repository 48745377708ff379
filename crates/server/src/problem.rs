//! Errors as clients see them: RFC 9457 problem documents with a stable `type`, a human
//! `detail`, and the ids that find the request in logs and traces.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;
use tta_core::error::CallError;
use tta_core::error::StepError;
use tta_core::schema::Mismatch;

/// One error response.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable type, e.g. `fuel_exhausted`.
    pub kind: String,
    /// What happened and what to do, for people.
    pub detail: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// For 429 and 503: when to try again.
    pub retry_after: Option<Duration>,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The request's trace id, hex.
    pub trace_id: String,
    /// For a failed workflow: the step that failed.
    pub step: Option<String>,
    /// For an input its schema refused: where, in the input and in the schema.
    pub mismatch: Option<Mismatch>,
}

impl Problem {
    /// A problem of `kind` with `status`; ids are filled in by the handler.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            kind: kind.to_owned(),
            detail: detail.into(),
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
            correlation_id: String::new(),
            trace_id: String::new(),
            step: None,
            mismatch: None,
        }
    }

    /// The problem for an input that does not match the input schema (`validate_input`):
    /// `invalid_input`, with the first error's `instance_path` and `schema_path`.
    pub fn input_mismatch(mismatch: Mismatch, tool: &str) -> Self {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!(
                "{mismatch}; send input that `{tool}`'s input_schema accepts (GET /v1/primitives or /v1/workflows, or MCP tools/list, shows it)"
            ),
        );
        problem.mismatch = Some(mismatch);
        problem
    }

    /// The problem for a failed primitive call.
    pub fn from_call(error: &CallError) -> Self {
        let kind = error.error_type();
        let mut problem = Problem::new(status_for(kind, error), kind, error.to_string());
        problem.retryable = match error {
            CallError::Guest(e) => e.retryable,
            CallError::DeadlineExceeded { .. } | CallError::Instantiate(_) => true,
            _ => false,
        };
        problem
    }

    /// The problem for a failed workflow run.
    pub fn from_step(error: &StepError) -> Self {
        let mut problem = Problem::new(
            status_for_type(error.error_type()),
            error.error_type(),
            error.to_string(),
        );
        problem.retryable = error.retryable;
        problem.step = Some(error.step.clone());
        problem.waiting(error.retry_after)
    }

    /// Passes on the wait a failed dependency asked for (a guest-reported `Retry-After`)
    /// as this answer's `Retry-After`, when the answer is a retryable 503.
    pub fn waiting(mut self, after: Option<Duration>) -> Self {
        if self.retryable && self.status == StatusCode::SERVICE_UNAVAILABLE && after.is_some() {
            self.retry_after = after;
        }
        self
    }

    /// Sets the request's ids.
    pub fn with_ids(mut self, correlation_id: &str, trace_id: &str) -> Self {
        correlation_id.clone_into(&mut self.correlation_id);
        trace_id.clone_into(&mut self.trace_id);
        self
    }

    /// Sets when to try again.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "type": self.kind,
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "retryable": self.retryable,
            "correlation_id": self.correlation_id,
            "trace_id": self.trace_id,
        });
        if let Some(step) = &self.step {
            body["step"] = json!(step);
        }
        if let Some(mismatch) = &self.mismatch {
            body["instance_path"] = json!(mismatch.instance_path);
            body["schema_path"] = json!(mismatch.schema_path);
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

fn status_for(kind: &str, error: &CallError) -> StatusCode {
    match error {
        CallError::UnknownPrimitive { .. } => StatusCode::NOT_FOUND,
        CallError::InputTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CallError::OutputTooLarge { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => status_for_type(kind),
    }
}

/// The status of an error type; the same table for primitives and workflows.
pub fn status_for_type(kind: &str) -> StatusCode {
    match kind {
        "invalid_input" | "not_json" | "no_route" => StatusCode::UNPROCESSABLE_ENTITY,
        "fuel_exhausted" | "memory_limit" | "stack_exhausted" | "invoke_depth" => StatusCode::UNPROCESSABLE_ENTITY,
        "not_found" => StatusCode::NOT_FOUND,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "deadline_exceeded" | "timeout" => StatusCode::GATEWAY_TIMEOUT,
        "unavailable" | "instantiate" | "circuit_open" => StatusCode::SERVICE_UNAVAILABLE,
        "rate_limited" | "concurrency_limited" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
