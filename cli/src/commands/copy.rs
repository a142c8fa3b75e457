//! `hoist copy` (being written).

use std::process::ExitCode;

use anyhow::{Result, bail};

/// Arguments of `hoist copy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image.
    reference: String,
}

/// Runs `hoist copy`.
pub fn run(args: Args) -> Result<ExitCode> {
    bail!("copy is not implemented yet ({})", args.reference)
}
