//! Record and replay: `run --record` and `tta-host replay` on real components — every example
//! plugin and workflow replays identically, a guest reading clocks and random replays to the
//! same bytes, a changed component's difference is named where it is, no secret is ever in
//! a recording, and a damaged recording is refused by name.

use crate::{config, fixture, plugin, repo, tta_host_in};
use flate2::read::GzDecoder;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use tta_core::recording::{ConfigValue, Event, Outcome, Recording};
use tta_host::CallOptions;
use tta_host::recording::Session;

fn dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("recording").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `run <target> --input <input> --record <file>` with `extra`, in `dir`.
fn record(dir: &Path, target: &str, input: &str, file: &str, extra: &[&str]) -> Output {
    let plugins = repo().join("plugins");
    let mut args = vec![
        "run",
        target,
        "--input",
        input,
        "--record",
        file,
        "--plugin-dir",
        plugins.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    tta_host_in(dir, &args)
}

fn replay(dir: &Path, file: &str, extra: &[&str]) -> Output {
    let mut args = vec!["replay", file];
    args.extend_from_slice(extra);
    tta_host_in(dir, &args)
}

/// The JSON inside a recording file, as text.
fn inside(path: &Path) -> String {
    let mut json = String::new();
    GzDecoder::new(std::fs::File::open(path).expect("recording"))
        .read_to_string(&mut json)
        .expect("gzip");
    json
}

#[test]
fn every_example_plugin_and_workflow_replays_identically() {
    let dir = dir("examples");
    let text_input = r#"{"text":"Hello, replay world: the same answers give the same call."}"#;
    let targets: Vec<(String, &str)> = [
        ("echo", "hello"),
        ("uppercase", text_input),
        ("word-count", text_input),
        ("summarize", text_input),
        ("format", r#"{"title":"t","body":"b"}"#),
        ("json-validate", r#"{"name":"Ada","age":36}"#),
        ("orchestrator", text_input),
        ("chat-input", r#"{"question":"What is WebAssembly?"}"#),
        ("reserve-stock", r#"{"sku":"book-42","qty":1,"amount":30}"#),
        ("charge-card", r#"{"sku":"book-42","qty":1,"amount":30}"#),
        ("refund-card", r#"{"sku":"book-42","qty":1,"amount":30}"#),
        ("release-stock", r#"{"sku":"book-42","qty":1,"amount":30}"#),
        ("slugify-c", text_input),
        ("slugify-js", text_input),
        ("slugify-py", text_input),
    ]
    .into_iter()
    .map(|(name, input)| (plugin(name).display().to_string(), input))
    .chain(
        [
            ("text-report.toml", text_input),
            ("order-saga.toml", r#"{"sku":"book-42","qty":1,"amount":30}"#),
            ("order-saga.toml", r#"{"sku":"book-42","qty":1,"amount":5000}"#),
            (
                "llm-pipeline.toml",
                r#"{"text":"Replay me, please.","tier":"thorough"}"#,
            ),
        ]
        .into_iter()
        .map(|(file, input)| (repo().join("workflows").join(file).display().to_string(), input)),
    )
    .collect();
    for (i, (target, input)) in targets.iter().enumerate() {
        let file = format!("{i}.ttarec");
        let recorded = record(&dir, target, input, &file, &[]);
        assert!(
            dir.join(&file).is_file() && String::from_utf8_lossy(&recorded.stderr).contains("recorded:"),
            "{target}: {}",
            text(&recorded)
        );
        let replayed = replay(&dir, &file, &[]);
        assert_eq!(replayed.status.code(), Some(0), "{target}: {}", text(&replayed));
        let stdout = String::from_utf8_lossy(&replayed.stdout);
        assert!(stdout.starts_with("identical"), "{target}: {stdout}");
        let recording = Recording::read(&dir.join(&file)).expect("reads");
        assert!(!recording.calls.is_empty(), "{target}");
        let is_workflow = target.ends_with(".toml");
        assert_eq!(recording.workflow.is_some(), is_workflow, "{target}");
        if target.contains("orchestrator") {
            let invokes = recording.calls[0]
                .tape
                .iter()
                .filter(|e| matches!(e, Event::Invoke { .. }))
                .count();
            assert!(
                invokes >= 2,
                "the orchestrator's nested calls are on its tape: {invokes}"
            );
        }
    }
    // The compensated saga is a failure that replays as the same failure.
    let saga = Recording::read(&dir.join(format!("{}.ttarec", targets.len() - 2))).expect("reads");
    assert!(matches!(
        saga.workflow.as_ref().map(|w| &w.outcome),
        Some(Outcome::Err { .. })
    ));
    assert!(
        saga.calls.iter().any(|c| c.primitive == "release-stock"),
        "the compensation ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_reads_clocks_and_random_gets_the_same_answers_again() {
    let host = crate::host_with(config(), &[fixture("clock-random")]).await;
    let primitive = host.registry().get("clock-random").expect("loaded");
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let session = Session::record(1 << 20);
        let options = CallOptions {
            recording: Some(Arc::clone(&session)),
            ..CallOptions::default()
        };
        let outcome = host.call_primitive(&primitive, b"{}", options).await;
        let output = outcome.output.expect("runs");
        let calls = session.recorded().expect("recorded");
        let kinds: Vec<&str> = calls[0]
            .tape
            .iter()
            .map(|e| match e {
                Event::WallClock { .. } => "wall",
                Event::MonotonicClock { .. } => "monotonic",
                Event::Random { .. } => "random",
                Event::InsecureRandom { .. } => "insecure",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["monotonic", "wall", "random", "insecure", "monotonic"],
            "{:?}",
            calls[0].tape
        );

        let replay = Session::replay(calls.clone(), Default::default());
        let options = CallOptions {
            recording: Some(Arc::clone(&replay)),
            ..CallOptions::default()
        };
        let again = host.call_primitive(&primitive, b"{}", options).await;
        assert_eq!(again.output.expect("replays"), output, "the replay answered the same");
        let (replayed, unused) = replay.replayed();
        assert!(unused.is_empty());
        assert_eq!(tta_host::recording::compare(&replayed[0]), Vec::new());
        assert_eq!(replayed[0].replayed.fuel, calls[0].fuel);
        outputs.push(output);
    }
    assert_ne!(outputs[0], outputs[1], "two live calls read other clocks and random");
}

#[test]
fn a_changed_component_is_reported_where_it_differs() {
    let dir = dir("changed");
    let v1 = fixture("clock-random").display().to_string();
    let v2 = fixture("clock-random-v2").display().to_string();
    for (change, code, expect) in [
        (
            "import",
            8,
            "import #1: the guest asked for 4 secure random bytes where the recording has a monotonic-clock read",
        ),
        ("output", 9, "output differs at byte"),
        ("fuel", 12, "fuel differs in `probe.read`"),
    ] {
        let file = format!("{change}.ttarec");
        let input = format!(r#"{{"change":"{change}"}}"#);
        let recorded = record(&dir, &v1, &input, &file, &[]);
        assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
        let same = replay(&dir, &file, &[]);
        assert_eq!(same.status.code(), Some(0), "{}", text(&same));
        let changed = replay(&dir, &file, &["--with", &v2]);
        let stdout = String::from_utf8_lossy(&changed.stdout);
        assert_eq!(changed.status.code(), Some(code), "{change}: {}", text(&changed));
        assert!(stdout.contains(expect), "{change}: {stdout}");
    }
    let wrong = replay(
        &dir,
        "import.ttarec",
        &["--with", &plugin("echo").display().to_string()],
    );
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("the recording calls clock-random"));
}

#[test]
fn a_recording_never_holds_a_secret_and_a_replay_takes_it_from_the_caller() {
    let dir = dir("secret");
    let secret = "sk-recorded-7e3f9a1c5b";
    std::fs::write(dir.join("key"), secret).expect("key");
    let probe = fixture("config-probe").display().to_string();
    let secret_args = ["--secret", "api_key=file:key", "--config-value", "model=small"];
    let recorded = record(
        &dir,
        &probe,
        r#"{"keys":["api_key","model","absent"]}"#,
        "values.ttarec",
        &secret_args,
    );
    assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
    let recorded = record(
        &dir,
        &probe,
        r#"{"leak":"api_key","output":true}"#,
        "leak.ttarec",
        &secret_args,
    );
    assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
    for file in ["values.ttarec", "leak.ttarec"] {
        let json = inside(&dir.join(file));
        assert!(!json.contains(secret), "{file} holds the secret: {json}");
    }
    let values = Recording::read(&dir.join("values.ttarec")).expect("reads");
    let answers: Vec<&ConfigValue> = values.calls[0]
        .tape
        .iter()
        .filter_map(|e| match e {
            Event::Config { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            &ConfigValue::Secret,
            &ConfigValue::Value("small".into()),
            &ConfigValue::Missing
        ]
    );

    // Without the secret the guest reads an empty value and calls another name with it.
    let blind = replay(&dir, "leak.ttarec", &[]);
    assert_eq!(blind.status.code(), Some(8), "{}", text(&blind));
    assert!(
        String::from_utf8_lossy(&blind.stderr).contains("--secret api_key=env:VAR"),
        "{}",
        text(&blind)
    );
    let told = replay(&dir, "values.ttarec", &["--secret", "api_key=file:key"]);
    assert_eq!(told.status.code(), Some(0), "{}", text(&told));
    // The guest named a primitive by the secret: the answer it got (the host's error naming
    // it) was kept scrubbed, so with the secret given the replay matches in output, errors
    // and spans, and differs only in the fuel of formatting the shorter answer.
    let told = replay(&dir, "leak.ttarec", &["--secret", "api_key=file:key"]);
    let stdout = String::from_utf8_lossy(&told.stdout);
    assert_eq!(told.status.code(), Some(12), "{}", text(&told));
    assert!(stdout.contains("fuel differs in `leak [redacted]`"), "{stdout}");
    assert!(!stdout.contains(secret));
}

#[test]
fn a_damaged_recording_is_refused_by_name() {
    let dir = dir("damaged");
    let recorded = record(&dir, &plugin("echo").display().to_string(), "x", "good.ttarec", &[]);
    assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
    let good = std::fs::read(dir.join("good.ttarec")).expect("read");
    std::fs::write(dir.join("truncated.ttarec"), &good[..good.len() / 2]).expect("write");
    std::fs::write(dir.join("text.ttarec"), b"{\"format\":\"ttarec\"}").expect("write");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, br#"{"format":"ttarec","version":99}"#).expect("gzip");
    std::fs::write(dir.join("future.ttarec"), encoder.finish().expect("gzip")).expect("write");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, br#"{"format":"ttarec","version":1,"calls":"#).expect("gzip");
    std::fs::write(dir.join("cut-json.ttarec"), encoder.finish().expect("gzip")).expect("write");
    for (file, expect) in [
        ("truncated.ttarec", "truncated or corrupt"),
        ("text.ttarec", "is not a .ttarec recording"),
        ("future.ttarec", "of version 99; this host reads `ttarec` version 1"),
        ("cut-json.ttarec", "not a valid recording at line 1"),
        ("missing.ttarec", "missing.ttarec"),
    ] {
        let out = replay(&dir, file, &[]);
        assert_eq!(out.status.code(), Some(13), "{file}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{file}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_failed_calls_for_their_tenant_within_its_budget() {
    use crate::serve::{KEY_ACME, KEY_BETA, TestServer, execute, get, plugins_dir, server_config, tenant, wait_for};
    let dir = plugins_dir("recordings-failed", &[plugin("echo"), plugin("json-validate")]);
    let mut config = server_config(&dir, vec![tenant("acme", KEY_ACME, ""), tenant("beta", KEY_BETA, "")]);
    config.recording.failed = true;
    config.recording.dir = Some(dir.join("recordings"));
    config.recording.max_call_bytes = 4096;
    config.recording.tenant_budget_bytes = 4096;
    let server = TestServer::start_keeping_traces(config).await;
    assert_eq!(execute(&server, "echo", KEY_ACME, "fine").await.status, 200);
    let failed = execute(&server, "json-validate", KEY_ACME, "{}").await;
    assert_eq!(failed.status, 422, "{}", String::from_utf8_lossy(&failed.body));
    let trace = failed.header("traceparent")[3..35].to_owned();
    for _ in 0..12 {
        assert_eq!(execute(&server, "json-validate", KEY_BETA, "{}").await.status, 422);
    }
    let listed = |key: &'static str| {
        let server = &server;
        async move { get(server, "/v1/recordings", Some(key)).await.json()["recordings"].clone() }
    };
    let mut acme = serde_json::Value::Null;
    for _ in 0..200 {
        acme = listed(KEY_ACME).await;
        if acme.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let acme = acme.as_array().expect("a list").clone();
    assert_eq!(acme.len(), 1, "only the failed call is kept: {acme:?}");
    assert_eq!(acme[0]["trace_id"], trace.as_str());
    assert_eq!(acme[0]["name"], "json-validate");
    assert_ne!(acme[0]["outcome"], "ok");

    // beta's dozen failures do not fit its budget: the oldest went, acme's stayed.
    let metrics = server.host.telemetry().metrics();
    assert!(
        wait_for(|| metrics.render().contains("recordings_evicted_total{tenant=\"beta\"}")).await,
        "{}",
        metrics.render()
    );
    let beta = listed(KEY_BETA).await.as_array().expect("a list").clone();
    assert!(!beta.is_empty() && beta.len() < 12, "{beta:?}");
    let bytes: u64 = beta.iter().map(|r| r["bytes"].as_u64().unwrap_or(0)).sum();
    assert!(bytes <= 4096, "beta's recordings stay within its budget: {bytes}");
    assert_eq!(listed(KEY_ACME).await.as_array().map(Vec::len), Some(1));

    let path = format!("/v1/recordings/{trace}");
    let theirs = get(&server, &path, Some(KEY_BETA)).await;
    theirs.problem(404, "not_found");
    let mine = get(&server, &path, Some(KEY_ACME)).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.header("content-type"), "application/vnd.tta.ttarec");
    let file = dir.join("downloaded.ttarec");
    std::fs::write(&file, &mine.body).expect("write");
    // The trace is kept by the export thread, a moment after the answer.
    let mut shown = serde_json::Value::Null;
    for _ in 0..400 {
        shown = get(&server, &format!("/v1/traces/{trace}"), Some(KEY_ACME))
            .await
            .json();
        if shown["recording"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(shown["recording"], path.as_str(), "{shown}");
    assert!(server.stop().await);

    let replayed = replay(&dir, "downloaded.ttarec", &["--plugin-dir", "plugins"]);
    assert_eq!(replayed.status.code(), Some(0), "{}", text(&replayed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_an_upload_that_answers_a_recorded_call_differently() {
    use crate::serve::{KEY_ACME, TestServer, execute, get, plugins_dir, send, server_config, tenant};
    let dir = plugins_dir("recordings-verify", &[]);
    let mut config = server_config(&dir, vec![tenant("acme", KEY_ACME, "uploads = true")]);
    config.recording.sample_ratio = 1.0;
    config.recording.dir = Some(dir.join("recordings"));
    config.reload.verify = tta_core::config::reload::Verify::Replay;
    let server = TestServer::start(config, None).await;
    let upload = |path: PathBuf| {
        let server = &server;
        async move {
            let bytes = std::fs::read(path).expect("component");
            let url = server.url("/v1/primitives/clock-random");
            send(reqwest::Method::PUT, &url, Some(KEY_ACME), bytes, &[]).await
        }
    };
    let first = upload(fixture("clock-random")).await;
    assert_eq!(first.status, 201, "{}", String::from_utf8_lossy(&first.body));
    let called = execute(&server, "clock-random", KEY_ACME, r#"{"change":"output"}"#).await;
    assert_eq!(called.status, 200);
    let trace = called.header("traceparent")[3..35].to_owned();
    for _ in 0..200 {
        let listed = get(&server, "/v1/recordings", Some(KEY_ACME)).await.json();
        if listed["recordings"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The same version again replays the recorded call identically and is swapped in.
    assert_eq!(upload(fixture("clock-random")).await.status, 200);
    let changed = upload(fixture("clock-random-v2")).await;
    let problem = changed.problem(409, "replay_differs");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&trace) && detail.contains("output differs"), "{detail}");
    let listed = get(&server, "/v1/primitives", Some(KEY_ACME)).await.json();
    let version = listed["primitives"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "clock-random"))
        .map(|p| p["version"].clone());
    assert_eq!(
        version,
        Some(serde_json::json!("0.1.0")),
        "the old version still serves"
    );
    let metrics = server.host.telemetry().metrics().render();
    for result in ["no_recordings", "identical", "different"] {
        assert!(
            metrics.contains(&format!(
                "reload_verifications_total{{kind=\"upload\",result=\"{result}\"}} 1"
            )),
            "{result}: {metrics}"
        );
    }
    assert!(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_call_replays_offline_from_its_recorded_response() {
    let key = "sk-standin-replay-5c2e8b";
    let standin = tta_llm_standin::Standin::start(None, Some(key.to_owned()))
        .await
        .expect("stand-in starts");
    let dir = dir("llm");
    std::fs::write(dir.join("provider.key"), key).expect("key file");
    let origin = format!("http://{}", standin.addr);
    let wasm = plugin("llm-chat").display().to_string();
    let args: Vec<String> = [
        "run",
        &wasm,
        "--input",
        r#"{"prompt": "What is a component?", "stream": true}"#,
        "--config-value",
        &format!("base_url={origin}/v1"),
        "--config-value",
        "model=gpt-4o-mini",
        "--secret",
        "api_key=file:provider.key",
        "--allow-http",
        &origin,
        "--record",
        "llm.ttarec",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (run_dir, run_args) = (dir.clone(), args.clone());
    let recorded = tokio::task::spawn_blocking(move || {
        tta_host_in(&run_dir, &run_args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("runs");
    assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
    assert_eq!(standin.seen().len(), 1);
    let json = inside(&dir.join("llm.ttarec"));
    assert!(!json.contains(key), "the API key is in the recording");
    let recording = Recording::read(&dir.join("llm.ttarec")).expect("reads");
    let http: Vec<&Event> = recording.calls[0]
        .tape
        .iter()
        .filter(|e| matches!(e, Event::Http { .. }))
        .collect();
    assert!(
        matches!(http.as_slice(), [Event::Http { method, response: tta_core::recording::HttpOutcome::Response { status: 200, body, .. }, .. }] if method == "POST" && !body.0.is_empty()),
        "{http:?}"
    );
    // Nothing is sent on replay: the stand-in is not even running.
    drop(standin);
    let replay_dir = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        replay(&replay_dir, "llm.ttarec", &["--secret", "api_key=file:provider.key"])
    })
    .await
    .expect("replays");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(key));
}

/// Fuel is what replay compares, so it must not depend on when the epoch ticks: an epoch
/// check firing right after a nested call's fuel was moved used to undo the move (about 1
/// call in 20 of `orchestrator` came out thousands of fuel off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_is_the_same_on_every_call_of_the_same_input() {
    let plugins: Vec<PathBuf> = ["orchestrator", "uppercase", "word-count"]
        .into_iter()
        .map(plugin)
        .collect();
    let host = crate::host_with(config(), &plugins).await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let outcome = crate::call(&host, "orchestrator", r#"{"text":"the same input, every time"}"#).await;
        assert!(outcome.output.is_ok(), "{:?}", outcome.output);
        *seen.entry(outcome.report.stats.fuel_consumed).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 1, "fuel per call: {seen:?}");
}
