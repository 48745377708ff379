//! The trace view built into `serve`: `GET /v1/traces` and `/v1/traces/{id}` per tenant,
//! and `/ui` in a real browser (Debian's `chromium`, driven over WebDriver by
//! `chromedriver`): no console error, a trace made through the API in the list, its
//! waterfall with the spans in order and their fuel, nothing of another tenant's.

use crate::process::{ServeProcess, free_port, require};
use crate::serve::{KEY_ACME, KEY_BETA, plugins_dir};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};
use tta_host::tenant::hash_key;

/// A headless Chromium session through `chromedriver`, both stopped when dropped.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    client: reqwest::Client,
}

impl Browser {
    async fn start(dir: &std::path::Path) -> Browser {
        require("chromium", "chromium");
        require("chromedriver", "chromium-driver");
        let port = free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = crate::http_client();
        let until = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < until, "chromedriver never listened on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = dir.join("chromium-profile");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            client,
        };
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = created["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Json) -> Json {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self
                .client
                .post(url)
                .body(body.to_string())
                .header("content-type", "application/json"),
        };
        let text = request
            .send()
            .await
            .expect("webdriver")
            .text()
            .await
            .expect("webdriver body");
        let answer: Json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("webdriver answered {text}"));
        assert!(answer["value"]["error"].is_null(), "webdriver {path}: {answer}");
        answer.get("value").cloned().unwrap_or(answer)
    }

    async fn session(&self, method: &str, path: &str, body: Json) -> Json {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    async fn script(&self, source: &str) -> Json {
        self.session("POST", "/execute/sync", json!({ "script": source, "args": [] }))
            .await
    }

    /// Waits until `source` (a script's body) returns something truthy, and returns it.
    async fn until(&self, what: &str, source: &str) -> Json {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.script(source).await;
            if !(value.is_null() || value == json!(false) || value == json!(0) || value == json!([])) {
                return value;
            }
            assert!(Instant::now() < until, "the page never showed {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_key(&self, key: &str) {
        let field = self
            .session("POST", "/element", json!({ "using": "css selector", "value": "#key" }))
            .await;
        let id = field
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Json::as_str)
            .expect("element id")
            .to_owned();
        self.session("POST", &format!("/element/{id}/value"), json!({ "text": key }))
            .await;
        self.script("document.querySelector('#login button').click(); return true;")
            .await;
    }

    /// The browser's console messages at level SEVERE since the last call.
    async fn console_errors(&self) -> Vec<String> {
        let logs = self.session("POST", "/se/log", json!({ "type": "browser" })).await;
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let png = self.session("GET", "/screenshot", Json::Null).await;
        let bytes = decode_base64(png.as_str().expect("base64 PNG"));
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("screenshot dir");
        std::fs::write(path, bytes).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | u32::from(value(*c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// The trace id of a response, from its `traceparent`.
fn trace_of(response: &reqwest::Response) -> String {
    let header = response
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("a traceparent");
    header.split('-').nth(1).expect("a trace id").to_owned()
}

async fn get(serve: &ServeProcess, path: &str, key: &str) -> (u16, Json) {
    let response = crate::http_client()
        .get(serve.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.expect("body")).unwrap_or(Json::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_view_shows_a_tenants_own_traces_with_their_fuel_in_a_real_browser() {
    let plugins: Vec<_> = ["echo", "orchestrator", "uppercase", "word-count", "summarize", "format"]
        .map(crate::plugin)
        .to_vec();
    let dir = plugins_dir("ui-traces", &plugins);
    std::fs::create_dir_all(dir.join("workflows")).expect("workflows dir");
    std::fs::copy(
        crate::repo().join("workflows/text-report.toml"),
        dir.join("workflows/text-report.toml"),
    )
    .expect("copy the workflow");
    let tenants = format!(
        "[[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nworkflows = [\"*\"]\n\n\
         [[tenants]]\nid = \"beta\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\n",
        hash_key(KEY_ACME),
        hash_key(KEY_BETA)
    );
    let config = crate::process::write_config_with(&dir, "", "workflows_dir = \"workflows\"", "", &tenants);
    let serve = ServeProcess::start(&dir, &config).await;
    let client = crate::http_client();
    let call = |name: &'static str, key: &'static str, body: &'static str| {
        let request = client
            .post(serve.url(&format!("/v1/primitives/{name}/execute")))
            .bearer_auth(key)
            .body(body);
        async move { request.send().await.expect("call") }
    };
    for _ in 0..3 {
        assert_eq!(call("echo", KEY_ACME, "{}").await.status(), 200);
    }
    let response = client
        .post(serve.url("/v1/workflows/text-report/run"))
        .bearer_auth(KEY_ACME)
        .body(r#"{"text":"a report on four words"}"#)
        .send()
        .await
        .expect("run");
    assert_eq!(response.status(), 200);
    let reported = trace_of(&response);
    let response = call("orchestrator", KEY_ACME, r#"{"text":"one two three"}"#).await;
    assert_eq!(response.status(), 200);
    let orchestrated = trace_of(&response);
    let beta = trace_of(&call("echo", KEY_BETA, "{}").await);

    // The API: each key sees its own, newest first; filters are strict.
    let until = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let (status, body) = get(&serve, "/v1/traces", KEY_ACME).await;
        assert_eq!(status, 200, "{body}");
        if body["traces"].as_array().is_some_and(|t| t.len() == 5) {
            break body;
        }
        assert!(Instant::now() < until, "acme's traces never all showed: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed["traces"][0]["trace_id"], orchestrated, "newest first");
    assert!(!listed.to_string().contains(&beta), "none of beta's");
    let (status, _) = get(&serve, &format!("/v1/traces/{beta}"), KEY_ACME).await;
    assert_eq!(status, 404, "another tenant's trace is not found");
    let (_, only) = get(&serve, "/v1/traces?primitive=orchestrator", KEY_ACME).await;
    assert_eq!(only["traces"].as_array().map(Vec::len), Some(1));
    let (status, problem) = get(&serve, "/v1/traces?colour=blue", KEY_ACME).await;
    assert_eq!(
        (
            status,
            problem["type"].as_str().is_some_and(|t| t.ends_with("invalid_query"))
        ),
        (400, true),
        "{problem}"
    );
    let (status, trace) = get(&serve, &format!("/v1/traces/{orchestrated}"), KEY_ACME).await;
    assert_eq!(status, 200);
    let spans = trace["span_list"].as_array().expect("spans").clone();
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names[0], "orchestrator.execute", "{names:?}");
    assert!(names.contains(&"word-count.tokenize") && names.contains(&"uppercase.execute"));
    assert_eq!(spans[0]["fuel"], trace["fuel"]);
    let (_, stats) = get(&serve, "/v1/stats", KEY_ACME).await;
    let echo = stats["primitives"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "echo"))
        .expect("echo's totals");
    assert_eq!(echo["success"], 3);

    // The page, in a browser.
    let browser = Browser::start(&dir).await;
    browser
        .session("POST", "/url", json!({ "url": serve.url("/ui") }))
        .await;
    browser
        .until("the key form", "return document.querySelector('#key') !== null")
        .await;
    browser.type_key(KEY_ACME).await;
    let rows = browser
        .until(
            "acme's traces",
            "const rows = [...document.querySelectorAll('#traces tbody tr')]; return rows.length >= 5 && rows.map(r => r.dataset.traceId);",
        )
        .await;
    assert_eq!(
        rows[0],
        json!(orchestrated),
        "the trace made through the API, newest first"
    );
    browser
        .until("echo's totals", "return [...document.querySelectorAll('#primitives tbody tr')].some(r => r.cells[0].textContent === 'echo' && r.cells[1].textContent === '3');")
        .await;
    browser
        .script(&format!(
            "document.querySelector('tr[data-trace-id=\"{orchestrated}\"]').click(); return true;"
        ))
        .await;
    let shown = browser
        .until(
            "the waterfall",
            "const rows = [...document.querySelectorAll('#waterfall .row')]; return rows.length > 0 && rows.map(r => [r.querySelector('.name').firstChild.textContent, r.querySelector('.fuel').textContent]);",
        )
        .await;
    let shown = shown.as_array().expect("rows");
    assert_eq!(shown.len(), spans.len(), "every span is drawn");
    for (row, span) in shown.iter().zip(&spans) {
        assert_eq!(row[0], span["name"], "the spans in the order they started");
        let fuel = span["fuel"].as_u64().expect("fuel");
        let expected = format!(
            "{} fuel",
            fuel.to_string()
                .as_bytes()
                .rchunks(3)
                .rev()
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(row[1], json!(expected), "{}: its fuel", span["name"]);
    }
    let screenshots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
    browser.screenshot(&screenshots.join("waterfall.png")).await;

    // A workflow: its steps, with what they decided, and the calls under them.
    assert_eq!(rows[1], json!(reported));
    browser
        .script(&format!(
            "document.querySelector('tr[data-trace-id=\"{reported}\"]').click(); return true;"
        ))
        .await;
    let steps = browser
        .until(
            "the workflow's steps",
            "const names = [...document.querySelectorAll('#waterfall .row')].map(r => r.querySelector('.name').textContent); return names.some(n => n.startsWith('format.execute')) && names;",
        )
        .await;
    let steps: Vec<&str> = steps
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert!(steps[0].starts_with("workflow.text-report"), "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("analyze") && s.contains("parallel.branches=3")),
        "a step shows its decision: {steps:?}"
    );
    browser.screenshot(&screenshots.join("workflow.png")).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");

    // Another tenant's key in the same tab sees none of them.
    browser
        .script("document.querySelector('#logout').click(); return true;")
        .await;
    browser.type_key(KEY_BETA).await;
    let rows = browser
        .until("beta's traces", "const rows = [...document.querySelectorAll('#traces tbody tr')]; return rows.length >= 1 && rows.map(r => r.dataset.traceId);")
        .await;
    assert_eq!(rows, json!([beta]), "beta sees its one trace and none of acme's");
    browser.screenshot(&screenshots.join("other-tenant.png")).await;
    assert!(browser.console_errors().await.is_empty());
    browser.session("DELETE", "", Json::Null).await;
    serve.stop().await;
}
