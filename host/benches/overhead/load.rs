//! Items 5–7, under concurrent load: calls per second with 1 and 2 workers, the cost of a
//! `/metrics` scrape and what scraping does to call latency, and `serve` over real HTTP
//! against a bare hyper + wasmtime server.
//!
//! Each measure runs `iters` calls spread over concurrent tasks (`iter_custom`), so
//! criterion's time per iteration is the inverse of throughput; the latency of every single
//! call is kept for the percentiles in the summary.

use crate::{
    INPUT, bare, host_config, load_echo, plugin_path, record_latencies, runtime, sampled_host, telemetry,
    telemetry_with,
};
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tta_host::telemetry::SamplerKind;
use tta_host::{CallOptions, Host};

pub const SCALING_GROUP: &str = "scaling";
pub const WORKERS: [usize; 2] = [1, 2];
/// Tasks calling at once in the scaling and scraping measures.
const TASKS: u64 = 8;
pub const SCRAPE_GROUP: &str = "metrics_scrape";
pub const SCRAPE_SERIES: usize = 1_000;
pub const RENDER: &str = "render_1000_series";
pub const HTTP_GET: &str = "http_get_1000_series";
pub const CALLS_QUIET: &str = "calls_not_scraped";
pub const CALLS_SCRAPED: &str = "calls_scraped_10hz";
pub const SERVE_GROUP: &str = "serve";
pub const SERVE_TTA: &str = "tta_host";
pub const SERVE_BARE: &str = "bare_hyper_wasmtime";
/// The same call as an MCP `tools/call` to `/mcp` (the 2025-11-25 handshake era's headers).
pub const SERVE_MCP: &str = "tta_host_mcp";
/// Keep-alive connections the load generator holds open.
pub const CONNECTIONS: u64 = 8;
const API_KEY: &str = "bench-key";

pub fn bench(c: &mut Criterion) {
    scaling(c);
    scrape(c);
    serve(c);
}

/// A group for measures under load: few, long samples.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    group
}

/// Runs `total` calls of `call` spread over `tasks` tasks; returns the elapsed time and
/// records each call's latency under `key` (`group/id`).
async fn spread<F, Fut>(key: &str, total: u64, tasks: u64, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let n = total / tasks + u64::from(t < total % tasks);
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let start = Instant::now();
                    call().await;
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total as usize);
    for handle in handles {
        all.extend(handle.await.expect("task"));
    }
    let elapsed = started.elapsed();
    record_latencies(key, all);
    elapsed
}

/// `echo` calls from [`TASKS`] tasks on a runtime of `workers` threads, measured as
/// `group_name/id`.
pub fn concurrent_calls(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (group_name, id): (&str, &str),
    workers: usize,
    host: &Host,
) {
    let rt = runtime(workers);
    let echo = load_echo(&rt, host);
    let key = format!("{group_name}/{id}");
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let (host, echo) = (host.clone(), Arc::clone(&echo));
            rt.block_on(spread(&key, iters, TASKS, move || {
                let (host, echo) = (host.clone(), Arc::clone(&echo));
                async move {
                    let outcome = host.call_primitive(&echo, &INPUT, CallOptions::default()).await;
                    assert!(outcome.output.is_ok(), "echo failed under load");
                }
            }))
        })
    });
}

/// Item 5: the same load on 1 and 2 worker threads.
fn scaling(c: &mut Criterion) {
    let mut group = group(c, SCALING_GROUP);
    for workers in WORKERS {
        let id = format!("{workers}_workers");
        concurrent_calls(&mut group, (SCALING_GROUP, &id), workers, &sampled_host());
    }
    group.finish();
}

/// One real scrape: `GET /metrics` over a new connection, the body read to the end.
pub fn http_get_metrics(addr: SocketAddr) -> usize {
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics listener");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    assert!(response.starts_with(b"HTTP/1.1 200"), "scrape failed");
    response.len()
}

/// The samples (series) of an exposition: its lines that are not comments.
pub fn series(exposition: &str) -> usize {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// Item 6: a registry grown to [`SCRAPE_SERIES`] series by calls from many tenants, scraped.
fn scrape(c: &mut Criterion) {
    let host = Host::with_telemetry(
        host_config(),
        telemetry_with(SamplerKind::AlwaysOn, |t| {
            t.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        }),
    )
    .expect("host");
    let addr = host.telemetry().metrics_addr().expect("metrics listener");
    let metrics = Arc::clone(host.telemetry().metrics());
    let rt = runtime(0);
    let echo = load_echo(&rt, &host);
    let mut tenants = 0;
    while series(&metrics.render()) < SCRAPE_SERIES {
        let options = CallOptions {
            tenant: Some(format!("tenant-{tenants}")),
            ..CallOptions::default()
        };
        rt.block_on(host.call_primitive(&echo, &INPUT, options));
        tenants += 1;
    }

    let mut group = group(c, SCRAPE_GROUP);
    group.bench_function(RENDER, |b| b.iter(|| metrics.render()));
    group.bench_function(HTTP_GET, |b| b.iter(|| http_get_metrics(addr)));
    concurrent_calls(&mut group, (SCRAPE_GROUP, CALLS_QUIET), 2, &host);
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraper = {
        let (stop, scrapes) = (Arc::clone(&stop), Arc::clone(&scrapes));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                http_get_metrics(addr);
                scrapes.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    concurrent_calls(&mut group, (SCRAPE_GROUP, CALLS_SCRAPED), 2, &host);
    stop.store(true, Ordering::Relaxed);
    scraper.join().expect("scraper");
    group.finish();
    assert!(scrapes.load(Ordering::Relaxed) > 0, "the scraper never scraped");
}

/// A `serve` with `plugins/echo.wasm` shared and one tenant, on `rt`; its address.
fn start_tta_server(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> SocketAddr {
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    std::fs::copy(plugin_path("echo"), dir.join("plugins/echo.wasm")).expect("copy echo");
    let mut config = host_config();
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.plugins_dir = Some(dir.join("plugins"));
    config.server.reload_interval_ms = 0;
    config.tenants = vec![
        toml::from_str(&format!(
            "id = \"bench\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]",
            tta_host::tenant::hash_key(API_KEY)
        ))
        .expect("tenant"),
    ];
    let host = Host::with_telemetry(config, telemetry(SamplerKind::AlwaysOn)).expect("host");
    let server = rt.block_on(tta_host::server::Server::bind(host)).expect("server binds");
    let addr = server.local_addr().expect("addr");
    rt.spawn(server.run(std::future::pending()));
    addr
}

/// What `wasmtime serve` does per request, on this world: hyper, a fresh instance of
/// `echo` from the same pooling engine, the body in and the output out. No auth, no
/// limits beyond the engine's, no telemetry.
fn start_bare_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let engine = tta_host::engine::build_engine(&host_config()).expect("engine");
    let pre = bare::pre(&engine, "echo");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (engine, pre) = (engine.clone(), pre.clone());
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (engine, pre) = (engine.clone(), pre.clone());
                async move {
                    let body = request.into_body().collect().await?.to_bytes();
                    let mut store = bare::store(&engine);
                    let instance = pre.instantiate_async(&mut store).await.expect("instance");
                    let output = instance
                        .tta_primitives_primitive()
                        .call_execute(&mut store, &bare::context(), &body)
                        .await
                        .expect("call")
                        .expect("echo");
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(bytes::Bytes::from(output))))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Item 7: `POST /v1/primitives/echo/execute` from [`CONNECTIONS`] keep-alive connections,
/// against tta-host's `serve` and against the bare server, one runtime of 2 threads each;
/// and the same call as an MCP `tools/call` through `/mcp`, for what the protocol adds.
fn serve(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tta_rt = runtime(2);
    let tta = start_tta_server(&tta_rt, dir.path());
    let bare_rt = runtime(2);
    let bare = start_bare_server(&bare_rt);
    tta_host::tls::install_default_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS as usize)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let mut group = group(c, SERVE_GROUP);
    let mcp_call = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": String::from_utf8_lossy(&INPUT) } },
    })
    .to_string();
    for (id, rt, url) in [
        (SERVE_TTA, &tta_rt, format!("http://{tta}/v1/primitives/echo/execute")),
        (SERVE_BARE, &bare_rt, format!("http://{bare}/")),
        (SERVE_MCP, &tta_rt, format!("http://{tta}/mcp")),
    ] {
        let key = format!("{SERVE_GROUP}/{id}");
        let mcp = id == SERVE_MCP;
        let body = if mcp {
            mcp_call.clone().into_bytes()
        } else {
            INPUT.to_vec()
        };
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                rt.block_on(spread(&key, iters, CONNECTIONS, move || {
                    let mut request = client.post(&url).bearer_auth(API_KEY).body(body.clone());
                    if mcp {
                        request = request
                            .header("content-type", "application/json")
                            .header("accept", "application/json, text/event-stream")
                            .header("mcp-protocol-version", "2025-11-25");
                    }
                    async move {
                        let response = request.send().await.expect("request");
                        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
                        let body = response.bytes().await.expect("body");
                        if mcp {
                            let text = String::from_utf8_lossy(&body);
                            assert!(text.contains("\"isError\":false"), "a tool error: {text}");
                        } else {
                            assert_eq!(body.len(), INPUT.len());
                        }
                    }
                }))
            })
        });
    }
    group.finish();
}
