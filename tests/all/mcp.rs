//! The MCP server through a client no one here wrote: the official MCP Python SDK (`mcp`
//! from PyPI, in a venv under the target directory) against `serve`'s `/mcp` and against
//! `tta-host mcp` on stdio, at 2026-07-28 (`auto`) and through the 2025-11-25 handshake
//! (`legacy`). Bad input goes in raw, over HTTP.

use crate::otlp_receiver::{self, attr, text};
use crate::process::{ServeProcess, write_config_with};
use crate::serve::plugins_dir;
use crate::{fixture, http_client, plugin, repo};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tta_host::tenant::hash_key;

/// The SDK release the tests hold the server to.
const MCP_SDK: &str = "mcp==2.3.0";
const KEY_ACME: &str = "tta_mcp_acme_key";
const KEY_OTHER: &str = "tta_mcp_other_key";
const KEY_TIGHT: &str = "tta_mcp_tight_key";
const KEY_SLOW: &str = "tta_mcp_slow_key";
const KEY_STRICT: &str = "tta_mcp_strict_key";
/// The tools of tenant `acme`, in `tools/list` order.
const ACME_TOOLS: [&str; 7] = [
    "format",
    "spin-forever",
    "summarize",
    "text-report",
    "tool-v2",
    "uppercase",
    "word-count",
];

/// A Python with the official SDK, made once per test binary.
fn mcp_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
        let python = venv.join("bin/python");
        let ready = std::process::Command::new(&python)
            .args(["-c", "import mcp, httpx2"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ready {
            let run = |cmd: &mut std::process::Command| {
                let out = cmd.output().expect("python3 runs");
                assert!(
                    out.status.success(),
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(std::process::Command::new(venv.join("bin/pip")).args(["install", "-q", MCP_SDK]));
        }
        python
    })
}

/// Runs the SDK client on `plan` and returns what it saw.
async fn client(plan: &Value) -> Value {
    let out = tokio::process::Command::new(mcp_python())
        .arg(repo().join("tests/all/mcp_client.py"))
        .arg(plan.to_string())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .await
        .expect("the MCP client runs");
    assert!(
        out.status.success(),
        "the MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A test directory with acme's plugins, `slugify-c` (another tenant's) and `text-report`.
fn tools_dir(test: &str) -> PathBuf {
    let plugins: Vec<PathBuf> = ["word-count", "uppercase", "summarize", "format", "slugify-c"]
        .into_iter()
        .map(plugin)
        .chain([fixture("spin-forever"), fixture("tool-v2")])
        .collect();
    let dir = plugins_dir(test, &plugins);
    std::fs::create_dir_all(dir.join("workflows")).expect("workflows dir");
    std::fs::copy(
        repo().join("workflows/text-report.toml"),
        dir.join("workflows/text-report.toml"),
    )
    .expect("copy the workflow");
    dir
}

/// What every client must have seen, whatever the transport and protocol.
fn assert_tool_calls(seen: &Value, tools: &[&str]) {
    let names: Vec<&str> = seen["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, tools, "{seen}");
    for tool in seen["tools"].as_array().into_iter().flatten() {
        assert_eq!(tool["input_schema"]["type"], "object", "{tool}");
    }
    // A 0.2.0 primitive is a typed tool: its schemas, title and hints, and its result checked by the SDK.
    let typed = seen["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "tool-v2")
        .expect("tool-v2 listed");
    assert_eq!(typed["input_schema"]["required"], json!(["a", "b"]), "{typed}");
    assert_eq!(typed["output_schema"]["required"], json!(["sum"]), "{typed}");
    assert_eq!(typed["title"], "Add two numbers", "{typed}");
    assert_eq!(typed["annotations"]["readOnlyHint"], true, "{typed}");
    assert_eq!(
        typed["annotations"]["destructiveHint"],
        Value::Null,
        "unset stays unset: {typed}"
    );
    let sum = &seen["typed"];
    assert_eq!(sum["is_error"], false, "{sum}");
    assert_eq!(sum["structured"]["sum"].as_f64(), Some(3.5), "{sum}");
    let primitive = &seen["primitive"];
    assert_eq!(primitive["is_error"], false, "{primitive}");
    assert_eq!(primitive["structured"]["words"], 3, "{primitive}");
    assert!(primitive["meta"]["dev.tta/trace_id"].is_string(), "{primitive}");

    let workflow = &seen["workflow"];
    assert_eq!(workflow["is_error"], false, "{workflow}");
    assert!(
        workflow["structured"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("HELLO AGENTS")),
        "{workflow}"
    );
    let progress = seen["progress"].as_array().expect("progress");
    assert!(progress.len() >= 4, "one notification per finished step: {progress:?}");
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p["progress"].as_f64(), Some((i + 1) as f64), "{progress:?}");
        assert!(p["message"].as_str().is_some_and(|m| m.ends_with("finished")), "{p}");
    }

    let guest = &seen["guest_error"];
    assert_eq!(guest["is_error"], true, "a guest error is a tool result: {guest}");
    assert_eq!(guest["structured"]["type"], "invalid_input", "{guest}");
    assert!(
        guest["text"][0]
            .as_str()
            .is_some_and(|t| t.starts_with("invalid_input: ")),
        "{guest}"
    );
    let fuel = &seen["fuel"];
    assert_eq!(fuel["is_error"], true, "{fuel}");
    assert_eq!(fuel["structured"]["type"], "fuel_exhausted", "{fuel}");
    assert_eq!(
        seen["other_tenants_tool"]["raised"]["code"], -32602,
        "a tool this key may not call is unknown: {seen}"
    );
}

fn tenants() -> String {
    format!(
        "[[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\n\
         primitives = [\"word-count\", \"uppercase\", \"summarize\", \"format\", \"spin-forever\", \"tool-v2\"]\n\
         workflows = [\"text-report\"]\nquotas = {{ fuel = 20000000, max_request_bytes = 100000 }}\n\n\
         [[tenants]]\nid = \"other\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"slugify-c\"]\n\n\
         [[tenants]]\nid = \"tight\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"word-count\"]\n\
         quotas = {{ calls_per_second = 0.01, burst = 1 }}\n\n\
         [[tenants]]\nid = \"slow\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"word-count\"]\n\
         quotas = {{ max_concurrent = 2 }}\n\n\
         [[tenants]]\nid = \"strict\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"word-count\"]\n\
         workflows = [\"text-report\"]\nvalidate_input = true\n",
        hash_key(KEY_ACME),
        hash_key(KEY_OTHER),
        hash_key(KEY_TIGHT),
        hash_key(KEY_SLOW),
        hash_key(KEY_STRICT),
    )
}

async fn post(server: &ServeProcess, key: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = http_client()
        .post(server.url("/mcp"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .expect("POST /mcp");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_calls_a_tenants_tools_over_streamable_http() {
    let (otlp, received) = otlp_receiver::grpc().await;
    let dir = tools_dir("mcp-http");
    let config = write_config_with(
        &dir,
        "",
        "workflows_dir = \"workflows\"\n[server.mcp]\npage_size = 2",
        "",
        &format!(
            "[telemetry.traces]\nexporters = [\"otlp\"]\n[telemetry.otlp]\nendpoint = \"http://{otlp}\"\n\
             protocol = \"grpc\"\n[telemetry.export]\ninterval_ms = 100\n\n{}",
            tenants()
        ),
    );
    let server = ServeProcess::start(&dir, &config).await;
    let url = server.url("/mcp");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let seen = client(&json!({
        "url": url, "mode": "auto", "key": KEY_ACME, "bad_key": "not-a-key", "tight_key": KEY_TIGHT,
        "strict_key": KEY_STRICT, "traceparent": format!("00-{trace_id}-{parent}-01"),
    }))
    .await;
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    assert_tool_calls(&seen, &ACME_TOOLS);
    assert_eq!(seen["pages"], 4, "seven tools, two per page: {seen}");
    let bad = &seen["bad_key"];
    assert_eq!(bad["code"], -32050, "{bad}");
    assert_eq!(bad["data"]["type"], "unauthorized", "{bad}");
    let tight = seen["tight"].as_array().expect("tight");
    assert_eq!(tight[0]["is_error"], false, "{tight:?}");
    let refused = &tight[1]["raised"];
    assert_eq!(refused["code"], -32050, "{tight:?}");
    assert_eq!(refused["data"]["type"], "rate_limited", "{refused}");
    assert_eq!(refused["data"]["status"], 429, "{refused}");

    // A tenant with validate_input: a valid call runs; a bad one is a tool error naming
    // where the schema refused it, and no guest ran (acme's same call reached the guest).
    let strict = &seen["strict"];
    assert_eq!(strict["valid"]["is_error"], false, "{strict}");
    for (call, instance, schema) in [
        ("primitive", "/text", "/properties/text/type"),
        ("workflow", "", "/required"),
    ] {
        let refused = &strict[call]["structured"];
        assert_eq!(strict[call]["is_error"], true, "{strict}");
        assert_eq!(refused["type"], "invalid_input", "{refused}");
        assert_eq!(
            (refused["instance_path"].as_str(), refused["schema_path"].as_str()),
            (Some(instance), Some(schema)),
            "{refused}"
        );
    }
    assert!(seen["guest_error"]["structured"].get("schema_path").is_none(), "{seen}");
    // The same check on `/v1`, before a host slot is taken: a problem document with both paths.
    for (path, body, schema) in [
        (
            "/v1/primitives/word-count/execute",
            r#"{"text":5}"#,
            "/properties/text/type",
        ),
        ("/v1/workflows/text-report/run", "{}", "/required"),
        ("/v1/primitives/word-count/execute", "not json", ""),
    ] {
        let response = http_client()
            .post(server.url(path))
            .bearer_auth(KEY_STRICT)
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 422, "{path}");
        let problem: Value = serde_json::from_str(&response.text().await.expect("body")).expect("a problem document");
        assert_eq!(problem["type"], "invalid_input", "{problem}");
        assert_eq!(problem["schema_path"], schema, "{problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains("input_schema")),
            "{problem}"
        );
    }
    let metrics = server.metrics().await;
    let strict_calls: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("primitive_executions_total{") && l.contains("tenant=\"strict\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(strict_calls, 1.0, "only the valid call ran a guest:\n{metrics}");

    let legacy = client(&json!({ "url": url, "mode": "legacy", "key": KEY_ACME })).await;
    assert_eq!(legacy["protocol_version"], "2025-11-25", "{legacy}");
    assert_tool_calls(&legacy, &ACME_TOOLS);

    // The caller's trace continues into the tool call's span, which carries the MCP attributes.
    let traced = received
        .until(|r| {
            r.spans()
                .iter()
                .any(|(_, s)| hex(&s.trace_id) == trace_id && hex(&s.parent_span_id) == parent)
        })
        .await;
    assert!(traced, "no span continues the traceparent of _meta");
    let spans = received.spans();
    let (_, span) = spans
        .iter()
        .find(|(_, s)| hex(&s.trace_id) == trace_id && hex(&s.parent_span_id) == parent)
        .expect("the call's span");
    let value = |key: &str| attr(&span.attributes, key).map(|v| text(&v));
    assert_eq!(value("mcp.method.name").as_deref(), Some("tools/call"));
    assert_eq!(value("gen_ai.tool.name").as_deref(), Some("word-count"));
    assert_eq!(value("gen_ai.operation.name").as_deref(), Some("execute_tool"));
    assert_eq!(value("mcp.protocol.version").as_deref(), Some("2026-07-28"));
    assert_eq!(value("tenant.id").as_deref(), Some("acme"));

    // Bad input, raw: each a specific JSON-RPC error with its status, and the server goes on.
    let (status, body) = post(&server, KEY_ACME, "{not json").await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(-32700)), "{body}");
    let (status, body) = post(&server, KEY_ACME, r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(-32600)), "{body}");
    let (status, body) = post(
        &server,
        KEY_ACME,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#,
    )
    .await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!(-32601)), "{body}");
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"word-count","arguments":{{"text":"{}"}}}}}}"#,
        "a".repeat(200_000)
    );
    let (status, body) = post(&server, KEY_ACME, huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["data"]["type"], "payload_too_large", "{body}");
    let (status, body) = post(
        &server,
        KEY_OTHER,
        r#"{"jsonrpc":"2.0","id":"x","method":"tools/list"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["tools"][0]["name"], "slugify-c", "{body}");
    assert_eq!(
        body["result"]["tools"].as_array().map(Vec::len),
        Some(1),
        "only its own tools: {body}"
    );
    let get = http_client()
        .get(&url)
        .bearer_auth(KEY_ACME)
        .send()
        .await
        .expect("GET /mcp");
    assert_eq!(get.status().as_u16(), 405);
    let (status, body) = post(&server, KEY_ACME, r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    assert_eq!((status, body["result"].clone()), (200, json!({})), "{body}");

    // A workflow's input schema is that of the primitive its input reaches first.
    let (status, body) = post(
        &server,
        KEY_ACME,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"after:summarize"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let workflow = &body["result"]["tools"][0];
    assert_eq!(workflow["name"], "text-report", "{body}");
    assert_eq!(workflow["inputSchema"]["required"], json!(["text"]), "{workflow}");

    // A message is read under one of its tenant's slots: two trickled messages hold the
    // slow tenant's two, so its third message is refused, and no other tenant notices.
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    let mut trickling = Vec::new();
    for _ in 0..2 {
        trickling.push(crate::fences::start_body(server.addr, "POST", "/mcp", KEY_SLOW, 50_000, 10).await);
    }
    let mut refused = (0, Value::Null);
    for _ in 0..100 {
        refused = post(&server, KEY_SLOW, ping).await;
        if refused.0 == 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(refused.0, 429, "{}", refused.1);
    assert_eq!(
        refused.1["error"]["data"]["type"], "concurrency_limited",
        "{}",
        refused.1
    );
    let (status, body) = post(&server, KEY_ACME, ping).await;
    assert_eq!(status, 200, "another tenant is unaffected: {body}");
    drop(trickling);
    let mut freed = 0;
    for _ in 0..100 {
        freed = post(&server, KEY_SLOW, ping).await.0;
        if freed == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(freed, 200, "the slots come back when the messages' connections close");

    // Tool calls are counted by tool and outcome, per tenant.
    let metrics = server.metrics().await;
    for series in [
        r#"mcp_tool_calls_total{outcome="success",tenant="acme",tool="word-count"}"#,
        r#"mcp_tool_calls_total{outcome="tool_error",tenant="acme",tool="spin-forever"}"#,
        r#"mcp_tool_calls_total{outcome="refused",tenant="tight",tool="word-count"}"#,
        r#"mcp_server_requests_total{method="tools/list",tenant="acme"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_calls_the_plugin_directory_over_stdio() {
    let dir = tools_dir("mcp-stdio");
    std::fs::remove_file(dir.join("plugins/slugify-c.wasm")).expect("not served here");
    for mode in ["auto", "legacy"] {
        let seen = client(&json!({
            "command": env!("CARGO_BIN_EXE_tta-host"),
            "args": ["--fuel", "20000000", "mcp", "--plugin-dir", dir.join("plugins"), "--workflows-dir", dir.join("workflows")],
            "cwd": dir,
            "mode": mode,
        }))
        .await;
        let version = if mode == "auto" { "2026-07-28" } else { "2025-11-25" };
        assert_eq!(seen["protocol_version"], version, "{seen}");
        assert_tool_calls(&seen, &ACME_TOOLS);
        assert_eq!(seen["pages"], 1, "{seen}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
