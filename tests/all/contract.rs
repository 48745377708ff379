//! Contracts with users: the published WIT package is never edited (a new version goes
//! beside it), the workflow JSON Schema in the repository matches the code, and every test
//! `SECURITY.md` names as proof exists.

use crate::repo;
use sha2::{Digest, Sha256};

/// SHA-256 over the files of `wit/0.1.0`, sorted by name, each as `name\0contents\0`.
const PUBLISHED_0_1_0: &str = "fd9e57cf6bf91a10a9ee31eb383e2585cfd8746fd72dc0595da7f37b744efa52";

#[test]
fn published_wit_0_1_0_is_unchanged() {
    let dir = repo().join("wit/0.1.0");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("wit/0.1.0")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        hasher.update(file.file_name().expect("name").as_encoded_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(file).expect("read"));
        hasher.update([0]);
    }
    let digest = hex::encode(hasher.finalize());
    assert_eq!(
        digest, PUBLISHED_0_1_0,
        "wit/0.1.0 changed: published versions are frozen; add wit/0.2.0 beside it instead"
    );
}

#[test]
fn the_workflow_schema_file_is_current() {
    let path = crate::repo().join("workflows/workflow.schema.json");
    let committed = std::fs::read_to_string(&path).expect("workflows/workflow.schema.json exists");
    assert!(
        committed == tta_host::workflow::json_schema(),
        "{} is stale: regenerate it with `tta-host validate --schema > workflows/workflow.schema.json`",
        path.display()
    );
}

/// The metric names a PromQL expression selects: identifiers followed by `{` or `[`.
fn selected_metrics(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_lowercase() && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if i < bytes.len() && matches!(bytes[i], b'{' | b'[') {
                names.push(expr[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn deploy_dashboards_and_alerts_name_only_metrics_the_host_exports() {
    // Where instruments are defined: the host's own, and each subsystem's.
    let source: String = [
        "crates/telemetry/src/metrics.rs",
        "crates/telemetry/src/guest_metrics.rs",
        "crates/telemetry/src/call_series.rs",
        "crates/telemetry/src/export.rs",
        "crates/workflow/src/metrics.rs",
        "crates/server/src/metrics.rs",
        "crates/runtime/src/imports/http/mod.rs",
        "crates/telemetry/src/genai.rs",
    ]
    .iter()
    .map(|file| std::fs::read_to_string(repo().join(file)).expect(file))
    .collect();
    let defined = |name: &str| {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        source.contains(&format!("\"{base}\""))
    };
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/tta-host-dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    let alerts = std::fs::read_to_string(repo().join("deploy/alerts.yml")).expect("alerts");
    exprs.push(alerts.clone());
    let mut checked = 0;
    for expr in &exprs {
        let names = selected_metrics(expr);
        assert!(!names.is_empty(), "no metric found in `{expr}`");
        for name in names {
            assert!(
                defined(&name),
                "`{name}` (in `{expr}`) is not a metric tta-host exports"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} metric references checked");

    // promtool validates the rules and the scrape config when it is installed (CI requires it).
    for args in [
        ["check", "rules", "deploy/alerts.yml"],
        ["check", "config", "deploy/prometheus.yml"],
    ] {
        match std::process::Command::new("promtool")
            .args(args)
            .current_dir(repo())
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "promtool {args:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) if std::env::var_os("TTA_REQUIRE_PROMTOOL").is_none() => {
                eprintln!("promtool not run ({e}); scripts/test.sh installs it");
            }
            Err(e) => panic!("promtool is required (TTA_REQUIRE_PROMTOOL) but cannot run: {e}"),
        }
    }
}

#[test]
fn every_test_security_md_names_as_proof_exists() {
    let security = std::fs::read_to_string(repo().join("SECURITY.md")).expect("SECURITY.md");
    let mut checked = 0;
    // References look like `limits::infinite_loop_runs_out_of_fuel`: a file of tests/all, a test.
    for reference in security.split('`').skip(1).step_by(2) {
        let Some((file, test)) = reference.split_once("::") else {
            continue;
        };
        if !file.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') || test.contains("::") {
            continue;
        }
        let source = std::fs::read_to_string(repo().join(format!("tests/all/{file}.rs")))
            .unwrap_or_else(|e| panic!("SECURITY.md names `{reference}`, but tests/all/{file}.rs: {e}"));
        assert!(
            source.contains(&format!("fn {test}(")),
            "SECURITY.md names `{reference}`, which tests/all/{file}.rs does not define"
        );
        checked += 1;
    }
    assert!(checked > 25, "only {checked} test references found in SECURITY.md");
}
