//! `deploy/kubernetes/`: every kustomization renders (`kubectl kustomize`, offline), every
//! object validates against the Kubernetes API schemas (`kubernetes-validate --strict`,
//! from PyPI, in a venv under the target directory), and the pieces agree with the server:
//! the probes' paths answer on a real `serve` started from the rendered `tta.toml`, the
//! ports are the ones that config listens on, the grace period covers the drain, and the
//! pod runs as the security context promises.

use crate::process::ServeProcess;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The validator and the Kubernetes version the manifests are held to.
const VALIDATOR: &str = "kubernetes-validate==1.37.0";
const KUBERNETES: &str = "1.31.0";

/// The kustomizations, each with the kinds it must render.
const KUSTOMIZATIONS: [(&str, &[&str]); 3] = [
    (
        "base",
        &[
            "ConfigMap",
            "Secret",
            "Service",
            "PersistentVolumeClaim",
            "Deployment",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "PodMonitor",
        ],
    ),
    ("overlays/with-redis", &["Deployment", "Service"]),
    ("overlays/prometheus-adapter", &["HorizontalPodAutoscaler"]),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The venv with the validator (and PyYAML, which it brings), made once per target dir.
fn venv() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("k8s-venv");
    let python = venv.join("bin/python");
    let ready = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import kubernetes_validate, yaml"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv {}", venv.display());
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", VALIDATOR])
            .output()
            .expect("pip runs");
        assert!(
            installed.status.success(),
            "pip install {VALIDATOR}: {}",
            text(&installed.stderr)
        );
    }
    venv
}

fn render(dir: &str) -> String {
    let path = crate::repo().join("deploy/kubernetes").join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .expect("kubectl is installed (it renders kustomizations offline)");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs the validator on `yaml`; returns whether it passed and what it said.
fn validate(venv: &std::path::Path, yaml: &str) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("write");
    let out = Command::new(venv.join("bin/kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES])
        .arg(file.path())
        .output()
        .expect("kubernetes-validate runs");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// The rendered objects as JSON (PyYAML reads the stream).
fn objects(venv: &std::path::Path, yaml: &str) -> Vec<Value> {
    use std::io::Write;
    let mut child = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write YAML");
    let out = child.wait_with_output().expect("python ends");
    assert!(out.status.success(), "YAML to JSON");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn port_of(listen: &str) -> u64 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {listen}"))
}

#[test]
fn every_kustomization_renders_and_validates_against_the_kubernetes_schemas() {
    let venv = venv();
    for (dir, kinds) in KUSTOMIZATIONS {
        let yaml = render(dir);
        let (passed, report) = validate(&venv, &yaml);
        assert!(
            passed,
            "{dir} does not validate against Kubernetes {KUBERNETES}:\n{report}"
        );
        for line in report.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                line.contains("kind PodMonitor"),
                "{dir}: only the Prometheus Operator's PodMonitor has no schema here: {line}"
            );
        }
        let objects = objects(&venv, &yaml);
        for kind in kinds {
            assert!(objects.iter().any(|o| o["kind"] == *kind), "{dir} renders a {kind}");
        }
    }
    // The validator refuses what the API server would: an unknown field fails.
    let broken = render("base").replacen("  replicas: 3", "  replicas: 3\n  replica: 3", 1);
    assert!(!validate(&venv, &broken).0, "an unknown field must fail the validation");
}

/// The probes, ports, grace period and volumes agree with the server and its config; the
/// probes' paths answer 200 on a `serve` started from the rendered `tta.toml` (with Redis
/// unreachable: a pod is ready by its own health, not Redis's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_agrees_with_the_servers_routes_config_and_drain() {
    let venv = venv();
    let objects = objects(&venv, &render("overlays/with-redis"));
    let deployment = find(&objects, "Deployment", "tta-host");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let config_map = find(&objects, "ConfigMap", "tta-host-config");
    let config_text = config_map["data"]["tta.toml"]
        .as_str()
        .expect("tta.toml in the ConfigMap");
    let config: toml::Table = config_text.parse().expect("the ConfigMap's tta.toml is TOML");
    tta_host::HostConfig::validate(&toml::from_str(config_text).expect("the ConfigMap's tta.toml is a host config"))
        .expect("a valid host config");

    let ports: Vec<(String, u64)> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("a name").to_owned(),
                p["containerPort"].as_u64().expect("a port"),
            )
        })
        .collect();
    let port = |name: &str| {
        ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    assert_eq!(
        port("http"),
        port_of(config["server"]["listen"].as_str().expect("listen"))
    );
    assert_eq!(
        port("metrics"),
        port_of(
            config["telemetry"]["metrics"]["listen"]
                .as_str()
                .expect("metrics listen")
        )
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe} asks the API port");
    }
    let service = find(&objects, "Service", "tta-host");
    for p in service["spec"]["ports"].as_array().expect("service ports") {
        port(p["targetPort"].as_str().expect("a named target port"));
    }
    let monitor = find(&objects, "PodMonitor", "tta-host");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(port(endpoint["port"].as_str().expect("a port name")), port("metrics"));
    assert_eq!(endpoint["path"], "/metrics");

    // Every selector selects the pods.
    let labels = pod_labels(deployment);
    for (kind, selector) in [
        ("Deployment", &deployment["spec"]["selector"]["matchLabels"]),
        (
            "PodDisruptionBudget",
            &find(&objects, "PodDisruptionBudget", "tta-host")["spec"]["selector"]["matchLabels"],
        ),
        ("Service", &service["spec"]["selector"]),
        ("PodMonitor", &monitor["spec"]["selector"]["matchLabels"]),
    ] {
        let selector = selector.as_object().unwrap_or_else(|| panic!("{kind} has a selector"));
        assert!(!selector.is_empty(), "{kind}'s selector is not empty");
        for (key, value) in selector {
            assert_eq!(labels.get(key), Some(value), "{kind} selects the pods by {key}");
        }
    }
    let hpa = find(&objects, "HorizontalPodAutoscaler", "tta-host");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"]);

    // The grace period covers the preStop pause and the server's drain.
    let grace_ms = pod["terminationGracePeriodSeconds"].as_u64().expect("a grace period") * 1000;
    let pause_ms = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop sleep")
        * 1000;
    let drain_ms = config["server"]["shutdown_grace_ms"]
        .as_integer()
        .expect("shutdown_grace_ms") as u64;
    assert!(
        grace_ms >= pause_ms + drain_ms,
        "terminationGracePeriodSeconds ({grace_ms} ms) < preStop ({pause_ms} ms) + shutdown_grace_ms ({drain_ms} ms)"
    );

    // Non-root, read-only root, no token, no privileges; every path it writes is a volume.
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(
        container["resources"]["requests"]["cpu"].is_string() && container["resources"]["limits"]["memory"].is_string()
    );
    let mounts: Vec<(&str, bool)> = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| (m["mountPath"].as_str().expect("a path"), m["readOnly"] == true))
        .collect();
    let mounted = |path: &str, writable: bool| {
        mounts
            .iter()
            .any(|(m, read_only)| path.starts_with(m) && (!writable || !read_only))
    };
    assert!(
        mounted(config["cache_dir"].as_str().expect("cache_dir"), true),
        "the compile cache is writable"
    );
    assert!(mounted(
        config["server"]["uploads_dir"].as_str().expect("uploads_dir"),
        true
    ));
    assert!(mounted(
        config["server"]["plugins_dir"].as_str().expect("plugins_dir"),
        false
    ));
    assert!(
        mounted("/etc/tta/tta.toml", false),
        "the config is mounted where args say"
    );
    assert_eq!(container["args"][1], "/etc/tta/tta.toml");
    let redis_env = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "TTA_REDIS_URL")
        .expect("TTA_REDIS_URL from the Secret");
    let secret = find(&objects, "Secret", "tta-host-secrets");
    assert_eq!(
        redis_env["valueFrom"]["secretKeyRef"]["name"],
        secret["metadata"]["name"]
    );
    assert_eq!(config["cluster"]["redis_url"].as_str(), Some("env:TTA_REDIS_URL"));
    let redis = find(&objects, "Service", "redis");
    assert_eq!(redis["spec"]["ports"][0]["port"], 6379);

    // The probes' paths on a real server started from this config, Redis unreachable.
    let mut local: toml::Table = config.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins dir");
    local.insert(
        "cache_dir".into(),
        dir.path().join("cache").to_string_lossy().into_owned().into(),
    );
    let server = local["server"].as_table().cloned().expect("[server]");
    let mut server = server;
    server.insert("listen".into(), "127.0.0.1:0".into());
    server.insert("plugins_dir".into(), "plugins".into());
    server.insert("uploads_dir".into(), "uploads".into());
    local.insert("server".into(), server.into());
    let mut telemetry = local["telemetry"].as_table().cloned().expect("[telemetry]");
    telemetry.insert(
        "metrics".into(),
        toml::Table::from_iter([("listen".to_owned(), "off".into())]).into(),
    );
    local.insert("telemetry".into(), telemetry.into());
    let path = dir.path().join("tta.toml");
    std::fs::write(&path, toml::to_string(&local).expect("TOML")).expect("write the config");
    let unreachable = format!("redis://127.0.0.1:{}", free_port());
    let serve = ServeProcess::start_with_env(dir.path(), &path, &[("TTA_REDIS_URL", &unreachable)]).await;
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().expect("a probe path");
        let response = crate::http_client().get(serve.url(path)).send().await.expect("probe");
        assert_eq!(response.status(), 200, "{probe} {path}");
    }
    serve.stop().await;
}

fn pod_labels(deployment: &Value) -> serde_json::Map<String, Value> {
    deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .expect("pod labels")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
