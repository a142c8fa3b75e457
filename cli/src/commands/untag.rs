//! `hoist untag REF...`: remove names from a layout, as `umoci rm` does (`hoist delete` removes a tag
//! too, and works on registries). Blobs stay until `hoist gc`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::layout::Layout;
use hoist::reference::{LayoutRef, TransportRef};

/// Arguments of `hoist untag`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  hoist untag oci:./layout:old\n  \
    hoist untag oci:./layout:a oci:./layout:b && hoist gc oci:./layout")]
pub struct Args {
    /// The tags to remove (`oci:PATH:TAG`, repeatable). Blobs stay until `hoist gc`.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `hoist untag`. A tag that is not there is exit 2, after the others are removed.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut missing = Vec::new();
    for image in &args.images {
        let (path, reference) = match super::parse_ref(image)? {
            TransportRef::Oci { path, reference } => (path, reference),
            other => bail!(
                "tags are names in an OCI layout (oci:PATH:TAG), not {}",
                other.transport()
            ),
        };
        let Some(LayoutRef::Tag(tag)) = reference else {
            bail!("name the tag to remove: oci:PATH:TAG (not {image})");
        };
        let layout = Layout::open(&path)?.with_limits(super::limits());
        let _lock = layout.lock()?;
        if layout
            .remove_tag(&tag)
            .with_context(|| format!("removing {image}"))?
        {
            eprintln!("untagged {image}");
        } else {
            missing.push(image.clone());
        }
    }
    if !missing.is_empty() {
        eprintln!("error: no such tag: {}", missing.join(", "));
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
