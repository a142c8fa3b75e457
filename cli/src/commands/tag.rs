//! `hoist tag REF TAG...` and `hoist untag REF...`: name an image of a layout, or remove names, as
//! `umoci tag` / `umoci rm` do. Every new tag is checked before `index.json` is touched.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::layout::Layout;
use hoist::reference::{LayoutRef, TagGrammar, TransportRef, check_tag};

/// Arguments of `hoist tag`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist tag oci:./layout:latest v1.2 stable\n  \
    hoist tag oci:./layout@sha256:0123... pinned"
)]
pub struct TagArgs {
    /// The image to name (`oci:PATH[:TAG|@DIGEST]`; without either, the layout's only image).
    image: String,
    /// The tags to point at it (an existing tag is moved).
    #[arg(required = true)]
    tags: Vec<String>,
}

/// Arguments of `hoist untag`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  hoist untag oci:./layout:old\n  \
    hoist untag oci:./layout:a oci:./layout:b && hoist gc oci:./layout")]
pub struct UntagArgs {
    /// The tags to remove (`oci:PATH:TAG`, repeatable). Blobs stay until `hoist gc`.
    #[arg(required = true)]
    images: Vec<String>,
}

/// The layout path and reference of an `oci:` argument.
fn layout_ref(text: &str) -> Result<(std::path::PathBuf, Option<LayoutRef>)> {
    match super::parse_ref(text)? {
        TransportRef::Oci { path, reference } => Ok((path, reference)),
        other => bail!(
            "tags are names in an OCI layout (oci:PATH:TAG), not {}",
            other.transport()
        ),
    }
}

/// Runs `hoist tag`.
pub fn run_tag(args: TagArgs) -> Result<ExitCode> {
    let (path, reference) = layout_ref(&args.image)?;
    for t in &args.tags {
        check_tag(t, TagGrammar::LayoutRefName).with_context(|| format!("tag {t:?}"))?;
    }
    let layout = Layout::open(&path)?.with_limits(super::limits());
    let _lock = layout.lock()?;
    let desc = layout
        .resolve(reference.as_ref())
        .with_context(|| format!("finding {}", args.image))?;
    for t in &args.tags {
        layout
            .set_tag(Some(t), &desc)
            .with_context(|| format!("tagging {} as {t}", desc.digest()))?;
    }
    eprintln!("tagged {} as {}", desc.digest(), args.tags.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// Runs `hoist untag`. A tag that is not there is exit 2, after the others are removed.
pub fn run_untag(args: UntagArgs) -> Result<ExitCode> {
    let mut missing = Vec::new();
    for image in &args.images {
        let (path, reference) = layout_ref(image)?;
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
