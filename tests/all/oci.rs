//! Components in an OCI registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on loopback. `tta-host push` publishes a component as a Wasm artifact; `load`
//! pulls it by tag and by digest, verified; a missing tag, a manifest that is not a Wasm
//! artifact, a tampered blob, a layer over the limit and a registry that stalls are each a
//! clear error with nothing loaded. Three `serve` replicas pull the references of their
//! `server.plugins` and follow a tag that moves; a registry behind a token service (nginx
//! answering with a bearer challenge) is pulled with credentials exchanged for a token.

use crate::process::{Nginx, ServeProcess, write_config_with};
use crate::{plugin, tta_host_in};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tta_host::tenant::hash_key;

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
        crate::process::require("docker-registry", "docker-registry");
        let port = crate::process::free_port();
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
    tta_host_with(dir, cache, args, &[])
}

/// [`tta_host`] with these registry credentials in its environment.
fn tta_host_with(dir: &Path, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tta-host"))
        .args(args)
        .current_dir(dir)
        .env("TTA_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("TTA_REGISTRY_TOKEN")
        .env_remove("TTA_REGISTRY_USERNAME")
        .env_remove("TTA_REGISTRY_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("tta-host runs")
}

/// Pushes the example plugin `name` as `reference`; returns the manifest's digest.
fn push(dir: &Path, name: &str, reference: &str) -> String {
    let file = plugin(name);
    let pushed = tta_host_in(dir, &["push", file.to_str().expect("UTF-8"), reference]);
    assert_eq!(pushed.status.code(), Some(0), "push: {}", text(&pushed.stderr));
    let printed = text(&pushed.stdout);
    printed
        .split_whitespace()
        .nth(1)
        .filter(|d| d.starts_with("sha256:") && d.len() == 71)
        .unwrap_or_else(|| panic!("push prints the manifest digest: {printed}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_pushed_and_pulled_by_tag_and_digest_and_bad_artifacts_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    let tagged = registry.reference("tta/echo:1.0");
    let digest = push(dir.path(), "echo", &tagged);

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

const REPLICA_KEY: &str = "tta_oci_replica_key";

/// Calls `name` on `server` with `{"text": "hello"}`.
async fn call(server: &ServeProcess, name: &str) -> (u16, String) {
    crate::cluster::post(&server.url(&format!("/v1/primitives/{name}/execute")), REPLICA_KEY).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_serve_the_references_of_their_config_and_follow_a_tag_that_moves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    let live = registry.reference("tta/tool:live");
    push(dir.path(), "echo", &live);
    let upper = push(dir.path(), "uppercase", &registry.reference("tta/upper:1"));
    let pinned = registry.reference(&format!("tta/upper@{upper}"));
    let tenants = format!(
        "[registry]\npoll_interval_ms = 200\n\n[[tenants]]\nid = \"puller\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n",
        hash_key(REPLICA_KEY)
    );

    // A config whose entries name nothing is refused with each entry's problem.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(broken.join("plugins")).expect("plugins dir");
    let config = write_config_with(
        &broken,
        "",
        "plugins = [\"oci://nowhere\", \"missing/*.wasm\"]",
        "",
        &tenants,
    );
    let checked = tta_host_in(
        &broken,
        &["--config", config.to_str().expect("UTF-8"), "serve", "--check"],
    );
    let stderr = text(&checked.stderr);
    assert_eq!(checked.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("\"oci://nowhere\" is not an OCI reference"), "{stderr}");
    assert!(stderr.contains("missing/*.wasm is neither"), "{stderr}");

    let mut replicas = Vec::new();
    for n in 0..3 {
        let home = dir.path().join(format!("replica-{n}"));
        std::fs::create_dir_all(home.join("plugins")).expect("plugins dir");
        let config = write_config_with(&home, "", &format!("plugins = [{live:?}, {pinned:?}]"), "", &tenants);
        let cache = home.join("cache");
        let cache = cache.to_str().expect("UTF-8");
        replicas.push(ServeProcess::start_with_env(&home, &config, &[("TTA_CACHE_DIR", cache)]).await);
    }
    for (n, replica) in replicas.iter().enumerate() {
        let (status, body) = call(replica, "echo").await;
        assert_eq!(status, 200, "replica {n} serves the tag: {body}\n{}", replica.stderr());
        assert!(body.contains("hello"), "{body}");
        let (status, body) = call(replica, "uppercase").await;
        assert_eq!(status, 200, "replica {n} serves the digest: {body}");
        assert!(body.contains("HELLO"), "{body}");
    }

    // The tag moves to another component: each replica swaps it in within its poll.
    push(dir.path(), "word-count", &live);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (n, replica) in replicas.iter().enumerate() {
        loop {
            let (counted, body) = call(replica, "word-count").await;
            let (gone, _) = call(replica, "echo").await;
            if counted == 200 && gone == 404 {
                assert!(body.contains("\"words\":1"), "{body}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {n} did not follow the moved tag (word-count {counted}, echo {gone}): {}",
                replica.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, _) = call(replica, "uppercase").await;
        assert_eq!(status, 200, "the pinned digest stays");
        let metrics = replica.metrics().await;
        let pulled = metrics
            .lines()
            .find(|l| {
                l.starts_with("plugin_reloads_total{") && l.contains("kind=\"oci\"") && l.contains("result=\"pulled\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        assert_eq!(
            pulled,
            Some(3.0),
            "two references pulled, then the moved tag: {metrics}"
        );
    }
    for replica in replicas {
        assert_eq!(replica.stop().await, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_behind_a_token_service_is_pulled_with_credentials_exchanged_for_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(dir.path());
    push(dir.path(), "echo", &registry.reference("tta/echo:1.0"));

    // nginx in front: /v2/ wants `Bearer tok-123` and challenges otherwise; /token hands
    // it out for basic credentials, as a registry's token service does.
    let front = dir.path().join("nginx");
    std::fs::create_dir_all(&front).expect("nginx dir");
    let htpasswd = front.join("htpasswd");
    std::fs::write(&htpasswd, "puller:{PLAIN}s3cret\n").expect("htpasswd");
    let token = front.join("token.json");
    std::fs::write(&token, r#"{"token": "tok-123", "expires_in": 300}"#).expect("token");
    let upstream = registry.port;
    let nginx = Nginx::start(&front, |port| {
        format!(
            "server {{\n  listen 127.0.0.1:{port};\n\
             location = /token {{\n    auth_basic \"tokens\";\n    auth_basic_user_file {};\n\
             default_type application/json;\n    alias {};\n  }}\n\
             location /v2/ {{\n    if ($http_authorization != \"Bearer tok-123\") {{\n\
             add_header WWW-Authenticate 'Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test\",scope=\"repository:tta/echo:pull\"' always;\n\
             return 401;\n    }}\n    proxy_pass http://127.0.0.1:{upstream};\n  }}\n}}\n",
            htpasswd.display(),
            token.display()
        )
    });
    let reference = format!("oci://127.0.0.1:{}/tta/echo:1.0", nginx.port);
    let load = |cache: &str, env: &[(&str, &str)]| {
        tta_host_with(dir.path(), &dir.path().join(cache), &["load", &reference], env)
    };

    let loaded = load(
        "with-credentials",
        &[("TTA_REGISTRY_USERNAME", "puller"), ("TTA_REGISTRY_PASSWORD", "s3cret")],
    );
    let stderr = text(&loaded.stderr);
    assert_eq!(loaded.status.code(), Some(0), "{stderr}");
    assert!(
        text(&loaded.stdout)
            .lines()
            .any(|l| l.starts_with("echo") && l.contains("OK"))
    );

    for (cache, env) in [
        (
            "wrong-password",
            &[("TTA_REGISTRY_USERNAME", "puller"), ("TTA_REGISTRY_PASSWORD", "guess")][..],
        ),
        ("anonymous", &[][..]),
    ] {
        let refused = load(cache, env);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(3), "{cache}: {stderr}");
        assert!(
            stderr.contains("the token service") && stderr.contains("answered 401"),
            "{cache}: {stderr}"
        );
        assert!(stderr.contains("TTA_REGISTRY_USERNAME"), "says how to fix it: {stderr}");
        assert!(
            !stderr.contains("guess") && !stderr.contains("tok-123"),
            "no secret in the output: {stderr}"
        );
    }
}
