//! `hoist logout REGISTRY`: remove a registry's credentials from the auth file `login` writes.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::transport::registry::credentials::{AuthFiles, helper_server, remove};
use hoist::transport::registry::helper;

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
    let files = AuthFiles::from_env(args.authfile);
    // As `docker logout`: erased from the helper the auth files name, and from the auth file.
    let mut erased = match files.helper_for(&host)? {
        Some((name, _)) => helper::erase(&name, &helper_server(&host))
            .with_context(|| format!("erasing the credentials for {host}"))?,
        None => false,
    };
    let path = files.write_target()?;
    erased |= remove(&path, &host).with_context(|| format!("editing {}", path.display()))?;
    if !erased {
        bail!("not logged in to {host} (no entry in {})", path.display());
    }
    eprintln!("Removed login credentials for {host}");
    Ok(ExitCode::SUCCESS)
}
