//! `hoist completion SHELL`: a completion script generated from the CLI definition (clap_complete).

use std::process::ExitCode;

use anyhow::Result;
use clap_complete::Shell;

/// Arguments of `hoist completion`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  hoist completion bash > /etc/bash_completion.d/hoist")]
pub struct Args {
    /// The shell.
    shell: Shell,
}

/// Runs `hoist completion`.
pub fn run(args: Args, mut cmd: clap::Command) -> Result<ExitCode> {
    clap_complete::generate(args.shell, &mut cmd, "hoist", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
