//! A stand-in for an OpenAI-compatible provider (`POST /v1/chat/completions`), so the
//! tests and the demo make real HTTP(S) calls with real answers and no network: it
//! counts tokens, streams server-sent events when asked, checks the bearer key, and plays
//! the failures real providers have when the model's name asks for one:
//!
//! | model | answer |
//! |---|---|
//! | any other name | a completion echoing the last user message, with `usage` |
//! | `fail-401` (or a wrong key) | 401 `invalid_api_key` |
//! | `fail-429` | 429 with `Retry-After: 1` |
//! | `flaky-429-<n>-…` | 429 with `Retry-After: 1` for the first `n` requests naming it, then a completion |
//! | `fail-500` | 500 |
//! | `flaky-500-<n>-…` | 500 for the first `n` requests naming it, then a completion |
//! | `stall` | the head never comes |
//! | `malformed` | a 200 whose JSON (or event) is cut short |
//!
//! It is a test tool: it trusts its input and holds every request it saw in memory.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the stand-in saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// The request's `model`.
    pub model: String,
    /// Whether it asked for a stream.
    pub stream: bool,
    /// The `traceparent` header, if any.
    pub traceparent: Option<String>,
}

/// A running stand-in; it stops when dropped.
pub struct Standin {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    api_key: Option<String>,
    seen: Mutex<Vec<Seen>>,
    calls_by_model: Mutex<HashMap<String, u32>>,
}

impl Standin {
    /// Starts one on `127.0.0.1` at a free port; over TLS with `tls`; requiring
    /// `Authorization: Bearer <api_key>` when `api_key` is given.
    pub async fn start(tls: Option<tokio_rustls::TlsAcceptor>, api_key: Option<String>) -> std::io::Result<Standin> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?, tls, api_key).await
    }

    /// As [`Standin::start`], at `addr`.
    pub async fn start_on(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        api_key: Option<String>,
    ) -> std::io::Result<Standin> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            api_key,
            seen: Mutex::new(Vec::new()),
            calls_by_model: Mutex::new(HashMap::new()),
        });
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, state) = (tls.clone(), Arc::clone(&serving));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| answer(Arc::clone(&state), request));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = http
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Ok(Standin { addr, state, task })
    }

    /// Every request it has received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: u16, body: Value) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn provider_error(status: u16, message: &str, kind: &str, code: &str) -> hyper::Response<Body> {
    full(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// Roughly four characters a token, as for English text, at least one.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

async fn answer(
    state: Arc<State>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (authorization, traceparent) = (header("authorization"), header("traceparent"));
    if request.uri().path() != "/v1/chat/completions" || request.method() != hyper::Method::POST {
        return Ok(provider_error(
            404,
            "Unknown request URL",
            "invalid_request_error",
            "unknown_url",
        ));
    }
    let Ok(body) = request.into_body().collect().await else {
        return Ok(provider_error(
            400,
            "the body could not be read",
            "invalid_request_error",
            "bad_body",
        ));
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return Ok(provider_error(
            400,
            "the body is not JSON",
            "invalid_request_error",
            "bad_json",
        ));
    };
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let usage_in_stream = body["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    state.seen.lock().unwrap_or_else(PoisonError::into_inner).push(Seen {
        authorization: authorization.clone(),
        model: model.clone(),
        stream,
        traceparent,
    });
    let calls = {
        let mut counts = state.calls_by_model.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(model.clone()).or_default();
        *count += 1;
        *count
    };
    let wrong_key = state
        .api_key
        .as_ref()
        .is_some_and(|key| authorization.as_deref() != Some(format!("Bearer {key}").as_str()));
    if wrong_key || model == "fail-401" {
        return Ok(provider_error(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ));
    }
    let flaky = |prefix: &str| {
        model
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| calls <= n)
    };
    if model == "fail-429" || flaky("flaky-429-") {
        let mut response = provider_error(
            429,
            "Rate limit reached for requests per min. Please try again in 1s.",
            "requests",
            "rate_limit_exceeded",
        );
        response
            .headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
        return Ok(response);
    }
    if model == "fail-500" || flaky("flaky-500-") {
        return Ok(provider_error(
            500,
            "The server had an error while processing your request.",
            "server_error",
            "internal_error",
        ));
    }
    if model == "stall" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let question = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let reply = format!(
        "You asked: \"{}\". A stand-in provider answers every question the same way.",
        question.chars().take(80).collect::<String>()
    );
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| 4 + tokens(m["content"].as_str().unwrap_or_default()))
        .sum();
    let completion_tokens = tokens(&reply);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-standin-{calls}");
    if !stream {
        if model == "malformed" {
            let mut response = full(200, json!({}));
            *response.body_mut() =
                Full::new(Bytes::from_static(b"{\"id\": \"chatcmpl-1\", \"choices\": [{\"mess")).boxed();
            return Ok(response);
        }
        return Ok(full(
            200,
            json!({
                "id": id,
                "object": "chat.completion",
                "created": 1_764_000_000,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }],
                "usage": usage,
            }),
        ));
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": 1_764_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None).to_string()];
    for word in reply.split_inclusive(' ') {
        events.push(chunk(json!({"content": word}), None).to_string());
    }
    events.push(chunk(json!({}), Some("stop")).to_string());
    if usage_in_stream {
        events.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": 1_764_000_000, "model": model, "choices": [], "usage": usage})
                .to_string(),
        );
    }
    if model == "malformed" {
        events.insert(2, "{\"choices\": [{\"delta\": ".to_owned());
    }
    events.push("[DONE]".to_owned());
    let frames = futures_util::stream::iter(events).then(|event| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {event}\n\n"))))
    });
    let mut response = hyper::Response::new(http_body_util::BodyExt::boxed(StreamBody::new(frames)));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}
