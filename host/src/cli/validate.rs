//! `tta-host validate`: checks workflow files and reports every problem with its line,
//! column and key.

use super::exit;
use super::run::load_plugin_dir;
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use tta_runtime::host::Host;

/// `tta-host validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files (TOML).
    #[arg(required_unless_present = "schema")]
    pub files: Vec<PathBuf>,
    /// Where the primitives the workflows name are found.
    #[arg(long, default_value = "plugins", env = "TTA_PLUGIN_DIR")]
    pub plugin_dir: PathBuf,
    /// Print the JSON Schema of workflow files and exit.
    #[arg(long)]
    pub schema: bool,
}

pub(super) async fn validate(host: &Host, args: &ValidateArgs) -> anyhow::Result<u8> {
    if args.schema {
        print!("{}", tta_workflow::json_schema());
        return Ok(exit::OK);
    }
    let have_plugins = args.plugin_dir.is_dir();
    if have_plugins {
        load_plugin_dir(host, &args.plugin_dir).await;
    } else {
        tracing::warn!(
            "plugin directory {} not found: primitive names are not checked",
            args.plugin_dir.display()
        );
    }
    let registry = host.registry();
    let is_primitive = |name: &str| registry.get(name).is_some();
    let mut invalid = 0;
    for path in &args.files {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let problems = match tta_workflow::parse(&text) {
            Ok(file) => {
                let check: Option<&dyn Fn(&str) -> bool> = if have_plugins { Some(&is_primitive) } else { None };
                let problems = tta_workflow::validate(&file, &text, check);
                if problems.is_empty() {
                    println!(
                        "{}: OK (workflow `{}`, {} steps)",
                        path.display(),
                        file.name.get_ref(),
                        file.steps.len()
                    );
                }
                problems
            }
            Err(problems) => problems,
        };
        if !problems.is_empty() {
            invalid += 1;
            for p in &problems {
                eprintln!("{}", p.in_file(path));
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
        }
    }
    Ok(if invalid > 0 { exit::INVALID_WORKFLOW } else { exit::OK })
}
