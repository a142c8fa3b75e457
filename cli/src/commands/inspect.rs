//! `hoist inspect` (being written).

use std::process::ExitCode;

use anyhow::{Result, bail};

/// Arguments of `hoist inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image.
    reference: String,
}

/// Runs `hoist inspect`.
pub fn run(args: Args) -> Result<ExitCode> {
    bail!("inspect is not implemented yet ({})", args.reference)
}
