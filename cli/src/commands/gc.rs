//! `hoist gc oci:PATH`: remove unreachable blobs and leftover temp files from a layout.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::layout::Layout;

/// Arguments of `hoist gc`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  hoist gc oci:./layout")]
pub struct Args {
    /// The layout (`oci:PATH`).
    reference: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `hoist gc`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let path = reference.whole_layout("gc")?.to_path_buf();
    let layout = Layout::open(&path)?.with_limits(super::limits());
    let report = layout
        .gc()
        .with_context(|| format!("collecting garbage in {}", path.display()))?;
    if args.json {
        crate::output::print_json(&report)?;
    } else {
        println!(
            "removed {} blobs ({}), kept {}, removed {} temp files",
            report.removed.len(),
            hoist::limits::human_bytes(report.bytes_freed),
            report.kept,
            report.temp_files_removed
        );
    }
    Ok(ExitCode::SUCCESS)
}
