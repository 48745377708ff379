//! A real Prometheus server (Debian's `prometheus`) scraping a `tta-host serve` process:
//! what an operator's PromQL reads from our series, first calls included.

use crate::process::{ServeProcess, free_port, require, write_config_with};
use crate::serve::{KEY_ACME, plugins_dir};
use std::path::Path;
use std::time::{Duration, Instant};
use tta_host::tenant::hash_key;

/// A Prometheus on loopback, its data in a temporary directory, stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, path `/metrics`) every second.
    fn start(dir: &Path, target: &str) -> Prometheus {
        require("prometheus", "prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tta\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log file"))
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, port }
    }

    /// The value of the instant query `promql`'s first sample, if it has one.
    async fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!("http://127.0.0.1:{}/api/v1/query?query={encoded}", self.port);
        let response = crate::http_client().get(url).send().await.ok()?;
        let body: serde_json::Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` gives a value `ok` accepts, and returns it.
    async fn wait_for(&self, promql: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(value) = self.query(promql).await
                && ok(value)
            {
                return value;
            }
            assert!(
                Instant::now() < until,
                "Prometheus never answered `{promql}` as expected"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A series exported only when its first call counts it is read as flat by `increase()`:
/// the call series of every configured tenant are made at zero when the primitive loads,
/// so a real Prometheus counts the very first calls, and the tenant's bill with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_increase_counts_a_series_first_calls() {
    let dir = plugins_dir("prometheus-increase", &[crate::plugin("echo")]);
    let tenant = format!(
        "[[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n",
        hash_key(KEY_ACME)
    );
    let config = write_config_with(&dir, "", "", "", &tenant);
    let serve = ServeProcess::start(&dir, &config).await;
    let prometheus = Prometheus::start(&dir, &serve.addr.to_string());
    let series = r#"primitive_executions_total{primitive_name="echo",status="success",tenant="acme"}"#;

    // Two scrapes of the series at zero before any call.
    prometheus
        .wait_for(&format!("count_over_time({series}[1m])"), |n| n >= 2.0)
        .await;
    assert_eq!(prometheus.query(series).await, Some(0.0), "the series is there at zero");

    let client = crate::http_client();
    for i in 0..5 {
        let response = client
            .post(serve.url("/v1/primitives/echo/execute"))
            .bearer_auth(KEY_ACME)
            .body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .expect("call");
        assert_eq!(response.status(), 200);
    }
    prometheus.wait_for(series, |n| n == 5.0).await;
    // One more scrape after the calls show, so the range holds samples on both sides.
    let scraped = prometheus
        .wait_for(&format!("count_over_time({series}[1m])"), |_| true)
        .await;
    prometheus
        .wait_for(&format!("count_over_time({series}[1m])"), |n| n > scraped)
        .await;

    let increase = prometheus
        .query(&format!("increase({series}[1m])"))
        .await
        .expect("an increase");
    assert!(
        (5.0..=10.0).contains(&increase),
        "increase() counts the first five calls (extrapolated forward at most): {increase}"
    );
    let fuel = prometheus
        .query(r#"increase(tenant_fuel_consumed_total{tenant="acme"}[1m])"#)
        .await
        .expect("the tenant's fuel bill");
    assert!(fuel > 0.0, "the tenant's bill counted its first calls too: {fuel}");
    let memory = prometheus
        .query(r#"tenant_memory_byte_seconds_total{tenant="acme"}"#)
        .await
        .expect("the tenant's memory bill");
    assert!(memory > 0.0);
    serve.stop().await;
}
