//! The real LLM primitive (`plugins/llm-chat`) and the assistant workflow
//! (`workflows/llm-assistant.toml`) through `serve`, against a loopback HTTPS stand-in of
//! an OpenAI-compatible provider (`tools/llm-standin`) whose CA the test makes: the seed's
//! span tree, GenAI and seed attributes, token and cost metrics, SSE and JSON answers,
//! retries that wait for the provider's `Retry-After`, the fallback model, each provider
//! failure as its own typed error, and the API key in no signal.

use crate::http_out::Pki;
use crate::serve::{KEY_ACME, KEY_BETA, KEY_GAMMA, Reply, TestServer, plugins_dir, send, server_config, tenant};
use crate::{plugin, repo};
use opentelemetry_sdk::trace::{InMemorySpanExporterBuilder, SpanData};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::time::Duration;
use tta_core::config::llm::Price;
use tta_llm_standin::Standin;

/// The key the stand-in accepts, and one it refuses.
const PROVIDER_KEY: &str = "sk-standin-4f1d9c0e7b2a";
const WRONG_KEY: &str = "sk-wrong-8c3e5a1b9d7f";

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn detail(reply: &Reply, status: u16, kind: &str) -> String {
    reply.problem(status, kind)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_calls_a_provider_over_https_and_every_failure_is_typed() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf_pem(&["localhost"]);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let standin = Standin::start(
        Some(crate::otlp_receiver::acceptor(chain, key)),
        Some(PROVIDER_KEY.to_owned()),
    )
    .await
    .expect("stand-in starts");
    let port = standin.addr.port();

    let dir = plugins_dir(
        "llm-assistant",
        &[plugin("chat-input"), plugin("llm-chat"), plugin("format")],
    );
    std::fs::create_dir_all(dir.join("workflows")).expect("workflows dir");
    std::fs::copy(
        repo().join("workflows/llm-assistant.toml"),
        dir.join("workflows/llm-assistant.toml"),
    )
    .expect("copy workflow");
    let ca = dir.join("provider-ca.pem");
    std::fs::write(&ca, pki.ca.pem()).expect("CA");
    let tenant_with = |models: &str, key: &str, extra: &str| {
        format!(
            "[http]\nallow = [\"https://localhost:{port}\"]\nca_files = [{ca:?}]\nfirst_byte_timeout_ms = 2000\n\
             [config]\nbase_url = \"https://localhost:{port}/v1\"\nmax_short_words = \"8\"\n{models}\n{extra}\n\
             [secrets]\napi_key = \"{key}\"\n",
            ca = ca.display().to_string()
        )
    };
    // acme: streams; its large tier is rate limited twice, then answers.
    let acme = tenant_with(
        "model = \"gpt-4o-mini\"\n\"model.large\" = \"flaky-429-2-acme\"\n\"model.fallback\" = \"gpt-4o\"",
        PROVIDER_KEY,
        "stream = \"true\"",
    );
    // beta: its models fail with 500 every time; the fallback answers.
    let beta = tenant_with(
        "model = \"fail-500\"\n\"model.fallback\" = \"gpt-4o\"",
        PROVIDER_KEY,
        "",
    );
    // gamma: a wrong key.
    let gamma = tenant_with("model = \"gpt-4o-mini\"", WRONG_KEY, "");
    let mut config = server_config(
        &dir,
        vec![
            tenant("acme", KEY_ACME, &acme),
            tenant("beta", KEY_BETA, &beta),
            tenant("gamma", KEY_GAMMA, &gamma),
        ],
    );
    config.server.workflows_dir = Some(dir.join("workflows"));
    config.llm.prices.insert(
        "gpt-4o-mini".into(),
        Price {
            input_per_million: 150.0,
            output_per_million: 600.0,
        },
    );
    let spans = InMemorySpanExporterBuilder::new().build();
    let server = TestServer::start(config, Some(spans.clone())).await;
    let assistant = |key: &'static str, question: &str| {
        let url = server.url("/v1/workflows/llm-assistant/run");
        let body = serde_json::json!({ "question": question }).to_string();
        async move { send(reqwest::Method::POST, &url, Some(key), body.into_bytes(), &[]).await }
    };
    let chat = |key: &'static str, input: serde_json::Value| {
        let url = server.url("/v1/primitives/llm-chat/execute");
        async move {
            send(
                reqwest::Method::POST,
                &url,
                Some(key),
                input.to_string().into_bytes(),
                &[],
            )
            .await
        }
    };

    // A short question: the small model, streamed, with usage; the seed's tree.
    let short = assistant(KEY_ACME, "What is WebAssembly?").await;
    assert_eq!(short.status, 200, "{}", String::from_utf8_lossy(&short.body));
    let text = short.json()["text"].as_str().unwrap_or_default().to_owned();
    assert!(text.contains("You asked: \"What is WebAssembly?\""), "{text}");
    assert!(text.contains("streamed: true"), "{text}");
    let seen = standin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].model, "gpt-4o-mini");
    assert!(seen[0].stream);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert!(seen[0].traceparent.is_some(), "the provider sees the trace");

    // A long question: the large tier, rate limited twice; the retries wait for Retry-After.
    let long = assistant(
        KEY_ACME,
        "Explain in detail how a WebAssembly host meters fuel and isolates tenants from each other",
    )
    .await;
    assert_eq!(long.status, 200, "{}", String::from_utf8_lossy(&long.body));
    assert!(
        long.json()["text"]
            .as_str()
            .unwrap_or_default()
            .contains("model: flaky-429-2-acme")
    );

    // Every try of the primary model fails with 500; the fallback model answers.
    let fell_back = assistant(KEY_BETA, "What is a sandbox?").await;
    assert_eq!(fell_back.status, 200, "{}", String::from_utf8_lossy(&fell_back.body));
    assert!(
        fell_back.json()["text"]
            .as_str()
            .unwrap_or_default()
            .contains("model: gpt-4o")
    );

    // Each failure of the provider is its own typed error.
    let refused = chat(KEY_GAMMA, serde_json::json!({"prompt": "hi"})).await;
    let why = detail(&refused, 422, "invalid_input");
    assert!(
        why.contains("HTTP 401") && why.contains("check the `api_key` secret"),
        "{why}"
    );
    let limited = chat(KEY_ACME, serde_json::json!({"prompt": "hi", "model": "fail-429"})).await;
    let why = detail(&limited, 503, "unavailable");
    assert!(why.contains("HTTP 429") && why.contains("retry after 1 s"), "{why}");
    assert_eq!(
        limited.header("retry-after"),
        "1",
        "the provider's wait is passed on to the client"
    );
    let failed = chat(KEY_ACME, serde_json::json!({"prompt": "hi", "model": "fail-500"})).await;
    assert!(detail(&failed, 503, "unavailable").contains("HTTP 500"));
    let stalled = chat(KEY_ACME, serde_json::json!({"prompt": "hi", "model": "stall"})).await;
    let why = detail(&stalled, 504, "timeout");
    assert!(why.contains("did not answer in time"), "{why}");
    for stream in [false, true] {
        let broken = chat(
            KEY_ACME,
            serde_json::json!({"prompt": "hi", "model": "malformed", "stream": stream}),
        )
        .await;
        let why = detail(&broken, 503, "unavailable");
        assert!(why.contains("is not an OpenAI-compatible chat completion"), "{why}");
    }
    let bad_input = chat(
        KEY_ACME,
        serde_json::json!({"prompt": "hi", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert!(detail(&bad_input, 422, "invalid_input").contains("not both"));

    assert!(server.host.telemetry().flush(Duration::from_secs(30)));
    let finished = spans.get_finished_spans().expect("spans");
    let by_id = |id| finished.iter().find(|s| s.span_context.span_id() == id);
    // The seed's hierarchy: workflow → router → … → llm-chat.execute → llm_call → HTTP POST.
    let llm_calls: Vec<&SpanData> = finished
        .iter()
        .filter(|s| {
            s.name == "llm_call"
                && s.span_kind == opentelemetry::trace::SpanKind::Internal
                && attr(s, "gen_ai.request.model").is_some()
        })
        .collect();
    let first = llm_calls
        .iter()
        .find(|s| {
            attr(s, "gen_ai.request.model").as_deref() == Some("gpt-4o-mini")
                && attr(s, "gen_ai.request.stream").as_deref() == Some("true")
        })
        .expect("the streamed small-model call");
    for (key, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.system", "openai"),
        ("gen_ai.response.model", "gpt-4o-mini"),
        ("gen_ai.response.finish_reasons", "stop"),
        ("llm.model", "gpt-4o-mini"),
        ("llm.model_tier", "small"),
        ("server.address", "localhost"),
    ] {
        assert_eq!(attr(first, key).as_deref(), Some(value), "{key} on {first:?}");
    }
    let input_tokens: u64 = attr(first, "gen_ai.usage.input_tokens")
        .and_then(|v| v.parse().ok())
        .expect("input tokens");
    let output_tokens: u64 = attr(first, "gen_ai.usage.output_tokens")
        .and_then(|v| v.parse().ok())
        .expect("output tokens");
    assert!(input_tokens > 0 && output_tokens > 0);
    assert_eq!(attr(first, "llm.prompt_tokens"), Some(input_tokens.to_string()));
    assert_eq!(attr(first, "llm.completion_tokens"), Some(output_tokens.to_string()));
    let cost: f64 = attr(first, "llm.cost_usd")
        .and_then(|v| v.parse().ok())
        .expect("priced from [llm.prices]");
    let expected = (input_tokens as f64 * 150.0 + output_tokens as f64 * 600.0) / 1e6;
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    let events: Vec<&str> = first.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        events,
        ["api_call_started", "first_chunk_received", "api_call_completed"]
    );
    let execute = by_id(first.parent_span_id).expect("parent");
    assert_eq!(execute.name, "llm-chat.execute");
    let mut chain = Vec::new();
    let mut at = by_id(execute.parent_span_id);
    while let Some(span) = at {
        chain.push(span.name.to_string());
        at = by_id(span.parent_span_id);
    }
    assert_eq!(
        chain,
        [
            "llm_call.attempt",
            "llm_call",
            "small",
            "router",
            "main",
            "workflow.llm-assistant"
        ]
        .map(String::from),
        "the step spans above the call"
    );
    assert!(
        finished
            .iter()
            .any(|s| s.name == "HTTP POST" && s.parent_span_id == first.span_context.span_id()),
        "the request is a client span under llm_call"
    );

    // The rate-limited tier: three attempts, each wait at least the Retry-After.
    let mut attempts: Vec<&SpanData> = finished
        .iter()
        .filter(|s| {
            s.name == "llm_call.attempt"
                && by_id(s.parent_span_id)
                    .and_then(|p| by_id(p.parent_span_id))
                    .is_some_and(|p| p.name == "large")
        })
        .collect();
    attempts.sort_by_key(|s| s.start_time);
    assert_eq!(attempts.len(), 3, "two 429s, then the answer");
    for pair in attempts.windows(2) {
        assert_eq!(attr(pair[0], "retry.retry_after_ms").as_deref(), Some("1000"));
        let waited = pair[1].start_time.duration_since(pair[0].end_time).expect("in order");
        assert!(
            waited >= Duration::from_millis(1000),
            "waited {waited:?}, less than the provider's Retry-After"
        );
    }
    let fallback = finished
        .iter()
        .find(|s| s.name == "small" && attr(s, "fallback.used").as_deref() == Some("fallback_model"))
        .expect("beta's fallback");
    assert_eq!(attr(fallback, "fallback.index").as_deref(), Some("1"));

    // Tokens and cost as metrics in both spellings; the key in no signal.
    let metrics = server.host.telemetry().metrics().render();
    for needle in [
        "llm_tokens_total{",
        "llm_cost_usd_total{",
        "gen_ai_client_token_usage_bucket{",
        "gen_ai_client_operation_duration_seconds_bucket{",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(needle) && l.contains("gpt-4o-mini")),
            "{needle} missing:\n{metrics}"
        );
    }
    crate::telemetry::promtool_check(&metrics);
    let everything = format!(
        "{metrics}{}{finished:?}",
        [&short, &long, &fell_back, &refused, &limited, &failed, &stalled]
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect::<String>()
    );
    for secret in [PROVIDER_KEY, WRONG_KEY] {
        assert!(!everything.contains(secret), "the key {secret} leaked into a signal");
    }
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reaches_a_provider_only_with_allow_http_and_prints_no_key() {
    let standin = Standin::start(None, Some(PROVIDER_KEY.to_owned()))
        .await
        .expect("stand-in starts");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("llm-run");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("provider.key"), PROVIDER_KEY).expect("key file");
    let origin = format!("http://{}", standin.addr);
    let wasm = plugin("llm-chat").display().to_string();
    let base = [
        "run".to_owned(),
        wasm,
        "--input".into(),
        r#"{"prompt": "hi", "stream": true}"#.into(),
        "--config-value".into(),
        format!("base_url={origin}/v1"),
        "--config-value".into(),
        "model=gpt-4o-mini".into(),
        "--secret".into(),
        "api_key=file:provider.key".into(),
    ];
    let run = |extra: Vec<String>| {
        let (dir, base) = (dir.clone(), base.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<String> = base.into_iter().chain(extra).collect();
            crate::tta_host_in(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };

    let denied = run(Vec::new()).await.expect("runs");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("HttpRequestDenied") && stderr.contains("--allow-http"),
        "{stderr}"
    );
    assert!(standin.seen().is_empty(), "a refused request never left the host");

    let ok = run(vec!["--allow-http".into(), origin.clone(), "--trace".into()])
        .await
        .expect("runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    assert_eq!(ok.status.code(), Some(0), "{stderr}");
    let output: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    assert!(
        output["text"].as_str().unwrap_or_default().starts_with("You asked"),
        "{output}"
    );
    assert!(
        output["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{output}"
    );
    assert!(stderr.contains("llm_call") && stderr.contains("HTTP POST"), "{stderr}");
    assert!(!stderr.contains(PROVIDER_KEY) && !stdout.contains(PROVIDER_KEY));
    assert_eq!(standin.seen().len(), 1);

    let bad = run(vec!["--allow-http".into(), "ftp://example.com".into()])
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-http"), "{stderr}");
}
