//! `tta-host new`: a primitive project in Rust, Python, JavaScript or C that builds and
//! loads on the first try.
//!
//! Every template is embedded in the binary (from `host/templates/`), and so are the WIT of
//! the contract and the C bindings of `guest-sdk/c`, so a project can be made anywhere,
//! offline. Each project has a `build.sh` that installs its toolchain when it is missing,
//! an `input.json` to try it with, and a README with the next three commands.

use std::path::{Path, PathBuf};

/// The languages a project can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust with the `tta-guest` SDK (`cargo`, wasm32-wasip2).
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
    /// C with clang-22, wasi-libc and the bindings of `wit-bindgen c`.
    C,
}

impl Language {
    /// The language's name for people.
    pub fn display(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::Python => "Python",
            Self::Js => "JavaScript",
            Self::C => "C",
        }
    }
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a primitive's name.
    #[error(
        "{0:?} is not a usable primitive name: use 1 to 64 characters of a-z, 0-9, '-', '_', starting with a letter"
    )]
    BadName(String),
    /// The directory is there and not empty.
    #[error("{} already exists and is not empty: pick another name or --dir", .0.display())]
    Exists(PathBuf),
    /// The Rust template needs the SDK's source.
    #[error(
        "the Rust template depends on the tta-guest SDK by path, and {} is not it: pass --sdk <path to guest-sdk>",
        .0.display()
    )]
    NoSdk(PathBuf),
    /// Writing a file failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A file of a project: where it goes, what is in it, whether it is a script.
struct File {
    path: &'static str,
    contents: Contents,
    executable: bool,
}

/// What a file holds.
enum Contents {
    /// Text with `{{name}}`, `{{crate}}`, `{{language}}` and `{{sdk}}` to fill in.
    Template(&'static str),
    /// Bytes written as they are.
    Verbatim(&'static [u8]),
}

const fn text(path: &'static str, contents: &'static str) -> File {
    File {
        path,
        contents: Contents::Template(contents),
        executable: false,
    }
}

const fn script(path: &'static str, contents: &'static str) -> File {
    File {
        path,
        contents: Contents::Template(contents),
        executable: true,
    }
}

const fn verbatim(path: &'static str, contents: &'static [u8]) -> File {
    File {
        path,
        contents: Contents::Verbatim(contents),
        executable: false,
    }
}

/// The WIT every project but Rust's (the SDK has it) carries: the guest world
/// (`wit/guest`: the contract plus `wasi:config`) with the contract and `wasi:config` as its
/// dependencies.
const WIT: [File; 8] = [
    verbatim("wit/world.wit", include_bytes!("../../wit/guest/world.wit")),
    verbatim(
        "wit/deps/primitives/world.wit",
        include_bytes!("../../wit/0.1.0/world.wit"),
    ),
    verbatim(
        "wit/deps/primitives/types.wit",
        include_bytes!("../../wit/0.1.0/types.wit"),
    ),
    verbatim(
        "wit/deps/primitives/primitive.wit",
        include_bytes!("../../wit/0.1.0/primitive.wit"),
    ),
    verbatim(
        "wit/deps/primitives/telemetry.wit",
        include_bytes!("../../wit/0.1.0/telemetry.wit"),
    ),
    verbatim(
        "wit/deps/primitives/invoke.wit",
        include_bytes!("../../wit/0.1.0/invoke.wit"),
    ),
    verbatim(
        "wit/deps/config/store.wit",
        include_bytes!("../../wit/deps/config/store.wit"),
    ),
    verbatim(
        "wit/deps/config/world.wit",
        include_bytes!("../../wit/deps/config/world.wit"),
    ),
];

fn files(language: Language) -> Vec<File> {
    let mut files = vec![
        text("README.md", include_str!("../templates/common/README.md")),
        text(".gitignore", include_str!("../templates/common/gitignore")),
        text("input.json", "{\"name\": \"Ada\"}\n"),
    ];
    match language {
        Language::Rust => files.extend([
            text("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            text("src/lib.rs", include_str!("../templates/rust/lib.rs")),
            script("build.sh", include_str!("../templates/rust/build.sh")),
        ]),
        Language::Python => files.extend([
            text("app.py", include_str!("../templates/python/app.py")),
            script("build.sh", include_str!("../templates/python/build.sh")),
        ]),
        Language::Js => files.extend([
            text("index.js", include_str!("../templates/js/index.js")),
            text("package.json", include_str!("../templates/js/package.json")),
            script("build.sh", include_str!("../templates/js/build.sh")),
        ]),
        Language::C => files.extend([
            text("primitive.c", include_str!("../templates/c/primitive.c")),
            script("build.sh", include_str!("../templates/c/build.sh")),
            verbatim(
                "sdk/primitive_plugin.h",
                include_bytes!("../../guest-sdk/c/primitive_plugin.h"),
            ),
            verbatim(
                "sdk/primitive_plugin.c",
                include_bytes!("../../guest-sdk/c/primitive_plugin.c"),
            ),
            verbatim(
                "sdk/primitive_plugin_component_type.o",
                include_bytes!("../../guest-sdk/c/primitive_plugin_component_type.o"),
            ),
        ]),
    }
    if language != Language::Rust {
        files.extend(WIT);
    }
    files
}

/// The guest SDK next to the sources this binary was built from, if it is still there.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk")
}

/// Makes the project `name` in `dir` and returns the files written, relative to `dir`.
///
/// `sdk` is the `guest-sdk` directory the Rust template depends on; other languages ignore it.
pub fn create(name: &str, language: Language, dir: &Path, sdk: &Path) -> Result<Vec<String>, ScaffoldError> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let sdk = if language == Language::Rust {
        let sdk = std::fs::canonicalize(sdk).map_err(|_| ScaffoldError::NoSdk(sdk.to_path_buf()))?;
        if !sdk.join("Cargo.toml").is_file() {
            return Err(ScaffoldError::NoSdk(sdk));
        }
        sdk.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{language}}", language.display())
            .replace("{{sdk}}", &sdk)
    };
    let mut written = Vec::new();
    for file in files(language) {
        let target = dir.join(file.path);
        let io = |source| ScaffoldError::Io {
            path: target.clone(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        match file.contents {
            Contents::Template(template) => std::fs::write(&target, fill(template)),
            Contents::Verbatim(bytes) => std::fs::write(&target, bytes),
        }
        .map_err(io)?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        written.push(file.path.to_owned());
    }
    Ok(written)
}
