//! Guests written in Python, JavaScript and C, built from source like the Rust ones.
//!
//! A directory of `plugins/` or `tests/fixtures/` is such a guest when it holds `app.py`
//! (Python, built with componentize-py), `index.js` (JavaScript, built with
//! componentize-js) or `*.c` files (C: bindings from wit-bindgen's C generator, clang-22 for `wasm32-wasi`, then the WASI
//! preview1 reactor adapter turns the module into a component). Tools are installed on
//! first use into `target/guests/tools`, pinned. A component is rebuilt only when its
//! sources, the WIT or the tool version change: interpreters make 12–18 MB components that
//! take 10–20 s to build, and a stamp of those inputs makes the second run instant.

use crate::{run, write_if_changed};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The pinned componentize-py release (PyPI).
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The pinned componentize-js release (npm), with its lock file in `xtask/js/`.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
/// Debian packages the C guests need besides `wasi-libc`.
const C_PACKAGES: [&str; 4] = ["clang-22", "libclang-rt-22-dev-wasm32", "lld-22", "wasi-libc"];

/// The source language of a guest that is not a Rust crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    JavaScript,
    C,
}

impl Language {
    /// What `dir` is written in, judged by its entry file; `None` for anything else.
    pub fn of(dir: &Path) -> Option<Self> {
        if dir.join("Cargo.toml").is_file() {
            None
        } else if dir.join("app.py").is_file() {
            Some(Self::Python)
        } else if dir.join("index.js").is_file() {
            Some(Self::JavaScript)
        } else if !c_sources(dir).is_empty() {
            Some(Self::C)
        } else {
            None
        }
    }

    /// The guest world it builds against: Python and JavaScript on contract 0.2.0 (their
    /// SDKs describe schemas), C on 0.1.0 (its committed bindings).
    fn wit(self) -> &'static str {
        match self {
            Self::Python | Self::JavaScript => "wit/guest-0.2.0",
            Self::C => "wit/guest",
        }
    }

    /// The SDK its sources use, whose files are part of what it is built from.
    fn sdk(self) -> &'static str {
        match self {
            Self::Python => PY_SDK,
            Self::JavaScript => JS_SDK,
            Self::C => C_SDK,
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Self::Python => COMPONENTIZE_PY,
            Self::JavaScript => COMPONENTIZE_JS,
            Self::C => "clang-22 + wit-bindgen-c 0.63 + wasi preview1 adapter 48",
        }
    }
}

/// Where the tools and stamps live.
pub struct Workshop {
    root: PathBuf,
    tools: PathBuf,
}

impl Workshop {
    pub fn new(root: &Path, target_dir: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            tools: target_dir.join("tools"),
        }
    }

    /// Builds the guest in `dir` to `out`, unless nothing it is built from changed.
    pub fn build(&self, language: Language, dir: &Path, out: &Path) -> Result<(), String> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("guest").to_owned();
        let stamp_file = self.tools.join("stamps").join(format!("{name}.sha256"));
        let stamp = self.stamp(language, dir)?;
        if out.is_file() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
            eprintln!("  {name} ({language:?}): up to date");
            return Ok(());
        }
        let started = Instant::now();
        let scratch = self.tools.join("build").join(&name);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
        let built = scratch.join(format!("{name}.wasm"));
        match language {
            Language::Python => self.build_python(dir, &built)?,
            Language::JavaScript => self.build_js(dir, &scratch, &built)?,
            Language::C => self.build_c(dir, &scratch, &built)?,
        }
        let bytes = std::fs::read(&built).map_err(|e| format!("reading {}: {e}", built.display()))?;
        write_if_changed(out, &bytes)?;
        std::fs::create_dir_all(self.tools.join("stamps")).map_err(|e| format!("creating stamps: {e}"))?;
        std::fs::write(&stamp_file, stamp).map_err(|e| format!("writing {}: {e}", stamp_file.display()))?;
        eprintln!(
            "  {name} ({language:?}) built in {:.1} s, {:.1} MiB",
            started.elapsed().as_secs_f64(),
            bytes.len() as f64 / (1024.0 * 1024.0)
        );
        Ok(())
    }

    /// A hash of everything the component is built from.
    fn stamp(&self, language: Language, dir: &Path) -> Result<String, String> {
        let mut hasher = Sha256::new();
        hasher.update(language.tool());
        let sdk = self.root.join(language.sdk());
        let wit = self.root.join(language.wit());
        let trees = [dir, wit.as_path(), sdk.as_path()];
        for tree in trees {
            let mut files = Vec::new();
            collect_files(tree, &mut files)?;
            for file in files {
                hasher.update(
                    file.strip_prefix(&self.root)
                        .unwrap_or(&file)
                        .to_string_lossy()
                        .as_bytes(),
                );
                hasher.update(std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?);
            }
        }
        Ok(format!("{:x}", hasher.finalize()))
    }

    fn build_python(&self, dir: &Path, out: &Path) -> Result<(), String> {
        let venv = self.tools.join("python");
        let componentize = venv.join("bin/componentize-py");
        if !componentize.is_file() {
            eprintln!("  installing {COMPONENTIZE_PY} (PyPI) into {}", venv.display());
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", COMPONENTIZE_PY]))?;
        }
        run(Command::new(&componentize)
            .arg("--wit-path")
            .arg(self.root.join(Language::Python.wit()))
            .args(["--world", "primitive-plugin", "componentize", "--python-path"])
            .arg(dir)
            .arg("--python-path")
            .arg(self.root.join(PY_SDK))
            .arg("app")
            .arg("--output")
            .arg(out))
    }

    fn build_js(&self, dir: &Path, scratch: &Path, out: &Path) -> Result<(), String> {
        let tools = self.tools.join("js");
        let cli = tools.join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
        let lock = self.root.join("xtask/js/package-lock.json");
        let installed_lock = tools.join("package-lock.json");
        let fresh = std::fs::read(&lock).ok() == std::fs::read(&installed_lock).ok();
        if !cli.is_file() || !fresh {
            eprintln!("  installing {COMPONENTIZE_JS} (npm ci) into {}", tools.display());
            std::fs::create_dir_all(&tools).map_err(|e| format!("creating {}: {e}", tools.display()))?;
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(self.root.join("xtask/js").join(file), tools.join(file))
                    .map_err(|e| format!("copying xtask/js/{file}: {e}"))?;
            }
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&tools))?;
        }
        // The guest imports the SDK as `./tta.js`, as a project of `tta-host new` has it:
        // its sources and the SDK are put side by side.
        let sources = scratch.join("src");
        let _ = std::fs::remove_dir_all(&sources);
        std::fs::create_dir_all(&sources).map_err(|e| format!("creating {}: {e}", sources.display()))?;
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        files.push(self.root.join(JS_SDK).join("tta.js"));
        for file in files {
            let relative = file.strip_prefix(dir).unwrap_or_else(|_| Path::new("tta.js"));
            let target = sources.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
            }
            std::fs::copy(&file, &target).map_err(|e| format!("copying {}: {e}", file.display()))?;
        }
        // `fetch-event` and `http` off: the component then imports no wasi:http.
        run(Command::new("node")
            .arg(&cli)
            .arg(sources.join("index.js"))
            .arg("--wit")
            .arg(self.root.join(Language::JavaScript.wit()))
            .args([
                "--world-name",
                "primitive-plugin",
                "--disable",
                "http",
                "fetch-event",
                "--out",
            ])
            .arg(out))
    }

    fn build_c(&self, dir: &Path, scratch: &Path, out: &Path) -> Result<(), String> {
        let installed = [
            "/usr/bin/clang-22",
            "/usr/lib/llvm-22/bin/wasm-ld",
            "/usr/lib/wasm32-wasi/libc.a",
        ];
        if !installed.iter().all(|file| Path::new(file).is_file()) {
            crate::apt_install(&C_PACKAGES)?;
        }
        let bindings = self.root.join(C_SDK);
        let fresh = scratch.join("bindings");
        c_bindings(&self.root.join(Language::C.wit()), &fresh)?;
        for file in C_SDK_FILES {
            if std::fs::read(bindings.join(file)).ok() != std::fs::read(fresh.join(file)).ok() {
                return Err(format!(
                    "{C_SDK}/{file} is not what wit-bindgen-c makes of the WIT now: run `cargo xtask c-sdk` and commit it"
                ));
            }
        }
        let module = scratch.join("module.wasm");
        let mut clang = Command::new("clang-22");
        clang.env(
            "PATH",
            format!("{}:{}", crate::LLVM_BIN, std::env::var("PATH").unwrap_or_default()),
        );
        clang
            // Debian's clang-22 finds wasi-libc under the `wasm32-wasi` triple it calls deprecated.
            .args(["--target=wasm32-wasi", "-Wno-deprecated", "-mexec-model=reactor", "-O2"])
            .args(["-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(&bindings)
            .args(c_sources(dir))
            .arg(bindings.join("primitive_plugin.c"))
            .arg(bindings.join("primitive_plugin_component_type.o"))
            .arg("-o")
            .arg(&module);
        run(&mut clang)?;
        let module = std::fs::read(&module).map_err(|e| format!("reading {}: {e}", module.display()))?;
        let component = componentize_with_adapter(&module)?;
        std::fs::write(out, component).map_err(|e| format!("writing {}: {e}", out.display()))
    }
}

/// Where the C bindings of the WIT live, committed: the C SDK `tta-host new --lang c` copies.
pub const C_SDK: &str = "guest-sdk/c";
/// The Python SDK, one module (`tta.py`) on the guest's Python path.
pub const PY_SDK: &str = "guest-sdk/python";
/// The JavaScript SDK, one module (`tta.js`) a guest imports as `./tta.js`.
pub const JS_SDK: &str = "guest-sdk/js";
const C_SDK_FILES: [&str; 3] = [
    "primitive_plugin.h",
    "primitive_plugin.c",
    "primitive_plugin_component_type.o",
];

/// Regenerates the committed C bindings in [`C_SDK`].
pub fn write_c_sdk(root: &Path) -> Result<(), String> {
    c_bindings(&root.join("wit/guest"), &root.join(C_SDK))
}

/// Writes the C bindings of the `primitive-plugin` world (`primitive_plugin.{h,c}` and the
/// component type object) into `out`, as `wit-bindgen c` would.
pub fn c_bindings(wit: &Path, out: &Path) -> Result<(), String> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .map_err(|e| format!("reading the WIT in {}: {e:#}", wit.display()))?;
    let world = resolve
        .select_world(&[package], Some("primitive-plugin"))
        .map_err(|e| format!("selecting the world: {e:#}"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| format!("generating C bindings: {e:#}"))?;
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    for (name, contents) in files.iter() {
        write_if_changed(&out.join(name), contents)?;
    }
    Ok(())
}

/// Turns a core module that imports WASI preview1 into a component, linking the reactor
/// adapter in (what `wasm-tools component new --adapt` does).
pub fn componentize_with_adapter(module: &[u8]) -> Result<Vec<u8>, String> {
    use wasi_preview1_component_adapter_provider as adapter;
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|encoder| {
            encoder
                .adapter(
                    adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                    adapter::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )?
                .validate(true)
                .encode()
        })
        .map_err(|e| format!("componentizing: {e:#}"))
}

fn c_sources(dir: &Path) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "c"))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    sources
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.') || n == "__pycache__")
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}
