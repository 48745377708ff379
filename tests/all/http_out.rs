//! Guests' outgoing HTTP (`wasi:http`) through `serve`, against real servers on loopback:
//! the allowlist by scheme, host and port; HTTPS against a TLS server whose CA the test
//! makes; connections reused across requests and calls; and each bad case — untrusted CA,
//! wrong hostname, expired certificate, a handshake that stalls, an endless body, a body sent
//! a byte at a time, a slow head, a redirect to an unlisted host — ending its request with
//! its own `wasi:http` error, a client span with `error.type`, and a count.

use crate::fixture;
use crate::serve::{KEY_ACME, KEY_BETA, KEY_GAMMA, Reply, TestServer, plugins_dir, send, server_config, tenant};
use crate::telemetry::sample;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use opentelemetry_sdk::trace::{InMemorySpanExporterBuilder, SpanData};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A loopback HTTP server that records the headers of each request it receives.
async fn recording_server() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<axum::http::HeaderMap>>>) {
    use axum::routing::get as route_get;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/hello",
            route_get(move |headers: axum::http::HeaderMap| async move {
                record.lock().expect("headers").push(headers);
                "hello from upstream"
            }),
        )
        .route("/big", route_get(|| async { "x".repeat(2 << 20) }))
        .route(
            "/slow",
            route_get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_call_out_over_http_only_where_allowed_and_traced() {
    let (upstream, seen) = recording_server().await;
    let dir = plugins_dir("http-out", &[fixture("http-fetch")]);
    let allowed = format!(
        "[http]\nallow = [\"http://127.0.0.1:{}\"]\ntimeout_ms = 300\nfirst_byte_timeout_ms = 300\nmax_response_bytes = 1024\n",
        upstream.port()
    );
    let spans = InMemorySpanExporterBuilder::new().build();
    let server = TestServer::start(
        server_config(
            &dir,
            vec![tenant("acme", KEY_ACME, &allowed), tenant("beta", KEY_BETA, "")],
        ),
        Some(spans.clone()),
    )
    .await;
    let fetch = |key: &'static str, path: &str| {
        let url = server.url("/v1/primitives/http-fetch/execute");
        let body = format!("{{\"url\":\"http://{upstream}{path}\"}}");
        async move {
            send(
                reqwest::Method::POST,
                &url,
                Some(key),
                body.into_bytes(),
                &[("traceparent", "00-aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb-cccccccccccccccc-01")],
            )
            .await
        }
    };

    let ok = fetch(KEY_ACME, "/hello").await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json()["body"], "hello from upstream");
    assert_eq!(ok.json()["status"], 200);
    let received = seen.lock().expect("headers").clone();
    assert_eq!(received.len(), 1);
    let injected = received[0]
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("traceparent injected")
        .to_owned();
    assert!(
        injected.starts_with("00-aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb-"),
        "{injected}"
    );

    // Denied by default, and each denial is counted under `denied`, not the guest's host.
    let denied = fetch(KEY_BETA, "/hello").await;
    let doc = denied.problem(503, "unavailable");
    assert!(
        doc["detail"].as_str().unwrap_or("").contains("HttpRequestDenied"),
        "{doc}"
    );
    assert_eq!(
        seen.lock().expect("headers").len(),
        1,
        "a denied request never left the host"
    );
    // The caps: a response over `max_response_bytes`, an upstream slower than `timeout_ms`.
    fetch(KEY_ACME, "/big").await.problem(503, "unavailable");
    fetch(KEY_ACME, "/slow").await.problem(503, "unavailable");

    assert!(server.host.telemetry().flush(Duration::from_secs(30)));
    let finished = spans.get_finished_spans().expect("spans");
    let client = finished
        .iter()
        .find(|s| format!("00-{}-{}-01", s.span_context.trace_id(), s.span_context.span_id()) == injected)
        .expect("the injected traceparent is the client span's");
    assert_eq!(client.name, "HTTP GET");
    assert_eq!(client.span_kind, opentelemetry::trace::SpanKind::Client);
    let attr = |key: &str| {
        client
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr("url.full"), Some(format!("http://{upstream}/hello")));
    let parent = finished
        .iter()
        .find(|s| s.span_context.span_id() == client.parent_span_id)
        .expect("the client span's parent is exported");
    assert_eq!(
        parent.name, "fetch",
        "the request is under the guest span it was made in"
    );

    let metrics = server.host.telemetry().metrics().render();
    let host_label = format!("http://127.0.0.1:{}", upstream.port());
    let count = |host: &str, status: &str, tenant: &str| {
        sample(
            &metrics,
            "http_client_requests_total",
            &[
                ("primitive_name", "http-fetch"),
                ("host", host),
                ("status", status),
                ("tenant", tenant),
            ],
        )
    };
    assert_eq!(count(&host_label, "200", "acme"), Some(2.0), "{metrics}");
    assert_eq!(count(&host_label, "error", "acme"), Some(1.0));
    assert_eq!(count("denied", "denied", "beta"), Some(1.0));
    assert!(
        !metrics.contains("host=\"127.0.0.1\""),
        "an unlisted host never becomes a label"
    );
    crate::telemetry::promtool_check(&metrics);
    assert!(server.stop().await);
}

/// A certificate authority of the test's own.
pub struct Pki {
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tta-host test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Pki { ca }
    }

    /// A server certificate for `names` and its key, in PEM.
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// A server certificate for `names`, valid now unless `expired`.
    fn leaf(&self, names: &[&str], expired: bool) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }
}

/// A loopback HTTPS server and the TLS handshakes it completed.
struct TlsUpstream {
    port: u16,
    handshakes: Arc<AtomicUsize>,
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(text: &'static str) -> Body {
    Full::new(Bytes::from_static(text.as_bytes())).boxed()
}

async fn route(request: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<Body>, Infallible> {
    let response = hyper::Response::builder();
    Ok(match request.uri().path() {
        "/hello" => response.body(full("hello over tls")),
        "/redirect" => response
            .status(302)
            .header("location", "https://unlisted.example/hello")
            .body(full("")),
        "/endless" => {
            let chunks = futures_util::stream::repeat_with(|| Ok(Frame::data(Bytes::from(vec![b'x'; 16 * 1024]))));
            response.body(StreamBody::new(chunks).boxed())
        }
        "/drip" => {
            let drip = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                Some((Ok(Frame::data(Bytes::from_static(b"x"))), ()))
            });
            response.body(StreamBody::new(drip).boxed())
        }
        "/slow-head" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            response.body(full("late"))
        }
        _ => response.status(404).body(full("")),
    }
    .expect("response"))
}

async fn tls_upstream(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> TlsUpstream {
    let acceptor = crate::otlp_receiver::acceptor(chain, key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handshakes);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), hyper::service::service_fn(route))
                    .await;
            });
        }
    });
    TlsUpstream { port, handshakes }
}

/// A server that accepts connections and never answers: a TLS handshake to it stalls.
async fn stalling_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_out_verifies_the_server_reuses_connections_and_names_each_failure() {
    let pki = Pki::new();
    let (chain, key) = pki.leaf(&["localhost"], false);
    let good = tls_upstream(chain, key).await;
    let (chain, key) = pki.leaf(&["localhost"], true);
    let expired = tls_upstream(chain, key).await;
    let stall = stalling_server().await;
    let dir = plugins_dir("https-out", &[fixture("http-fetch")]);
    let ca_file = dir.join("test-ca.pem");
    std::fs::write(&ca_file, pki.ca.pem()).expect("write CA");
    let allow = format!(
        "\"https://localhost:{g}\", \"https://127.0.0.1:{g}\", \"https://localhost:{e}\", \"https://localhost:{stall}\"",
        g = good.port,
        e = expired.port
    );
    let acme = format!(
        "[http]\nallow = [{allow}]\nca_files = [{ca:?}]\nconnect_timeout_ms = 500\nfirst_byte_timeout_ms = 500\n\
         between_bytes_timeout_ms = 300\ntimeout_ms = 3000\nmax_response_bytes = 65536\n",
        ca = ca_file.display().to_string()
    );
    // The same destinations, but the tenant trusts only the Mozilla roots.
    let beta = format!("[http]\nallow = [{allow}]\n");
    // One connection at a time, for the fence on connections.
    let gamma = format!(
        "[http]\nallow = [{allow}]\nca_files = [{ca:?}]\nmax_connections = 1\nconnect_timeout_ms = 300\n",
        ca = ca_file.display().to_string()
    );
    let spans = InMemorySpanExporterBuilder::new().build();
    let server = TestServer::start(
        server_config(
            &dir,
            vec![
                tenant("acme", KEY_ACME, &acme),
                tenant("beta", KEY_BETA, &beta),
                tenant("gamma", KEY_GAMMA, &gamma),
            ],
        ),
        Some(spans.clone()),
    )
    .await;
    let fetch = |key: &'static str, url: String, extra: &'static str| {
        let endpoint = server.url("/v1/primitives/http-fetch/execute");
        async move {
            let body = format!("{{\"url\":\"{url}\"{extra}}}");
            send(reqwest::Method::POST, &endpoint, Some(key), body.into_bytes(), &[]).await
        }
    };
    let detail = |reply: &Reply| {
        reply.problem(503, "unavailable")["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // Verified against the tenant's CA, and one handshake for twenty requests and two calls.
    let hello = format!("https://localhost:{}/hello", good.port);
    let ok = fetch(KEY_ACME, hello.clone(), ",\"times\":20").await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json()["body"], "hello over tls");
    let again = fetch(KEY_ACME, hello.clone(), "").await;
    assert_eq!(again.status, 200);
    assert_eq!(
        good.handshakes.load(Ordering::SeqCst),
        1,
        "the connection is pooled across requests and calls"
    );

    // Each bad case ends its request with its own error (a body's, as the guest's stream reports it).
    let cases = [
        (KEY_BETA, hello.clone(), "", "TlsCertificateError"),
        (
            KEY_ACME,
            format!("https://127.0.0.1:{}/hello", good.port),
            "",
            "TlsCertificateError",
        ),
        (
            KEY_ACME,
            format!("https://localhost:{}/hello", expired.port),
            "",
            "TlsCertificateError",
        ),
        (
            KEY_ACME,
            format!("https://localhost:{stall}/hello"),
            "",
            "ConnectionTimeout",
        ),
        (
            KEY_ACME,
            format!("https://localhost:{}/slow-head", good.port),
            "",
            "HttpResponseTimeout",
        ),
        (
            KEY_ACME,
            format!("https://localhost:{}/endless", good.port),
            "",
            "body size exceeds limit: 65536 bytes",
        ),
        (
            KEY_ACME,
            format!("https://localhost:{}/drip", good.port),
            "",
            "connection read timeout",
        ),
        (
            KEY_ACME,
            format!("https://localhost:{}/redirect", good.port),
            ",\"follow\":1",
            "HttpRequestDenied",
        ),
        (
            KEY_ACME,
            format!("http://localhost:{}/hello", good.port),
            "",
            "HttpRequestDenied",
        ),
    ];
    for (key, url, extra, error) in &cases {
        let reply = fetch(key, url.clone(), extra).await;
        let said = detail(&reply);
        assert!(said.contains(error), "{url}: expected {error}, got {said}");
    }

    // A tenant's connections are bounded: with its one connection busy, a second request
    // waits its connect timeout and fails; the first is unharmed.
    let slow = format!("https://localhost:{}/slow-head", good.port);
    let (first, second) = tokio::join!(fetch(KEY_GAMMA, slow.clone(), ""), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fetch(KEY_GAMMA, slow.clone(), "").await
    });
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    assert!(
        detail(&second).contains("ConnectionLimitReached"),
        "{}",
        detail(&second)
    );

    assert!(server.host.telemetry().flush(Duration::from_secs(30)));
    let finished = spans.get_finished_spans().expect("spans");
    let clients: Vec<&SpanData> = finished.iter().filter(|s| s.name == "HTTP GET").collect();
    let first = clients
        .iter()
        .find(|s| attribute(s, "url.full").as_deref() == Some(hello.as_str()))
        .expect("a client span of the good request");
    assert_eq!(attribute(first, "url.scheme").as_deref(), Some("https"));
    assert_eq!(attribute(first, "network.protocol.version").as_deref(), Some("1.1"));
    assert_eq!(attribute(first, "tls.protocol.version").as_deref(), Some("1.3"));
    let reused: Vec<&&SpanData> = clients
        .iter()
        .filter(|s| attribute(s, "http.connection.reused").as_deref() == Some("true"))
        .collect();
    assert!(reused.len() >= 20, "{} reused", reused.len());
    let micros = |s: &SpanData| s.end_time.duration_since(s.start_time).unwrap_or_default().as_micros();
    let fresh: Vec<u128> = clients
        .iter()
        .filter(|s| {
            attribute(s, "http.connection.reused").as_deref() == Some("false")
                && s.status == opentelemetry::trace::Status::Unset
        })
        .map(|s| micros(s))
        .collect();
    let mut warm: Vec<u128> = reused.iter().map(|s| micros(s)).collect();
    warm.sort_unstable();
    eprintln!(
        "loopback HTTPS request: new connection {fresh:?} µs; reused p50 {} µs",
        warm[warm.len() / 2]
    );
    let error_types: Vec<String> = clients.iter().filter_map(|s| attribute(s, "error.type")).collect();
    for expected in [
        "TLS-certificate-error",
        "connection-timeout",
        "HTTP-response-timeout",
        "HTTP-request-denied",
    ] {
        assert!(
            error_types.iter().any(|e| e == expected),
            "{expected} not in {error_types:?}"
        );
    }

    let metrics = server.host.telemetry().metrics().render();
    let count = |host: &str, status: &str, tenant: &str| {
        sample(
            &metrics,
            "http_client_requests_total",
            &[
                ("primitive_name", "http-fetch"),
                ("host", host),
                ("status", status),
                ("tenant", tenant),
            ],
        )
    };
    assert_eq!(count("denied", "denied", "acme"), Some(2.0), "{metrics}");
    assert_eq!(
        count(&format!("https://localhost:{}", good.port), "200", "acme"),
        Some(21.0 + 2.0),
        "{metrics}"
    );
    assert!(
        !metrics.contains("unlisted.example"),
        "an unlisted host never becomes a label"
    );
    assert!(server.stop().await);
}
