//! MCP's Streamable HTTP transport at `/mcp`: each POST carries one message and gets its
//! answer, as JSON, or as a server-sent event stream when a workflow reports progress.
//!
//! In order, as `/v1` does: the key (401 before the body is read), one of the tenant's
//! slots (429; the message is read under it), the body bounded by the tenant's
//! `max_request_bytes` plus room for the envelope (413 before parsing), the message, then
//! for `tools/call` the tenant's rate (429) and a host slot (503). No session is kept, so
//! a GET (the server-to-client stream) and a DELETE (ending a session) are 405. A client
//! that goes away ends its call: the handler, or the event stream that owns the call's
//! task, is dropped with the connection.

use super::jsonrpc::{self, RpcError};
use super::{Answer, Caller, Transport};
use crate::App;
use crate::request::{RequestIds, authenticated, header_value, read_body, refusal_problem, with_tenant};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Room for the JSON-RPC envelope around a tool's arguments: a message may be this much
/// larger than the tenant's `max_request_bytes`.
const ENVELOPE_BYTES: usize = 64 << 10;
/// How often an event stream with nothing to say sends a comment, so proxies keep it open
/// and a client that left is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Progress notifications buffered for a slow reader before more are dropped.
const PROGRESS_BUFFER: usize = 64;

/// `POST /mcp`.
pub(crate) async fn post(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let tenant = match authenticated(&app, &headers) {
        Ok(tenant) => tenant,
        Err(problem) => {
            let problem = problem.with_ids(&ids.correlation_id, &format!("{:032x}", ids.trace_id));
            let mut response = reply(
                &ids,
                &jsonrpc::error(&Value::Null, &RpcError::refused(&problem)),
                problem.status,
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let refuse = |error: RpcError| {
        let mut response = reply(&ids, &jsonrpc::error(&Value::Null, &error), error.status);
        retry_after(&mut response, &error);
        with_tenant(response, &tenant)
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return refuse(RpcError::new(
            jsonrpc::INVALID_REQUEST,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the message with `Content-Type: application/json`",
        ));
    }
    // Every message is read under one of the tenant's slots, as a `/v1` body is, so a
    // tenant's slow or large messages are charged to its `max_concurrent`; a `tools/call`
    // keeps the slot for its run.
    let held = match tenant.hold() {
        Ok(held) => held,
        Err(refusal) => {
            let problem = refusal_problem(&app, &tenant, refusal)
                .with_ids(&ids.correlation_id, &format!("{:032x}", ids.trace_id));
            return refuse(RpcError::refused(&problem));
        }
    };
    let limit = tenant.max_request_bytes.saturating_add(ENVELOPE_BYTES);
    let message = match read_body(&app, body, &headers, limit, "the MCP message").await {
        Ok(body) => jsonrpc::parse(&body.bytes),
        Err(problem) => {
            let problem = problem.with_ids(&ids.correlation_id, &format!("{:032x}", ids.trace_id));
            return refuse(RpcError::refused(&problem));
        }
    };
    let message = match message {
        Ok(message) => message,
        Err(error) => return refuse(error),
    };
    let caller = Caller {
        tenant: Arc::clone(&tenant),
        ids: ids.clone(),
        transport: Transport::Http,
        held: std::cell::Cell::new(Some(held)),
    };
    let response = match super::handle(&app, &caller, message, Some(&headers), None) {
        Answer::Accepted => {
            let mut response = StatusCode::ACCEPTED.into_response();
            ids.stamp(&mut response);
            response
        }
        Answer::Reply(body, result) => {
            let status = result.as_ref().err().map_or(StatusCode::OK, |e| e.status);
            let mut response = reply(&ids, &body, status);
            if let Err(error) = &result {
                retry_after(&mut response, error);
            }
            response
        }
        Answer::Call(prepared) if prepared.streams() && accepts_events(&headers) => events(&ids, *prepared),
        Answer::Call(prepared) => {
            let ran = prepared.run(None).await;
            let mut response = reply(&ids, &ran.response, StatusCode::OK);
            if let Some(span) = ran.span {
                response
                    .headers_mut()
                    .insert("traceparent", header_value(&span.traceparent()));
            }
            response
        }
    };
    with_tenant(response, &tenant)
}

/// `GET` and `DELETE /mcp`: this server keeps no session and sends nothing outside a
/// request's own answer.
pub(crate) async fn no_session(headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    let error = RpcError::new(
        jsonrpc::INVALID_REQUEST,
        StatusCode::METHOD_NOT_ALLOWED,
        "this MCP server keeps no session and has no stream to open or end; POST each message to /mcp",
    );
    let mut response = reply(&ids, &jsonrpc::error(&Value::Null, &error), error.status);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

fn reply(ids: &RequestIds, body: &Value, status: StatusCode) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response();
    ids.stamp(&mut response);
    response
}

fn retry_after(response: &mut Response, error: &RpcError) {
    if let Some(after) = error.retry_after {
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
}

fn accepts_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().is_some_and(|m| m.trim() == "text/event-stream"))
}

/// Aborts the call's task when the stream that owns it is dropped (the client left).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer as a server-sent event stream: each progress notification, then the response.
fn events(ids: &RequestIds, prepared: super::Prepared) -> Response {
    let (tx, rx) = mpsc::channel::<Value>(PROGRESS_BUFFER);
    let task = tokio::spawn(prepared.run(Some(tx)));
    let guard = AbortOnDrop(task.abort_handle());
    let state = (Some(rx), Some(task), guard);
    let stream = futures_util::stream::unfold(state, |(mut rx, mut task, guard)| async move {
        if let Some(receiver) = rx.as_mut() {
            tokio::select! {
                message = receiver.recv() => {
                    if let Some(message) = message {
                        return Some((Ok::<_, std::io::Error>(event(&message)), (rx, task, guard)));
                    }
                }
                () = tokio::time::sleep(KEEPALIVE) => {
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), (rx, task, guard)));
                }
            }
        }
        // Every progress sender is gone: the call has ended, or is ending.
        let ran = task.take()?.await.ok()?;
        Some((Ok(event(&ran.response)), (None, None, guard)))
    });
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    ids.stamp(&mut response);
    response
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}
