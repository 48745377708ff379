//! Guests' outgoing HTTP (`wasi:http/outgoing-handler`), the way the TTA.dev design
//! instruments HTTPX: every request is a client span under the guest's current span, with
//! `traceparent` injected, and is counted in `http_client_requests_total`.
//!
//! Denied unless the tenant's `http.allow` lists the host (the operator's own calls, from
//! `run` or `load`, have no list: nothing is allowed). Each request has the tenant's timeout
//! and response-size cap. The state is created on a call's first request, so primitives
//! that never call out pay nothing.

use crate::invocation::Invocation;
use http_body_util::BodyExt as _;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tta_core::bindings::Value;
use tta_core::config::HttpPolicy;
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
    trace_id: u128,
    sampled: bool,
    tracestate: String,
    /// The guest span a new request is a child of; set each time the guest enters `wasi:http`.
    pub(crate) parent_span_id: u64,
    sink: Arc<SpanSink>,
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
        invocation: &Invocation,
        primitive: &str,
    ) -> Self {
        OutgoingHttp {
            ctx: WasiHttpCtx::new(),
            hooks: Hooks {
                policy: invocation.access.as_ref().map(|a| a.http.clone()),
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
        // `https` is accepted here so that its refusal is a span and a count, not a bare error.
        *scheme == axum::http::uri::Scheme::HTTP || *scheme == axum::http::uri::Scheme::HTTPS
    }

    fn default_scheme(&mut self) -> Option<axum::http::uri::Scheme> {
        Some(axum::http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        mut request: hyper::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16();
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
                ("server.address".into(), text(host.clone())),
                (
                    "server.port".into(),
                    Value::Int(i64::from(port.unwrap_or(if uri.scheme_str() == Some("https") {
                        443
                    } else {
                        80
                    }))),
                ),
            ],
            events: Vec::new(),
            error: None,
            client: true,
        };
        let began = Instant::now();
        let sink = Arc::clone(&self.sink);
        let allowed = self.policy.as_ref().and_then(|policy| {
            policy
                .matching_entry(&host, port)
                .map(|entry| (entry.to_owned(), policy.clone()))
        });
        let refuse = |mut record: GuestSpanRecord, reason: String, error: Error| -> SendFuture {
            record.error = Some(reason);
            sink.finish(record, "denied", "denied", began);
            Box::new(async move { Err(error) })
        };
        let Some((label, policy)) = allowed else {
            let reason = format!(
                "outgoing HTTP to `{host}` is not allowed for this tenant; the operator can add it to the tenant's `http.allow`"
            );
            return refuse(record, reason, Error::HttpRequestDenied);
        };
        if uri.scheme_str() == Some("https") {
            let reason = "https is not available to guests on this host; call an http:// endpoint (e.g. a TLS sidecar)"
                .to_owned();
            return refuse(record, reason, Error::HttpRequestDenied);
        }
        let traceparent = traceparent(self.trace_id, span_id, self.sampled);
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
        let timeout = Duration::from_millis(policy.timeout_ms);
        let max = policy.max_response_bytes;
        Box::new(async move {
            let sent = tokio::time::timeout(timeout, send(request, &host, port.unwrap_or(80))).await;
            let mut record = record;
            let (response, driver) = match sent {
                Err(_) => {
                    record.error = Some(format!("no response within {} ms", timeout.as_millis()));
                    sink.finish(record, &label, "error", began);
                    return Err(Error::ConnectionReadTimeout);
                }
                Ok(Err(e)) => {
                    record.error = Some(e.to_string());
                    sink.finish(record, &label, "error", began);
                    return Err(e);
                }
                Ok(Ok(sent)) => sent,
            };
            let status = response.status().as_u16();
            record
                .attributes
                .push(("http.response.status_code".into(), Value::Int(i64::from(status))));
            if status >= 500 {
                record.error = Some(format!("HTTP {status}"));
            }
            sink.finish(record, &label, &status.to_string(), began);
            let response = response.map(|body| {
                http_body_util::Limited::new(body, max)
                    .map_err(move |e| match e.downcast::<hyper::Error>() {
                        Ok(e) => Error::Hyper(*e),
                        Err(_) => Error::HttpResponseBodySize(Some(max as u64)),
                    })
                    .boxed_unsync()
            });
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
                let _ = driver.await;
                Ok(())
            });
            Ok((response, io))
        })
    }
}

/// One HTTP/1.1 exchange on a new connection.
async fn send(
    request: hyper::Request<WasiBody>,
    host: &str,
    port: u16,
) -> Result<(hyper::Response<hyper::body::Incoming>, tokio::task::JoinHandle<()>), Error> {
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
            _ => Error::Connect(e),
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await?;
    Ok((response, driver))
}
