//! `tta-host new` for each language: make the project, run its `build.sh`, load and run
//! the component it built, the way its README says.
//!
//! The builds reuse what `cargo xtask plugins` installed (the guest target directory for
//! Rust, its componentize-py for Python); JavaScript runs its own `npm install`.

use crate::{repo, tta_host_in as tta_host};
use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Makes, builds, loads and runs a project; returns what it printed for `input.json`.
/// Also runs it with `--config-value config`, whose output must contain `expected`.
/// Makes, builds, loads and runs a `lang` project; its load row says `language` and the
/// contract version `contract`.
fn new_build_load_run(lang: &str, language: &str, contract: &str, (config, expected): (&str, &str)) -> String {
    let parent = tempfile::tempdir().expect("temp dir");
    let name = format!("hello-{lang}");
    let made = tta_host(parent.path(), &["new", &name, "--lang", lang]);
    assert!(made.status.success(), "new: {}", text(&made.stderr));
    assert!(text(&made.stdout).contains("./build.sh"), "says what to do next");
    let project = parent.path().join(&name);
    for file in ["README.md", "build.sh", "input.json"] {
        assert!(project.join(file).is_file(), "{file} is made");
    }

    let guests = repo().join("target/guests");
    let path = format!(
        "{}:{}",
        guests.join("tools/python/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let build = Command::new(project.join("build.sh"))
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &guests)
        .env("PATH", path)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .expect("build.sh runs");
    assert!(
        build.status.success(),
        "{lang} build failed:\n{}\n{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let wasm = format!("{name}.wasm");
    assert!(project.join(&wasm).is_file(), "build.sh makes {wasm}");

    let load = tta_host(&project, &["load", &wasm]);
    let table = text(&load.stdout);
    assert!(load.status.success(), "load: {table}{}", text(&load.stderr));
    let row = table.lines().find(|l| l.starts_with(&name)).expect("a row for it");
    assert!(row.contains(language) && row.contains("OK"), "{row}");
    assert_eq!(row.split_whitespace().nth(2), Some(contract), "{row}");

    let run = tta_host(&project, &["run", &wasm, "--input-file", "input.json"]);
    assert!(run.status.success(), "run: {}", text(&run.stderr));
    let configured = tta_host(
        &project,
        &["run", &wasm, "--input-file", "input.json", "--config-value", config],
    );
    assert!(configured.status.success(), "run: {}", text(&configured.stderr));
    let configured = text(&configured.stdout);
    assert!(
        configured.contains(expected),
        "the template reads `{config}`: {configured}"
    );
    let bad = tta_host(&project, &["run", &wasm, "--input", ""]);
    assert_eq!(bad.status.code(), Some(4), "a typed error: {}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("invalid-input"), "{}", text(&bad.stderr));
    text(&run.stdout)
}

/// The greeting word each template reads from `wasi:config`, and what it then says.
const HOWDY: (&str, &str) = ("greeting=Howdy", "Howdy, Ada!");

fn greeting(output: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(output).expect("JSON output");
    json["greeting"].as_str().expect("a greeting").to_owned()
}

#[test]
fn new_rust_project_builds_loads_and_runs() {
    assert_eq!(
        greeting(&new_build_load_run("rust", "Rust", "0.2.0", HOWDY)),
        "Hello, Ada!"
    );
}

#[test]
fn new_python_project_builds_loads_and_runs() {
    assert_eq!(
        greeting(&new_build_load_run("python", "Python", "0.1.0", HOWDY)),
        "Hello, Ada!"
    );
}

#[test]
fn new_js_project_builds_loads_and_runs() {
    assert_eq!(
        greeting(&new_build_load_run("js", "JavaScript", "0.1.0", HOWDY)),
        "Hello, Ada!"
    );
}

#[test]
fn new_c_project_builds_loads_and_runs() {
    let output = new_build_load_run("c", "C", "0.1.0", ("prefix=>> ", r#">> {"name": "Ada"}"#));
    assert_eq!(output.trim(), r#"{"name": "Ada"}"#, "the C template echoes");
}

#[test]
fn new_refuses_a_bad_name_and_a_directory_in_use() {
    let parent = tempfile::tempdir().expect("temp dir");
    let help = tta_host(parent.path(), &["new", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    for word in ["--lang", "rust", "python", "js", "--sdk", "Exit codes"] {
        assert!(
            text(&help.stdout).contains(word),
            "{word} missing from:\n{}",
            text(&help.stdout)
        );
    }
    let bad = tta_host(parent.path(), &["new", "Not_OK", "--lang", "c"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("not a usable primitive name"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::create_dir(parent.path().join("taken")).expect("mkdir");
    std::fs::write(parent.path().join("taken/file"), "x").expect("write");
    let taken = tta_host(parent.path(), &["new", "taken", "--lang", "python"]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(
        text(&taken.stderr).contains("already exists"),
        "{}",
        text(&taken.stderr)
    );
    let no_sdk = tta_host(parent.path(), &["new", "rusty", "--sdk", "/nonexistent"]);
    assert_eq!(no_sdk.status.code(), Some(1));
    assert!(text(&no_sdk.stderr).contains("--sdk"), "{}", text(&no_sdk.stderr));
}
