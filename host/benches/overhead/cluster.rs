//! Item 10, admitting one call: a tenant's local slot and token bucket, against the
//! shared state's one round trip to a real `redis-server` on loopback (`[cluster]`), alone
//! and eight at once over the one multiplexed connection (Redis pipelines them).

use criterion::Criterion;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tta_host::cluster::{Admission, Cluster, Quota, metrics::ClusterMetrics};
use tta_host::config::{ClusterConfig, Limits, Quotas, Secret, TenantConfig};
use tta_host::tenant::Tenant;

pub const ADMISSION_GROUP: &str = "admission";
pub const LOCAL: &str = "local";
pub const REDIS: &str = "redis";
pub const REDIS_8: &str = "redis_8_at_once";

/// A `redis-server` on a free loopback port, killed when dropped.
struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}

pub fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group(ADMISSION_GROUP);
    let config: TenantConfig =
        toml::from_str("id = \"bench\"\nquotas = { calls_per_second = 1e9, max_concurrent = 1000000 }\n")
            .expect("a tenant");
    let tenant = Arc::new(Tenant::new(&config, &Limits::default(), &Quotas::default(), 64));
    group.bench_function(LOCAL, |b| b.iter(|| drop(tenant.admit().expect("admitted"))));

    let Some(redis) = start_redis() else {
        eprintln!("admission: no redis-server (apt-get install redis-server); the shared path is not measured");
        return;
    };
    let rt = crate::runtime(1);
    let cluster = rt.block_on(async {
        let config = ClusterConfig {
            redis_url: Some(Secret(format!("redis://127.0.0.1:{}", redis.1))),
            timeout_ms: 1000,
            ..ClusterConfig::default()
        };
        let metrics = Arc::new(
            <ClusterMetrics as tta_host::telemetry::instruments::Instruments>::register(&prometheus::Registry::new()),
        );
        Cluster::start(&config, metrics).expect("cluster").expect("a redis_url")
    });
    let quota = Quota {
        max_concurrent: 1_000_000,
        rate: Some((1e9, 1_000_000)),
    };
    let admit = |cluster: Arc<Cluster>| async move {
        match cluster.admit("bench", quota).await {
            Admission::Admitted(lease) => drop(lease),
            other => panic!("the bench tenant is not admitted: {other:?}"),
        }
    };
    group.bench_function(REDIS, |b| b.to_async(&rt).iter(|| admit(Arc::clone(&cluster))));
    group.bench_function(REDIS_8, |b| {
        b.to_async(&rt).iter(|| async {
            let all: Vec<_> = (0..8).map(|_| admit(Arc::clone(&cluster))).collect();
            futures_util::future::join_all(all).await;
        });
    });
    group.finish();
    drop(cluster);
    drop(redis);
}
