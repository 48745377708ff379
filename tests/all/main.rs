//! End-to-end tests of tta-host with real components built from source by `cargo xtask plugins`.
//!
//! One binary for the whole workspace (each extra test binary is another link of wasmtime).

mod calls;
mod cli;
mod cluster;
mod contract;
mod cost;
mod crash;
mod export_tls;
mod fences;
mod genai;
/// Hand-written components of the world, shared with the benchmarks.
#[path = "../../host/benches/common/generated.rs"]
mod generated;
mod guest_config;
mod http_out;
mod kubernetes;
mod languages;
mod layers;
mod limits;
mod llm;
mod load;
mod mcp;
mod oci;
mod otlp_receiver;
mod process;
mod prometheus;
mod recording;
mod scaffold;
mod serve;
mod soak;
mod telemetry;
mod ui;
mod workflows;

use std::path::{Path, PathBuf};
use tta_host::{CallOptions, CallOutcome, Host, HostConfig};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: build the guests first with `cargo xtask plugins`",
        path.display()
    );
    path
}

/// An example plugin from `plugins/`.
pub fn plugin(name: &str) -> PathBuf {
    built(repo().join("plugins").join(format!("{name}.wasm")))
}

/// A misbehaving fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    built(repo().join("tests/fixtures").join(format!("{name}.wasm")))
}

/// Runs the `tta-host` binary in `dir` as a user would, with the tests' shared cache and
/// no telemetry settings from the environment.
pub fn tta_host_in(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tta-host"))
        .args(args)
        .current_dir(dir)
        .env(
            "TTA_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_SAMPLER")
        .output()
        .expect("tta-host runs")
}

/// A config for tests: default limits, a cache shared by the tests of this run.
/// An HTTP client for the tests (rustls with ring, as the host's own clients).
pub fn http_client() -> reqwest::Client {
    tta_host::tls::install_default_provider();
    reqwest::Client::new()
}

pub fn config() -> HostConfig {
    HostConfig {
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..HostConfig::default()
    }
}

/// A host with the given components loaded.
pub async fn host_with(config: HostConfig, paths: &[PathBuf]) -> Host {
    let host = Host::new(config).expect("host starts");
    for path in paths {
        host.load(path)
            .await
            .unwrap_or_else(|e| panic!("{} should load: {e}", path.display()));
    }
    host
}

/// Calls `name` with `input` and default options.
pub async fn call(host: &Host, name: &str, input: &str) -> CallOutcome {
    host.call(name, input.as_bytes(), CallOptions::default()).await
}

/// The output of a successful call as JSON.
pub fn json_output(outcome: &CallOutcome) -> serde_json::Value {
    let output = outcome.output.as_ref().unwrap_or_else(|e| panic!("call failed: {e}"));
    serde_json::from_slice(output).expect("output is JSON")
}

/// Asserts `record` has every key of the TTA.dev log format.
pub fn assert_tta_log_record(record: &serde_json::Value) {
    for key in [
        "timestamp",
        "level",
        "event",
        "correlation_id",
        "trace_id",
        "span_id",
        "service",
        "primitive",
        "tenant",
        "duration_ms",
        "status",
    ] {
        assert!(!record[key].is_null(), "{key} missing in {record}");
    }
}
