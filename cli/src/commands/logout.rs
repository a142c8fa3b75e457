//! `hoist logout REGISTRY`: remove a registry's credentials from the auth file `login` writes.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// Arguments of `hoist logout`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  hoist logout registry.example:5000")]
pub struct Args {
    /// The registry (`HOST[:PORT]`).
    registry: String,
    /// The auth file to edit (default: the one `hoist login` writes).
    #[arg(long, value_name = "PATH")]
    authfile: Option<std::path::PathBuf>,
}

/// Runs `hoist logout`.
pub fn run(args: Args) -> Result<ExitCode> {
    let host = super::login::registry_host(&args.registry)?;
    // As `docker logout`: erased from the helper the auth files name, and from the auth file.
    let done = hoist::transport::registry::logout(&host, args.authfile)
        .with_context(|| format!("logging out of {host}"))?;
    if !done.erased {
        bail!(
            "not logged in to {host} (no entry in {})",
            done.auth_file.display()
        );
    }
    eprintln!("Removed login credentials for {host}");
    Ok(ExitCode::SUCCESS)
}
