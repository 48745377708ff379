//! A soak of `tta-host serve` as a process: good, failing and hostile guests, two tenants,
//! uploads and deletes, a plugin hot-reloaded every half second, for `TTA_SOAK_SECONDS`
//! (60 by default; a manual run takes 600). Nothing may crash, no answer may be a 5xx the
//! request did not ask for, resident memory, descriptors and threads stay flat, and the
//! host's metrics account for every request. The curve goes to `target/soak/report.md`.

use crate::generated::{Execute, component};
use crate::process::{ServeProcess, Usage, write_config};
use crate::serve::{KEY_ACME, KEY_BETA, with_custom_section};
use crate::telemetry::sample;
use crate::{fixture, plugin};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tta_host::tenant::hash_key;

/// One kind of request of the mix, and the statuses it may get.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    expected: &'static [u16],
    /// Whether the request runs a guest (and so counts in `primitive_executions_total`).
    executes: bool,
}

const GOOD: Kind = Kind {
    name: "good",
    expected: &[200],
    executes: true,
};
const GOOD_BETA: Kind = Kind {
    name: "good (beta)",
    expected: &[200],
    executes: true,
};
const RELOADED: Kind = Kind {
    name: "hot-reloaded",
    expected: &[200],
    executes: true,
};
const TRAP: Kind = Kind {
    name: "trap",
    expected: &[500],
    executes: true,
};
const SPIN: Kind = Kind {
    name: "infinite loop",
    expected: &[422, 504],
    executes: true,
};
const MEMORY: Kind = Kind {
    name: "memory bomb",
    expected: &[422],
    executes: true,
};
const HIDDEN: Kind = Kind {
    name: "another tenant's",
    expected: &[404],
    executes: false,
};
const BAD_KEY: Kind = Kind {
    name: "bad key",
    expected: &[401],
    executes: false,
};
const UPLOAD: Kind = Kind {
    name: "upload",
    expected: &[200, 201],
    executes: false,
};
const DELETE: Kind = Kind {
    name: "delete",
    expected: &[200, 204, 404],
    executes: false,
};

/// What the clients saw, by kind and status.
#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<(&'static str, u16), u64>,
    unexpected: Vec<String>,
    executions: u64,
    sent: u64,
}

/// Clients sending at once.
const CLIENTS: u64 = 4;
/// Each guest's memory limit: the memory bomb reaches it on every call.
const MAX_MEMORY: u64 = 32 << 20;

/// A small deterministic generator: the mix is the same on every run.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn client(server_url: String, worker: u64, stop: Arc<AtomicBool>) -> Tally {
    let http = crate::http_client();
    let mut mix = Mix(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
    let mut tally = Tally::default();
    let uploads = [component("up-a", Execute::Echo), component("up-b", Execute::Echo)];
    while !stop.load(Ordering::Relaxed) {
        let pick = mix.next() % 100;
        let (kind, method, path, key, body): (Kind, reqwest::Method, String, &str, Vec<u8>) = match pick {
            0..40 => (
                GOOD,
                reqwest::Method::POST,
                "/v1/primitives/echo/execute".into(),
                KEY_ACME,
                b"{\"n\":1}".to_vec(),
            ),
            40..55 => (
                GOOD_BETA,
                reqwest::Method::POST,
                "/v1/primitives/echo/execute".into(),
                KEY_BETA,
                b"{}".to_vec(),
            ),
            55..65 => (
                RELOADED,
                reqwest::Method::POST,
                "/v1/primitives/reloaded/execute".into(),
                KEY_ACME,
                b"{}".to_vec(),
            ),
            65..72 => (
                TRAP,
                reqwest::Method::POST,
                "/v1/primitives/trap/execute".into(),
                KEY_ACME,
                b"{}".to_vec(),
            ),
            72..76 => (
                SPIN,
                reqwest::Method::POST,
                "/v1/primitives/spin-forever/execute".into(),
                KEY_ACME,
                b"{}".to_vec(),
            ),
            76..80 => (
                MEMORY,
                reqwest::Method::POST,
                "/v1/primitives/memory-hog/execute".into(),
                KEY_ACME,
                b"{}".to_vec(),
            ),
            80..86 => (
                HIDDEN,
                reqwest::Method::POST,
                "/v1/primitives/trap/execute".into(),
                KEY_BETA,
                b"{}".to_vec(),
            ),
            86..92 => (
                BAD_KEY,
                reqwest::Method::POST,
                "/v1/primitives/echo/execute".into(),
                "not-a-key",
                b"{}".to_vec(),
            ),
            92..96 => {
                let which = (mix.next() % 2) as usize;
                let name = ["up-a", "up-b"][which];
                (
                    UPLOAD,
                    reqwest::Method::PUT,
                    format!("/v1/primitives/{name}"),
                    KEY_ACME,
                    uploads[which].clone(),
                )
            }
            _ => {
                let name = ["up-a", "up-b"][(mix.next() % 2) as usize];
                (
                    DELETE,
                    reqwest::Method::DELETE,
                    format!("/v1/primitives/{name}"),
                    KEY_ACME,
                    Vec::new(),
                )
            }
        };
        let sent = http
            .request(method, format!("{server_url}{path}"))
            .bearer_auth(key)
            .body(body)
            .send()
            .await;
        tally.sent += 1;
        let status = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(e) => {
                tally.unexpected.push(format!("{} {path}: no answer: {e}", kind.name));
                continue;
            }
        };
        *tally.by_kind.entry((kind.name, status)).or_default() += 1;
        if !kind.expected.contains(&status) {
            tally.unexpected.push(format!("{} {path}: {status}", kind.name));
        } else if kind.executes {
            tally.executions += 1;
        }
    }
    tally
}

/// Every value of `name` summed over its series.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_under_mixed_load_stays_flat_and_accounts_for_every_request() {
    let seconds: u64 = std::env::var("TTA_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    for path in [
        plugin("echo"),
        fixture("trap"),
        fixture("spin-forever"),
        fixture("memory-hog"),
    ] {
        std::fs::copy(&path, dir.join("plugins").join(path.file_name().expect("a file name"))).expect("copy");
    }
    let reloaded = dir.join("plugins/reloaded.wasm");
    let first = component("reloaded", Execute::Echo);
    let versions = [first.clone(), with_custom_section(&first, "v2")];
    std::fs::write(&reloaded, &versions[0]).expect("write the reloaded plugin");
    let config = write_config(
        &dir,
        &format!(
            "[limits]\ntimeout_ms = 1000\nmax_memory_bytes = {MAX_MEMORY}\n\n\
             [[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nuploads = true\nmax_uploads = 4\nuploads_per_minute = 1000000\n\n\
             [[tenants]]\nid = \"beta\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"echo\"]\n",
            hash_key(KEY_ACME),
            hash_key(KEY_BETA),
        ),
    );
    let mut server = ServeProcess::start(&dir, &config).await;
    let base = server.url("");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|worker| tokio::spawn(client(base.clone(), worker, Arc::clone(&stop))))
        .collect();
    // Hot reloads: the file is replaced (written beside it, renamed over) twice a second.
    let reloader = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let next = reloaded.with_extension("wasm.new");
                std::fs::write(&next, &versions[(swaps % 2) as usize]).expect("write the next version");
                std::fs::rename(&next, &reloaded).expect("swap the plugin");
                swaps += 1;
            }
            swaps
        })
    };

    let started = Instant::now();
    let mut curve: Vec<(f64, Usage)> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(server.running(), "tta-host serve died:\n{}", server.stderr());
        curve.push((started.elapsed().as_secs_f64(), server.usage()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for client in clients {
        let t = client.await.expect("a client ends");
        tally.sent += t.sent;
        tally.executions += t.executions;
        tally.unexpected.extend(t.unexpected);
        for (key, n) in t.by_kind {
            *tally.by_kind.entry(key).or_default() += n;
        }
    }
    let swaps = reloader.await.expect("the reloader ends");
    assert!(server.running(), "tta-host serve died:\n{}", server.stderr());

    // Two scrapes: the second counts the first, so it must count everything sent plus one.
    let http = crate::http_client();
    let scrape = || async {
        http.get(server.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text")
    };
    let _ = scrape().await;
    let text = scrape().await;
    let executions = total(&text, "primitive_executions_total");
    let requests = total(&text, "http_server_requests_total");
    let reloads = sample(
        &text,
        "plugin_reloads_total",
        &[("kind", "primitive"), ("result", "loaded")],
    );

    let report = report(seconds, &curve, &tally, swaps, executions, requests);
    let report_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../soak/report.md");
    if let Some(parent) = report_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&report_path, &report);
    eprintln!("{report}");

    assert!(
        tally.unexpected.is_empty(),
        "unexpected answers:\n{}",
        tally.unexpected.join("\n")
    );
    assert!(tally.sent > 100, "the load ran: {} requests", tally.sent);
    assert_eq!(
        executions, tally.executions as f64,
        "every guest run counted once:\n{report}"
    );
    assert_eq!(
        requests,
        (tally.sent + 1) as f64,
        "every request counted once:\n{report}"
    );
    assert!(reloads.unwrap_or(0.0) >= 2.0, "the hot reloads happened: {reloads:?}");
    check_flat(&curve);
    let stderr = server.stderr();
    assert_eq!(server.stop().await, Some(0), "a clean exit on SIGTERM:\n{stderr}");
}

/// After a warm-up (the first quarter), the last quarter holds no more than the second.
/// Resident memory swings with the guests in flight (a memory bomb holds its whole limit
/// until it is stopped), so what is checked is its floor, the least of each quarter, and
/// its peak. The floor rises while the pool's warm slots are first used (each keeps
/// `keep_resident_bytes` of its memory mapped, 32 warm slots: a 10-minute run climbs from
/// 44 to 103 MiB and stays; with `keep_resident_bytes = 0` it is flat at 39 MiB), so it may
/// grow by that much plus 16 MiB, no more; the peak stays under the floor plus every
/// client's guest at its limit plus 128 MiB. Descriptors may differ by 16 (connections come
/// and go), threads by 8 (blocking-pool threads come and go).
fn check_flat(curve: &[(f64, Usage)]) {
    if curve.len() < 4 {
        return;
    }
    let quarter = curve.len() / 4;
    let warm = &curve[quarter..2 * quarter];
    let last = &curve[curve.len() - quarter..];
    let least = |part: &[(f64, Usage)]| part.iter().map(|(_, u)| u.rss_kib).min().unwrap_or(0);
    let most = |part: &[(f64, Usage)], f: fn(&Usage) -> u64| part.iter().map(|(_, u)| f(u)).max().unwrap_or(0);
    let (floor_warm, floor_last) = (least(warm), least(last));
    let warm_slots = 32 * (tta_host::HostConfig::default().keep_resident_bytes as u64 >> 10);
    assert!(
        floor_last <= floor_warm + warm_slots + 16 * 1024,
        "resident memory's floor grew from {floor_warm} KiB to {floor_last} KiB"
    );
    let peak = most(&curve[quarter..], |u| u.rss_kib);
    let bound = floor_warm + CLIENTS * (MAX_MEMORY >> 10) + 128 * 1024;
    assert!(peak <= bound, "resident memory peaked at {peak} KiB, over {bound} KiB");
    let (fds_warm, fds_last) = (most(warm, |u| u.fds), most(last, |u| u.fds));
    assert!(
        fds_last <= fds_warm + 16,
        "descriptors grew from {fds_warm} to {fds_last}"
    );
    let (threads_warm, threads_last) = (most(warm, |u| u.threads), most(last, |u| u.threads));
    assert!(
        threads_last <= threads_warm + 8,
        "threads grew from {threads_warm} to {threads_last}"
    );
}

fn report(seconds: u64, curve: &[(f64, Usage)], tally: &Tally, swaps: u64, executions: f64, requests: f64) -> String {
    let mut out = format!(
        "# Soak of tta-host serve: {seconds} s\n\n\
         {} requests sent ({:.0}/s), {} guest runs expected, {executions} counted in primitive_executions_total; \
         {requests} in http_server_requests_total (the sent ones and one scrape); {swaps} hot reloads; \
         {} unexpected answers.\n\n| kind | status | count |\n|---|---:|---:|\n",
        tally.sent,
        tally.sent as f64 / seconds.max(1) as f64,
        tally.executions,
        tally.unexpected.len()
    );
    for ((kind, status), n) in &tally.by_kind {
        out.push_str(&format!("| {kind} | {status} | {n} |\n"));
    }
    out.push_str("\n| t (s) | RSS (MiB) | fds | threads |\n|---:|---:|---:|---:|\n");
    let step = (curve.len() / 20).max(1);
    for (i, (t, u)) in curve.iter().enumerate() {
        if i % step == 0 || i + 1 == curve.len() {
            out.push_str(&format!(
                "| {t:.0} | {:.1} | {} | {} |\n",
                u.rss_kib as f64 / 1024.0,
                u.fds,
                u.threads
            ));
        }
    }
    out
}
