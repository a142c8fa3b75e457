//! `hoist untag REF...`: remove names from a layout, as `umoci rm` does, or tags from a registry
//! repository (as `hoist delete --tag-only`). Blobs stay until `hoist gc`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::transport::repository::Item;

/// Arguments of `hoist untag`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  hoist untag oci:./layout:old\n  \
    hoist untag oci:./layout:a oci:./layout:b && hoist gc oci:./layout")]
pub struct Args {
    /// The tags to remove (`oci:PATH:TAG`, `docker://HOST/REPO:TAG`, repeatable). Blobs stay until
    /// `hoist gc` (a registry's garbage collection).
    #[arg(required = true)]
    images: Vec<String>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist untag`. A tag that is not there is exit 2, after the others are removed.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut missing = Vec::new();
    for image in &args.images {
        let opts = args.registry.apply(super::open_options());
        let (repo, item) = hoist::open_repository(&super::parse_ref(image)?, &opts)?;
        let Some(item @ Item::Tag(_)) = item else {
            bail!("name the tag to remove: {}:TAG (not {image})", repo.name());
        };
        match repo.delete(&item, true) {
            Ok(_) => eprintln!("untagged {image}"),
            Err(e) if e.is_not_found() => missing.push(image.clone()),
            Err(e) => return Err(e).with_context(|| format!("removing {image}")),
        }
    }
    if !missing.is_empty() {
        eprintln!("error: no such tag: {}", missing.join(", "));
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
