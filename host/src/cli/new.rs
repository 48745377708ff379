//! `tta-host new`: a new primitive project in Rust, Python, JavaScript or C.

use super::exit;
use clap::Args;
use std::path::PathBuf;

/// `tta-host new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The primitive's name, also the directory's: a-z, 0-9, '-', '_', starting with a letter.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: crate::scaffold::Language,
    /// Where to make it (default: ./<name>); must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A checkout of the tta-guest crate (the guest-sdk directory of tta-host) for a Rust
    /// project to depend on, instead of the published tta-guest of this host's version.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// `tta-host new`: makes the project and says what to do next.
pub(super) fn new_project(args: &NewArgs) -> u8 {
    use crate::scaffold::{self, ScaffoldError};
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    match scaffold::create(&args.name, args.lang, &dir, args.sdk.as_deref()) {
        Ok(files) => {
            println!("made {} ({}) in {}:", args.name, args.lang.display(), dir.display());
            for file in files
                .iter()
                .filter(|f| !f.starts_with("wit/") && !f.starts_with("sdk/"))
            {
                println!("  {file}");
            }
            if args.lang == scaffold::Language::Rust {
                match &args.sdk {
                    Some(sdk) => println!("depends on tta-guest {} at {}", scaffold::SDK_VERSION, sdk.display()),
                    None => println!(
                        "depends on tta-guest {} from crates.io (--sdk PATH for a checkout of it)",
                        scaffold::SDK_VERSION
                    ),
                }
            }
            println!("next:\n  cd {} && ./build.sh", dir.display());
            println!("  tta-host run {}.wasm --input-file input.json --trace", args.name);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(
                e,
                ScaffoldError::BadName(_) | ScaffoldError::NoSdk(_) | ScaffoldError::SdkNotRust(_)
            ) {
                exit::USAGE
            } else {
                exit::HOST
            }
        }
    }
}
