//! `tta-host new` for each language: make the project, run its `build.sh`, load and run
//! the component it built, the way its README says.
//!
//! The builds reuse what `cargo xtask plugins` installed (the guest target directory for
//! Rust, its componentize-py for Python); JavaScript runs its own `npm install`. The Rust
//! project is built on the `tta-guest` crate as `cargo package` makes it, so the test also
//! proves the packaged SDK builds on its own.

use crate::{repo, tta_host_in as tta_host};
use std::path::{Path, PathBuf};
use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Makes (`tta-host new NAME --lang lang` and `extra`), builds, loads and runs a `lang`
/// project; its load row must say `language` and the contract version `contract`. Also runs
/// it with `--config-value config`, whose output must contain `expected`. Returns what it
/// printed for `input.json`.
fn new_build_load_run(
    lang: &str,
    extra: &[&str],
    (language, contract): (&str, &str),
    (config, expected): (&str, &str),
) -> String {
    let parent = tempfile::tempdir().expect("temp dir");
    let name = format!("hello-{lang}");
    let mut args = vec!["new", &name, "--lang", lang];
    args.extend(extra);
    let made = tta_host(parent.path(), &args);
    assert!(made.status.success(), "new: {}", text(&made.stderr));
    assert!(text(&made.stdout).contains("./build.sh"), "says what to do next");
    let project = parent.path().join(&name);
    for file in ["README.md", "build.sh", "input.json"] {
        assert!(project.join(file).is_file(), "{file} is made");
    }
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README");
    assert!(
        readme.contains(&format!("primitive-plugin@{contract}")),
        "the README names the contract: {readme}"
    );

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

/// `tta-guest` as `cargo package` makes it (what would be published), unpacked into `dir`;
/// returns the crate's directory.
fn packaged_tta_guest(dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = repo().join("Cargo.toml");
    let package = Command::new(cargo)
        .args([
            "package",
            "-p",
            "tta-guest",
            "--no-verify",
            "--allow-dirty",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(dir)
        .output()
        .expect("cargo package runs");
    assert!(
        package.status.success(),
        "cargo package -p tta-guest: {}",
        text(&package.stderr)
    );
    let packages = dir.join("package");
    let krate = std::fs::read_dir(&packages)
        .expect("target/package")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "crate"))
        .expect("a .crate");
    let unpacked = dir.join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    let tar = Command::new("tar")
        .arg("xzf")
        .arg(&krate)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar runs");
    assert!(tar.success(), "unpacking {}", krate.display());
    let sdk = unpacked.join(format!("tta-guest-{}", env!("CARGO_PKG_VERSION")));
    assert!(sdk.join("wit/0.2.0/world.wit").is_file(), "the crate carries its WIT");
    assert!(
        !sdk.join("python").exists() && !sdk.join("c").exists(),
        "the crate is the Rust SDK only"
    );
    sdk
}

#[test]
fn new_rust_project_builds_on_the_packaged_sdk_loads_and_runs() {
    let packaged = tempfile::tempdir().expect("temp dir");
    let sdk = packaged_tta_guest(packaged.path());
    let sdk = sdk.to_str().expect("a UTF-8 path");
    assert_eq!(
        greeting(&new_build_load_run("rust", &["--sdk", sdk], ("Rust", "0.2.0"), HOWDY)),
        "Hello, Ada!"
    );
}

/// Without `--sdk`, a Rust project depends on the published `tta-guest` of the host's
/// version, and nothing in it points at the checkout the host was built from.
#[test]
fn new_rust_project_depends_on_the_sdk_by_version() {
    let parent = tempfile::tempdir().expect("temp dir");
    let made = tta_host(parent.path(), &["new", "greeter"]);
    assert!(made.status.success(), "new: {}", text(&made.stderr));
    assert!(text(&made.stdout).contains("crates.io"), "{}", text(&made.stdout));
    let manifest: toml::Table = std::fs::read_to_string(parent.path().join("greeter/Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("TOML");
    assert_eq!(
        manifest["dependencies"]["tta-guest"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "{manifest:?}"
    );
    let checkout = repo().to_string_lossy().into_owned();
    for entry in walk(&parent.path().join("greeter")) {
        let contents = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !contents.contains(&checkout),
            "{} names the checkout {checkout}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn new_python_project_builds_loads_and_runs() {
    assert_eq!(
        greeting(&new_build_load_run("python", &[], ("Python", "0.2.0"), HOWDY)),
        "Hello, Ada!"
    );
}

#[test]
fn new_js_project_builds_loads_and_runs() {
    assert_eq!(
        greeting(&new_build_load_run("js", &[], ("JavaScript", "0.2.0"), HOWDY)),
        "Hello, Ada!"
    );
}

#[test]
fn new_c_project_builds_loads_and_runs() {
    let output = new_build_load_run("c", &[], ("C", "0.1.0"), ("prefix=>> ", r#">> {"name": "Ada"}"#));
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
    let host_crate = repo().join("host");
    for (sdk, lang) in [
        ("/nonexistent", "rust"),
        (host_crate.to_str().expect("UTF-8"), "rust"),
        ("/nonexistent", "python"),
    ] {
        let refused = tta_host(parent.path(), &["new", "rusty", "--lang", lang, "--sdk", sdk]);
        assert_eq!(refused.status.code(), Some(2), "--sdk {sdk} --lang {lang}");
        let stderr = text(&refused.stderr);
        assert!(
            stderr.contains("--sdk") && stderr.contains("leave --sdk out"),
            "{stderr}"
        );
        assert!(!parent.path().join("rusty").exists(), "nothing is made");
    }
}
