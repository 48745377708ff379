//! `cargo xtask`: builds the guest plugins and test fixtures from source.
//!
//! `cargo xtask plugins` builds every crate of `plugins/` and `tests/fixtures/` for
//! `wasm32-wasip2` and copies each component next to its crate (`plugins/echo.wasm`,
//! `tests/fixtures/trap.wasm`), rewriting only files whose bytes changed. It also builds
//! `echo` for `wasm32-unknown-unknown` and turns it into a component that imports no
//! WASI at all (`tests/fixtures/echo-no-wasi.wasm`).
//!
//! Toolchain: a rustup toolchain with the `wasm32-wasip2` target is used when present.
//! Otherwise Debian's Rust (`rustc-web`, `cargo-web`, `rust-web-src`) builds std from
//! source (`-Zbuild-std`), linking with `lld-22` against `wasi-libc`; missing Debian
//! packages are installed with apt-get, and `wasm-component-ld` with cargo install.
//! Guests use their own target directory, `target/guests`.
//!
//! Guests in other languages (Python, JavaScript, C) are built by [`foreign`].

mod foreign;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const DEBIAN_PACKAGES: [&str; 5] = ["rustc-web", "cargo-web", "rust-web-src", "lld-22", "wasi-libc"];
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// One guest workspace and where its components go.
struct GuestWorkspace {
    dir: &'static str,
}

const WORKSPACES: [GuestWorkspace; 2] = [
    GuestWorkspace { dir: "plugins" },
    GuestWorkspace { dir: "tests/fixtures" },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("plugins") => match build_plugins() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some("c-sdk") => match foreign::write_c_sdk(&root()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") | None => {
            println!(
                "Usage: cargo xtask <plugins | c-sdk>\n\n\
                 plugins  Builds every guest in plugins/ and tests/fixtures/ (Rust crates, and\n\
                 \x20        Python, JavaScript and C primitives) to a WebAssembly component next\n\
                 \x20        to its sources, installing the toolchains that are missing. Rust uses a\n\
                 \x20        rustup wasm32-wasip2 target when installed, else Debian's Rust with\n\
                 \x20        -Zbuild-std. Guest builds use target/guests.\n\
                 c-sdk    Regenerates the C bindings of the WIT in guest-sdk/c/."
            );
            if args.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Some(other) => {
            eprintln!("error: unknown task `{other}`; try `cargo xtask --help`");
            ExitCode::from(2)
        }
    }
}

/// How guests get compiled on this machine.
enum Toolchain {
    /// rustup's cargo with the wasm targets installed.
    Rustup,
    /// Debian's cargo, building std from source.
    Debian,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn build_plugins() -> Result<(), String> {
    let root = root();
    let started = Instant::now();
    let toolchain = detect_toolchain()?;
    let target_dir = root.join("target/guests");
    let total = WORKSPACES.len() + 2;
    for (i, ws) in WORKSPACES.iter().enumerate() {
        eprintln!(
            "[{}/{total}] building the Rust crates of {} for wasm32-wasip2",
            i + 1,
            ws.dir
        );
        let dir = root.join(ws.dir);
        cargo_build(&toolchain, &dir, &target_dir, "wasm32-wasip2", None)?;
        for name in members(&dir)? {
            let built = target_dir
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            copy_if_changed(&built, &dir.join(format!("{name}.wasm")))?;
        }
    }
    eprintln!(
        "[{}/{total}] building echo for wasm32-unknown-unknown (a component without WASI)",
        total - 1
    );
    let plugins = root.join("plugins");
    cargo_build(
        &toolchain,
        &plugins,
        &target_dir,
        "wasm32-unknown-unknown",
        Some("echo"),
    )?;
    let module = target_dir.join("wasm32-unknown-unknown/release/echo.wasm");
    let module_bytes = std::fs::read(&module).map_err(|e| format!("reading {}: {e}", module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module_bytes)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("componentizing {}: {e:#}", module.display()))?;
    write_if_changed(&root.join("tests/fixtures/echo-no-wasi.wasm"), &component)?;
    eprintln!("[{total}/{total}] building the Python, JavaScript and C guests of plugins/ and tests/fixtures/");
    let workshop = foreign::Workshop::new(&root, &target_dir);
    for parent in [plugins, root.join("tests/fixtures")] {
        for dir in subdirectories(&parent)? {
            if let Some(language) = foreign::Language::of(&dir) {
                let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                workshop.build(language, &dir, &parent.join(format!("{name}.wasm")))?;
            }
        }
    }
    eprintln!("guests built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn detect_toolchain() -> Result<Toolchain, String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if installed.lines().any(|t| t.trim() == "wasm32-wasip2")
        && installed.lines().any(|t| t.trim() == "wasm32-unknown-unknown")
    {
        return Ok(Toolchain::Rustup);
    }
    eprintln!("no rustup wasm32-wasip2 target: using Debian's Rust with -Zbuild-std");
    let missing = !Path::new("/usr/bin/cargo").exists()
        || !Path::new(DEBIAN_STD_SRC).exists()
        || !Path::new(LLVM_BIN).join("wasm-ld").exists()
        || !Path::new(WASI_LIBC).join("libc.a").exists();
    if missing {
        install_debian_packages()?;
    }
    if !on_path("wasm-component-ld") {
        eprintln!("installing wasm-component-ld (cargo install, about a minute)");
        run(Command::new("cargo").args(["install", "--locked", "wasm-component-ld@0.5.31"]))?;
    }
    Ok(Toolchain::Debian)
}

fn install_debian_packages() -> Result<(), String> {
    apt_install(&DEBIAN_PACKAGES).map_err(|e| format!("{e}; or add the rustup target wasm32-wasip2"))
}

/// Installs Debian packages (as root, or through sudo), updating the index if needed.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    eprintln!("installing: apt-get install {}", packages.join(" "));
    let as_root = |program: &str| {
        let mut cmd = if is_root() || !on_path("sudo") {
            Command::new(program)
        } else {
            let mut cmd = Command::new("sudo");
            cmd.arg(program);
            cmd
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    let install = || {
        run(as_root("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages))
    };
    if install().is_ok() {
        return Ok(());
    }
    run(as_root("apt-get").args(["update", "-qq"]))?;
    install().map_err(|e| format!("{e}: install {} by hand", packages.join(" ")))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn cargo_build(
    toolchain: &Toolchain,
    workspace: &Path,
    target_dir: &Path,
    target: &str,
    package: Option<&str>,
) -> Result<(), String> {
    let manifest = workspace.join("Cargo.toml");
    let mut cmd = match toolchain {
        Toolchain::Rustup => Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())),
        Toolchain::Debian => {
            let mut cmd = Command::new("/usr/bin/cargo");
            let path = std::env::var("PATH").unwrap_or_default();
            let home_bin = std::env::var("HOME")
                .map(|h| format!("{h}/.cargo/bin"))
                .unwrap_or_default();
            cmd.env("PATH", format!("{LLVM_BIN}:/usr/bin:{path}:{home_bin}"))
                .env("RUSTFLAGS", format!("-L {WASI_LIBC}"))
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld")
                .env_remove("RUSTC")
                .env_remove("RUSTDOC")
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("CARGO");
            cmd
        }
    };
    cmd.arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target")
        .arg(target)
        .env("CARGO_TARGET_DIR", target_dir);
    if let Some(package) = package {
        cmd.args(["--package", package]);
    }
    if matches!(toolchain, Toolchain::Debian) {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed ({status})", cmd.get_program()))
    }
}

/// The subdirectories of `dir`, sorted.
fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The crates of a guest workspace: its subdirectories with a Cargo.toml, by directory name.
fn members(workspace: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(workspace).map_err(|e| format!("reading {}: {e}", workspace.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = std::fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    write_if_changed(to, &bytes)
}

fn write_if_changed(to: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(to, bytes).map_err(|e| format!("writing {}: {e}", to.display()))?;
    eprintln!("  wrote {} ({} bytes)", to.display(), bytes.len());
    Ok(())
}
