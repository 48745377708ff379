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
    /// Component files (`plugins/*.wasm`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub(super) async fn load(host: &Host, args: &LoadArgs) -> anyhow::Result<u8> {
    let total = args.files.len();
    let rows = catalog::load_primitives(host, args.files.clone(), Policy::ReportAll, |i, total, path| {
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
