//! `tta-host keygen`: a new API key and the SHA-256 that goes in the config.

use clap::Args;

/// `tta-host keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Print the SHA-256 of this existing key instead of making a new one.
    #[arg(long)]
    pub hash: Option<String>,
}

/// `tta-host keygen`: a new key and its hash, or the hash of a given key.
pub(super) fn keygen(args: &KeygenArgs) {
    match &args.hash {
        Some(key) => println!("{}", tta_runtime::tenant::hash_key(key)),
        None => {
            let key = tta_runtime::tenant::generate_key();
            println!("key:            {key}");
            println!("api_key_sha256: {}", tta_runtime::tenant::hash_key(&key));
        }
    }
}
