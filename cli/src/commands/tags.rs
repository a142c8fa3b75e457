//! `hoist tags REF`: the tags of a layout, archive or registry repository.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::transport::open_source;

/// Arguments of `hoist tags`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  hoist tags oci:./layout")]
pub struct Args {
    /// The layout or archive (`oci:PATH`, `oci-archive:PATH`).
    reference: String,
    /// Print a JSON array instead of one tag per line.
    #[arg(long)]
    json: bool,
}

/// Runs `hoist tags`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let source = open_source(&reference, &super::open_options())?;
    let tags = source
        .tags()
        .with_context(|| format!("listing tags of {}", source.name()))?;
    if args.json {
        crate::output::print_json(&tags)?;
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
