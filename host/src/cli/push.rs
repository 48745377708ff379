//! `tta-host push`: a component file to an OCI registry, as a Wasm component artifact.

use super::exit;
use clap::Args;
use std::path::PathBuf;
use tta_catalog::oci::{Client, Reference};
use tta_runtime::host::Host;

/// `tta-host push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component file.
    pub file: PathBuf,
    /// Where to push it: `oci://registry[:port]/repository:tag`.
    pub reference: String,
    /// The longest one request to the registry may take, in milliseconds, instead of
    /// `registry.timeout_ms`.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

/// Validates the component as `load` does, then pushes it; prints the manifest's digest.
pub(super) async fn push(host: &Host, args: &PushArgs) -> anyhow::Result<u8> {
    let reference = match Reference::parse(&args.reference) {
        Ok(reference) => reference,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    if let Err(e) = host.inspect(&args.file).await {
        eprintln!("error: {e}");
        eprintln!("not pushed: only a component tta-host loads is pushed");
        return Ok(exit::LOAD);
    }
    let bytes = std::fs::read(&args.file)?;
    eprintln!("pushing {} ({} bytes) to {reference}", args.file.display(), bytes.len());
    let mut registry = host.config().registry.clone();
    registry.timeout_ms = args.timeout_ms.unwrap_or(registry.timeout_ms);
    match Client::new(&registry).push(&reference, &bytes).await {
        Ok(digest) => {
            println!("{reference} {digest}");
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::HOST)
        }
    }
}
