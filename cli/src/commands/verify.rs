//! `hoist verify` (being written).

use std::process::ExitCode;

use anyhow::{Result, bail};

/// Arguments of `hoist verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image.
    reference: String,
}

/// Runs `hoist verify`.
pub fn run(args: Args) -> Result<ExitCode> {
    bail!("verify is not implemented yet ({})", args.reference)
}
