//! A cluster of `tta-host serve` processes sharing tenants' quotas through a real Redis
//! (Debian's `redis-server`), behind a real nginx, all on loopback: the shared rate holds
//! across three replicas, `max_concurrent` holds across them, a replica killed mid-call
//! frees its leases within the TTL, and a Redis outage falls back by policy, is counted,
//! and ends when Redis returns.

use crate::process::{Nginx, ServeProcess, free_port, require, write_config_with};
use crate::serve::plugins_dir;
use crate::{fixture, http_client, plugin};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tta_host::tenant::hash_key;

const KEY_METERED: &str = "tta_metered_cluster_key";
const KEY_NARROW: &str = "tta_narrow_cluster_key";
const KEY_OTHER: &str = "tta_other_cluster_key";
const KEY_UPLOADER: &str = "tta_uploader_cluster_key";

/// A `redis-server` on loopback with nothing persisted, killed when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        require("redis-server", "redis-server");
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits until it answers `PING`.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    }

    /// Kills it, as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An nginx on loopback balancing over `upstreams` (round robin), stopped when dropped.
fn balancer(dir: &Path, upstreams: &[&ServeProcess]) -> Nginx {
    let servers: String = upstreams
        .iter()
        .map(|s| format!("    server {} max_fails=0;\n", s.addr))
        .collect();
    Nginx::start(dir, |port| {
        format!(
            "upstream tta {{\n{servers}    keepalive 16;\n  }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://tta;\n\
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
             proxy_next_upstream off;\n    }}\n  }}\n"
        )
    })
}

fn tenants() -> String {
    format!(
        "[[tenants]]\nid = \"metered\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n\
         quotas = {{ calls_per_second = 50.0, burst = 5, max_concurrent = 64 }}\n\n\
         [[tenants]]\nid = \"narrow\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n\
         quotas = {{ max_concurrent = 4, timeout_ms = 4000, fuel = 1000000000000 }}\n\n\
         [[tenants]]\nid = \"other\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nworkflows = [\"*\"]\n\
         quotas = {{ calls_per_second = 1000.0, max_concurrent = 64 }}\n\n\
         [[tenants]]\nid = \"uploader\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nworkflows = [\"*\"]\n\
         uploads = true\nmax_uploads = 4\n",
        hash_key(KEY_METERED),
        hash_key(KEY_NARROW),
        hash_key(KEY_OTHER),
        hash_key(KEY_UPLOADER),
    )
}

/// A workflow whose one step's outputs are cached in the cluster's Redis.
const CACHED_WORKFLOW: &str = "name = \"cached\"\n[steps.main]\n\
    cache = { step = \"echo\", ttl_ms = 60000, store = \"redis\" }\n[steps.echo]\nprimitive = \"echo\"\n";

/// A workflow whose failing step is behind a breaker shared by the cluster.
const GUARDED_WORKFLOW: &str = "name = \"guarded\"\n[steps.main]\n\
    circuit_breaker = { step = \"crash\", failures = 2, window_ms = 60000, cooldown_ms = 60000, shared = true }\n\
    [steps.crash]\nprimitive = \"trap\"\n";

/// A workflow behind a shared breaker whose cooldown ends within the test, for the trial.
const PROBED_WORKFLOW: &str = "name = \"probed\"\n[steps.main]\n\
    circuit_breaker = { step = \"crash\", failures = 2, window_ms = 60000, cooldown_ms = 1000, shared = true }\n\
    [steps.crash]\nprimitive = \"trap\"\n";

/// Starts a replica in its own directory (its own plugins, uploads and config).
async fn replica(test: &str, n: usize, redis: &str, policy: &str) -> ServeProcess {
    replica_with(test, n, redis, policy, None).await
}

/// [`replica`]; with `shared_uploads`, its uploads directory is that one (shared with the
/// other replicas, as a volume would be), polled every so many ms.
async fn replica_with(
    test: &str,
    n: usize,
    redis: &str,
    policy: &str,
    shared_uploads: Option<(&Path, u64)>,
) -> ServeProcess {
    let dir = plugins_dir(
        &format!("{test}-{n}"),
        &[plugin("echo"), fixture("spin-forever"), fixture("trap")],
    );
    let cluster = format!(
        "[limits]\nfuel = 1000000000000\ntimeout_ms = 30000\n\n\
         [cluster]\nredis_url = \"{redis}\"\non_unavailable = \"{policy}\"\ntimeout_ms = 100\n\
         retry_ms = 300\nlease_ttl_ms = 1500\n"
    );
    let config = write_config_with(
        &dir,
        &cluster,
        "max_in_flight = 64\nworkflows_dir = \"workflows\"",
        "",
        &tenants(),
    );
    std::fs::create_dir_all(dir.join("workflows")).expect("workflows dir");
    std::fs::write(dir.join("workflows/cached.toml"), CACHED_WORKFLOW).expect("workflow");
    std::fs::write(dir.join("workflows/guarded.toml"), GUARDED_WORKFLOW).expect("workflow");
    std::fs::write(dir.join("workflows/probed.toml"), PROBED_WORKFLOW).expect("workflow");
    if let Some((uploads, poll_ms)) = shared_uploads {
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text
            .replace(
                "uploads_dir = \"uploads\"",
                &format!("uploads_dir = {:?}", uploads.display().to_string()),
            )
            .replace("reload_interval_ms = 100", &format!("reload_interval_ms = {poll_ms}"));
        std::fs::write(&config, text).expect("config");
    }
    ServeProcess::start(&dir, &config).await
}

/// Posts `{"text": "hello"}` to `url` with `key`; the status (0 when no answer) and the body.
pub(crate) async fn post(url: &str, key: &str) -> (u16, String) {
    match http_client()
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(r#"{"text": "hello"}"#)
        .timeout(Duration::from_secs(30))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Drives `per_second` calls of `key` at `url` for `duration`, each in its own task;
/// returns every status.
async fn drive(url: &str, key: &str, per_second: u32, duration: Duration) -> Vec<u16> {
    drive_timed(url, key, per_second, duration).await.0
}

/// [`drive`], with the time from the first call sent to the last answer received: the
/// window the calls were admitted in (longer than `duration` when they queue).
async fn drive_timed(url: &str, key: &str, per_second: u32, duration: Duration) -> (Vec<u16>, Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        tick.tick().await;
        let (url, key) = (url.to_owned(), key.to_owned());
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = post(&url, &key).await.0;
            (status, sent, Instant::now())
        }));
    }
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.expect("a call task"));
    }
    // The admissions happened between the first admitted call's sending and the last
    // admitted call's answer; refused calls queued at the end do not stretch it.
    let admitted = answered.iter().filter(|(status, ..)| *status == 200);
    let first = admitted.clone().map(|(_, sent, _)| *sent).min().unwrap_or(start);
    let last = admitted.map(|(.., done)| *done).max().unwrap_or(start);
    (
        answered.iter().map(|(status, ..)| *status).collect(),
        last.duration_since(first),
    )
}

/// `n` calls of `key` at `url`, all started at once.
fn at_once(url: &str, key: &'static str, n: usize) -> Vec<tokio::task::JoinHandle<(u16, String)>> {
    (0..n)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move { post(&url, key).await })
        })
        .collect()
}

async fn answers(calls: Vec<tokio::task::JoinHandle<(u16, String)>>) -> Vec<(u16, String)> {
    let mut all = Vec::new();
    for call in calls {
        all.push(call.await.expect("a call task"));
    }
    all
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Three replicas behind nginx share one Redis: a tenant's rate and concurrency are the
/// cluster's, not each replica's; another tenant is untouched; a replica killed mid-call
/// frees its leases within the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_nginx_share_each_tenants_quotas() {
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let a = replica("cluster-share", 0, &redis.url(), "local").await;
    let b = replica("cluster-share", 1, &redis.url(), "local").await;
    let c = replica("cluster-share", 2, &redis.url(), "local").await;
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("nginx dir");
    let nginx = balancer(&nginx_dir, &[&a, &b, &c]);
    let echo = nginx.url("/v1/primitives/echo/execute");

    // The shared rate: 50/s (burst 5) driven at 200/s through nginx for 4 s.
    let ((metered, window), other) = tokio::join!(
        drive_timed(&echo, KEY_METERED, 200, Duration::from_secs(4)),
        drive(&echo, KEY_OTHER, 20, Duration::from_secs(4)),
    );
    let admitted = count(&metered, 200);
    let seconds = window.as_secs_f64();
    let per_second = admitted as f64 / seconds;
    assert!(
        (45.0..=55.0).contains(&per_second),
        "50/s across three replicas: {admitted} of {} admitted in {seconds:.2} s ({per_second:.1}/s); 429s: {}",
        metered.len(),
        count(&metered, 429)
    );
    eprintln!("shared rate: {admitted} admitted in {seconds:.2} s = {per_second:.1}/s (quota 50/s)");
    assert_eq!(
        admitted + count(&metered, 429),
        metered.len(),
        "only 200s and 429s: {metered:?}"
    );
    assert_eq!(
        count(&other, 200),
        other.len(),
        "another tenant is not limited: {other:?}"
    );
    for replica in [&a, &b, &c] {
        let metrics = replica.metrics().await;
        assert!(
            sample(&metrics, "primitive_executions_total{") >= 5.0,
            "every replica served some calls:\n{metrics}"
        );
        assert_eq!(sample(&metrics, "cluster_state_up"), 1.0, "{metrics}");
        assert_eq!(sample(&metrics, "cluster_replicas"), 3.0, "{metrics}");
        assert_eq!(sample(&metrics, "cluster_state_fallback_total"), 0.0, "{metrics}");
    }

    // max_concurrent = 4 across the three: twelve long calls at once, four run.
    let spin = nginx.url("/v1/primitives/spin-forever/execute");
    let statuses = answers(at_once(&spin, KEY_NARROW, 12)).await;
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(refused.len(), 8, "four of twelve run: {statuses:?}");
    assert!(
        refused.iter().all(|(_, body)| body.contains("concurrency_limited")),
        "{refused:?}"
    );

    // A replica killed mid-call: its two leases expire within the TTL (1.5 s; renewed every
    // 0.5 s, so they outlive the kill by 1 to 1.5 s).
    let dying = at_once(&a.url("/v1/primitives/spin-forever/execute"), KEY_NARROW, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.kill().await;
    for (status, _) in answers(dying).await {
        assert_eq!(status, 0, "the killed replica answers nothing");
    }
    let running = at_once(&b.url("/v1/primitives/spin-forever/execute"), KEY_NARROW, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = post(&c.url("/v1/primitives/spin-forever/execute"), KEY_NARROW).await;
    assert_eq!(status, 429, "the dead replica's leases still count: {body}");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let later = answers(at_once(&c.url("/v1/primitives/spin-forever/execute"), KEY_NARROW, 3)).await;
    let later_statuses: Vec<u16> = later.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        count(&later_statuses, 429),
        1,
        "after the TTL the two dead leases are free again (two running on B, two more fit): {later_statuses:?}"
    );
    for (status, _) in answers(running).await {
        assert_ne!(status, 429, "the calls on B were admitted");
    }
}

/// Redis killed mid-load: `local` replicas go on under their share of the quota and count
/// the fallback, a `reject` replica answers 503 `cluster_unavailable`; Redis restarted:
/// both use the shared state again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_falls_back_by_policy_and_ends_when_redis_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redis = Redis::start(dir.path());
    let local = replica("cluster-outage", 0, &redis.url(), "local").await;
    let strict = replica("cluster-outage", 1, &redis.url(), "reject").await;
    let url = |s: &ServeProcess| s.url("/v1/primitives/echo/execute");
    // Both see each other before Redis goes, so the local share is half.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(post(&url(&local), KEY_OTHER).await.0, 200);
    assert_eq!(post(&url(&strict), KEY_OTHER).await.0, 200);

    redis.kill();
    let started = Instant::now();
    let statuses = drive(&url(&local), KEY_OTHER, 50, Duration::from_secs(1)).await;
    assert_eq!(
        count(&statuses, 200),
        statuses.len(),
        "`local` goes on without Redis: {statuses:?}"
    );
    // The first call waited at most the timeout; the rest went straight to the fallback.
    assert!(started.elapsed() < Duration::from_secs(5));
    let (status, body) = post(&url(&strict), KEY_OTHER).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cluster_unavailable"), "{body}");
    // The fallback's share of `metered`'s burst (5 over 2 replicas: 2 at once, at least 1).
    let burst = drive(&url(&local), KEY_METERED, 200, Duration::from_millis(50)).await;
    assert!(
        (1..=4).contains(&count(&burst, 200)),
        "the local share of the rate is half the quota (a burst of 2, 25/s), not all of it (5, 50/s): {burst:?}"
    );
    let metrics = local.metrics().await;
    assert!(sample(&metrics, "cluster_state_fallback_total{") >= 40.0, "{metrics}");
    assert!(
        metrics.contains("cluster_state_fallback_total{reason=\"down\"}"),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "cluster_state_up"), 0.0, "{metrics}");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post(&url(&strict), KEY_OTHER).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the shared state did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = sample(&local.metrics().await, "cluster_state_fallback_total{");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Shared again: `metered`'s burst of 5 is the cluster's, not 5 on each replica.
    let (local_url, strict_url) = (url(&local), url(&strict));
    let ((on_local, local_window), (on_strict, strict_window)) = tokio::join!(
        drive_timed(&local_url, KEY_METERED, 400, Duration::from_millis(50)),
        drive_timed(&strict_url, KEY_METERED, 400, Duration::from_millis(50)),
    );
    // Both drives start together: their admissions span at most the longer window and the
    // other's start lag.
    let window = local_window.max(strict_window) + Duration::from_millis(20);
    let admitted = count(&on_local, 200) + count(&on_strict, 200);
    // One burst of 5 and what 50/s refills while the calls arrive; two unshared quotas
    // would admit twice that.
    let shared_bound = 5 + (50.0 * window.as_secs_f64()).ceil() as usize + 1;
    assert!(
        (5..=shared_bound).contains(&admitted),
        "one shared burst of 5 plus 50/s over {window:?} (at most {shared_bound}), not one per replica: {on_local:?} {on_strict:?}"
    );
    let metrics = local.metrics().await;
    assert_eq!(sample(&metrics, "cluster_state_up"), 1.0, "{metrics}");
    let after = sample(&metrics, "cluster_state_fallback_total{");
    assert!(
        after - before <= 1.0,
        "no more fallbacks once Redis is back ({before} → {after})"
    );
}

/// Uploads through one replica are announced over Redis pub/sub: B, which polls only once
/// a minute, serves them at once; C, polling every second, still finds one made while
/// Redis (and so pub/sub) is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_through_one_replica_reaches_the_others_by_pub_sub_and_else_by_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redis = Redis::start(dir.path());
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).expect("uploads dir");
    let a = replica_with("cluster-uploads", 0, &redis.url(), "local", Some((&uploads, 60_000))).await;
    let b = replica_with("cluster-uploads", 1, &redis.url(), "local", Some((&uploads, 60_000))).await;
    let c = replica_with("cluster-uploads", 2, &redis.url(), "local", Some((&uploads, 1_000))).await;
    // Let the subscribers connect.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let upload = |server: &ServeProcess, name: &str| {
        let url = server.url(&format!("/v1/primitives/{name}"));
        let bytes = std::fs::read(plugin(name)).expect("a plugin");
        async move {
            http_client()
                .put(url)
                .bearer_auth(KEY_UPLOADER)
                .body(bytes)
                .send()
                .await
                .expect("upload")
                .status()
                .as_u16()
        }
    };
    let served_in = |server: &ServeProcess, name: &str, within: Duration| {
        let url = server.url(&format!("/v1/primitives/{name}/execute"));
        async move {
            let started = Instant::now();
            while started.elapsed() < within {
                if post(&url, KEY_UPLOADER).await.0 == 200 {
                    return Some(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            None
        }
    };

    assert_eq!(upload(&a, "uppercase").await, 201);
    // B's next poll is a minute away: only the announcement can bring it sooner.
    let on_b = served_in(&b, "uppercase", Duration::from_secs(10)).await;
    let on_b = on_b.expect("B serves the upload without polling: the announcement reached it");
    eprintln!("upload propagation by pub/sub to B: {on_b:?}");

    // Without Redis the announcement is lost, and C's poll brings the upload.
    redis.kill();
    assert_eq!(upload(&a, "word-count").await, 201);
    let on_c = served_in(&c, "word-count", Duration::from_secs(10)).await;
    assert!(on_c.is_some(), "C finds the upload by polling");
    eprintln!("upload propagation by polling (1 s) to C, Redis down: {on_c:?}");
}

/// A workflow `cache` with `store = "redis"`: an output cached through replica A is a hit
/// on replica B (whose guest never runs), and another tenant's same input misses. A
/// breaker with `shared = true` opened through A refuses on B, and once its cooldown is
/// over, calls through both at once send the cluster one half-open trial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_and_an_open_breaker_on_one_replica_hold_on_another_per_tenant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = Redis::start(dir.path());
    let a = replica("cluster-cache", 0, &redis.url(), "local").await;
    let b = replica("cluster-cache", 1, &redis.url(), "local").await;
    let run = |server: &ServeProcess, key: &'static str| {
        let url = server.url("/v1/workflows/cached/run");
        async move { post(&url, key).await }
    };
    let on_a = run(&a, KEY_OTHER).await;
    assert_eq!(on_a.0, 200, "{}", on_a.1);
    let on_b = run(&b, KEY_OTHER).await;
    assert_eq!(on_b, on_a, "B answers from the entry A made");
    let metrics = b.metrics().await;
    assert_eq!(sample(&metrics, "cache_hit_total{"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "cache_miss_total{"), 0.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "primitive_executions_total{"),
        0.0,
        "no guest ran on B:\n{metrics}"
    );
    // Another tenant, the same input: its own miss.
    let theirs = run(&b, KEY_UPLOADER).await;
    assert_eq!(theirs.0, 200, "{}", theirs.1);
    let metrics = b.metrics().await;
    assert_eq!(sample(&metrics, "cache_miss_total{"), 1.0, "{metrics}");
    assert!(sample(&metrics, "primitive_executions_total{") >= 1.0, "{metrics}");

    // A shared breaker opened by failures through A refuses on B, without calling the
    // guest there; another tenant's breaker stays closed.
    let guarded = |server: &ServeProcess, key: &'static str| {
        let url = server.url("/v1/workflows/guarded/run");
        async move { post(&url, key).await }
    };
    for _ in 0..2 {
        let (status, body) = guarded(&a, KEY_OTHER).await;
        assert!(
            status >= 500 && !body.contains("circuit_open"),
            "the trap fails: {status} {body}"
        );
    }
    let (status, body) = guarded(&b, KEY_OTHER).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("circuit_open"), "open on B after failures on A: {body}");
    let trap_runs = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("primitive_executions_total{") && l.contains("primitive_name=\"trap\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(trap_runs(&b.metrics().await), 0.0, "B never called the failing guest");
    let (status, body) = guarded(&b, KEY_UPLOADER).await;
    assert!(
        !body.contains("circuit_open"),
        "another tenant's breaker is its own: {status} {body}"
    );
    assert_eq!(trap_runs(&b.metrics().await), 1.0);

    // Half-open: once the cooldown is over, calls through both replicas at once send one
    // trial to the guest for the whole cluster; the others are refused while it runs, and
    // after it fails.
    let probed = |server: &ServeProcess| server.url("/v1/workflows/probed/run");
    for _ in 0..2 {
        let (status, body) = post(&probed(&a), KEY_OTHER).await;
        assert!(status >= 500 && !body.contains("circuit_open"), "{status} {body}");
    }
    let (status, body) = post(&probed(&b), KEY_OTHER).await;
    assert!(body.contains("circuit_open"), "open everywhere: {status} {body}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let traps = trap_runs(&a.metrics().await) + trap_runs(&b.metrics().await);
    let mut calls = at_once(&probed(&a), KEY_OTHER, 4);
    calls.extend(at_once(&probed(&b), KEY_OTHER, 4));
    let answers = answers(calls).await;
    let refused = answers.iter().filter(|(_, body)| body.contains("circuit_open")).count();
    assert_eq!(refused, answers.len() - 1, "one trial, the rest refused: {answers:?}");
    let after = trap_runs(&a.metrics().await) + trap_runs(&b.metrics().await);
    assert_eq!(after - traps, 1.0, "the guest ran once for the cluster's trial");
}
