//! A real OTLP receiver on loopback, gRPC and HTTP/protobuf, that decodes what it gets.
//! The tests use it as a collector would be used; it can also answer slowly or with
//! errors, and a listener that never answers stands in for a hung one.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Everything received, decoded.
#[derive(Default, Clone)]
pub struct Received {
    inner: Arc<Mutex<Store>>,
    behaviour: Behaviour,
    /// A header every export must carry (name, value), as a hosted backend's key.
    required: Option<(String, String)>,
    /// Exports refused for want of it.
    pub refused: Arc<std::sync::atomic::AtomicUsize>,
}

/// How the receiver answers each export.
#[derive(Debug, Default, Clone, Copy)]
pub enum Behaviour {
    /// At once, accepting everything.
    #[default]
    Healthy,
    /// After this long, accepting everything.
    Slow(std::time::Duration),
    /// At once, with an error (gRPC `UNAVAILABLE`, HTTP 503), keeping nothing.
    Failing,
}

impl Received {
    /// Whether `value` (of the required header) lets an export in; counts a refusal.
    fn admits(&self, value: Option<&[u8]>) -> bool {
        let Some((_, expected)) = &self.required else {
            return true;
        };
        let ok = value == Some(expected.as_bytes());
        if !ok {
            self.refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        ok
    }

    fn admits_grpc(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), tonic::Status> {
        let value = self
            .required
            .as_ref()
            .and_then(|(name, _)| metadata.get(name.as_str()))
            .map(|v| v.as_bytes());
        if self.admits(value) {
            Ok(())
        } else {
            Err(tonic::Status::unauthenticated("the export has no valid key"))
        }
    }

    /// Waits and decides as the behaviour says: `true` when the export is accepted.
    async fn answer(&self) -> bool {
        match self.behaviour {
            Behaviour::Healthy => true,
            Behaviour::Slow(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            Behaviour::Failing => false,
        }
    }
}

#[derive(Default)]
struct Store {
    traces: Vec<ExportTraceServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

impl Received {
    /// Whether `done` holds of what was received within 10 s, checked every 50 ms.
    pub async fn until(&self, done: impl Fn(&Received) -> bool) -> bool {
        for _ in 0..200 {
            if done(self) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.lock().expect("receiver store")
    }

    /// Every span received, with its resource's `service.name`.
    pub fn spans(&self) -> Vec<(String, Span)> {
        let store = self.store();
        let mut out = Vec::new();
        for request in &store.traces {
            for rs in &request.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| attr(&r.attributes, "service.name"))
                    .map(|v| text(&v))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    out.extend(ss.spans.iter().map(|s| (service.clone(), s.clone())));
                }
            }
        }
        out
    }

    /// Every log record received.
    /// The resource attributes of every span request received.
    pub fn span_resources(&self) -> Vec<Vec<KeyValue>> {
        self.store()
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|r| r.resource.as_ref().map(|r| r.attributes.clone()))
            .collect()
    }

    /// The resource attributes of every metrics request received.
    pub fn metric_resources(&self) -> Vec<Vec<KeyValue>> {
        self.store()
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .filter_map(|r| r.resource.as_ref().map(|r| r.attributes.clone()))
            .collect()
    }

    pub fn logs(&self) -> Vec<LogRecord> {
        let store = self.store();
        store
            .logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| s.log_records.clone())
            .collect()
    }

    /// Every metric received, latest push last.
    pub fn metrics(&self) -> Vec<Metric> {
        let store = self.store();
        store
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .collect()
    }
}

/// The value of attribute `key`.
pub fn attr(attributes: &[KeyValue], key: &str) -> Option<AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
}

/// A value as text.
pub fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(f)) => f.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A span's or record's 8-byte id as the u64 the host uses.
pub fn id64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))
}

/// A 16-byte trace id as u128.
pub fn id128(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(bytes.try_into().unwrap_or([0; 16]))
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.admits_grpc(request.metadata())?;
        if !self.answer().await {
            return Err(tonic::Status::unavailable("the collector is failing on purpose"));
        }
        self.store().traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.admits_grpc(request.metadata())?;
        if !self.answer().await {
            return Err(tonic::Status::unavailable("the collector is failing on purpose"));
        }
        self.store().logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.admits_grpc(request.metadata())?;
        if !self.answer().await {
            return Err(tonic::Status::unavailable("the collector is failing on purpose"));
        }
        self.store().metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Starts a gRPC receiver on an ephemeral loopback port.
pub async fn grpc() -> (SocketAddr, Received) {
    grpc_behaving(Behaviour::Healthy).await
}

/// Starts a gRPC receiver that answers as `behaviour` says.
pub async fn grpc_behaving(behaviour: Behaviour) -> (SocketAddr, Received) {
    let received = Received {
        behaviour,
        ..Received::default()
    };
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = incoming.local_addr().expect("local addr");
    let router = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(received.clone()))
        .add_service(LogsServiceServer::new(received.clone()))
        .add_service(MetricsServiceServer::new(received.clone()));
    tokio::spawn(router.serve_with_incoming(incoming));
    (addr, received)
}

/// Starts an HTTP/protobuf receiver (`/v1/traces`, `/v1/logs`, `/v1/metrics`) on loopback.
pub async fn http() -> (SocketAddr, Received) {
    http_behaving(Behaviour::Healthy).await
}

impl Received {
    /// The body of an HTTP export that carries the required header, gunzipped if need be.
    fn admit_http(
        &self,
        headers: &axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> Result<axum::body::Bytes, axum::http::StatusCode> {
        let value = self
            .required
            .as_ref()
            .and_then(|(name, _)| headers.get(name.as_str()))
            .map(|v| v.as_bytes());
        if !self.admits(value) {
            return Err(axum::http::StatusCode::UNAUTHORIZED);
        }
        if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
            use std::io::Read as _;
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
            return Ok(plain.into());
        }
        Ok(body)
    }
}

/// Starts an HTTP/protobuf receiver that answers as `behaviour` says.
pub async fn http_behaving(behaviour: Behaviour) -> (SocketAddr, Received) {
    let received = Received {
        behaviour,
        ..Received::default()
    };
    let app = http_app(&received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

fn http_app(received: &Received) -> axum::Router {
    use axum::routing::post;
    use prost::Message as _;
    let (t, l, m) = (received.clone(), received.clone(), received.clone());
    axum::Router::new()
        .route(
            "/v1/traces",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let body = t.admit_http(&headers, body)?;
                    if !t.answer().await {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let request =
                        ExportTraceServiceRequest::decode(body).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
                    t.store().traces.push(request);
                    Ok::<_, axum::http::StatusCode>(ExportTraceServiceResponse::default().encode_to_vec())
                },
            ),
        )
        .route(
            "/v1/logs",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let body = l.admit_http(&headers, body)?;
                    if !l.answer().await {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let request =
                        ExportLogsServiceRequest::decode(body).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
                    l.store().logs.push(request);
                    Ok::<_, axum::http::StatusCode>(ExportLogsServiceResponse::default().encode_to_vec())
                },
            ),
        )
        .route(
            "/v1/metrics",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let body = m.admit_http(&headers, body)?;
                    if !m.answer().await {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let request =
                        ExportMetricsServiceRequest::decode(body).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
                    m.store().metrics.push(request);
                    Ok::<_, axum::http::StatusCode>(ExportMetricsServiceResponse::default().encode_to_vec())
                },
            ),
        )
}

/// Starts a receiver as a hosted backend is: TLS with `cert_pem`/`key_pem`, and refusing
/// every export without the header `required` (name, value); gzip accepted.
pub async fn secured(
    protocol: tta_host::config::telemetry::OtlpProtocol,
    cert_pem: &str,
    key_pem: &str,
    required: (&str, &str),
) -> (SocketAddr, Received) {
    use tonic::codec::CompressionEncoding::Gzip;
    let received = Received {
        required: Some((required.0.to_owned(), required.1.to_owned())),
        ..Received::default()
    };
    match protocol {
        tta_host::config::telemetry::OtlpProtocol::Grpc => {
            let incoming =
                tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = incoming.local_addr().expect("local addr");
            let tls = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
            let router = tonic::transport::Server::builder()
                .tls_config(tls)
                .expect("TLS")
                .add_service(TraceServiceServer::new(received.clone()).accept_compressed(Gzip))
                .add_service(LogsServiceServer::new(received.clone()).accept_compressed(Gzip))
                .add_service(MetricsServiceServer::new(received.clone()).accept_compressed(Gzip));
            tokio::spawn(router.serve_with_incoming(incoming));
            (addr, received)
        }
        tta_host::config::telemetry::OtlpProtocol::HttpProtobuf => {
            use rustls::pki_types::pem::PemObject as _;
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate");
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
            let acceptor = acceptor(chain, key);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let app = http_app(&received);
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(
                                hyper_util::rt::TokioIo::new(tls),
                                hyper_util::service::TowerToHyperService::new(app),
                            )
                            .await;
                    });
                }
            });
            (addr, received)
        }
    }
}

/// The TLS side of a loopback server presenting `chain`.
pub fn acceptor(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A listener that accepts connections and never says a word: a hung collector.
pub async fn silent() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A loopback port nobody listens on.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}
