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
    /// The tta-guest SDK the Rust template depends on (default: the guest-sdk this binary was built with).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// `tta-host new`: makes the project and says what to do next.
pub(super) fn new_project(args: &NewArgs) -> u8 {
    use crate::scaffold::{self, ScaffoldError};
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args.sdk.clone().unwrap_or_else(scaffold::default_sdk);
    match scaffold::create(&args.name, args.lang, &dir, &sdk) {
        Ok(files) => {
            println!("made {} ({}) in {}:", args.name, args.lang.display(), dir.display());
            for file in files
                .iter()
                .filter(|f| !f.starts_with("wit/") && !f.starts_with("sdk/"))
            {
                println!("  {file}");
            }
            println!("next:\n  cd {} && ./build.sh", dir.display());
            println!("  tta-host run {}.wasm --input-file input.json --trace", args.name);
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, ScaffoldError::BadName(_)) {
                exit::USAGE
            } else {
                exit::HOST
            }
        }
    }
}
