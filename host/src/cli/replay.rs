//! `tta-host replay call.ttarec [--with new.wasm]`: runs a recorded call again, feeding the
//! guest the recorded answers of the host, and says whether it came out the same.
//!
//! The verdict names the first difference of each kind, most telling first: the import the
//! guest asked for differently (which explains everything after it), the output, the
//! error, the span tree, the fuel. The exit code is that of the most telling one.

use super::exit;
use super::run::parse_secret;
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tta_catalog::{self as catalog, Policy, WorkflowFileError};
use tta_core::config::Secret;
use tta_core::guest_config::GuestConfig;
use tta_core::recording::{CallRecord, Outcome, Payload, Recording, sha256_hex};
use tta_runtime::host::{CallOptions, Host};
use tta_runtime::primitive::Primitive;
use tta_runtime::recording::{Difference, ReplayedCall, Session, compare};

pub const REPLAY_HELP: &str = "Exit codes: 0 identical; 8 the guest asked an import for something the recording does \
not have there; 9 the output differs; 10 the error differs (or one failed and the other did not); 11 the span tree \
differs; 12 only the fuel differs; 13 the recording cannot be read (corrupt, truncated, another version); 3 a \
recorded component cannot be found or loaded; 1 a host error.";

/// `tta-host replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (`.ttarec`, from `run --record` or `GET /v1/recordings/{trace_id}`).
    pub recording: PathBuf,
    /// Replay on this component instead of the recorded one (a new version of the same
    /// primitive): the recorded answers are fed to it and the differences reported.
    #[arg(long, value_name = "FILE")]
    pub with: Option<PathBuf>,
    /// A secret the recorded call read (recordings never hold one), `key=env:VAR` or
    /// `key=file:PATH` (repeatable); without it the guest reads an empty value.
    #[arg(long = "secret", value_name = "KEY=env:VAR|KEY=file:PATH", value_parser = parse_secret)]
    pub secrets: Vec<(String, Secret)>,
    /// Where to look for a recorded component whose file has moved (by its digest).
    #[arg(long, default_value = "plugins", env = "TTA_PLUGIN_DIR")]
    pub plugin_dir: PathBuf,
}

/// What `replay` concluded.
struct Verdict {
    differences: Vec<(String, Difference)>,
    calls: usize,
    fuel: u64,
    missing_secrets: Vec<String>,
}

pub(super) async fn replay(host: &Host, args: &ReplayArgs) -> anyhow::Result<u8> {
    let recording = match Recording::read(&args.recording) {
        Ok(recording) => recording,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::BAD_RECORDING);
        }
    };
    let config = Arc::new(
        GuestConfig::from_pairs(&[], &args.secrets)
            .map_err(|problems| anyhow::anyhow!("--secret {}", problems.join("; ")))?,
    );
    let secrets: HashMap<String, String> = config.all("").into_iter().collect();
    let primitives = match load_components(host, &recording, args).await {
        Ok(primitives) => primitives,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(exit::LOAD);
        }
    };
    let session = Session::replay(recording.calls.clone(), secrets);
    let workflow_outcome = match &recording.workflow {
        None => {
            let Some(call) = recording.calls.first() else {
                eprintln!("error: {} holds no call", args.recording.display());
                return Ok(exit::BAD_RECORDING);
            };
            let primitive = &primitives[&call.primitive];
            let options = options(call, &session, &config);
            host.call_primitive(primitive, &call.input.0, options).await;
            None
        }
        Some(workflow) => {
            let source = Path::new("<recorded workflow>");
            load_uncalled(host, &recording, &workflow.source, &args.plugin_dir).await;
            let compiled = match catalog::compile_workflow(host, source, &workflow.source) {
                Ok(compiled) => compiled,
                Err(WorkflowFileError::Invalid { problems, .. }) => {
                    eprintln!(
                        "error: the recorded workflow `{}` does not compile here:",
                        workflow.name
                    );
                    for p in &problems {
                        eprintln!("  {}", p.in_file(source));
                    }
                    return Ok(exit::INVALID_WORKFLOW);
                }
                Err(e) => {
                    eprintln!(
                        "error: the recorded workflow `{}` does not compile here: {e}",
                        workflow.name
                    );
                    return Ok(exit::INVALID_WORKFLOW);
                }
            };
            let first = recording.calls.first();
            let options = CallOptions {
                tenant: first.map(|c| c.context.tenant.clone()),
                correlation_id: first.map(|c| c.context.correlation_id.clone()),
                limits: first.map(|c| c.limits),
                recording: Some(Arc::clone(&session)),
                config: Some(Arc::clone(&config)),
                ..CallOptions::default()
            };
            let outcome = compiled.run(&workflow.input.0, options).await;
            let replayed = match &outcome.output {
                Ok(output) => Outcome::Ok(Payload(output.clone())),
                Err(e) => Outcome::Err {
                    error_type: e.error_type().to_owned(),
                    message: e.to_string(),
                },
            };
            Some((workflow.outcome.clone(), replayed))
        }
    };
    let verdict = verdict(&session, workflow_outcome);
    print(&verdict, &recording);
    Ok(verdict
        .differences
        .iter()
        .map(|(_, d)| code(d))
        .min_by_key(|code| *code)
        .unwrap_or(exit::OK))
}

/// The exit code of a difference.
fn code(d: &Difference) -> u8 {
    match d {
        Difference::Import(_) => exit::REPLAY_IMPORT,
        Difference::Output { .. } => exit::REPLAY_OUTPUT,
        Difference::Error { .. } => exit::REPLAY_ERROR,
        Difference::Spans { .. } => exit::REPLAY_SPANS,
        Difference::Fuel { .. } => exit::REPLAY_FUEL,
    }
}

/// The options of a replayed call: its recorded tenant, correlation id and limits, and the
/// secrets given (so the replay is scrubbed of them as the recording was).
fn options(call: &CallRecord, session: &Arc<Session>, config: &Arc<GuestConfig>) -> CallOptions {
    CallOptions {
        tenant: Some(call.context.tenant.clone()),
        correlation_id: Some(call.context.correlation_id.clone()),
        tracestate: Some(call.context.tracestate.clone()),
        data: call.context.data.clone(),
        limits: Some(call.limits),
        recording: Some(Arc::clone(session)),
        config: Some(Arc::clone(config)),
        ..CallOptions::default()
    }
}

/// Loads the component of every recorded primitive: `--with` for the one it provides, else
/// the recorded file if it is still the recorded component, else the file of the plugin
/// directory with the recorded digest.
async fn load_components(
    host: &Host,
    recording: &Recording,
    args: &ReplayArgs,
) -> Result<HashMap<String, Arc<Primitive>>, String> {
    let mut loaded = HashMap::new();
    let with = match &args.with {
        Some(path) => Some(load(host, path).await?),
        None => None,
    };
    if let Some(new) = &with
        && !recording.calls.iter().any(|c| c.primitive == new.metadata.name)
    {
        let recorded: Vec<&str> = recording.calls.iter().map(|c| c.primitive.as_str()).collect();
        return Err(format!(
            "--with {} is the primitive `{}`; the recording calls {}",
            args.with.as_deref().unwrap_or(Path::new("")).display(),
            new.metadata.name,
            recorded.join(", ")
        ));
    }
    for call in &recording.calls {
        if loaded.contains_key(&call.primitive) {
            continue;
        }
        let primitive = match &with {
            Some(new) if new.metadata.name == call.primitive => Arc::clone(new),
            _ => {
                let path = find(call, &args.plugin_dir).ok_or_else(|| {
                    format!(
                        "the recorded component of `{}` (sha256 {}) is not at {} nor in {}; pass --plugin-dir DIR, or --with FILE to replay on another version",
                        call.primitive,
                        call.digest,
                        call.path.as_deref().unwrap_or("(no file)"),
                        args.plugin_dir.display()
                    )
                })?;
                load(host, &path).await?
            }
        };
        loaded.insert(call.primitive.clone(), primitive);
    }
    Ok(loaded)
}

/// Loads the primitives a recorded workflow names that no recorded call ran (the
/// compensations of a saga that succeeded, a route not taken), so it compiles: from
/// `plugin_dir`, else from the directories the recorded components came from. A replay that
/// runs one of them is a difference anyway (the recording has no such call).
async fn load_uncalled(host: &Host, recording: &Recording, source: &str, plugin_dir: &Path) {
    let Ok(file) = tta_workflow::parse(source) else {
        return;
    };
    let mut dirs = vec![plugin_dir.to_owned()];
    for call in &recording.calls {
        if let Some(dir) = call.path.as_deref().and_then(|p| Path::new(p).parent())
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_owned());
        }
    }
    for name in file.primitives() {
        if host.registry().get(&name).is_some() {
            continue;
        }
        if let Some(path) = dirs
            .iter()
            .map(|d| d.join(format!("{name}.wasm")))
            .find(|p| p.is_file())
        {
            let _ = load(host, &path).await;
        }
    }
}

async fn load(host: &Host, path: &Path) -> Result<Arc<Primitive>, String> {
    let loaded = catalog::load_primitives(host, vec![path.to_owned()], Policy::FailFast, |_, _, _| {})
        .await
        .pop()
        .map(|l| l.result);
    match loaded {
        Some(Ok(primitive)) => Ok(primitive),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("{}: nothing to load", path.display())),
    }
}

/// The file holding the recorded component of `call`.
fn find(call: &CallRecord, plugin_dir: &Path) -> Option<PathBuf> {
    let matches = |path: &Path| std::fs::read(path).is_ok_and(|bytes| sha256_hex(&bytes) == call.digest);
    if let Some(path) = call.path.as_deref().map(PathBuf::from)
        && matches(&path)
    {
        return Some(path);
    }
    catalog::list(plugin_dir, "wasm").into_keys().find(|path| matches(path))
}

fn verdict(session: &Session, workflow: Option<(Outcome, Outcome)>) -> Verdict {
    let (replayed, unused) = session.replayed();
    let mut differences = Vec::new();
    let mut missing_secrets = Vec::new();
    let mut fuel = 0;
    for call in &replayed {
        fuel += call.replayed.fuel;
        for d in compare(call) {
            differences.push((label(call), d));
        }
        for key in &call.missing_secrets {
            if !missing_secrets.contains(key) {
                missing_secrets.push(key.clone());
            }
        }
    }
    for call in &unused {
        differences.push((
            format!("`{}`", call.primitive),
            Difference::Import(tta_runtime::recording::Divergence {
                index: 0,
                asked: "no call of it".into(),
                recorded: Some(format!("a call of `{}`", call.primitive)),
            }),
        ));
    }
    if let Some((recorded, replayed)) = workflow
        && recorded != replayed
    {
        let d = match (&recorded, &replayed) {
            (Outcome::Ok(a), Outcome::Ok(b)) => Difference::Output {
                at: a.0.iter().zip(&b.0).take_while(|(x, y)| x == y).count(),
                recorded: String::from_utf8_lossy(&a.0).into_owned(),
                replayed: String::from_utf8_lossy(&b.0).into_owned(),
            },
            _ => Difference::Error {
                recorded: format!("{recorded:?}"),
                replayed: format!("{replayed:?}"),
            },
        };
        differences.push(("the workflow".into(), d));
    }
    Verdict {
        differences,
        calls: replayed.len(),
        fuel,
        missing_secrets,
    }
}

fn label(call: &ReplayedCall) -> String {
    format!("`{}` {}", call.replayed.primitive, call.replayed.version)
}

fn print(verdict: &Verdict, recording: &Recording) {
    for key in &verdict.missing_secrets {
        eprintln!(
            "warning: the guest read the secret `{key}`, which a recording never holds; pass --secret {key}=env:VAR to give it"
        );
    }
    let what = recording
        .workflow
        .as_ref()
        .map_or_else(|| "call".to_owned(), |w| format!("workflow `{}`", w.name));
    if verdict.differences.is_empty() {
        println!(
            "identical: the {what} replayed the same ({} call{}, fuel {})",
            verdict.calls,
            if verdict.calls == 1 { "" } else { "s" },
            verdict.fuel
        );
        return;
    }
    println!("different: the {what} did not replay the same");
    for (call, d) in &verdict.differences {
        println!("  {:<6} {call}: {d}", d.kind());
    }
}
