//! Item 12, recording a call for replay: the `echo` call and an `llm-chat` call (its prompt
//! to a loopback stand-in of an OpenAI-compatible provider over HTTP, the answer streamed
//! back) without a recording and with one (the tape: what `[recording] failed = true` costs
//! every call), and, apart, making the `.ttarec` bytes of each (what `serve` does off the
//! call path for a recording it keeps), with their size.

use crate::{INPUT, host_config, plugin_path, telemetry};
use criterion::Criterion;
use std::sync::{Arc, Mutex};
use tta_core::recording::Recording;
use tta_host::recording::Session;
use tta_host::telemetry::SamplerKind;
use tta_host::{CallOptions, Host};

pub const GROUP: &str = "recording";
pub const ECHO_PLAIN: &str = "echo_not_recorded";
pub const ECHO_RECORDED: &str = "echo_recorded";
pub const LLM_PLAIN: &str = "llm_chat_not_recorded";
pub const LLM_RECORDED: &str = "llm_chat_recorded";
/// Making the `.ttarec` bytes of one recording (gzip'd JSON): off the call path in `serve`.
pub const ECHO_FILE: &str = "echo_file";
pub const LLM_FILE: &str = "llm_chat_file";

/// The bytes of one recording of each call, for the report.
pub static SIZES: Mutex<Vec<(&'static str, usize)>> = Mutex::new(Vec::new());

fn options(recording: Option<Arc<Session>>, llm_origin: Option<&str>) -> CallOptions {
    let mut options = CallOptions {
        recording,
        ..CallOptions::default()
    };
    if let Some(origin) = llm_origin {
        let values = [
            ("base_url".to_owned(), format!("{origin}/v1")),
            ("model".to_owned(), "gpt-4o-mini".to_owned()),
        ];
        options.config = Some(Arc::new(
            tta_host::guest_config::GuestConfig::from_pairs(&values, &[]).expect("config"),
        ));
        let policy = tta_host::config::HttpPolicy {
            allow: vec![origin.to_owned()],
            ..tta_host::config::HttpPolicy::default()
        };
        let all = ["*".to_owned()];
        options.access = Some(Arc::new(tta_host::tenant::Access::new("default", &all, &all, policy)));
    }
    options
}

/// One call, recorded or not; recorded, the recording `serve` would keep.
async fn call(
    host: &Host,
    primitive: &Arc<tta_host::Primitive>,
    input: &[u8],
    record: bool,
    llm: Option<&str>,
) -> Option<Recording> {
    let session = record.then(|| Session::record(4 << 20));
    let outcome = host
        .call_primitive(primitive, input, options(session.clone(), llm))
        .await;
    assert!(outcome.output.is_ok(), "{:?}", outcome.output);
    session.map(|session| {
        let mut recording = Recording::new(0);
        recording.calls = session.recorded().expect("recorded");
        recording
    })
}

pub fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let host = Host::with_telemetry(host_config(), telemetry(SamplerKind::AlwaysOff)).expect("host");
    let echo = rt.block_on(host.load(&plugin_path("echo"))).expect("echo");
    let llm = rt.block_on(host.load(&plugin_path("llm-chat"))).expect("llm-chat");
    let standin = rt
        .block_on(tta_llm_standin::Standin::start(None, None))
        .expect("stand-in");
    let origin = format!("http://{}", standin.addr);
    let prompt = br#"{"prompt":"What is WebAssembly, in one sentence?","stream":true}"#;
    let echo_recording = rt.block_on(call(&host, &echo, &INPUT, true, None)).expect("recorded");
    let llm_recording = rt
        .block_on(call(&host, &llm, prompt, true, Some(&origin)))
        .expect("recorded");
    *SIZES.lock().unwrap_or_else(|e| e.into_inner()) = vec![
        (ECHO_RECORDED, echo_recording.to_bytes().len()),
        (LLM_RECORDED, llm_recording.to_bytes().len()),
    ];
    let mut group = c.benchmark_group(GROUP);
    for (id, record) in [(ECHO_PLAIN, false), (ECHO_RECORDED, true)] {
        group.bench_function(id, |b| b.to_async(rt).iter(|| call(&host, &echo, &INPUT, record, None)));
    }
    for (id, record) in [(LLM_PLAIN, false), (LLM_RECORDED, true)] {
        group.bench_function(id, |b| {
            b.to_async(rt).iter(|| call(&host, &llm, prompt, record, Some(&origin)))
        });
    }
    group.bench_function(ECHO_FILE, |b| b.iter(|| echo_recording.to_bytes()));
    group.bench_function(LLM_FILE, |b| b.iter(|| llm_recording.to_bytes()));
    group.finish();
}
