//! Components in an OCI registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on loopback. `tta-host push` publishes a component as a Wasm artifact; `load`
//! pulls it by tag and by digest, verified; a missing tag, a manifest that is not a Wasm
//! artifact, a tampered blob, a layer over the limit and a registry that stalls are each a
//! clear error with nothing loaded.

use crate::{plugin, tta_host_in};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `docker-registry` on a free loopback port with its storage in `dir`, killed when dropped.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`docker-registry` is installed (apt-get install docker-registry; scripts/test.sh does)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry { child, port }
    }

    fn reference(&self, rest: &str) -> String {
        format!("oci://127.0.0.1:{}/{rest}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tta-host` with its own component cache, so each pull really fetches.
fn tta_host(dir: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tta-host"))
        .args(args)
        .current_dir(dir)
        .env("TTA_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("TTA_REGISTRY_TOKEN")
        .env_remove("TTA_REGISTRY_USERNAME")
        .output()
        .expect("tta-host runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_pushed_and_pulled_by_tag_and_digest_and_bad_artifacts_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    let echo = plugin("echo");
    let echo_path = echo.to_str().expect("UTF-8");
    let tagged = registry.reference("tta/echo:1.0");

    let pushed = tta_host_in(dir.path(), &["push", echo_path, &tagged]);
    assert_eq!(pushed.status.code(), Some(0), "push: {}", text(&pushed.stderr));
    let printed = text(&pushed.stdout);
    let digest = printed
        .split_whitespace()
        .nth(1)
        .filter(|d| d.starts_with("sha256:") && d.len() == 71)
        .unwrap_or_else(|| panic!("push prints the manifest digest: {printed}"))
        .to_owned();

    // The manifest is the Wasm artifact layout other tools read.
    let manifest = crate::http_client()
        .get(format!("http://127.0.0.1:{}/v2/tta/echo/manifests/1.0", registry.port))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("manifest")
        .text()
        .await
        .expect("a body");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("JSON");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("a layer digest")
        .to_owned();

    let cache = dir.path().join("cache");
    for reference in [tagged.clone(), registry.reference(&format!("tta/echo@{digest}"))] {
        let loaded = tta_host(dir.path(), &cache, &["load", &reference]);
        let table = text(&loaded.stdout);
        assert_eq!(
            loaded.status.code(),
            Some(0),
            "load {reference}: {table}{}",
            text(&loaded.stderr)
        );
        assert!(
            table.lines().any(|l| l.starts_with("echo") && l.contains("OK")),
            "{table}"
        );
        assert!(text(&loaded.stderr).contains(&layer), "the pulled digest is reported");
    }

    // Bad input: each a specific error, nothing loaded.
    let refused = |reference: &str, cache: &Path, extra: &[&str], expected: &str| {
        let mut args = vec!["load"];
        args.extend(extra);
        args.push(reference);
        let out = tta_host(dir.path(), cache, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{reference}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{reference}: expected {expected:?} in {stderr}"
        );
        assert!(
            !text(&out.stdout).contains(" OK "),
            "nothing loaded: {}",
            text(&out.stdout)
        );
    };
    refused(
        &registry.reference("tta/echo:2.0"),
        &cache,
        &[],
        "no such tag or digest",
    );
    refused("oci://127.0.0.1/Bad:x", &cache, &[], "is not an OCI reference");

    // A manifest of a container image, made of the same blobs.
    let image = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": manifest["config"]["digest"], "size": manifest["config"]["size"] },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": manifest["layers"][0]["size"] }],
    });
    let put = crate::http_client()
        .put(format!(
            "http://127.0.0.1:{}/v2/tta/echo/manifests/image",
            registry.port
        ))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(image.to_string())
        .send()
        .await
        .expect("put a manifest");
    assert!(put.status().is_success(), "{}", put.status());
    refused(
        &registry.reference("tta/echo:image"),
        &cache,
        &[],
        "is not a Wasm component artifact",
    );

    // Over the size limit: refused from the manifest, before the layer is fetched.
    let small = dir.path().join("small.toml");
    std::fs::write(&small, "[server]\nmax_upload_bytes = 1000\n").expect("config");
    let fresh = dir.path().join("fresh-cache");
    refused(
        &tagged,
        &fresh,
        &["--config", small.to_str().expect("UTF-8")],
        "over the limit of 1000",
    );

    // A tampered blob in the registry's storage: the digest check refuses it.
    let hex = layer.trim_start_matches("sha256:");
    let data = dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).expect("the layer in the registry's storage");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).expect("tamper");
    refused(&tagged, &fresh, &[], "digest mismatch");
    assert!(
        !fresh.join("oci/sha256").join(format!("{hex}.wasm")).exists(),
        "nothing unverified is kept"
    );

    // A registry that accepts connections and never answers.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let port = stalled.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = stalled.accept().await {
            open.push(socket);
        }
    });
    let started = Instant::now();
    let reference = format!("oci://127.0.0.1:{port}/tta/echo:1.0");
    let out = tokio::task::spawn_blocking({
        let (dir, fresh) = (dir.path().to_owned(), fresh.clone());
        move || tta_host(&dir, &fresh, &["load", "--timeout-ms", "300", &reference])
    })
    .await
    .expect("tta-host");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("timed out"), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(20), "bounded by --timeout-ms");
    held.abort();
}
