//! `tta-host load`: validates components and prints what each one is.

use super::exit;
use super::output::{human_bytes, human_duration};
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use tta_catalog::{self as catalog, Loaded, Policy};
use tta_runtime::host::Host;

/// `tta-host load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Component files (`plugins/*.wasm`), or components in an OCI registry
    /// (`oci://registry/repository:tag` or `…@sha256:<digest>`), pulled and verified first.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The longest one request to a registry may take, in milliseconds, instead of
    /// `registry.timeout_ms`.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

pub(super) async fn load(host: &Host, args: &LoadArgs) -> anyhow::Result<u8> {
    let total = args.files.len();
    let mut files = Vec::with_capacity(total);
    let mut pull_failed = false;
    for file in &args.files {
        let text = file.to_string_lossy();
        if !text.starts_with("oci://") {
            files.push(file.clone());
            continue;
        }
        match pull(host, &text, args.timeout_ms).await {
            Ok(path) => files.push(path),
            Err(e) => {
                eprintln!("error: {e}");
                pull_failed = true;
            }
        }
    }
    if pull_failed {
        eprintln!("nothing loaded: a component could not be pulled");
        return Ok(exit::LOAD);
    }
    let rows = catalog::load_primitives(host, files, Policy::ReportAll, |i, total, path| {
        if total > 1 {
            eprintln!("[{}/{total}] loading {}", i + 1, path.display());
        }
    })
    .await;
    let rejected = rows.iter().filter(|row| row.result.is_err()).count();
    print_load_table(&rows);
    if rejected > 0 {
        for row in &rows {
            if let Err(e) = &row.result {
                eprintln!("error: {e}");
            }
        }
        eprintln!("{rejected} of {total} file(s) rejected");
        return Ok(exit::LOAD);
    }
    Ok(exit::OK)
}

fn print_load_table(rows: &[Loaded]) {
    let mut table: Vec<[String; 8]> = vec![[
        "NAME".to_owned(),
        "VERSION".into(),
        "CONTRACT".into(),
        "LANGUAGE".into(),
        "SIZE".into(),
        "COMPILE".into(),
        "STATUS".into(),
        "DESCRIPTION / REASON".into(),
    ]];
    for Loaded { path, result, .. } in rows {
        table.push(match result {
            Ok(p) => [
                p.metadata.name.clone(),
                p.metadata.version.clone(),
                p.metadata.contract.as_str().into(),
                p.language.clone().unwrap_or_else(|| "unknown".into()),
                human_bytes(p.size),
                format!(
                    "{}{}",
                    human_duration(p.compile_time),
                    if p.origin == tta_runtime::cache::Origin::Cached {
                        " (cached)"
                    } else {
                        ""
                    }
                ),
                "OK".into(),
                p.metadata.description.clone(),
            ],
            Err(e) => [
                path.file_name()
                    .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
                "-".into(),
                "-".into(),
                "-".into(),
                std::fs::metadata(path).map_or_else(|_| "-".into(), |m| human_bytes(m.len() as usize)),
                "-".into(),
                "REJECTED".into(),
                one_line(&e.to_string()),
            ],
        });
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for row in &table {
        let mut line = String::new();
        for (c, width) in widths.iter().enumerate() {
            line.push_str(&format!("{:<width$}  ", row[c]));
        }
        line.push_str(&row[7]);
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// Pulls `reference` into the component cache (by digest, verified) and returns the file.
async fn pull(host: &Host, reference: &str, timeout_ms: Option<u64>) -> Result<PathBuf, tta_catalog::oci::OciError> {
    use tta_catalog::oci::{Client, Reference};
    let reference = Reference::parse(reference)?;
    let mut registry = host.config().registry.clone();
    registry.timeout_ms = timeout_ms.unwrap_or(registry.timeout_ms);
    let cache = tta_catalog::oci::cache_root(host.config());
    let limit = host.config().server.max_upload_bytes as u64;
    eprintln!("pulling {reference}");
    let (path, digest) = Client::new(&registry).pull(&reference, &cache, limit).await?;
    eprintln!("pulled {reference} ({digest})");
    Ok(path)
}
