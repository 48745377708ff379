//! `url = "http://host:port/v1/primitives/<name>/execute"`: a leaf on another tta-host. The
//! step's span is the client span and its id goes out in `traceparent`, so the remote call
//! span is its child in the same trace.

use crate::check::{Checker, Problem};
use crate::step::{Combinator, Compiler, Definition, Driver, Kind, Scope, StepCall, StepResult, StepSpan, text};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value as Json;
use std::ops::Range;
use std::time::{Duration, Instant};
use toml::Spanned;
use tta_core::bindings::Value;
use tta_core::config::http::Roots;
use tta_core::error::{ErrorClass, StepError, StepErrorKind};

/// The `execute` URL of a primitive on another tta-host.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Remote(pub Spanned<String>);

impl Definition for Remote {
    fn key(&self) -> &'static str {
        "url"
    }

    fn span_kind(&self) -> &'static str {
        "remote"
    }

    fn check(&self, c: &mut Checker<'_>, at: &str, _span: Range<usize>) {
        if !self.0.get_ref().starts_with("http://") {
            c.report(
                self.0.span(),
                format!("{at}.url"),
                "a remote primitive's url starts with `http://` (e.g. `http://other-host:8080/v1/primitives/echo/execute`); \
                 for TLS put a sidecar or the load balancer in front",
            );
        }
    }

    fn compile(&self, cx: &Compiler<'_>) -> Result<Kind, Problem> {
        let api_key = match cx.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) => Some(key),
                Err(_) => {
                    return Err(Problem {
                        line: 1,
                        column: 1,
                        path: format!("steps.{}.api_key_env", cx.name),
                        message: format!(
                            "environment variable `{var}` is not set; set it to the remote host's API key"
                        ),
                    });
                }
            },
        };
        cx.combinator(RemoteCall {
            url: self.0.get_ref().clone(),
            api_key,
        })
    }
}

struct RemoteCall {
    url: String,
    api_key: Option<String>,
}

impl Combinator for RemoteCall {
    fn run<'a>(&'a self, step: StepCall<'a>) -> BoxFuture<'a, StepResult> {
        let StepCall {
            run,
            name,
            input,
            scope,
            span,
        } = step;
        Box::pin(async move {
            span.record.client = true;
            self.call(run, name, input, &scope, span)
                .await
                .map(|output| (output, scope.data.clone()))
        })
    }
}

impl RemoteCall {
    async fn call(
        &self,
        run: &dyn Driver,
        step: &str,
        input: Vec<u8>,
        scope: &Scope,
        span: &mut StepSpan,
    ) -> Result<Vec<u8>, StepError> {
        let url = self.url.as_str();
        let invocation = run.invocation();
        let now = Instant::now();
        let own = now + invocation.limits.timeout();
        let deadline = scope.deadline.map_or(own, |d| d.min(own));
        span.attr("http.request.method", text("POST"));
        span.attr("url.full", text(url));
        let traceparent =
            tta_core::trace_context::traceparent(invocation.ids.trace_id, span.id(), invocation.ids.sampled);
        let mut request = remote_client()
            .post(url)
            .timeout(deadline.saturating_duration_since(now))
            .header("traceparent", traceparent)
            .header("x-correlation-id", &invocation.correlation_id)
            .header("content-type", "application/json")
            .body(input);
        if !invocation.tracestate.is_empty() {
            request = request.header("tracestate", &invocation.tracestate);
        }
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let unreachable = |e: reqwest::Error| {
            let kind = StepErrorKind::Call(if e.is_timeout() {
                ErrorClass::DeadlineExceeded
            } else {
                ErrorClass::Unavailable
            });
            let mut error = StepError::new(step, kind, format!("remote primitive {url}: {e}"));
            error.retryable = true;
            error
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        span.attr("http.response.status_code", Value::Int(i64::from(status.as_u16())));
        let limit = invocation.limits.max_output_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > limit {
                return Err(StepError::new(
                    step,
                    StepErrorKind::Call(ErrorClass::PayloadTooLarge),
                    format!("remote primitive {url} answered more than {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        // A tta-host answers a problem document; anything else is reported by status.
        let problem: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        let field = |key: &str| problem.get(key).and_then(Json::as_str).map(str::to_owned);
        let mut error = StepError::new(
            step,
            field("type").map_or(StepErrorKind::RemoteError, |t| StepErrorKind::from_name(&t)),
            format!(
                "remote primitive {url} answered {status}: {}",
                field("detail").unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect())
            ),
        );
        error.retryable = problem
            .get("retryable")
            .and_then(Json::as_bool)
            .unwrap_or(status.is_server_error() || status.as_u16() == 429);
        Err(error)
    }
}

/// One HTTP client for every remote step (TLS with the Mozilla roots for `https` hosts):
/// connections are pooled across runs.
fn remote_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        let builder = match tta_core::tls::client_config(Roots::Mozilla, &[], None) {
            Ok(tls) => builder.tls_backend_preconfigured(std::sync::Arc::unwrap_or_clone(tls)),
            Err(_) => builder,
        };
        builder.build().unwrap_or_else(|_| reqwest::Client::new())
    })
}
