//! `llm-chat`: a real LLM call from a sandbox. It sends `POST {base_url}/chat/completions`
//! to any OpenAI-compatible provider (OpenAI, Ollama, vLLM, LiteLLM, …) over the host's
//! `wasi:http`, which checks the destination against the tenant's allowlist, verifies TLS
//! and pools the connection; the key comes from `wasi:config`, so it is never in the input,
//! and the host scrubs it from every signal.
//!
//! Config (`[tenants.config]`/`[tenants.secrets]`, or `run --config-value`/`--secret`):
//! `base_url` (required), `api_key` (a secret; none for a local server), `model`, and
//! `model.<tier>` for the tier a workflow step names in its `data` (`model_tier`); also
//! `provider` (the `gen_ai.provider.name`, default `openai`), `stream` (`true`/`false`),
//! `max_tokens`, and `connect_timeout_ms`, `first_byte_timeout_ms`, `between_bytes_timeout_ms`.
//!
//! The call is an `llm_call` span with events `api_call_started` and `api_call_completed`
//! and the OpenTelemetry GenAI attributes; the host adds the seed's `llm.*` spelling and the
//! cost from its price table. Provider failures are typed: 401/403 are `invalid-input`
//! (check the key), 429 is a retryable `unavailable` carrying the provider's `Retry-After`
//! (which a workflow `retry` waits for), 5xx are retryable, and timeouts are `timeout`.

mod chat;
mod http;

use chat::{Completion, Events, Message, Request, StreamOptions, Usage};
use http::{Failure, Response, Timeouts, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tta_guest::{Context, Error, ErrorKind, JsonPrimitive, Metadata, Span};

/// `{"messages": [...]}` or `{"prompt": "...", "system": "..."}`, and optional overrides.
#[derive(Deserialize, JsonSchema)]
struct Input {
    #[serde(default)]
    messages: Vec<Message>,
    prompt: Option<String>,
    system: Option<String>,
    model: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    stream: Option<bool>,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    text: String,
    model: String,
    finish_reason: Option<String>,
    usage: Usage,
    streamed: bool,
}

/// The most messages, and characters in all, a call sends.
const MAX_MESSAGES: usize = 256;
const MAX_CHARS: usize = 1 << 20;

/// What the call needs from `wasi:config`.
struct Settings {
    url: Url,
    api_key: Option<String>,
    provider: String,
    stream: bool,
    max_tokens: Option<u32>,
    timeouts: Timeouts,
}

fn config(key: &str) -> Result<Option<String>, Error> {
    tta_guest::config::try_get(key).map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("reading config `{key}` failed: {e}"),
            true,
        )
    })
}

fn number<T: std::str::FromStr>(key: &str) -> Result<Option<T>, Error> {
    match config(key)? {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid_input(format!("config `{key}` is `{text}`, not a number"))),
    }
}

impl Settings {
    fn read() -> Result<Settings, Error> {
        let base_url = config("base_url")?.ok_or_else(|| {
            Error::invalid_input(
                "config `base_url` is not set: set it to the provider's API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1 for Ollama",
            )
        })?;
        let mut url =
            Url::parse(base_url.trim()).map_err(|e| Error::invalid_input(format!("config `base_url`: {e}")))?;
        url.path = format!("{}/chat/completions", url.path.trim_end_matches('/'));
        let stream = match config("stream")?.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "config `stream` is `{other}`: use true or false"
                )));
            }
        };
        Ok(Settings {
            url,
            api_key: config("api_key")?.filter(|k| !k.is_empty()),
            provider: config("provider")?.unwrap_or_else(|| "openai".into()),
            stream,
            max_tokens: number("max_tokens")?,
            timeouts: Timeouts {
                connect_ms: number("connect_timeout_ms")?.unwrap_or(10_000),
                first_byte_ms: number("first_byte_timeout_ms")?.unwrap_or(60_000),
                between_bytes_ms: number("between_bytes_timeout_ms")?.unwrap_or(30_000),
            },
        })
    }
}

/// The model: the input's, else the context's `model`, else config `model.<tier>` for the
/// context's `model_tier`, else config `model`.
fn model(ctx: &Context, input: &Input) -> Result<(String, Option<String>), Error> {
    let tier = ctx.get("model_tier").map(str::to_owned);
    if let Some(model) = input.model.clone().or_else(|| ctx.get("model").map(str::to_owned)) {
        return Ok((model, tier));
    }
    if let Some(tier) = &tier
        && let Some(model) = config(&format!("model.{tier}"))?
    {
        return Ok((model, Some(tier.clone())));
    }
    let model = config("model")?.ok_or_else(|| {
        Error::invalid_input("no model: give `model` in the input, or set config `model` (e.g. gpt-4o-mini, llama3.2)")
    })?;
    Ok((model, tier))
}

fn messages(input: Input) -> Result<Vec<Message>, Error> {
    let mut messages = input.messages;
    match (input.prompt, messages.is_empty()) {
        (Some(_), false) => return Err(Error::invalid_input("give `messages` or `prompt`, not both")),
        (None, true) => {
            return Err(Error::invalid_input(
                "nothing to send: give `prompt` (text) or `messages` ([{\"role\": \"user\", \"content\": …}])",
            ));
        }
        (Some(prompt), true) => {
            if let Some(system) = input.system {
                messages.push(Message {
                    role: "system".into(),
                    content: system,
                });
            }
            messages.push(Message {
                role: "user".into(),
                content: prompt,
            });
        }
        (None, false) => {}
    }
    if messages.len() > MAX_MESSAGES {
        return Err(Error::invalid_input(format!(
            "{} messages, over the limit of {MAX_MESSAGES}",
            messages.len()
        )));
    }
    let chars: usize = messages.iter().map(|m| m.content.len()).sum();
    if chars > MAX_CHARS {
        return Err(Error::invalid_input(format!(
            "the messages have {chars} bytes, over the limit of {MAX_CHARS}"
        )));
    }
    if let Some((i, m)) = messages
        .iter()
        .enumerate()
        .find(|(_, m)| !matches!(m.role.as_str(), "system" | "user" | "assistant" | "developer" | "tool"))
    {
        return Err(Error::invalid_input(format!(
            "messages[{i}].role is `{}`: use system, user or assistant",
            m.role
        )));
    }
    Ok(messages)
}

/// Ends `span` failed with `error`'s message and `error.type`, and returns the error.
fn fail(span: &Span, error_type: &str, error: Error) -> Error {
    span.attr("error.type", error_type);
    span.set_error(&error.message);
    error
}

/// The typed error of a transport failure.
fn transport(span: &Span, url: &Url, failure: Failure) -> Error {
    match failure {
        Failure::Timeout(code) => fail(
            span,
            "timeout",
            Error::timeout(format!(
                "the provider at {} did not answer in time ({code})",
                url.authority
            )),
        ),
        Failure::Denied(code) => fail(
            span,
            "denied",
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the host does not let this tenant reach {} ({code}): add `{}://{}` to the tenant's [http] allow, or `run --allow-http`",
                    url.authority,
                    if url.https { "https" } else { "http" },
                    url.authority
                ),
                false,
            ),
        ),
        Failure::Tls(code) => fail(
            span,
            "tls",
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the TLS connection to {} failed ({code}): is the CA trusted?",
                    url.authority
                ),
                false,
            ),
        ),
        Failure::Transport(text) => fail(
            span,
            "transport",
            Error::unavailable(format!("the request to {} failed: {text}", url.authority)),
        ),
    }
}

/// The typed error of an HTTP error status.
fn status_error(span: &Span, response: &mut Response) -> Error {
    let status = response.status;
    span.attr("http.response.status_code", i64::from(status));
    let body = response.text().unwrap_or_default();
    let said = chat::error_message(&body);
    let error_type = status.to_string();
    match status {
        401 | 403 => fail(
            span,
            &error_type,
            Error::invalid_input(format!(
                "the provider refused the API key (HTTP {status}): check the `api_key` secret; it said: {said}"
            )),
        ),
        429 => {
            let after = response.header("retry-after");
            if let Some(after) = &after {
                span.attr(tta_guest::RETRY_AFTER, after.trim());
            }
            let wait = after.map_or_else(String::new, |a| format!("; retry after {} s", a.trim()));
            fail(
                span,
                &error_type,
                Error::unavailable(format!(
                    "the provider is rate limiting (HTTP 429){wait}; it said: {said}"
                )),
            )
        }
        500..=599 => {
            if let Some(after) = response.header("retry-after") {
                span.attr(tta_guest::RETRY_AFTER, after.trim());
            }
            fail(
                span,
                &error_type,
                Error::unavailable(format!("the provider failed (HTTP {status}); it said: {said}")),
            )
        }
        404 => fail(
            span,
            &error_type,
            Error::not_found(format!(
                "the provider answered HTTP 404: is the model right, and does `base_url` end in /v1? It said: {said}"
            )),
        ),
        _ => fail(
            span,
            &error_type,
            Error::invalid_input(format!(
                "the provider refused the request (HTTP {status}); it said: {said}"
            )),
        ),
    }
}

fn malformed(span: &Span, url: &Url, what: String) -> Error {
    fail(
        span,
        "malformed_response",
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "the answer of {} is not an OpenAI-compatible chat completion: {what}; check `base_url`",
                url.authority
            ),
            false,
        ),
    )
}

/// Reads the answer, streamed or whole.
fn read(span: &Span, url: &Url, response: &mut Response, streamed: bool) -> Result<Completion, Error> {
    if !streamed {
        let body = response.text().map_err(|f| transport(span, url, f))?;
        return chat::parse_answer(&body).map_err(|e| malformed(span, url, e));
    }
    let mut events = Events::default();
    while let Some(bytes) = response.chunk().map_err(|f| transport(span, url, f))? {
        let before = events.completion.chunks;
        events.feed(&bytes).map_err(|e| malformed(span, url, e))?;
        if before == 0 && events.completion.chunks > 0 {
            span.event("first_chunk_received");
        }
        if events.done {
            break;
        }
    }
    events.finish().map_err(|e| malformed(span, url, e))?;
    if events.completion.chunks == 0 {
        return Err(malformed(span, url, "the stream had no chunks".into()));
    }
    Ok(events.completion)
}

struct LlmChat;

impl JsonPrimitive for LlmChat {
    type Input = Input;
    type Output = Output;

    fn describe() -> Metadata {
        Metadata::new("llm-chat", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
            .title("Chat with an LLM")
            .read_only()
            .open_world(true)
    }

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        let settings = Settings::read()?;
        let (model, tier) = model(ctx, &input)?;
        let streamed = input.stream.unwrap_or(settings.stream);
        let max_tokens = input.max_tokens.or(settings.max_tokens);
        let temperature = input.temperature;
        let messages = messages(input)?;
        let body = serde_json::to_vec(&Request {
            model: &model,
            messages: &messages,
            max_tokens,
            temperature,
            stream: streamed,
            stream_options: streamed.then_some(StreamOptions { include_usage: true }),
        })
        .map_err(|e| Error::internal(format!("the request does not encode: {e}")))?;

        let span = tta_guest::span("llm_call");
        let url = &settings.url;
        span.attr("gen_ai.operation.name", "chat");
        span.attr("gen_ai.provider.name", settings.provider.as_str());
        span.attr("gen_ai.request.model", model.as_str());
        span.attr("server.address", url.host());
        span.attr("server.port", i64::from(url.port()));
        span.attr("gen_ai.request.stream", streamed);
        if let Some(max) = max_tokens {
            span.attr("gen_ai.request.max_tokens", i64::from(max));
        }
        if let Some(t) = temperature {
            span.attr("gen_ai.request.temperature", t);
        }
        if let Some(tier) = &tier {
            span.attr("llm.model_tier", tier.as_str());
        }
        if let Some(attempt) = ctx.get("retry.attempt") {
            span.attr("retry.attempt", attempt);
        }
        let bearer = settings.api_key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("content-type", b"application/json"),
            (
                "accept",
                if streamed {
                    b"text/event-stream"
                } else {
                    b"application/json"
                },
            ),
        ];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_bytes()));
        }
        span.event("api_call_started");
        let mut response =
            http::post(url, &headers, &body, &settings.timeouts).map_err(|f| transport(&span, url, f))?;
        if !(200..300).contains(&response.status) {
            return Err(status_error(&span, &mut response));
        }
        span.attr("http.response.status_code", i64::from(response.status));
        let completion = read(&span, url, &mut response, streamed)?;
        let usage = completion.usage.unwrap_or_default();
        let response_model = completion.model.clone().unwrap_or_else(|| model.clone());
        span.attr("gen_ai.response.model", response_model.as_str());
        if let Some(id) = &completion.id {
            span.attr("gen_ai.response.id", id.as_str());
        }
        if let Some(reason) = &completion.finish_reason {
            span.attr("gen_ai.response.finish_reasons", reason.as_str());
        }
        if completion.usage.is_some() {
            span.attr("gen_ai.usage.input_tokens", usage.prompt_tokens);
            span.attr("gen_ai.usage.output_tokens", usage.completion_tokens);
        }
        if streamed {
            span.attr("llm.stream_chunks", completion.chunks);
        }
        span.event("api_call_completed");
        tta_guest::info!(
            model = response_model.as_str(),
            input_tokens = usage.prompt_tokens,
            output_tokens = usage.completion_tokens;
            "chat completion received"
        );
        Ok(Output {
            text: completion.text,
            model: response_model,
            finish_reason: completion.finish_reason,
            usage: Usage {
                total_tokens: usage.total_tokens.max(usage.prompt_tokens + usage.completion_tokens),
                ..usage
            },
            streamed,
        })
    }
}

tta_guest::export!(LlmChat);
