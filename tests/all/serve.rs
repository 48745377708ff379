//! `tta-host serve` end to end over real HTTP on loopback: authentication, tenants' access
//! and quotas, every error type as a problem document, uploads good and bad, hot reload
//! under load, trace propagation in and out, graceful shutdown, and a noisy neighbour.

use crate::telemetry::sample;
use crate::{config, fixture, plugin};
use opentelemetry_sdk::trace::{InMemorySpanExporter, InMemorySpanExporterBuilder};
use serde_json::Value as Json;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tta_host::config::TenantConfig;
use tta_host::server::Server;
use tta_host::telemetry::{ObservabilityConfig, Telemetry};
use tta_host::tenant::hash_key;
use tta_host::{Host, HostConfig};

pub const KEY_ACME: &str = "acme-secret-key";
pub const KEY_BETA: &str = "beta-secret-key";
pub const KEY_GAMMA: &str = "gamma-secret-key";

/// A tenant with access to every shared primitive and workflow.
pub fn tenant(id: &str, key: &str, extra: &str) -> TenantConfig {
    toml::from_str(&format!(
        "id = \"{id}\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nworkflows = [\"*\"]\n{extra}",
        hash_key(key)
    ))
    .expect("valid tenant")
}

/// A directory of copies of `plugins/<name>.wasm` (and fixtures), private to one test.
pub fn plugins_dir(test: &str, plugins: &[PathBuf]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    for path in plugins {
        std::fs::copy(path, dir.join("plugins").join(path.file_name().expect("file name"))).expect("copy");
    }
    dir
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub host: Host,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<bool>,
}

impl TestServer {
    pub async fn start(config: HostConfig, spans: Option<InMemorySpanExporter>) -> TestServer {
        Self::start_with(config, spans, false).await
    }

    /// A server that keeps its recent traces, as `tta-host serve` does (`/v1/traces`).
    pub async fn start_keeping_traces(config: HostConfig) -> TestServer {
        Self::start_with(config, None, true).await
    }

    async fn start_with(config: HostConfig, spans: Option<InMemorySpanExporter>, keep_traces: bool) -> TestServer {
        let mut t: ObservabilityConfig = config.telemetry.clone();
        t.metrics.listen = None;
        t.export.interval_ms = 20;
        let mut builder = Telemetry::builder(t);
        if keep_traces {
            builder = builder.keep_traces();
        }
        if let Some(spans) = spans {
            builder = builder.with_span_exporter("memory", spans);
        }
        let telemetry = builder.build().expect("telemetry");
        let host = Host::with_telemetry(config, telemetry).expect("host starts");
        let server = Server::bind(host.clone()).await.expect("server binds");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let done = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            host,
            stop: Some(stop),
            done,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting and waits for the drain; whether every request finished.
    pub async fn stop(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.done).await.expect("server task")
    }
}

/// The config of a server with `dir/plugins` shared and the given tenants.
pub fn server_config(dir: &Path, tenants: Vec<TenantConfig>) -> HostConfig {
    let mut c = config();
    c.server.listen = "127.0.0.1:0".parse().expect("addr");
    c.server.plugins_dir = Some(dir.join("plugins"));
    c.server.uploads_dir = Some(dir.join("uploads"));
    c.server.reload_interval_ms = 50;
    c.tenants = tenants;
    c
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    /// Asserts this is a problem document of `kind` with `status`, and returns it.
    pub fn problem(&self, status: u16, kind: &str) -> Json {
        assert_eq!(
            self.status,
            status,
            "expected {status} {kind}, got {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), "application/problem+json");
        let doc = self.json();
        assert_eq!(doc["type"], kind, "{doc}");
        assert_eq!(doc["status"], status);
        assert!(!doc["detail"].as_str().unwrap_or("").is_empty(), "{doc}");
        assert_eq!(doc["trace_id"].as_str().map(str::len), Some(32), "{doc}");
        assert_eq!(
            doc["correlation_id"].as_str(),
            Some(self.header("x-correlation-id").as_str())
        );
        doc
    }
}

pub async fn send(
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = client().request(method, url).body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(crate::http_client)
}

pub async fn execute(server: &TestServer, name: &str, key: &str, input: &str) -> Reply {
    send(
        reqwest::Method::POST,
        &server.url(&format!("/v1/primitives/{name}/execute")),
        Some(key),
        input.as_bytes().to_vec(),
        &[],
    )
    .await
}

pub async fn get(server: &TestServer, path: &str, key: Option<&str>) -> Reply {
    send(reqwest::Method::GET, &server.url(path), key, Vec::new(), &[]).await
}

fn names(listing: &Json, key: &str) -> Vec<String> {
    listing[key]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_tenant_isolation() {
    let dir = plugins_dir("auth", &[plugin("echo"), plugin("uppercase")]);
    let beta: TenantConfig = toml::from_str(&format!(
        "id = \"beta\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"uppercase\"]\nuploads = true\n",
        hash_key(KEY_BETA)
    ))
    .expect("tenant");
    let acme = tenant("acme", KEY_ACME, "uploads = true");
    let mut config = server_config(&dir, vec![acme, beta]);
    config.server.metrics = true;
    let server = TestServer::start(config, None).await;

    let ok = execute(&server, "echo", KEY_ACME, "{\"x\":1}").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"{\"x\":1}");
    assert_eq!(ok.header("content-type"), "application/json");

    let missing = send(
        reqwest::Method::POST,
        &server.url("/v1/primitives/echo/execute"),
        None,
        b"{}".to_vec(),
        &[],
    )
    .await;
    missing.problem(401, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), "Bearer");
    execute(&server, "echo", "not-a-key", "{}")
        .await
        .problem(401, "unauthorized");
    // The stored hash is not a key.
    execute(&server, "echo", &hash_key(KEY_ACME), "{}")
        .await
        .problem(401, "unauthorized");
    // Two keys are ambiguous, whichever comes first (found by fuzz target http_api).
    let two = send(
        reqwest::Method::POST,
        &server.url("/v1/primitives/echo/execute"),
        Some(KEY_ACME),
        b"{}".to_vec(),
        &[("authorization", "Bearer not-a-key")],
    )
    .await
    .problem(401, "unauthorized");
    assert!(
        two["detail"].as_str().is_some_and(|d| d.contains("more than one")),
        "{two}"
    );

    // beta may call only `uppercase`; `echo` exists but is not beta's: 404, as if it did not.
    execute(&server, "echo", KEY_BETA, "{}").await.problem(404, "not_found");
    let absent = execute(&server, "no-such", KEY_BETA, "{}")
        .await
        .problem(404, "not_found");
    let hidden = execute(&server, "echo", KEY_BETA, "{}").await.problem(404, "not_found");
    assert_eq!(
        absent["detail"].as_str().map(|d| d.replace("no-such", "X")),
        hidden["detail"].as_str().map(|d| d.replace("echo", "X")),
        "a hidden primitive answers exactly like a missing one"
    );
    assert_eq!(
        execute(&server, "uppercase", KEY_BETA, "{\"text\":\"a\"}").await.status,
        200
    );

    // acme's upload is acme's alone, even under a name beta cannot see otherwise.
    let upload = send(
        reqwest::Method::PUT,
        &server.url("/v1/primitives/echo"),
        Some(KEY_ACME),
        std::fs::read(plugin("echo")).expect("echo"),
        &[],
    )
    .await;
    assert_eq!(upload.status, 201, "{}", String::from_utf8_lossy(&upload.body));
    let acme_list = get(&server, "/v1/primitives", Some(KEY_ACME)).await.json();
    assert_eq!(names(&acme_list, "primitives"), ["echo", "uppercase"]);
    assert_eq!(acme_list["primitives"][0]["owner"], "tenant");
    let beta_list = get(&server, "/v1/primitives", Some(KEY_BETA)).await.json();
    assert_eq!(names(&beta_list, "primitives"), ["uppercase"]);
    execute(&server, "echo", KEY_BETA, "{}").await.problem(404, "not_found");
    // beta cannot delete or see acme's upload.
    send(
        reqwest::Method::DELETE,
        &server.url("/v1/primitives/echo"),
        Some(KEY_BETA),
        Vec::new(),
        &[],
    )
    .await
    .problem(404, "not_found");
    assert_eq!(execute(&server, "echo", KEY_ACME, "{}").await.status, 200);
    get(&server, "/v1/primitives", None).await.problem(401, "unauthorized");
    get(&server, "/v1/workflows", Some("bad"))
        .await
        .problem(401, "unauthorized");

    assert_eq!(get(&server, "/healthz", None).await.status, 200);
    assert_eq!(get(&server, "/readyz", None).await.status, 200);
    let scraped = get(&server, "/metrics", None).await;
    assert_eq!(scraped.status, 200, "/metrics on the API port with server.metrics");
    assert!(String::from_utf8_lossy(&scraped.body).contains("http_server_requests_total{"));
    get(&server, "/v2/nothing", Some(KEY_ACME))
        .await
        .problem(404, "no_route");

    let metrics = server.host.telemetry().metrics().render();
    let executed = |tenant: &str| {
        sample(
            &metrics,
            "primitive_executions_total",
            &[("primitive_name", "echo"), ("status", "success"), ("tenant", tenant)],
        )
    };
    assert_eq!(executed("acme"), Some(2.0), "{metrics}");
    assert_eq!(executed("beta"), None);
    assert_eq!(
        sample(
            &metrics,
            "http_server_rejected_total",
            &[("reason", "unauthorized"), ("tenant", "anonymous")]
        ),
        Some(6.0)
    );
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_type_is_a_problem_document_with_its_status() {
    let dir = plugins_dir(
        "errors",
        &[
            plugin("json-validate"),
            plugin("echo"),
            fixture("spin-forever"),
            fixture("memory-hog"),
            fixture("trap"),
            fixture("huge-output"),
        ],
    );
    let quotas =
        "[quotas]\nfuel = 50000000\nmax_memory_bytes = 8388608\nmax_request_bytes = 1000\nmax_response_bytes = 4096\n";
    let slow = "[quotas]\nfuel = 100000000000\ntimeout_ms = 300\nmax_response_bytes = 4096\n";
    let config = server_config(
        &dir,
        vec![tenant("acme", KEY_ACME, quotas), tenant("beta", KEY_BETA, slow)],
    );
    let server = TestServer::start(config, None).await;

    let invalid = execute(&server, "json-validate", KEY_ACME, "{\"name\":\"x\"}").await;
    let doc = invalid.problem(422, "invalid_input");
    assert_eq!(doc["retryable"], false);
    execute(&server, "spin-forever", KEY_ACME, "{}")
        .await
        .problem(422, "fuel_exhausted");
    execute(&server, "spin-forever", KEY_BETA, "{}")
        .await
        .problem(504, "deadline_exceeded");
    execute(&server, "memory-hog", KEY_ACME, "{}")
        .await
        .problem(422, "memory_limit");
    execute(&server, "trap", KEY_ACME, "{}").await.problem(500, "trap");
    execute(&server, "huge-output", KEY_BETA, "{}")
        .await
        .problem(500, "payload_too_large");
    execute(&server, "echo", KEY_ACME, &"x".repeat(1001))
        .await
        .problem(413, "payload_too_large");

    // The ids the client sent come back in the problem and the headers.
    let traced = send(
        reqwest::Method::POST,
        &server.url("/v1/primitives/trap/execute"),
        Some(KEY_ACME),
        b"{}".to_vec(),
        &[
            ("x-correlation-id", "req-42"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ],
    )
    .await;
    let doc = traced.problem(500, "trap");
    assert_eq!(doc["correlation_id"], "req-42");
    assert_eq!(doc["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert!(
        traced
            .header("traceparent")
            .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
    );

    // The next call of the same tenant is clean: nothing survived the failures.
    assert_eq!(execute(&server, "echo", KEY_ACME, "{}").await.status, 200);
    let metrics = server.host.telemetry().metrics().render();
    for (error_type, tenant) in [
        ("fuel_exhausted", "acme"),
        ("deadline_exceeded", "beta"),
        ("memory_limit", "acme"),
        ("trap", "acme"),
    ] {
        assert!(
            sample(
                &metrics,
                "primitive_errors_total",
                &[("error_type", error_type), ("tenant", tenant)]
            )
            .is_some(),
            "{error_type} for {tenant} not counted"
        );
    }
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_answer_429_and_capacity_503_without_queueing() {
    let dir = plugins_dir("quotas", &[plugin("echo"), fixture("spin-forever")]);
    let rate = "[quotas]\ncalls_per_second = 0.5\nburst = 2\n";
    let one_at_a_time = "[quotas]\nmax_concurrent = 1\nfuel = 100000000000\ntimeout_ms = 1500\n";
    let mut config = server_config(
        &dir,
        vec![tenant("acme", KEY_ACME, rate), tenant("beta", KEY_BETA, one_at_a_time)],
    );
    config.server.max_in_flight = Some(2);
    let server = Arc::new(TestServer::start(config, None).await);

    assert_eq!(execute(&server, "echo", KEY_ACME, "{}").await.status, 200);
    assert_eq!(execute(&server, "echo", KEY_ACME, "{}").await.status, 200);
    let limited = execute(&server, "echo", KEY_ACME, "{}").await;
    limited.problem(429, "rate_limited");
    let retry_after: u64 = limited.header("retry-after").parse().expect("Retry-After seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");

    // beta's slow call holds its one slot: its next call is refused at once.
    let slow = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { execute(&server, "spin-forever", KEY_BETA, "{}").await })
    };
    let busy = wait_for(|| {
        server
            .host
            .telemetry()
            .metrics()
            .render()
            .contains("http_server_active_requests 1")
    })
    .await;
    assert!(busy, "the slow call never started");
    let refused = execute(&server, "echo", KEY_BETA, "{}").await;
    refused.problem(429, "concurrency_limited");
    assert!(!refused.header("retry-after").is_empty());

    slow.await.expect("slow call").problem(504, "deadline_exceeded");
    let metrics = server.host.telemetry().metrics().render();
    assert_eq!(
        sample(
            &metrics,
            "http_server_rejected_total",
            &[("reason", "rate_limited"), ("tenant", "acme")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "http_server_rejected_total",
            &[("reason", "concurrency_limited"), ("tenant", "beta")]
        ),
        Some(1.0)
    );
    let server = Arc::into_inner(server).expect("one owner");
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_host_answers_503() {
    let dir = plugins_dir("capacity", &[fixture("spin-forever"), plugin("echo")]);
    let slow = "[quotas]\nfuel = 100000000000\ntimeout_ms = 1000\n";
    let mut config = server_config(&dir, vec![tenant("acme", KEY_ACME, slow), tenant("beta", KEY_BETA, "")]);
    config.server.max_in_flight = Some(1);
    let server = Arc::new(TestServer::start(config, None).await);
    let slow = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { execute(&server, "spin-forever", KEY_ACME, "{}").await })
    };
    assert!(
        wait_for(|| server
            .host
            .telemetry()
            .metrics()
            .render()
            .contains("http_server_active_requests 1"))
        .await
    );
    let overloaded = execute(&server, "echo", KEY_BETA, "{}").await;
    overloaded.problem(503, "overloaded");
    assert_eq!(overloaded.header("retry-after"), "1");
    slow.await.expect("slow").problem(504, "deadline_exceeded");
    assert_eq!(execute(&server, "echo", KEY_BETA, "{}").await.status, 200);
    let server = Arc::into_inner(server).expect("one owner");
    assert!(server.stop().await);
}

pub async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Sends `request` on a new connection and reads the answer until the server closes or 2 s pass.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request).await.expect("write");
    let mut buffer = vec![0; 64 * 1024];
    let mut answer = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// `bytes` with a custom section appended: the same component, another digest.
pub fn with_custom_section(bytes: &[u8], payload: &str) -> Vec<u8> {
    let name = b"tta-test";
    let mut section = vec![u8::try_from(name.len()).expect("short")];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    let mut len = section.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&section);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_validated_replaced_atomically_and_survive_a_restart() {
    let dir = plugins_dir("uploads", &[]);
    let mut config = server_config(
        &dir,
        vec![
            tenant("acme", KEY_ACME, "uploads = true\nmax_uploads = 2"),
            tenant("beta", KEY_BETA, ""),
        ],
    );
    config.server.max_upload_bytes = 4 << 20;
    let server = TestServer::start(config.clone(), None).await;
    let put = |name: &str, key: &str, bytes: Vec<u8>| {
        let url = server.url(&format!("/v1/primitives/{name}"));
        let key = key.to_owned();
        async move { send(reqwest::Method::PUT, &url, Some(&key), bytes, &[]).await }
    };
    let echo = std::fs::read(plugin("echo")).expect("echo");

    let created = put("echo", KEY_ACME, echo.clone()).await;
    assert_eq!(created.status, 201);
    let first = created.json();
    assert_eq!(first["language"], "Rust");
    assert_eq!(execute(&server, "echo", KEY_ACME, "hi").await.body, b"hi");

    let replaced = put("echo", KEY_ACME, with_custom_section(&echo, "v2")).await;
    assert_eq!(replaced.status, 200);
    assert_ne!(replaced.json()["digest"], first["digest"]);

    put("bad", KEY_ACME, b"hello, not wasm".to_vec())
        .await
        .problem(422, "not_wasm");
    put("core", KEY_ACME, wat::parse_str("(module)").expect("wat"))
        .await
        .problem(422, "core_module");
    put("empty", KEY_ACME, wat::parse_str("(component)").expect("wat"))
        .await
        .problem(422, "wrong_world");
    put("cut", KEY_ACME, echo[..echo.len() / 2].to_vec())
        .await
        .problem(422, "invalid_component");
    put("other", KEY_ACME, echo.clone()).await.problem(422, "name_mismatch");
    put("../x", KEY_ACME, echo.clone()).await.problem(404, "no_route");
    put("Bad Name", KEY_ACME, echo.clone())
        .await
        .problem(400, "invalid_name");
    // Refused by its declared length, before a byte of the body is read.
    let head = format!(
        "PUT /v1/primitives/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY_ACME}\r\nContent-Length: {}\r\n\r\n",
        5 << 20
    );
    let answer = raw_exchange(server.addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"type\":\"payload_too_large\""), "{answer}");
    put("echo", KEY_BETA, echo.clone())
        .await
        .problem(403, "uploads_forbidden");
    // A second upload fits `max_uploads = 2`; a third does not.
    let uppercase = std::fs::read(plugin("uppercase")).expect("uppercase");
    assert_eq!(put("uppercase", KEY_ACME, uppercase).await.status, 201);
    let word_count = std::fs::read(plugin("word-count")).expect("word-count");
    put("word-count", KEY_ACME, word_count)
        .await
        .problem(403, "upload_quota_exceeded");
    let url = server.url("/v1/primitives/uppercase");
    assert_eq!(
        send(reqwest::Method::DELETE, &url, Some(KEY_ACME), Vec::new(), &[])
            .await
            .status,
        204
    );
    // None of the rejected ones was stored or registered.
    let stored: Vec<String> = std::fs::read_dir(dir.join("uploads/acme"))
        .expect("uploads dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored, ["echo.wasm"]);
    assert_eq!(execute(&server, "echo", KEY_ACME, "still").await.body, b"still");
    assert!(server.stop().await);

    // A restarted host serves the stored upload (the second version).
    let server = TestServer::start(config, None).await;
    let listing = get(&server, "/v1/primitives", Some(KEY_ACME)).await.json();
    assert_eq!(listing["primitives"][0]["digest"], replaced.json()["digest"]);
    let deleted = send(
        reqwest::Method::DELETE,
        &server.url("/v1/primitives/echo"),
        Some(KEY_ACME),
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(deleted.status, 204);
    execute(&server, "echo", KEY_ACME, "{}").await.problem(404, "not_found");
    assert!(!dir.join("uploads/acme/echo.wasm").exists());
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_request() {
    let dir = plugins_dir("reload", &[plugin("echo")]);
    let server = Arc::new(TestServer::start(server_config(&dir, vec![tenant("acme", KEY_ACME, "")]), None).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (server, stop, ok, failed) = (
            Arc::clone(&server),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = execute(&server, "echo", KEY_ACME, "ping").await;
                if reply.status == 200 && reply.body == b"ping" {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let echo = std::fs::read(plugin("echo")).expect("echo");
    let target = dir.join("plugins/echo.wasm");
    let digest_of = |server: Arc<TestServer>| async move {
        let listing = get(&server, "/v1/primitives", Some(KEY_ACME)).await.json();
        listing["primitives"][0]["digest"].as_str().expect("digest").to_owned()
    };
    let original = digest_of(Arc::clone(&server)).await;
    for round in 0..3 {
        // A broken file in place of a good one: reported, the old version keeps serving.
        std::fs::write(&target, b"\0asm garbage").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(digest_of(Arc::clone(&server)).await.len(), 64);
        // A new valid version, written atomically.
        let next = with_custom_section(&echo, &format!("round {round}"));
        let temp = dir.join("plugins/.echo.tmp");
        std::fs::write(&temp, &next).expect("write");
        std::fs::rename(&temp, &target).expect("rename");
        let expected = hex::encode(sha2::Sha256::digest(&next));
        let swapped = {
            let mut swapped = false;
            for _ in 0..100 {
                if digest_of(Arc::clone(&server)).await == expected {
                    swapped = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            swapped
        };
        assert!(swapped, "round {round}: the new version was not picked up");
    }
    assert_ne!(digest_of(Arc::clone(&server)).await, original);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("hot reload under load: {ok} requests succeeded, {failed} failed, 3 reloads, 3 broken files");
    assert_eq!(failed, 0);
    assert!(ok > 20, "only {ok} requests ran");
    let metrics = server.host.telemetry().metrics().render();
    // Each broken file is reported (more than once if a scan caught it half-written).
    let rejected = sample(
        &metrics,
        "plugin_reloads_total",
        &[("kind", "primitive"), ("result", "rejected")],
    );
    assert!(rejected.is_some_and(|n| n >= 3.0), "rejected reloads: {rejected:?}");
    let server = Arc::into_inner(server).expect("one owner");
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_and_tenant_come_from_headers_and_key() {
    let dir = plugins_dir("propagation", &[fixture("context-probe")]);
    let spans = InMemorySpanExporterBuilder::new().build();
    let server = TestServer::start(
        server_config(&dir, vec![tenant("acme", KEY_ACME, "")]),
        Some(spans.clone()),
    )
    .await;
    let reply = send(
        reqwest::Method::POST,
        &server.url("/v1/primitives/context-probe/execute"),
        Some(KEY_ACME),
        br#"{"tenant":"beta"}"#.to_vec(),
        &[
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("tracestate", "vendor=x"),
            ("x-correlation-id", "order-7"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let seen = reply.json();
    assert_eq!(seen["tenant"], "acme", "the tenant comes from the key, not the body");
    assert_eq!(seen["correlation_id"], "order-7");
    assert_eq!(seen["tracestate"], "vendor=x");
    let guest_traceparent = seen["traceparent"].as_str().expect("traceparent").to_owned();
    assert!(guest_traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert_eq!(reply.header("traceparent"), guest_traceparent);
    assert_eq!(reply.header("x-correlation-id"), "order-7");

    // Without ids, new ones are made and returned.
    let fresh = execute(&server, "context-probe", KEY_ACME, "{}").await;
    assert_eq!(fresh.header("x-correlation-id").len(), 36);
    assert_eq!(fresh.header("traceparent").len(), 55);

    assert!(server.host.telemetry().flush(Duration::from_secs(30)));
    let finished = spans.get_finished_spans().expect("spans");
    let call = finished
        .iter()
        .find(|s| {
            s.span_context.trace_id().to_string() == "4bf92f3577b34da6a3ce929d0e0e4736"
                && s.name == "context-probe.execute"
        })
        .expect("the call span is in the caller's trace");
    assert_eq!(call.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(call.parent_span_is_remote);
    let tenant = call
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "tenant.id")
        .map(|kv| kv.value.to_string());
    assert_eq!(tenant.as_deref(), Some("acme"));
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let dir = plugins_dir("shutdown", &[fixture("spin-forever")]);
    let slow = "[quotas]\nfuel = 100000000000\ntimeout_ms = 700\n";
    let server = TestServer::start(server_config(&dir, vec![tenant("acme", KEY_ACME, slow)]), None).await;
    let url = server.url("/v1/primitives/spin-forever/execute");
    let in_flight = tokio::spawn({
        let url = url.clone();
        async move { send(reqwest::Method::POST, &url, Some(KEY_ACME), b"{}".to_vec(), &[]).await }
    });
    let host = server.host.clone();
    assert!(
        wait_for(|| host
            .telemetry()
            .metrics()
            .render()
            .contains("http_server_active_requests 1"))
        .await
    );
    let began = Instant::now();
    let drained = server.stop().await;
    assert!(drained, "the in-flight request did not finish within the grace period");
    // The request was answered in full (its deadline is its answer), not cut off.
    in_flight.await.expect("client").problem(504, "deadline_exceeded");
    eprintln!("graceful shutdown drained in {:?}", began.elapsed());
    // Nothing listens any more.
    let refused = crate::http_client()
        .post(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "the listener is still accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_a_connection_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = plugins_dir("slowloris", &[plugin("echo")]);
    let mut config = server_config(&dir, vec![tenant("acme", KEY_ACME, "")]);
    config.server.header_timeout_ms = 300;
    config.server.body_timeout_ms = 300;
    let server = TestServer::start(config, None).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    socket
        .write_all(b"POST /v1/primitives/echo/execute HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // ... and never finishes the headers. The server closes the connection.
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server kept a half-sent request open");
    // Headers in full, then a body that never comes: 408, and the slot is free again.
    let head = format!(
        "POST /v1/primitives/echo/execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY_ACME}\r\nContent-Length: 100\r\n\r\nabc"
    );
    let answer = raw_exchange(server.addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"type\":\"request_timeout\""), "{answer}");
    assert_eq!(execute(&server, "echo", KEY_ACME, "ok").await.status, 200);
    assert!(server.stop().await);
}

/// Sends one keep-alive request on `socket` and reads its answer (head and a body of its
/// `content-length`), leaving the connection open.
async fn request_on(socket: &mut tokio::net::TcpStream, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    socket.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "the connection closed mid-answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

/// Whether the server closes `socket` (end of stream or reset) within `within`.
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(within, socket.read_to_end(&mut rest)).await,
        Ok(Ok(_) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_capped_and_cannot_starve_connected_clients() {
    use tokio::io::AsyncReadExt;
    let dir = plugins_dir("connection-cap", &[plugin("echo")]);
    let mut config = server_config(&dir, vec![tenant("acme", KEY_ACME, "")]);
    config.server.max_connections = 8;
    // Long enough that the connected client never idles out between its requests on a busy machine.
    config.server.header_timeout_ms = 3_000;
    let server = TestServer::start(config, None).await;
    let request = format!(
        "POST /v1/primitives/echo/execute HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY_ACME}\r\nContent-Length: 4\r\n\r\nping"
    );
    // A client connected before the flood.
    let mut client = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let answer = request_on(&mut client, request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ping"),
        "{answer}"
    );
    // Connections that send nothing take every other slot.
    let mut stalled = Vec::new();
    for _ in 0..7 {
        stalled.push(tokio::net::TcpStream::connect(server.addr).await.expect("connect"));
    }
    // One more is told why and closed, without costing a slot.
    let mut extra = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let mut refused = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), extra.read_to_end(&mut refused)).await;
    assert!(read.is_ok(), "a connection past the cap was held open");
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("\"type\":\"too_many_connections\""), "{refused}");
    // The connected client is served all the while.
    for _ in 0..3 {
        let answer = request_on(&mut client, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // The stalled ones are closed by the header timeout, and new clients get in again.
    for socket in &mut stalled {
        assert!(
            closed_within(socket, Duration::from_secs(15)).await,
            "a connection that sent nothing was held open"
        );
    }
    assert_eq!(execute(&server, "echo", KEY_ACME, "ok").await.status, 200);
    // A keep-alive connection left idle is closed by the same timeout.
    assert!(
        closed_within(&mut client, Duration::from_secs(15)).await,
        "an idle keep-alive connection was held open"
    );
    let metrics = server.host.telemetry().metrics().render();
    assert!(
        sample(
            &metrics,
            "http_server_rejected_total",
            &[("reason", "too_many_connections")]
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(server.stop().await);
}

/// Latency of `tenant`'s echo calls, p50 and p99, over `n` sequential requests.
async fn latencies(server: &TestServer, key: &str, n: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(n);
    let mut failures = 0;
    for _ in 0..n {
        let began = Instant::now();
        let reply = execute(server, "echo", key, "{\"payload\":\"0123456789abcdef\"}").await;
        times.push(began.elapsed());
        if reply.status != 200 {
            failures += 1;
        }
    }
    times.sort();
    (times[n / 2], times[n * 99 / 100], failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_neighbour_load_test() {
    let dir = plugins_dir(
        "noisy",
        &[
            plugin("echo"),
            fixture("spin-forever"),
            fixture("memory-hog"),
            fixture("telemetry-flood"),
        ],
    );
    let noisy = "[quotas]\nfuel = 100000000000\ntimeout_ms = 100\nmax_concurrent = 3\nmax_memory_bytes = 16777216\n";
    let config = server_config(
        &dir,
        vec![tenant("good", KEY_ACME, ""), tenant("noisy", KEY_BETA, noisy)],
    );
    let server = Arc::new(TestServer::start(config, None).await);
    let n = 1000;
    latencies(&server, KEY_ACME, 20).await;
    let (alone50, alone99, alone_failed) = latencies(&server, KEY_ACME, n).await;

    let stop = Arc::new(AtomicBool::new(false));
    let noisy_calls = Arc::new(AtomicU64::new(0));
    let mut neighbours = Vec::new();
    for target in ["spin-forever", "memory-hog", "telemetry-flood"] {
        let (server, stop, count) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&noisy_calls));
        neighbours.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = execute(&server, target, KEY_BETA, "{}").await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (noisy50, noisy99, noisy_failed) = latencies(&server, KEY_ACME, n).await;
    stop.store(true, Ordering::Relaxed);
    for n in neighbours {
        n.await.expect("neighbour");
    }
    let report = format!(
        "noisy neighbour (2 cores, loopback, {n} sequential echo calls of the good tenant):\n  \
         alone:              p50 {alone50:?}  p99 {alone99:?}\n  \
         with noisy tenant:  p50 {noisy50:?}  p99 {noisy99:?}  ({} noisy calls: infinite loops, memory bombs, floods)\n",
        noisy_calls.load(Ordering::Relaxed)
    );
    eprintln!("{report}");
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("noisy-neighbour.txt"),
        &report,
    );
    assert_eq!(
        alone_failed + noisy_failed,
        0,
        "the good tenant's calls must all succeed"
    );
    assert!(noisy_calls.load(Ordering::Relaxed) > 0);
    let server = Arc::into_inner(server).expect("one owner");
    assert!(server.stop().await);
}

/// A `tta-host serve` process, stopped with SIGTERM when dropped.
struct ServeProcess {
    child: std::process::Child,
    addr: String,
}

impl ServeProcess {
    fn start(config: &Path, envs: &[(&str, &str)], extra: &[&str]) -> ServeProcess {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tta-host"))
            .arg("--config")
            .arg(config)
            .args(extra)
            .arg("serve")
            .envs(envs.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tta-host starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("tta-host exited before serving")
                .expect("stderr line");
            if let Some(addr) = line.strip_prefix("tta-host serving on http://") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stderr so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProcess { child, addr }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("tta-host exits")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_across_two_hosts_is_one_trace() {
    use crate::otlp_receiver::{self, attr, id64, id128, text};
    let (collector, received) = otlp_receiver::grpc().await;
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve/two-hosts");
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["b/plugins", "a/plugins", "a/workflows"] {
        std::fs::create_dir_all(root.join(dir)).expect("dir");
    }
    std::fs::copy(plugin("echo"), root.join("b/plugins/echo.wasm")).expect("copy");
    std::fs::copy(plugin("uppercase"), root.join("a/plugins/uppercase.wasm")).expect("copy");
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let host_config = |tenant: &str, key: &str, workflows: bool| {
        format!(
            "cache_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\nplugins_dir = \"plugins\"\n{}\n\
             [[tenants]]\nid = \"{tenant}\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nworkflows = [\"*\"]\n",
            cache.display(),
            if workflows { "workflows_dir = \"workflows\"" } else { "" },
            hash_key(key)
        )
    };
    std::fs::write(root.join("b/tta.toml"), host_config("edge", KEY_BETA, false)).expect("config");
    std::fs::write(root.join("a/tta.toml"), host_config("shop", KEY_ACME, true)).expect("config");
    let otlp = format!("http://{collector}");
    let flags = |service: &'static str| {
        vec![
            "--otlp-endpoint".to_owned(),
            otlp.clone(),
            "--otlp-protocol".to_owned(),
            "grpc".to_owned(),
            "--service-name".to_owned(),
            service.to_owned(),
            "--no-metrics".to_owned(),
        ]
    };
    let b_flags = flags("host-b");
    let b = ServeProcess::start(
        &root.join("b/tta.toml"),
        &[],
        &b_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    std::fs::write(
        root.join("a/workflows/relay.toml"),
        format!(
            "name = \"relay\"\nroot = \"main\"\n[steps.main]\nsequential = [\"shout\", \"far-echo\"]\n\
             [steps.shout]\nprimitive = \"uppercase\"\n\
             [steps.far-echo]\nurl = \"http://{}/v1/primitives/echo/execute\"\napi_key_env = \"EDGE_KEY\"\n",
            b.addr
        ),
    )
    .expect("workflow");
    let a_flags = flags("host-a");
    let a = ServeProcess::start(
        &root.join("a/tta.toml"),
        &[("EDGE_KEY", KEY_BETA)],
        &a_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let reply = send(
        reqwest::Method::POST,
        &format!("http://{}/v1/workflows/relay/run", a.addr),
        Some(KEY_ACME),
        br#"{"text":"across hosts"}"#.to_vec(),
        &[
            ("traceparent", "00-11111111111111112222222222222222-3333333333333333-01"),
            ("x-correlation-id", "two-hosts-1"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["text"], "ACROSS HOSTS");
    // A remote failure comes back as the remote problem's type.
    let missing = send(
        reqwest::Method::POST,
        &format!("http://{}/v1/workflows/relay/run", a.addr),
        Some(KEY_ACME),
        b"not json".to_vec(),
        &[],
    )
    .await;
    assert!(missing.status >= 400, "{}", String::from_utf8_lossy(&missing.body));

    assert!(a.stop().success(), "host A exits cleanly on SIGTERM");
    assert!(b.stop().success(), "host B exits cleanly on SIGTERM");

    let trace = 0x1111_1111_1111_1111_2222_2222_2222_2222_u128;
    let spans: Vec<_> = received
        .spans()
        .into_iter()
        .filter(|(_, s)| id128(&s.trace_id) == trace)
        .collect();
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|(svc, s)| svc == service && s.name == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}` span from {service} in trace; got {:?}",
                    spans
                        .iter()
                        .map(|(svc, s)| format!("{svc}:{}", s.name))
                        .collect::<Vec<_>>()
                )
            })
    };
    let workflow = find("host-a", "workflow.relay");
    assert_eq!(id64(&workflow.parent_span_id), 0x3333_3333_3333_3333);
    let client = find("host-a", "far-echo");
    assert_eq!(client.kind, 3, "the remote step is a client span");
    assert_eq!(
        attr(&client.attributes, "http.response.status_code").map(|v| text(&v)),
        Some("200".to_owned())
    );
    let remote = find("host-b", "echo.execute");
    assert_eq!(
        id64(&remote.parent_span_id),
        id64(&client.span_id),
        "host B's call span is the child of host A's client span"
    );
    assert_eq!(
        attr(&remote.attributes, "tenant.id").map(|v| text(&v)),
        Some("edge".to_owned()),
        "host B's tenant is the one its key belongs to"
    );
    assert_eq!(
        attr(&remote.attributes, "correlation_id").map(|v| text(&v)),
        Some("two-hosts-1".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_an_uploads_directory_see_each_others_uploads() {
    let dir = plugins_dir("shared-uploads", &[]);
    let config = server_config(&dir, vec![tenant("acme", KEY_ACME, "uploads = true")]);
    let first = TestServer::start(config.clone(), None).await;
    let second = TestServer::start(config, None).await;
    let uploaded = send(
        reqwest::Method::PUT,
        &first.url("/v1/primitives/echo"),
        Some(KEY_ACME),
        std::fs::read(plugin("echo")).expect("echo"),
        &[],
    )
    .await;
    assert_eq!(uploaded.status, 201);
    let mut seen = false;
    for _ in 0..200 {
        if execute(&second, "echo", KEY_ACME, "x").await.status == 200 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the second replica never loaded the upload");
    let deleted = send(
        reqwest::Method::DELETE,
        &first.url("/v1/primitives/echo"),
        Some(KEY_ACME),
        Vec::new(),
        &[],
    )
    .await;
    assert_eq!(deleted.status, 204);
    let mut gone = false;
    for _ in 0..200 {
        if execute(&second, "echo", KEY_ACME, "x").await.status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the second replica kept a deleted upload");
    assert!(first.stop().await && second.stop().await);
}
