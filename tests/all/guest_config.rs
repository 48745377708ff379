//! Configuration and secrets for guests (`wasi:config/store`): each tenant's values with a
//! primitive's overlay, a missing key as `none`, `run --config-value/--secret`, secrets read
//! again when their file changes, unresolvable references refused by `serve --check`, and a
//! guest that reads a secret and tries every way to leak it — every signal is searched for
//! the secret's bytes.

use crate::otlp_receiver;
use crate::process::{ServeProcess, write_config_with};
use crate::serve::plugins_dir;
use crate::{fixture, http_client};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tta_host::tenant::hash_key;

const KEY_ACME: &str = "tta_acme_config_key";
const KEY_OTHER: &str = "tta_other_config_key";
const ENV_SECRET: &str = "env-secret-7c1d4a9e0b";
const FILE_SECRET: &str = "file-secret-3e8f2b6d51";
const ROTATED: &str = "file-secret-rotated-90aa";

fn tta_host_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tta-host"))
        .args(args)
        .current_dir(dir)
        .env(
            "TTA_CACHE_DIR",
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .envs(env.iter().copied())
        .output()
        .expect("tta-host runs")
}

fn tenants(secret_file: &Path) -> String {
    format!(
        "[[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n\
         [tenants.config]\nmodel = \"small\"\nregion = \"eu\"\n\
         [tenants.secrets]\napi_key = \"env:TTA_TEST_GUEST_SECRET\"\ndb_password = \"file:{}\"\n\
         [tenants.overlay.\"config-probe\".config]\nmodel = \"large\"\n\n\
         [[tenants]]\nid = \"other\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n\
         [tenants.config]\nmodel = \"other-model\"\n",
        hash_key(KEY_ACME),
        secret_file.display(),
        hash_key(KEY_OTHER),
    )
}

async fn probe(server: &ServeProcess, key: &str, input: &Value) -> (u16, String) {
    let response = http_client()
        .post(server.url("/v1/primitives/config-probe/execute"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(input.to_string())
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.text().await.expect("body"))
}

async fn values(server: &ServeProcess, key: &str, keys: &[&str]) -> Value {
    let (status, body) = probe(server, key, &json!({ "keys": keys })).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_read_their_own_config_and_no_signal_carries_a_secret() {
    let (otlp, received) = otlp_receiver::grpc().await;
    let dir = plugins_dir("guest-config", &[fixture("config-probe")]);
    let secret_file = dir.join("db-password");
    std::fs::write(&secret_file, format!("{FILE_SECRET}\n")).expect("secret file");
    let config = write_config_with(
        &dir,
        "",
        "",
        "",
        &format!(
            "[telemetry.traces]\nexporters = [\"otlp\"]\n[telemetry.logs]\nexporters = [\"otlp\", \"console\"]\n\
             format = \"json\"\nlevel = \"trace\"\n[telemetry.otlp]\nendpoint = \"http://{otlp}\"\nprotocol = \"grpc\"\n\
             [telemetry.export]\ninterval_ms = 100\n\n{}",
            tenants(&secret_file)
        ),
    );
    let server = ServeProcess::start_with_env(&dir, &config, &[("TTA_TEST_GUEST_SECRET", ENV_SECRET)]).await;

    // Each tenant sees its own values, the primitive's overlay on top; a missing key is null.
    let acme = values(&server, KEY_ACME, &["model", "region", "api_key", "missing"]).await;
    assert_eq!(acme["values"]["model"], "large", "the overlay wins: {acme}");
    assert_eq!(acme["values"]["region"], "eu");
    assert_eq!(
        acme["values"]["api_key"], ENV_SECRET,
        "a secret the guest returns is its business"
    );
    assert_eq!(acme["values"]["missing"], Value::Null);
    assert_eq!(acme["keys"], json!(["api_key", "db_password", "model", "region"]));
    let other = values(&server, KEY_OTHER, &["model", "api_key"]).await;
    assert_eq!(other["values"], json!({ "model": "other-model", "api_key": null }));
    assert_eq!(other["keys"], json!(["model"]), "no other tenant's keys");

    // The guest reads each secret and tries to log, trace, count, print and fail with it.
    for key in ["api_key", "db_password"] {
        let (status, body) = probe(&server, KEY_ACME, &json!({ "leak": key })).await;
        assert!(status >= 500, "{status} {body}");
        assert!(
            body.contains("[redacted]"),
            "the guest's error is answered, scrubbed: {body}"
        );
        assert!(!body.contains(ENV_SECRET) && !body.contains(FILE_SECRET), "{body}");
    }

    // A secret file that changes is read again on the next reload scan.
    std::fs::write(&secret_file, ROTATED).expect("rotate");
    let mut rotated = false;
    for _ in 0..100 {
        if values(&server, KEY_ACME, &["db_password"]).await["values"]["db_password"] == ROTATED {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "the rotated secret was never read: {}", server.stderr());
    let (_, body) = probe(&server, KEY_ACME, &json!({ "leak": "db_password" })).await;
    assert!(!body.contains(ROTATED), "the new value is scrubbed too: {body}");

    assert!(
        received
            .until(|r| {
                let spans = format!("{:?}", r.spans());
                spans.matches("leak [redacted]").count() >= 3
                    && format!("{:?}", r.logs()).contains("stderr: [redacted]")
            })
            .await,
        "the leak calls' spans and logs arrived, scrubbed"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tta_guest_leak_attempts_total{key=\"[redacted]\""),
        "the guest's counter is kept, its secret label scrubbed:\n{metrics}"
    );
    let stdout = server.stdout();
    let stderr = server.stderr();
    let signals = [
        ("OTLP spans", format!("{:?}", received.spans())),
        ("OTLP logs", format!("{:?}", received.logs())),
        ("OTLP metrics", format!("{:?}", received.metrics())),
        ("/metrics", metrics),
        ("stdout", stdout),
        ("stderr", stderr.clone()),
    ];
    for (signal, text) in &signals {
        for secret in [ENV_SECRET, FILE_SECRET, ROTATED] {
            assert!(!text.contains(secret), "{signal} carries a secret:\n{text}");
        }
    }
    assert!(
        stderr.contains("calling the provider with [redacted]"),
        "the guest's logs reach stderr, scrubbed:\n{stderr}"
    );
    server.stop().await;
}

#[test]
fn serve_check_names_an_unresolvable_secret_and_shows_no_value() {
    let dir = plugins_dir("guest-config-check", &[]);
    let config = write_config_with(
        &dir,
        "",
        "",
        "",
        &format!(
            "[[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\n\
             [tenants.secrets]\napi_key = \"env:TTA_TEST_UNSET_SECRET\"\ntoken = \"clear-token-4d2e\"\n\
             [tenants.overlay.\"llm-chat\".secrets]\nkey = \"file:/nonexistent/tta-secret\"\n\
             [tenants.config]\n\"bad key!\" = \"x\"\n",
            hash_key(KEY_ACME)
        ),
    );
    let config = config.to_string_lossy().into_owned();
    let out = tta_host_with_env(&dir, &["--config", &config, "serve", "--check"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for expected in [
        "tenants[0] (`acme`): secrets.api_key: the environment variable `TTA_TEST_UNSET_SECRET` is not set",
        "tenants[0] (`acme`): overlay.\"llm-chat\".secrets.key: the file `/nonexistent/tta-secret` cannot be read",
        "config/secrets key `bad key!` is invalid",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("clear-token-4d2e") && !stdout.contains("clear-token-4d2e"));

    // Resolvable, the same config passes, and the value is still not shown.
    let fixed = std::fs::read_to_string(&config)
        .expect("config")
        .replace("\"bad key!\"", "good_key")
        .replace("file:/nonexistent/tta-secret", "env:TTA_TEST_SET_SECRET");
    std::fs::write(&config, fixed).expect("config");
    let out = tta_host_with_env(
        &dir,
        &["--config", &config, "serve", "--check"],
        &[
            ("TTA_TEST_UNSET_SECRET", "now-set-8b1c"),
            ("TTA_TEST_SET_SECRET", "set-2f7a"),
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    for value in ["now-set-8b1c", "set-2f7a", "clear-token-4d2e"] {
        assert!(!all.contains(value), "`serve --check` shows a secret:\n{all}");
    }
}

#[test]
fn run_takes_config_values_and_secret_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = fixture("config-probe").to_string_lossy().into_owned();
    let env = [("TTA_TEST_RUN_SECRET", ENV_SECRET)];
    let base = [
        "run",
        probe.as_str(),
        "--config-value",
        "model=tiny",
        "--secret",
        "api_key=env:TTA_TEST_RUN_SECRET",
    ];

    let args = [&base[..], &["--input", r#"{"keys": ["model", "api_key", "nope"]}"#]].concat();
    let out = tta_host_with_env(dir.path(), &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(
        output["values"],
        json!({ "model": "tiny", "api_key": ENV_SECRET, "nope": null })
    );

    let args = [
        &base[..],
        &["--trace", "--print-metrics", "--input", r#"{"leak": "api_key"}"#],
    ]
    .concat();
    let out = tta_host_with_env(dir.path(), &args, &env);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(4), "a guest error: {stderr}");
    assert!(
        stderr.contains("leak [redacted]") && stderr.contains("stdout: [redacted]"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(ENV_SECRET) && !stderr.contains(ENV_SECRET),
        "{stdout}\n{stderr}"
    );

    let out = tta_host_with_env(dir.path(), &["run", &probe, "--secret", "api_key=hunter2"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be a reference, `api_key=env:VAR`"));
    let out = tta_host_with_env(
        dir.path(),
        &["run", &probe, "--secret", "api_key=env:TTA_TEST_NOT_SET"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--secret api_key: the environment variable `TTA_TEST_NOT_SET` is not set")
    );
}
