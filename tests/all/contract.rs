//! Contracts with users: the published WIT package is never edited (a new version goes
//! beside it), the workflow JSON Schema in the repository matches the code, and every test
//! `SECURITY.md` names as proof exists. The Rust SDK carries a copy of the WIT it binds.

use crate::repo;
use sha2::{Digest, Sha256};

/// SHA-256 over the files of `wit/0.1.0`, sorted by name, each as `name\0contents\0`.
const PUBLISHED_0_1_0: &str = "fd9e57cf6bf91a10a9ee31eb383e2585cfd8746fd72dc0595da7f37b744efa52";
/// The same over `wit/0.2.0`.
const PUBLISHED_0_2_0: &str = "476d599e8abd3403e305710962de54389e976d7ed541cd4332e3f3ea1d3745d9";

fn wit_digest(version: &str) -> String {
    dir_digest(&repo().join("wit").join(version))
}

fn dir_digest(dir: &std::path::Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
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
    hex::encode(hasher.finalize())
}

#[test]
fn published_wit_versions_are_unchanged() {
    for (version, published) in [("0.1.0", PUBLISHED_0_1_0), ("0.2.0", PUBLISHED_0_2_0)] {
        assert_eq!(
            wit_digest(version),
            published,
            "wit/{version} changed: published versions are frozen; add a new version beside it instead"
        );
    }
}

/// The Rust SDK builds from the copy of the WIT it carries (so that `cargo package` makes a
/// crate that builds on its own): that copy is the published contract and `wasi:config`,
/// byte for byte.
#[test]
fn the_rust_sdk_carries_the_published_wit_unchanged() {
    for (vendored, original) in [("wit/0.2.0", "wit/0.2.0"), ("wit/deps/config", "wit/deps/config")] {
        assert_eq!(
            dir_digest(&repo().join("guest-sdk").join(vendored)),
            dir_digest(&repo().join(original)),
            "guest-sdk/{vendored} differs from {original}: copy {original}/*.wit into guest-sdk/{vendored}"
        );
    }
}

/// Components of both contract versions load into one host and run side by side; a 0.2.0
/// component describes itself as a tool, and its `invoke` reaches a 0.1.0 one. The Rust
/// SDK's typed primitives are 0.2.0 with schemas derived from their types.
#[tokio::test]
async fn components_of_0_1_0_and_0_2_0_load_and_call_each_other() {
    use tta_host::metadata::Contract;
    let host = crate::host_with(
        crate::config(),
        &[
            crate::plugin("slugify-c"),
            crate::plugin("word-count"),
            crate::fixture("tool-v2"),
        ],
    )
    .await;
    let registry = host.registry();
    let old = registry.get("slugify-c").expect("slugify-c");
    let new = registry.get("tool-v2").expect("tool-v2");
    assert_eq!(old.metadata.contract, Contract::V0_1_0);
    assert_eq!(old.metadata.input_schema, None);
    assert_eq!(new.metadata.contract, Contract::V0_2_0);
    assert_eq!(new.metadata.title.as_deref(), Some("Add two numbers"));
    let schema: serde_json::Value =
        serde_json::from_str(new.metadata.input_schema.as_deref().expect("input schema")).expect("JSON");
    assert_eq!(
        schema["required"],
        serde_json::json!(["a", "b"]),
        "the schema round-trips: {schema}"
    );
    assert!(new.metadata.output_schema.is_some());
    assert_eq!(new.metadata.hints.read_only, Some(true));
    assert_eq!(new.metadata.hints.destructive, None);

    // The SDK derives word-count's schemas from its serde types, doc comments included.
    let typed = registry.get("word-count").expect("word-count");
    assert_eq!(typed.metadata.contract, Contract::V0_2_0);
    assert_eq!(typed.metadata.title.as_deref(), Some("Count words"));
    let input: serde_json::Value =
        serde_json::from_str(typed.metadata.input_schema.as_deref().expect("derived input schema")).expect("JSON");
    assert_eq!(input["type"], "object", "{input}");
    assert_eq!(input["required"], serde_json::json!(["text"]), "{input}");
    assert_eq!(input["properties"]["text"]["type"], "string", "{input}");
    assert!(
        input["properties"]["text"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("counted")),
        "the field's doc comment is its description: {input}"
    );
    let output: serde_json::Value =
        serde_json::from_str(typed.metadata.output_schema.as_deref().expect("derived output schema")).expect("JSON");
    for field in ["words", "lines", "chars"] {
        assert_eq!(output["properties"][field]["type"], "integer", "{output}");
    }
    assert_eq!(
        (typed.metadata.hints.read_only, typed.metadata.hints.idempotent),
        (Some(true), Some(true))
    );

    let sum = crate::call(&host, "tool-v2", r#"{"a": 2, "b": 3.5}"#).await;
    assert_eq!(crate::json_output(&sum)["sum"], 5.5);
    let spans: Vec<&str> = sum.report.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans, ["tool.add"], "0.2.0 telemetry lands on the call");
    assert_eq!(sum.report.logs.len(), 1, "{:?}", sum.report.logs);
    let nested = crate::call(&host, "tool-v2", r#"{"a": 0, "b": 0, "invoke": "slugify-c"}"#).await;
    assert_eq!(
        crate::json_output(&nested)["slug"],
        "from-tool-v2",
        "0.2.0 invoke ran the 0.1.0 primitive"
    );
    assert_eq!(nested.report.nested.len(), 1);
    let missing = crate::call(&host, "tool-v2", r#"{"a": 0, "b": 0, "invoke": "nothing"}"#).await;
    let error = missing.output.expect_err("no such primitive");
    assert_eq!(error.error_type(), "not_found", "{error}");
    let bad = crate::call(&host, "tool-v2", r#"{"a": "x", "b": 1}"#).await;
    let error = bad.output.expect_err("a is not a number");
    assert_eq!(error.error_type(), "invalid_input", "{error}");

    let out = crate::tta_host_in(
        &repo(),
        &[
            "load",
            &crate::plugin("slugify-c").display().to_string(),
            &crate::plugin("word-count").display().to_string(),
            &crate::fixture("tool-v2").display().to_string(),
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().is_some_and(|h| h.contains("CONTRACT")), "{table}");
    for (name, contract) in [("slugify-c", "0.1.0"), ("word-count", "0.2.0"), ("tool-v2", "0.2.0")] {
        let row = table.lines().find(|l| l.starts_with(name)).expect("a row");
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns.get(2), Some(&contract), "{row}");
    }
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
        "crates/cluster/src/metrics.rs",
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
