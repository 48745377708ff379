//! Item 9: calls while the telemetry backends misbehave. The same sampled `echo` load (2
//! workers, 8 tasks) with spans and logs exported over OTLP/gRPC to a collector that works,
//! refuses connections, accepts and never answers, answers after 2 s, or answers errors;
//! and with `/metrics` scraped by 4 scrapers back to back or by one that reads a byte every
//! millisecond. The calls should not notice: the export runs on its own thread behind a
//! bounded queue, and a scrape renders without the call path's locks.

use crate::load::{concurrent_calls, group, http_get_metrics, series};
use crate::otlp_receiver::{self, Behaviour};
use crate::{NullExporter, host_config, runtime};
use criterion::Criterion;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tta_host::Host;
use tta_host::telemetry::{Exporter, ObservabilityConfig, OtlpProtocol, SamplerKind, Telemetry};

pub const GROUP: &str = "backends";
/// The collector conditions, by measure id and label.
pub const COLLECTORS: [(&str, &str); 6] = [
    ("no_collector", "no collector (spans to a null exporter)"),
    ("collector_healthy", "collector healthy"),
    ("collector_refusing", "collector refusing connections"),
    ("collector_silent", "collector accepting, never answering"),
    ("collector_slow", "collector answering after 2 s"),
    ("collector_failing", "collector answering UNAVAILABLE"),
];
pub const SCRAPERS: [(&str, &str); 2] = [
    (
        "scraped_by_4_back_to_back",
        "/metrics scraped by 4 scrapers back to back",
    ),
    ("scraped_slowly", "/metrics read one byte per ms by a slow scraper"),
];

pub fn bench(c: &mut Criterion) {
    let receivers = runtime(1);
    let mut group = group(c, GROUP);
    for (id, _) in COLLECTORS {
        let endpoint = match id {
            "no_collector" => None,
            "collector_healthy" => Some(receivers.block_on(otlp_receiver::grpc()).0),
            "collector_refusing" => Some(otlp_receiver::closed_port()),
            "collector_silent" => Some(receivers.block_on(otlp_receiver::silent())),
            "collector_slow" => Some(
                receivers
                    .block_on(otlp_receiver::grpc_behaving(Behaviour::Slow(Duration::from_secs(2))))
                    .0,
            ),
            _ => Some(receivers.block_on(otlp_receiver::grpc_behaving(Behaviour::Failing)).0),
        };
        let host = Host::with_telemetry(host_config(), telemetry(endpoint, false)).expect("host");
        concurrent_calls(&mut group, (GROUP, id), 2, &host);
        // Bounded by `export.shutdown_timeout_ms` whatever the collector does.
        let _ = host.telemetry().shutdown();
    }
    for (id, _) in SCRAPERS {
        let host = Host::with_telemetry(host_config(), telemetry(None, true)).expect("host");
        let addr = host.telemetry().metrics_addr().expect("metrics listener");
        assert!(series(&host.telemetry().metrics().render()) > 0);
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let scrapers: Vec<_> = (0..if id == "scraped_slowly" { 1 } else { 4 })
            .map(|_| {
                let (stop, scrapes, slow) = (Arc::clone(&stop), Arc::clone(&scrapes), id == "scraped_slowly");
                std::thread::spawn(move || {
                    // At least one scrape each, however soon the calls are done (test mode).
                    loop {
                        let answered = if slow {
                            slow_scrape(addr, &stop)
                        } else {
                            http_get_metrics(addr) > 0
                        };
                        if answered {
                            scrapes.fetch_add(1, Ordering::Relaxed);
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                })
            })
            .collect();
        concurrent_calls(&mut group, (GROUP, id), 2, &host);
        stop.store(true, Ordering::Relaxed);
        for scraper in scrapers {
            scraper.join().expect("scraper");
        }
        assert!(scrapes.load(Ordering::Relaxed) > 0, "{id}: the scrapers scraped");
    }
    group.finish();
}

/// Telemetry sampling every call, with spans and logs to the collector at `endpoint` (to a
/// null exporter without one) and a `/metrics` listener when `metrics`.
fn telemetry(endpoint: Option<SocketAddr>, metrics: bool) -> Telemetry {
    let mut config = ObservabilityConfig::default();
    config.traces.sampler = SamplerKind::AlwaysOn;
    config.metrics.listen = metrics.then(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    config.export.shutdown_timeout_ms = 1_000;
    config.service_name = "tta-bench".into();
    match endpoint {
        Some(endpoint) => {
            config.otlp.endpoint = Some(format!("http://{endpoint}"));
            config.otlp.protocol = OtlpProtocol::Grpc;
            config.otlp.timeout_ms = 500;
            config.traces.exporters = vec![Exporter::Otlp];
            config.logs.exporters = vec![Exporter::Otlp];
            Telemetry::builder(config)
        }
        None => Telemetry::builder(config).with_span_exporter("null", NullExporter::default()),
    }
    .build()
    .expect("telemetry starts")
}

/// One scrape read a byte at a time, a millisecond apart (a scraper on a bad link); whether
/// it was answered `200`.
fn slow_scrape(addr: SocketAddr, stop: &AtomicBool) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut status = Vec::new();
    let mut byte = [0u8; 1];
    while (status.len() < 12 || !stop.load(Ordering::Relaxed)) && matches!(stream.read(&mut byte), Ok(1)) {
        if status.len() < 12 {
            status.push(byte[0]);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    status.starts_with(b"HTTP/1.1 200")
}
