//! `hoist gc oci:PATH`: remove unreachable blobs, what is not part of the layout (stray files and
//! directories under its root and `blobs/`) and leftover temp files, saying what it removed.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::layout::Layout;

/// Arguments of `hoist gc`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist gc oci:./layout\n  hoist gc --dry-run oci:./layout\n  \
    hoist gc --json oci:./layout | jq '.removed | length'"
)]
pub struct Args {
    /// The layout (`oci:PATH`).
    reference: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `hoist gc`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let path = reference.whole_layout("gc")?.to_path_buf();
    let layout = Layout::open(&path)?.with_limits(super::limits());
    let mut opts = hoist::layout::GcOptions::default();
    opts.dry_run = args.dry_run;
    let report = layout
        .gc_with(opts)
        .with_context(|| format!("collecting garbage in {}", path.display()))?;
    if args.json {
        crate::output::print_json(&report)?;
    } else {
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for d in &report.removed {
            println!("{verb} blob {d}");
        }
        for p in &report.strays_removed {
            println!("{verb} stray {}", p.display());
        }
        println!(
            "{verb} {} blobs ({}), {} strays and {} temp files; kept {} blobs",
            report.removed.len(),
            hoist::limits::human_bytes(report.bytes_freed),
            report.strays_removed.len(),
            report.temp_files_removed,
            report.kept,
        );
    }
    Ok(ExitCode::SUCCESS)
}
