//! `crucible dataset import`: register a JSONL file as a dataset version.

use crate::cmd::api::ServerArgs;
use anyhow::{Context, Result};
use crucible_types::ImportDatasetResult;
use std::path::PathBuf;

/// Dataset subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Import a JSONL file (math, code, choice or text rows); identical content reuses its version.
    Import {
        #[command(flatten)]
        server: ServerArgs,
        /// The JSONL file.
        file: PathBuf,
        /// Dataset name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Row shape: math, code, choice or text.
        #[arg(long)]
        kind: String,
    },
}

/// Runs the subcommand.
pub fn run(c: Command) -> Result<()> {
    let Command::Import {
        server,
        file,
        name,
        kind,
    } = c;
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message(format!("reading {}", file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let body = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    spinner.set_message(format!(
        "uploading {} rows ({:.1} MiB); the server checks every row",
        body.lines().filter(|l| !l.trim().is_empty()).count(),
        body.len() as f64 / (1024.0 * 1024.0)
    ));
    let name = name.unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let source = file.display().to_string();
    let r: ImportDatasetResult = server
        .writer()?
        .import_dataset(&name, &kind, &source, body)
        .with_context(|| format!("importing {}", file.display()))?;
    spinner.finish_and_clear();
    let d = r.dataset;
    let verb = if r.created {
        "imported"
    } else {
        "already present as"
    };
    println!(
        "{verb} {} v{} ({} rows, {}): {}",
        d.name, d.version, d.row_count, d.kind, d.id
    );
    Ok(())
}
