//! `tta-host new`: a primitive project in Rust, Python, JavaScript or C that builds and
//! loads on the first try.
//!
//! Every template is embedded in the binary (from `host/templates/`), and so are the WIT of
//! the contract and the SDKs of `guest-sdk/` (the C bindings, `tta.py`, `tta.js`), so a
//! project can be made anywhere, offline. A Rust project depends on the published
//! `tta-guest` crate by version, or on a checkout of it when asked (`--sdk PATH`): nothing
//! in a project points back at the checkout this binary was built from. Each project has a
//! `build.sh` that installs its toolchain when it is missing, an `input.json` to try it
//! with, and a README with the next three commands.

use std::path::{Path, PathBuf};

/// The languages a project can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust with the `tta-guest` SDK (`cargo`, wasm32-wasip2).
    Rust,
    /// Python with the `tta.py` SDK and componentize-py.
    Python,
    /// JavaScript with the `tta.js` SDK and componentize-js.
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

    /// The version of the contract the language's template exports.
    pub fn contract(self) -> &'static str {
        match self {
            Self::Rust | Self::Python | Self::Js => "0.2.0",
            Self::C => "0.1.0",
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
    /// `--sdk` does not name the `tta-guest` crate.
    #[error(
        "--sdk {} is not the tta-guest crate (a directory whose Cargo.toml is package `tta-guest`): pass the guest-sdk directory of a tta-host checkout, or leave --sdk out to depend on the published tta-guest {}",
        .0.display(),
        SDK_VERSION
    )]
    NoSdk(PathBuf),
    /// `--sdk` was given for a language that has no SDK crate to point at.
    #[error("--sdk applies to Rust projects only: the {0} SDK is one file the project carries (leave --sdk out)")]
    SdkNotRust(&'static str),
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
    /// Text with `{{name}}`, `{{crate}}`, `{{language}}`, `{{contract}}` and `{{tta_guest}}`
    /// to fill in.
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

/// The version of `tta-guest` a Rust project depends on: this host's own, as the SDK is
/// released with it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The shared `wasi:config` WIT of the guest worlds.
const CONFIG_WIT: [File; 2] = [
    verbatim(
        "wit/deps/config/store.wit",
        include_bytes!("../../wit/deps/config/store.wit"),
    ),
    verbatim(
        "wit/deps/config/world.wit",
        include_bytes!("../../wit/deps/config/world.wit"),
    ),
];

/// The WIT the Python and JavaScript projects build against (their SDKs bind it): the
/// guest world of contract 0.2.0 (`wit/guest-0.2.0`) with the contract as its dependency.
const WIT_0_2: [File; 6] = [
    verbatim("wit/world.wit", include_bytes!("../../wit/guest-0.2.0/world.wit")),
    verbatim(
        "wit/deps/primitives/world.wit",
        include_bytes!("../../wit/0.2.0/world.wit"),
    ),
    verbatim(
        "wit/deps/primitives/types.wit",
        include_bytes!("../../wit/0.2.0/types.wit"),
    ),
    verbatim(
        "wit/deps/primitives/primitive.wit",
        include_bytes!("../../wit/0.2.0/primitive.wit"),
    ),
    verbatim(
        "wit/deps/primitives/telemetry.wit",
        include_bytes!("../../wit/0.2.0/telemetry.wit"),
    ),
    verbatim(
        "wit/deps/primitives/invoke.wit",
        include_bytes!("../../wit/0.2.0/invoke.wit"),
    ),
];

/// The WIT of the C project, whose bindings (`guest-sdk/c`) are of the guest world of
/// contract 0.1.0 (`wit/guest`).
const WIT_0_1: [File; 6] = [
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
            verbatim("tta.py", include_bytes!("../../guest-sdk/python/tta.py")),
        ]),
        Language::Js => files.extend([
            text("index.js", include_str!("../templates/js/index.js")),
            text("package.json", include_str!("../templates/js/package.json")),
            script("build.sh", include_str!("../templates/js/build.sh")),
            verbatim("tta.js", include_bytes!("../../guest-sdk/js/tta.js")),
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
    match language {
        Language::Rust => {}
        Language::Python | Language::Js => files.extend(WIT_0_2.into_iter().chain(CONFIG_WIT)),
        Language::C => files.extend(WIT_0_1.into_iter().chain(CONFIG_WIT)),
    }
    files
}

/// The `tta-guest` dependency line of a Rust project: the published version, or that
/// version at the checkout `sdk` (`cargo package` drops the path, so the project can be
/// published as it is).
fn tta_guest_dependency(sdk: Option<&Path>) -> Result<String, ScaffoldError> {
    let Some(sdk) = sdk else {
        return Ok(format!("\"{SDK_VERSION}\""));
    };
    let dir = std::fs::canonicalize(sdk).map_err(|_| ScaffoldError::NoSdk(sdk.to_path_buf()))?;
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let named = manifest
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("package")?.get("name")?.as_str().map(|n| n == "tta-guest"));
    if named != Some(true) {
        return Err(ScaffoldError::NoSdk(dir));
    }
    let path = toml::Value::String(dir.to_string_lossy().into_owned());
    Ok(format!("{{ version = \"{SDK_VERSION}\", path = {path} }}"))
}

/// Makes the project `name` in `dir` and returns the files written, relative to `dir`.
///
/// `sdk` is a checkout of the `tta-guest` crate a Rust project depends on instead of the
/// published version; it is refused for other languages, whose SDK the project carries.
pub fn create(name: &str, language: Language, dir: &Path, sdk: Option<&Path>) -> Result<Vec<String>, ScaffoldError> {
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
    let tta_guest = match language {
        Language::Rust => tta_guest_dependency(sdk)?,
        _ if sdk.is_some() => return Err(ScaffoldError::SdkNotRust(language.display())),
        _ => String::new(),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{language}}", language.display())
            .replace("{{contract}}", language.contract())
            .replace("{{tta_guest}}", &tta_guest)
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
