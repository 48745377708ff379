//! The `tta-host` binary as a user runs it: tables, outputs, summaries and exit codes.

use crate::{fixture, plugin, repo};
use std::process::{Command, Output};

fn tta_host(args: &[&str]) -> Output {
    crate::tta_host_in(&repo(), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn load_prints_a_table_of_every_plugin() {
    let paths: Vec<String> = ["echo", "uppercase", "json-validate", "word-count", "orchestrator"]
        .iter()
        .map(|n| plugin(n).display().to_string())
        .collect();
    let mut args = vec!["load"];
    args.extend(paths.iter().map(String::as_str));
    let out = tta_host(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let header = stdout.lines().next().expect("header");
    for column in ["NAME", "VERSION", "LANGUAGE", "SIZE", "COMPILE", "STATUS"] {
        assert!(header.contains(column), "{header}");
    }
    for name in ["echo", "uppercase", "json-validate", "word-count", "orchestrator"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{stdout}"));
        assert!(
            row.contains("0.1.0") && row.contains("Rust") && row.contains(" OK "),
            "{row}"
        );
    }
    assert!(text(&out.stderr).contains("[5/5] loading"), "progress is shown");
}

#[test]
fn load_rejects_bad_files_with_their_reason_and_exit_code_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm").expect("write");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").expect("wat")).expect("write");
    let echo = plugin("echo");
    let out = tta_host(&[
        "load",
        echo.to_str().expect("utf-8"),
        junk.to_str().expect("utf-8"),
        core.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("echo ") && l.contains(" OK ")),
        "{stdout}"
    );
    let junk_row = stdout.lines().find(|l| l.starts_with("junk.wasm")).expect("junk row");
    assert!(
        junk_row.contains("REJECTED") && junk_row.contains("not a WebAssembly file"),
        "{junk_row}"
    );
    let core_row = stdout.lines().find(|l| l.starts_with("core.wasm")).expect("core row");
    assert!(core_row.contains("build it as a component"), "{core_row}");
    assert!(text(&out.stderr).contains("2 of 3 file(s) rejected"));
}

#[test]
fn run_prints_the_output_and_a_summary() {
    let out = tta_host(&[
        "run",
        "orchestrator",
        "--input",
        r#"{"text":"a b c"}"#,
        "--correlation-id",
        "cli-1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(output["counts"]["words"], 3);
    assert_eq!(output["correlation_id"], "cli-1");
    let stderr = text(&out.stderr);
    let summary = stderr.lines().last().expect("summary");
    for needle in [
        "ok orchestrator 0.1.0",
        "wall ",
        "fuel ",
        "memory peak ",
        "correlation_id cli-1",
    ] {
        assert!(summary.contains(needle), "{needle:?} missing from {summary}");
    }
    assert!(stderr.contains("[info] word-count: counted words words=3"), "{stderr}");
}

#[test]
fn the_summary_starts_its_own_line_when_output_and_summary_share_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("both.log");
    let file = std::fs::File::create(&log).expect("create");
    let status = Command::new(env!("CARGO_BIN_EXE_tta-host"))
        .args(["run", "echo", "--input", "no newline"])
        .current_dir(repo())
        .env(
            "TTA_CACHE_DIR",
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .status()
        .expect("run");
    assert!(status.success());
    let both = std::fs::read_to_string(&log).expect("read");
    assert!(both.contains("no newline\nok echo 0.1.0: wall "), "{both:?}");
    // Nothing is exported, so the telemetry notice is only for `-v`.
    assert!(!both.contains("telemetry:"), "{both:?}");
    let verbose = tta_host(&["-v", "run", "echo", "--input", "x"]);
    assert!(
        text(&verbose.stderr).contains("telemetry: traces"),
        "{}",
        text(&verbose.stderr)
    );
}

#[test]
fn a_one_shot_run_loads_only_what_the_call_can_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["echo", "orchestrator", "word-count", "uppercase"] {
        std::fs::copy(plugin(name), dir.path().join(format!("{name}.wasm"))).expect("copy");
    }
    std::fs::write(dir.path().join("broken.wasm"), "not wasm").expect("write");
    let plugin_dir = dir.path().to_str().expect("utf-8");
    // `echo` imports no `invoke`: the rest of the directory is never read, so the broken
    // file is not even noticed.
    let alone = tta_host(&["run", "echo", "--plugin-dir", plugin_dir, "--input", "x"]);
    assert_eq!(alone.status.code(), Some(0), "{}", text(&alone.stderr));
    assert!(!text(&alone.stderr).contains("broken.wasm"), "{}", text(&alone.stderr));
    // The orchestrator calls others through `invoke`: the directory is loaded for it.
    let nested = tta_host(&[
        "run",
        "orchestrator",
        "--plugin-dir",
        plugin_dir,
        "--input",
        r#"{"text":"a b"}"#,
    ]);
    assert_eq!(nested.status.code(), Some(0), "{}", text(&nested.stderr));
    assert!(text(&nested.stderr).contains("skipping"), "{}", text(&nested.stderr));
    assert!(text(&nested.stderr).contains("broken.wasm"), "{}", text(&nested.stderr));
}

#[test]
fn run_reads_input_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"text":"from a file"}"#).expect("write");
    let out = tta_host(&["run", "uppercase", "--input-file", input.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), r#"{"text":"FROM A FILE"}"#);
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let cases: [(Vec<String>, i32, &str); 5] = [
        (
            vec!["json-validate".into(), "--input".into(), "{}".into()],
            4,
            "invalid-input",
        ),
        (vec![fixture("trap").display().to_string()], 5, "guest trapped"),
        (
            vec![
                fixture("spin-forever").display().to_string(),
                "--fuel".into(),
                "1000000".into(),
            ],
            6,
            "out of fuel",
        ),
        (
            vec!["no-such-primitive".into()],
            3,
            "no primitive named `no-such-primitive`",
        ),
        (vec!["plugins/missing.wasm".into()], 3, "no such file"),
    ];
    for (args, code, needle) in cases {
        let mut all = vec!["run".to_owned()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = tta_host(&refs);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{refs:?}: {stderr}");
        assert!(stderr.contains(needle), "{refs:?}: {needle:?} not in {stderr}");
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["load", "--help"],
        vec!["run", "--help"],
        vec!["validate", "--help"],
    ] {
        let out = tta_host(&args);
        assert_eq!(out.status.code(), Some(0));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Usage:") && stdout.contains("Exit codes"), "{stdout}");
        assert!(
            stdout.contains("--otlp-endpoint") && stdout.contains("--metrics-addr"),
            "{stdout}"
        );
    }
    let out = tta_host(&["run"]);
    assert_eq!(out.status.code(), Some(2), "missing argument is a usage error");
}

#[test]
fn a_bad_traceparent_flag_is_refused() {
    let out = tta_host(&["run", "echo", "--traceparent", "nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--traceparent"), "{}", text(&out.stderr));
}

#[test]
fn limits_come_from_the_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tta.toml");
    std::fs::write(&config, "[limits]\nfuel = 3000000\n").expect("write");
    let spin = fixture("spin-forever").display().to_string();
    let config_arg = config.to_str().expect("utf-8");

    let out = tta_host(&["--config", config_arg, "run", &spin]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stderr).contains("budget of 3000000 fuel"),
        "{}",
        text(&out.stderr)
    );

    let out = tta_host(&["--config", config_arg, "run", &spin, "--fuel", "4000000"]);
    assert!(
        text(&out.stderr).contains("budget of 4000000 fuel"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&config, "[limits]\nfule = 1\n").expect("write");
    let out = tta_host(&["--config", config_arg, "run", &spin]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("fule"),
        "the unknown key is named: {}",
        text(&out.stderr)
    );
}

#[test]
fn run_trace_prints_the_span_tree() {
    let out = tta_host(&["run", "orchestrator", "--input", r#"{"text":"a b c"}"#, "--trace"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let tree: Vec<&str> = stderr.lines().skip_while(|l| !l.starts_with("trace ")).collect();
    assert!(tree.len() > 5, "{stderr}");
    assert!(
        tree[1].starts_with("orchestrator.execute") && tree[1].contains("[ok]") && tree[1].contains("fuel="),
        "{stderr}"
    );
    let nested = |name: &str| tree.iter().any(|l| l.contains(&format!("─ {name}")));
    for name in [
        "wasm.instantiate",
        "uppercase.execute",
        "word-count.execute",
        "word-count.tokenize",
        "log INFO counted words",
    ] {
        assert!(nested(name), "{name} missing from\n{stderr}");
    }
    assert!(stderr.contains("• event tokenized"), "{stderr}");
    // Guest spans sit deeper than the call that made them.
    let depth = |name: &str| {
        tree.iter()
            .find(|l| l.contains(name))
            .map(|l| l.find('─').unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(depth("word-count.tokenize") > depth("word-count.execute"));
}

#[test]
fn json_logs_follow_the_tta_format() {
    let out = tta_host(&[
        "--log-format",
        "json",
        "run",
        "word-count",
        "--input",
        r#"{"text":"a b"}"#,
        "--correlation-id",
        "req-abc-123",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let done = records
        .iter()
        .find(|r| r["event"] == "primitive_executed")
        .unwrap_or_else(|| panic!("no primitive_executed record in\n{stderr}"));
    crate::assert_tta_log_record(done);
    assert_eq!(done["correlation_id"], "req-abc-123");
    assert_eq!(done["service"], "tta-host");
    assert_eq!(done["status"], "success");
    assert_eq!(done["level"], "INFO");
    let guest = records
        .iter()
        .find(|r| r["event"] == "counted words")
        .expect("guest record");
    assert_eq!(guest["correlation_id"], "req-abc-123");
    assert_eq!(guest["trace_id"], done["trace_id"]);
    assert_eq!(guest["words"], 2);
}

#[test]
fn a_bad_otel_variable_is_named_in_the_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_tta-host"))
        .args(["run", "echo", "--input", "x"])
        .current_dir(repo())
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .output()
        .expect("tta-host runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("OTEL_TRACES_SAMPLER") && stderr.contains("parentbased_always_on"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_collector_does_not_fail_a_run() {
    let closed = crate::otlp_receiver::closed_port();
    let endpoint = format!("http://{closed}");
    let out = tta_host(&["--otlp-endpoint", &endpoint, "run", "echo", "--input", "still works"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "still works");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("export to otlp grpc") && stderr.contains("failed"),
        "says once what is off:\n{stderr}"
    );
}

#[test]
fn validate_reports_every_problem_with_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\n[steps.main]\nsequential = [\"up\", \"missing\"]\n[steps.up]\nprimitive = \"uppercas\"\n",
    )
    .expect("write");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "name = \"good\"\n[steps.main]\nprimitive = \"uppercase\"\n").expect("write");
    let out = tta_host(&["validate", good.to_str().expect("utf-8"), bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("good.toml: OK (workflow `good`, 1 steps)"),
        "{}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:21: error: steps.main.sequential[1]: unknown step `missing`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.toml:5:13: error: steps.up.primitive: unknown primitive `uppercas`"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    let schema = tta_host(&["validate", "--schema"]);
    assert_eq!(schema.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).expect("the schema is JSON");
    assert_eq!(schema["title"], "tta-host workflow");
}

#[test]
fn run_a_workflow_file_with_its_trace() {
    let out = tta_host(&[
        "run",
        "workflows/order-saga.toml",
        "--input",
        r#"{"sku":"book-42","qty":1,"amount":2000}"#,
        "--trace",
    ]);
    assert_eq!(out.status.code(), Some(4), "a declined charge is the guest's error");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("compensated: reserve"), "{stderr}");
    let tree: Vec<&str> = stderr.lines().skip_while(|l| !l.starts_with("trace ")).collect();
    assert!(
        tree[1].starts_with("workflow.order") && tree[1].contains("ERROR"),
        "{stderr}"
    );
    for node in [
        "main",
        "reserve-stock.execute",
        "charge-card.execute",
        "reserve.compensate",
        "release-stock.execute",
    ] {
        assert!(
            tree.iter().any(|l| l.contains(&format!("─ {node}"))),
            "{node} missing:\n{stderr}"
        );
    }
    let bad = tta_host(&["run", "workflows/does-not-exist.toml"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("does-not-exist.toml"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn serve_check_reports_every_problem_and_the_example_config_passes() {
    let out = tta_host(&["--config", "deploy/tta.toml", "serve", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("config OK: 2 tenant(s)"));

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-check");
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nplugins_dir = \"no-such-dir\"\ncompile_workers = 0\n\
         [[tenants]]\nid = \"Not Valid\"\napi_key_sha256 = [\"plain-text-key\"]\n\
         [[tenants]]\nid = \"b\"\nprimitives = [\"a*b\"]\n[tenants.quotas]\nmax_concurrent = 0\n",
    )
    .expect("config");
    let out = tta_host(&["--config", bad.to_str().expect("utf-8"), "serve", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "server.plugins_dir",
        "server.compile_workers",
        "id must be 1–64 characters",
        "is not 64 hex digits",
        "no `api_key_sha256`",
        "pattern `a*b` is invalid",
        "quotas.max_concurrent must be greater than 0",
    ] {
        assert!(stderr.contains(expected), "`{expected}` not reported in:\n{stderr}");
    }
    assert!(!stderr.contains("plain-text-key\n"), "{stderr}");
}

#[test]
fn keygen_prints_a_key_and_the_hash_the_config_stores() {
    let out = tta_host(&["keygen"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("field printed")
    };
    let (key, hash) = (field("key:"), field("api_key_sha256:"));
    assert!(key.starts_with("tta_") && key.len() == 68, "{key}");
    assert_eq!(hash, tta_host::tenant::hash_key(&key));
    let again = tta_host(&["keygen", "--hash", &key]);
    assert_eq!(text(&again.stdout).trim(), hash);
    assert!(
        text(&out.stderr).is_empty(),
        "keygen prints nothing else: {}",
        text(&out.stderr)
    );
}

#[test]
fn serve_has_help() {
    let out = tta_host(&["serve", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--check",
        "--listen",
        "--plugins-dir",
        "--workflows-dir",
        "--uploads-dir",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn bench_measures_a_primitive_and_a_workflow() {
    let out = tta_host(&["bench", "echo", "--iterations", "50", "--warmup", "5", "--input", "hi"]);
    let table = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}{}", text(&out.stderr));
    for row in ["call (fresh instance)", "instantiate", "execute (warm instance)"] {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {table}"));
        let ns: f64 = line
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .expect("ns/op");
        assert!(ns > 0.0, "{line}");
    }
    let fuel: u64 = table
        .split("fuel per call ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("fuel per call");
    assert!(fuel > 0);
    assert!(table.contains("0 of 50 failed"), "{table}");

    let out = tta_host(&[
        "bench",
        "workflows/order-saga.toml",
        "--iterations",
        "5",
        "--input",
        r#"{"sku": "book-42", "qty": 1, "amount": 20}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3.0 calls"), "{}", text(&out.stdout));

    let out = tta_host(&["bench", "json-validate", "--iterations", "5", "--input", "{}"]);
    assert_eq!(out.status.code(), Some(4), "a failing first call is not measured");
    assert!(text(&out.stderr).contains("before measuring"), "{}", text(&out.stderr));
    let help = tta_host(&["bench", "--help"]);
    assert!(text(&help.stdout).contains("--iterations") && text(&help.stdout).contains("Exit codes"));
}
