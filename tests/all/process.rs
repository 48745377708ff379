//! `tta-host serve` as a separate process, as an operator runs it: started from a config
//! file, found by the address it prints, measured through `/proc`, stopped with SIGTERM
//! or killed with SIGKILL; and the other servers the tests start beside it.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;

/// A running `tta-host serve`.
pub struct ServeProcess {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

/// A line to look for and where to send what it yields, the first time it does.
type Watch = (fn(&str) -> Option<String>, tokio::sync::oneshot::Sender<String>);

/// Keeps reading `pipe` into `into`, line by line, so the pipe never fills and blocks the
/// server; the first line `found` matches is sent on `first`.
fn drain(pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<String>>, mut first: Option<Watch>) {
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some((found, _)) = &first
                && let Some(value) = found(&line)
                && let Some((_, send)) = first.take()
            {
                let _ = send.send(value);
            }
            let mut kept = into.lock().expect("output buffer");
            kept.push_str(&line);
            kept.push('\n');
        }
    });
}

impl ServeProcess {
    /// Starts `tta-host --config <config> serve` in `dir` and waits until it listens.
    pub async fn start(dir: &Path, config: &Path) -> ServeProcess {
        Self::start_with_env(dir, config, &[]).await
    }

    /// [`ServeProcess::start`] with more environment variables.
    pub async fn start_with_env(dir: &Path, config: &Path, env: &[(&str, &str)]) -> ServeProcess {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tta-host"))
            .args(["--config", &config.to_string_lossy(), "serve"])
            .current_dir(dir)
            .env(
                "TTA_CACHE_DIR",
                std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            )
            .env("RUST_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_TRACES_SAMPLER")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tta-host starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (found, address) = tokio::sync::oneshot::channel();
        let listening: fn(&str) -> Option<String> = |line| {
            line.strip_prefix("tta-host serving on http://")
                .map(|a| a.trim().to_owned())
        };
        drain(
            child.stderr.take().expect("stderr piped"),
            Arc::clone(&stderr),
            Some((listening, found)),
        );
        drain(child.stdout.take().expect("stdout piped"), Arc::clone(&stdout), None);
        let addr = match tokio::time::timeout(Duration::from_secs(120), address).await {
            Ok(Ok(addr)) => addr.parse().expect("a socket address"),
            _ => panic!(
                "tta-host serve did not start listening; its stderr:\n{}",
                stderr.lock().expect("stderr buffer")
            ),
        };
        ServeProcess {
            child,
            addr,
            stderr,
            stdout,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What `/metrics` on the API port shows now.
    pub async fn metrics(&self) -> String {
        crate::http_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout buffer").clone()
    }

    /// Whether it is still running (it has not crashed).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL, as a crash or the OOM killer would, and waits for it to go.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks it to stop with SIGTERM and returns its exit code.
    pub async fn stop(mut self) -> Option<i32> {
        let pid = self.pid().to_string();
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!("tta-host did not stop within 60 s of SIGTERM:\n{}", self.stderr()),
        }
    }

    /// Resident memory, open file descriptors and threads, from `/proc`.
    pub fn usage(&self) -> Usage {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        Usage {
            rss_kib: field("VmRSS:"),
            fds,
            threads: field("Threads:"),
        }
    }
}

/// What a process holds at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// A config file for `serve` in `dir`: loopback on an ephemeral port, no metrics port,
/// `/metrics` on the API, `plugins/` and `uploads/` under `dir`, and `extra` (tenants, limits) appended.
pub fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    write_config_with(dir, "", "", "", extra)
}

/// [`write_config`] with room for top-level keys (`top`), more `[server]` keys (`server`)
/// and the `[telemetry.metrics]` section's (`metrics`, `listen = "off"` when empty).
pub fn write_config_with(dir: &Path, top: &str, server: &str, metrics: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("tta.toml");
    let metrics = if metrics.is_empty() {
        "listen = \"off\""
    } else {
        metrics
    };
    let text = format!(
        "{top}\n[server]\nlisten = \"127.0.0.1:0\"\nplugins_dir = \"plugins\"\nuploads_dir = \"uploads\"\n\
         reload_interval_ms = 100\nshutdown_grace_ms = 5000\nmetrics = true\n{server}\n\n\
         [telemetry.metrics]\n{metrics}\n\n{extra}"
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Fails the test with how to install `program` when it is missing.
pub fn require(program: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{program}` is not installed: `apt-get install {package}` (scripts/test.sh installs it)"
    );
}

/// An nginx on loopback, its files in `dir`, stopped when dropped.
pub struct Nginx {
    child: std::process::Child,
    /// Where it listens.
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with the `http` block's contents `http(port)` gives (its `server`
    /// blocks listen on `port`) and waits until it listens.
    pub fn start(dir: &Path, http: impl FnOnce(u16) -> String) -> Nginx {
        require("nginx", "nginx");
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {}}}\n",
            http(port)
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port }
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
