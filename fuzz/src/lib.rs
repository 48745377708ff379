//! What each fuzz target does with one input; the targets in `fuzz_targets/` are one line
//! each. libFuzzer replays the kept inputs (`fuzz/seeds/`, `fuzz/regressions/`) before it
//! mutates anything, so a fixed crash stays fixed in every smoke run.
//!
//! Every function feeds the input to the real host (real wasmtime, the real parsers, the
//! real HTTP stack) and panics only when the host breaks a promise: a panic inside the
//! host, a hang, a host error blamed on a guest, a `/v1` or `/mcp` answer without a valid key, or
//! one tenant reaching another's primitive. Errors the host reports properly are fine.

use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tta_host::{CallError, CallOptions, Host, HostConfig};

#[path = "../../host/benches/common/generated.rs"]
#[allow(dead_code, reason = "shared with the benchmark, which uses every variant")]
mod generated;

/// How long any one input may take before the harness calls it a hang. Far above what
/// the limits below allow (a call stops at 200 ms), so only a real hang trips it.
const HANG: Duration = Duration::from_secs(20);

/// The runtime every input runs on: one thread, like a fuzzer's process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Runs `future` to completion, or panics when it takes longer than [`HANG`].
fn block_on<F: Future>(what: &str, future: F) -> F::Output {
    runtime().block_on(async {
        match tokio::time::timeout(HANG, future).await {
            Ok(output) => output,
            Err(_) => panic!("{what} hung for more than {HANG:?}"),
        }
    })
}

/// Limits small enough that a hostile input costs milliseconds, not seconds.
fn config() -> HostConfig {
    let mut config = HostConfig {
        cache_dir: None,
        max_instances: 16,
        ..HostConfig::default()
    };
    config.limits.fuel = 5_000_000;
    config.limits.timeout_ms = 200;
    config.limits.max_memory_bytes = 16 << 20;
    config.limits.max_input_bytes = 64 << 10;
    config.limits.max_output_bytes = 64 << 10;
    config
}

/// A host with the fuzzing limits (and no plugins).
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        block_on("starting the host", async {
            Host::new(config()).expect("the host starts")
        })
    })
}

/// Checks what a call of an arbitrary guest ended with: the guest may fail in every way
/// it likes, but never as a host error, which would blame the host for the guest.
fn check_call(error: Option<&CallError>) {
    if let Some(CallError::Host(message)) = error {
        panic!("a guest's failure was reported as a host error: {message}");
    }
}

/// Target `load_component`: arbitrary bytes handed to the loader as a `.wasm` file; what
/// loads is also described and called.
pub fn load_component(data: &[u8]) {
    let host = host();
    block_on("loading arbitrary bytes", async {
        match host.inspect_bytes(Path::new("fuzz.wasm"), data.to_vec()).await {
            Ok(plugin) => {
                let outcome = host.call_primitive(&plugin, data, CallOptions::default()).await;
                check_call(outcome.output.as_ref().err());
            }
            Err(error) => {
                assert!(!error.to_string().is_empty(), "a load error without a message");
                assert_eq!(error.path(), Path::new("fuzz.wasm"), "a load error about another file");
            }
        }
    });
}

/// The published world and a core module with exactly its imports and exports (bodies
/// `unreachable`): the shape `wasm-smith` fills with arbitrary code.
struct World {
    resolve: wit_parser::Resolve,
    world: wit_parser::WorldId,
    shape: Vec<u8>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.1.0");
        let mut resolve = wit_parser::Resolve::default();
        let (package, _) = resolve.push_dir(&wit).expect("the published WIT package parses");
        let world = resolve
            .select_world(&[package], Some("primitive-plugin"))
            .expect("the world primitive-plugin");
        let mangling = wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync);
        let shape = wit_component::dummy_module(&resolve, world, mangling);
        World { resolve, world, shape }
    })
}

/// Target `smith_component`: a valid core module from `wasm-smith` with the world's
/// imports and exports and arbitrary code, made a component by `wit-component` exactly as
/// a guest toolchain does, then loaded, described and called with the rest of the input.
pub fn smith_component(data: &[u8]) {
    let mut input = arbitrary::Unstructured::new(data);
    let world = world();
    let config = wasm_smith::Config {
        available_imports: Some(world.shape.clone()),
        exports: Some(world.shape.clone()),
        max_memory32_bytes: 32 << 20,
        // The world's shape brings the one memory; the pool allows no second.
        max_memories: 0,
        max_table_elements: 10_000,
        max_funcs: 20,
        max_instructions: 200,
        max_data_segments: 10,
        // What wasmtime 48 accepts by default and guest toolchains emit; a proposal the
        // engine refuses only ends in `invalid_component`, a path the loader target covers.
        compact_imports_enabled: false,
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    };
    let Ok(module) = wasm_smith::Module::new(config, &mut input) else {
        return;
    };
    let mut bytes = module.to_bytes();
    wit_component::embed_component_metadata(
        &mut bytes,
        &world.resolve,
        world.world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("metadata embeds");
    // wit-component refuses some modules (a start function, say): those are not guests.
    let Ok(component) = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .and_then(|encoder| encoder.encode())
    else {
        return;
    };
    let call_input = input.take_rest().to_vec();
    let host = host();
    block_on("a wasm-smith guest", async {
        match host.inspect_bytes(Path::new("smith.wasm"), component).await {
            Ok(plugin) => {
                let outcome = host.call_primitive(&plugin, &call_input, CallOptions::default()).await;
                check_call(outcome.output.as_ref().err());
            }
            Err(error) => {
                // Its `describe` runs at load: it may trap, but must be classified.
                assert!(
                    matches!(error.kind(), "describe_failed" | "invalid_component"),
                    "a valid component of the world failed to load as {}: {error}",
                    error.kind()
                );
            }
        }
    });
}

/// A host with one primitive, `echo`, for workflows to refer to.
fn workflow_host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        block_on("starting the workflow host", async {
            let host = Host::new(config()).expect("the host starts");
            let bytes = generated::component("echo", generated::Execute::Echo);
            let plugin = host
                .inspect_bytes(Path::new("echo.wasm"), bytes)
                .await
                .expect("the generated echo loads");
            host.register(plugin).expect("echo registers");
            host
        })
    })
}

/// Target `workflow_config`: the text as a workflow file (parsed, validated, compiled
/// against a host that has `echo`) and as a host config file (parsed, validated, checked
/// for `serve`).
pub fn workflow_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = workflow_host();
    let _guard = runtime().enter();
    match tta_host::workflow::validate::parse(text) {
        Ok(file) => {
            let known = |name: &str| name == "echo";
            for problem in tta_host::workflow::validate::validate(&file, text, Some(&known)) {
                assert!(!problem.in_file(Path::new("w.toml")).is_empty());
            }
            if let Err(problems) = tta_host::workflow::Workflow::from_text(text, host) {
                assert!(!problems.is_empty(), "a workflow refused without a reason");
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a workflow refused without a reason");
            for problem in problems {
                assert!(!problem.in_file(Path::new("w.toml")).is_empty());
            }
        }
    }
    if let Ok(config) = toml::from_str::<HostConfig>(text)
        && config.validate().is_ok()
    {
        let _ = tta_host::config::server::check(&config);
    }
}

/// The keys of the two tenants of the API target.
pub const ALPHA_KEY: &str = "alpha-key-0123456789";
pub const BETA_KEY: &str = "beta-key-0123456789";

/// A server (bound, never accepting: connections are handed to it) with tenant `alpha`
/// (everything, uploads) and tenant `beta` (only `echo`), and the primitives `echo` and
/// `secret` in its plugins directory.
struct Api {
    server: tta_host::server::Server,
    host: Host,
    _dir: tempfile::TempDir,
}

/// The most series the fuzzed server may hold, whatever it was sent: the routes, the
/// standard methods plus `other`, the statuses the API answers, three tenants (`anonymous`
/// included) and at most `max_uploads` primitives of `alpha`'s. A label taken from the
/// request (a method as sent, a path) would pass it within a few thousand inputs.
const MAX_SERIES: usize = 3_000;

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        for name in ["echo", "secret"] {
            std::fs::write(
                plugins.join(format!("{name}.wasm")),
                generated::component(name, generated::Execute::Echo),
            )
            .expect("write a plugin");
        }
        let mut config = config();
        config.server.listen = "127.0.0.1:0".parse().expect("an address");
        config.server.plugins_dir = Some(plugins);
        config.server.uploads_dir = Some(dir.path().join("uploads"));
        config.server.reload_interval_ms = 0;
        config.server.max_upload_bytes = 1 << 20;
        config.server.header_timeout_ms = 1_000;
        config.server.body_timeout_ms = 1_000;
        config.server.metrics = true;
        config.tenants = vec![
            tenant(
                "alpha",
                ALPHA_KEY,
                r#"primitives = ["*"]
workflows = ["*"]
uploads = true
max_uploads = 4"#,
            ),
            tenant("beta", BETA_KEY, r#"primitives = ["echo"]"#),
        ];
        let host = Host::new(config).expect("the host starts");
        let server = block_on("binding the API", tta_host::server::Server::bind(host.clone())).expect("the API binds");
        Api {
            server,
            host,
            _dir: dir,
        }
    })
}

fn tenant(id: &str, key: &str, access: &str) -> tta_host::config::TenantConfig {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    toml::from_str(&format!("id = \"{id}\"\napi_key_sha256 = [\"{hash}\"]\n{access}")).expect("a valid tenant")
}

/// Target `http_api`: the bytes as what a client sends on one connection (usually one or
/// more HTTP/1 requests), served by the real router over an in-memory pipe. Checked on the
/// first answer: never a 500; nothing under `/v1` or `/mcp` answered 2xx without a valid key;
/// tenant `beta` never reaches `secret` (by path, or as an MCP tool). After every input: the
/// server holds no request body in memory, and its metric series stay under [`MAX_SERIES`].
pub fn http_api(data: &[u8]) {
    let api = api();
    let answer = block_on("an API connection", async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let connection = tokio::spawn(api.server.serve_io(server));
        // The server may answer (and close) before it has read everything.
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        let _ = connection.await;
        answer
    });
    check_answer(data, &answer);
    assert_eq!(api.server.buffered_bytes(), 0, "a request body outlived its connection");
    let series = api.host.telemetry().metrics().series_count();
    assert!(
        series <= MAX_SERIES,
        "{series} series: a request made labels of its own"
    );
}

fn check_answer(request: &[u8], answer: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = response.parse(answer) else {
        return;
    };
    let status = response.code.unwrap_or(0);
    assert_ne!(
        status,
        500,
        "the API answered 500 to {:?}",
        String::from_utf8_lossy(request)
    );
    if !(200..300).contains(&status) {
        return;
    }
    // Parse the request the way hyper does (it uses httparse too) to learn what was asked.
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(request) else {
        return;
    };
    let path = percent_decoded(parsed.path.unwrap_or(""));
    let key = parsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("authorization"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .next_back()
        .unwrap_or_default();
    let tenant = if key.contains(ALPHA_KEY) {
        Some("alpha")
    } else if key.contains(BETA_KEY) {
        Some("beta")
    } else {
        None
    };
    if path.starts_with("/v1") || path.starts_with("/mcp") {
        assert!(
            tenant.is_some(),
            "{path} answered {status} without a valid key: {:?}",
            String::from_utf8_lossy(request)
        );
    }
    if tenant == Some("beta") && path.starts_with("/mcp") {
        let answer = String::from_utf8_lossy(answer);
        assert!(
            !(answer.contains("\"name\":\"secret\"")
                || (request_mentions_secret(request) && answer.contains("\"isError\":false"))),
            "tenant beta listed or called `secret` over MCP: {answer}"
        );
    }
    if tenant == Some("beta") {
        assert!(
            !path.contains("secret"),
            "tenant beta reached {path} ({status}): {:?}",
            String::from_utf8_lossy(request)
        );
    }
}

fn request_mentions_secret(request: &[u8]) -> bool {
    request.windows(6).any(|w| w == b"secret")
}

fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
