//! Guests' outgoing HTTP (`wasi:http/outgoing-handler`), the way the TTA.dev design
//! instruments HTTPX: every request is a client span under the guest's current span, with
//! `traceparent` injected, and is counted in `http_client_requests_total`.
//!
//! Denied unless the tenant's `http.allow` lists the scheme, host and port (the operator's
//! own calls, from `run` or `load`, have no list: nothing is allowed). HTTPS is rustls
//! ([`tls`]); connections are pooled per tenant and destination across calls ([`pool`]);
//! each request has the tenant's timeouts (a guest's own `request-options` may only
//! shorten them) and response-size cap ([`body`]). A redirect is the guest's to follow,
//! so its target passes the same allowlist. The state is created on a call's first
//! request, so primitives that never call out pay nothing.

mod body;
mod pool;
mod recorded;
mod tls;

pub use pool::HttpClients;

use crate::invocation::Invocation;
use crate::recording::Tape;
use http_body_util::BodyExt as _;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tta_core::bindings::Value;
use tta_core::config::HttpPolicy;
use tta_core::config::http::Scheme;
use tta_core::guest_config::GuestConfig;
use tta_core::report::GuestSpanRecord;
use tta_core::trace_context::{new_span_id, traceparent};
use tta_telemetry::Metrics;
use tta_telemetry::buckets::DURATION_BUCKETS;
use tta_telemetry::instruments::{Instruments, counter, histogram, remove_matching};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks, WasiHttpView};

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                hyper::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

/// Adds `wasi:http/outgoing-handler` and its types to `linker` (no incoming handler: a
/// primitive is called through its export, never served).
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// The `wasi:http` state of one call.
pub(crate) struct OutgoingHttp {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: Hooks,
}

/// What a request needs to know about its call.
pub(crate) struct Hooks {
    policy: Option<HttpPolicy>,
    clients: Arc<HttpClients>,
    tenant: String,
    trace_id: u128,
    sampled: bool,
    tracestate: String,
    /// The guest span a new request is a child of; set each time the guest enters `wasi:http`.
    pub(crate) parent_span_id: u64,
    sink: Arc<SpanSink>,
    /// The call's tape, when it is recorded or replayed.
    tape: Option<Arc<Tape>>,
    /// The call's configuration, whose secrets a recorded request is scrubbed of.
    config: Arc<GuestConfig>,
}

/// The HTTP client's instruments.
pub struct HttpClientMetrics {
    /// `http_client_requests_total{primitive_name,host,status,tenant}`: guests' outgoing HTTP.
    requests: IntCounterVec,
    /// `http_client_duration_seconds{primitive_name,host,tenant}`.
    duration: HistogramVec,
}

impl Instruments for HttpClientMetrics {
    fn register(r: &Registry) -> Self {
        HttpClientMetrics {
            requests: counter(
                r,
                "http_client_requests_total",
                "Outgoing HTTP requests of guests (wasi:http) by allowlisted host and status (`denied`, `error` when none).",
                &["primitive_name", "host", "status", "tenant"],
            ),
            duration: histogram(
                r,
                "http_client_duration_seconds",
                "Wall time of guests' outgoing HTTP requests, until the response head.",
                &["primitive_name", "host", "tenant"],
                DURATION_BUCKETS,
            ),
        }
    }

    fn forget(&self, labels: &[(&str, &str)]) {
        remove_matching(&self.requests, labels);
        remove_matching(&self.duration, labels);
    }
}

/// Where finished client spans wait until the call ends, and the metrics they update.
struct SpanSink {
    spans: Mutex<Vec<GuestSpanRecord>>,
    max_spans: usize,
    metrics: Arc<HttpClientMetrics>,
    primitive: String,
    tenant: String,
}

impl OutgoingHttp {
    pub(crate) fn new(
        metrics: &Metrics,
        instruments: &Arc<HttpClientMetrics>,
        clients: &Arc<HttpClients>,
        invocation: &Invocation,
        primitive: &str,
        tape: Option<Arc<Tape>>,
    ) -> Self {
        OutgoingHttp {
            ctx: WasiHttpCtx::new(),
            hooks: Hooks {
                policy: invocation.access.as_ref().map(|a| a.http.clone()),
                clients: Arc::clone(clients),
                tenant: invocation.tenant.clone(),
                trace_id: invocation.ids.trace_id,
                sampled: invocation.ids.sampled,
                tracestate: invocation.tracestate.clone(),
                parent_span_id: invocation.ids.span_id,
                sink: Arc::new(SpanSink {
                    spans: Mutex::new(Vec::new()),
                    max_spans: invocation.limits.max_spans,
                    metrics: Arc::clone(instruments),
                    primitive: primitive.to_owned(),
                    tenant: metrics.tenant_label(&invocation.tenant),
                }),
                tape,
                config: Arc::clone(&invocation.config),
            },
        }
    }

    /// The client spans of finished requests.
    pub(crate) fn take_spans(&self) -> Vec<GuestSpanRecord> {
        std::mem::take(
            &mut *self
                .hooks
                .sink
                .spans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl SpanSink {
    fn finish(&self, mut record: GuestSpanRecord, host: &str, status: &str, began: Instant) {
        record.end = Some(SystemTime::now());
        self.metrics
            .requests
            .with_label_values(&[&self.primitive, host, status, &self.tenant])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[&self.primitive, host, &self.tenant])
            .observe(began.elapsed().as_secs_f64());
        let mut spans = self.spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if spans.len() < self.max_spans {
            spans.push(record);
        }
    }
}

fn text(value: impl Into<String>) -> Value {
    Value::Str(value.into())
}

impl WasiHttpHooks for Hooks {
    fn is_supported_scheme(&mut self, scheme: &axum::http::uri::Scheme) -> bool {
        // Both schemes reach `send_request`, where the allowlist decides, so that a refusal
        // is a span and a count, not a bare error.
        *scheme == axum::http::uri::Scheme::HTTP || *scheme == axum::http::uri::Scheme::HTTPS
    }

    fn default_scheme(&mut self) -> Option<axum::http::uri::Scheme> {
        Some(axum::http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
        let scheme = if uri.scheme_str() == Some("http") {
            Scheme::Http
        } else {
            Scheme::Https
        };
        let method = request.method().as_str().to_owned();
        let span_id = new_span_id();
        let record = GuestSpanRecord {
            span_id,
            parent_span_id: self.parent_span_id,
            name: format!("HTTP {method}"),
            start: SystemTime::now(),
            end: None,
            attributes: vec![
                ("http.request.method".into(), text(method)),
                ("url.full".into(), text(uri.to_string())),
                ("url.scheme".into(), text(scheme.as_str())),
                ("server.address".into(), text(host.clone())),
                (
                    "server.port".into(),
                    Value::Int(i64::from(port.unwrap_or(scheme.default_port()))),
                ),
            ],
            events: Vec::new(),
            error: None,
            client: true,
            fuel: None,
        };
        let url = {
            let mut url = uri.to_string();
            self.config.redactor().text(&mut url);
            url
        };
        match self.tape.clone() {
            Some(tape) if tape.replays() => {
                return recorded::replay(tape, request, record, Arc::clone(&self.sink), host, url);
            }
            Some(tape) => {
                if let Some(index) = tape.begin_http(request.method().as_str(), &url) {
                    let config = Arc::clone(&self.config);
                    return recorded::record(tape, index, request, config, |request| {
                        self.send(request, options, uri, record, host, port, scheme)
                    });
                }
            }
            None => {}
        }
        self.send(request, options, uri, record, host, port, scheme)
    }
}

impl Hooks {
    /// Sends `request` (whose span is `record`) if the tenant's allowlist lets it.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        mut request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        uri: axum::http::Uri,
        record: GuestSpanRecord,
        host: String,
        port: Option<u16>,
        scheme: Scheme,
    ) -> SendFuture {
        let began = Instant::now();
        let sink = Arc::clone(&self.sink);
        let allowed = self.policy.as_ref().and_then(|policy| {
            policy
                .matching_entry(scheme, &host, port)
                .map(|entry| (entry.to_owned(), policy.clone()))
        });
        let Some((label, policy)) = allowed else {
            let mut record = record;
            record.error = Some(format!(
                "outgoing HTTP to `{}://{host}{}` is not allowed for this tenant; the operator can add it to the tenant's `http.allow`",
                scheme.as_str(),
                port.map(|p| format!(":{p}")).unwrap_or_default()
            ));
            record
                .attributes
                .push(("error.type".into(), text(error_type(&Error::HttpRequestDenied))));
            sink.finish(record, "denied", "denied", began);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        let traceparent = traceparent(self.trace_id, record.span_id, self.sampled);
        let headers = request.headers_mut();
        if let Ok(value) = axum::http::HeaderValue::from_str(&traceparent) {
            headers.insert("traceparent", value);
        }
        if !self.tracestate.is_empty()
            && let Ok(value) = axum::http::HeaderValue::from_str(&self.tracestate)
        {
            headers.insert("tracestate", value);
        }
        // HTTP/1 wants the origin form on the request line; `Host` carries the authority.
        if let Some(path) = uri.path_and_query()
            && let Ok(origin) = path.as_str().parse()
        {
            *request.uri_mut() = origin;
        }
        let ms = Duration::from_millis;
        let shorter = |tenant: u64, guest: Option<Duration>| guest.map_or(ms(tenant), |g| g.min(ms(tenant)));
        let options = options.unwrap_or_default();
        let connect_timeout = shorter(policy.connect_timeout_ms, options.connect_timeout);
        let first_byte = shorter(policy.first_byte_timeout_ms, options.first_byte_timeout);
        let between_bytes = shorter(policy.between_bytes_timeout_ms, options.between_bytes_timeout);
        let deadline = tokio::time::Instant::now() + ms(policy.timeout_ms);
        let max = policy.max_response_bytes;
        let client = self.clients.tenant(&self.tenant, &policy);
        let key = pool::Key {
            scheme,
            host: host.clone(),
            port: port.unwrap_or(scheme.default_port()),
        };
        Box::new(async move {
            let mut record = record;
            let fail = |mut record: GuestSpanRecord, error: Error, reason: String| {
                record.error = Some(reason);
                record.attributes.push(("error.type".into(), text(error_type(&error))));
                sink.finish(record, &label, "error", began);
                Err(error)
            };
            let mut connection = match client.connect(&key, connect_timeout).await {
                Ok(connection) => connection,
                Err((error, reason)) => return fail(record, error, reason),
            };
            record.attributes.push(("network.protocol.version".into(), text("1.1")));
            if let Some(version) = connection.tls_version {
                record.attributes.push(("tls.protocol.version".into(), text(version)));
            }
            record
                .attributes
                .push(("http.connection.reused".into(), Value::Boolean(connection.reused)));
            let head = first_byte.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let response = match tokio::time::timeout(head, connection.sender.send_request(request)).await {
                Err(_) => {
                    let reason = format!("no response head within {} ms", head.as_millis());
                    return fail(record, Error::HttpResponseTimeout, reason);
                }
                Ok(Err(e)) => {
                    let reason = e.to_string();
                    return fail(record, Error::Hyper(e), reason);
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status().as_u16();
            record
                .attributes
                .push(("http.response.status_code".into(), Value::Int(i64::from(status))));
            if status >= 500 {
                record.error = Some(format!("HTTP {status}"));
                record.attributes.push(("error.type".into(), text(status.to_string())));
            }
            sink.finish(record, &label, &status.to_string(), began);
            let response = response.map(|incoming| {
                body::Bounded::new(incoming, max, between_bytes, deadline, (client, key, connection)).boxed_unsync()
            });
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// The `error.type` of a failed request: its `wasi:http` `error-code` case.
fn error_type(error: &Error) -> &'static str {
    match error {
        Error::HttpRequestDenied => "HTTP-request-denied",
        Error::ConnectionLimitReached => "connection-limit-reached",
        Error::ConnectionTimeout => "connection-timeout",
        Error::ConnectionRefused => "connection-refused",
        Error::Connect(_) | Error::DestinationUnavailable => "destination-unavailable",
        Error::TlsCertificateError => "TLS-certificate-error",
        Error::TlsAlertReceived { .. } => "TLS-alert-received",
        Error::TlsProtocolError | Error::Tls(_) => "TLS-protocol-error",
        Error::ConfigurationError => "configuration-error",
        Error::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        Error::HttpResponseTimeout => "HTTP-response-timeout",
        Error::HttpProtocolError | Error::Hyper(_) => "HTTP-protocol-error",
        _ => "internal-error",
    }
}
