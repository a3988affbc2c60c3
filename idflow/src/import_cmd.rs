//! `idflow import`: bring flows in from other tools. Today: Okta Workflows exports (`.flopack`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

/// What to import.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Converts Okta Workflows exports (.flopack files, or directories holding them) into an idflow
    /// project: one flow file per flow, tables/*.yaml, and idflow.yaml with a connection per
    /// Okta Workflows connection. Cards idflow cannot run yet become flow.fail steps marked TODO.
    Flopack {
        /// .flopack files, or directories searched for them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Directory to write the project into (created when missing; existing files are never
        /// replaced).
        #[arg(long)]
        out: PathBuf,
        /// Also write the JSON report: per flow, its file, trigger, status (exact, approximate,
        /// partial) and the cards left unconverted.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

/// Runs an import command: exit 0 when the project was written.
pub fn run(command: ImportCommand) -> Result<ExitCode> {
    match command {
        ImportCommand::Flopack { paths, out, report } => {
            // Everything is read and converted before anything is written, so a file that is not
            // a flopack changes nothing.
            let import = flopack::import_paths(&paths)?;
            let written = import.write(&out)?;
            if let Some(path) = report {
                std::fs::write(&path, import.report().to_json())
                    .with_context(|| format!("cannot write the report {}", path.display()))?;
            }
            print!("{}", import.summary(&written));
            Ok(ExitCode::SUCCESS)
        }
    }
}
