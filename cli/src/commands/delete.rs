//! `hoist delete REF`: delete an image's manifest from a registry (by digest, or a tag resolved to
//! its digest), or only a tag (`--tag-only`); in an OCI layout, remove the tag or the entries of a
//! digest from `index.json` (`hoist gc` then removes the blobs nothing reaches).

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::Digest;
use hoist::layout::Layout;
use hoist::reference::{LayoutRef, TransportRef};

use crate::output::{Format, Usage};

/// Arguments of `hoist delete`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Deleting by digest, or by a tag (which is resolved to its digest first), deletes the \
manifest: a registry then removes EVERY tag that points at it, not only the one named (skopeo #1432). \
To remove one tag and keep the image and its other tags, use --tag-only: the registry's tag deletion \
where it has one, else the tag is moved to a throw-away manifest that is then deleted. Blobs stay until \
the registry's garbage collection; in a layout, until `hoist gc`.\n\n\
Examples:\n  hoist delete --tls-verify=false docker://localhost:5000/app@sha256:0123...\n  \
hoist delete --tls-verify=false --tag-only docker://localhost:5000/app:old\n  \
hoist delete oci:./layout:old && hoist gc oci:./layout\n\n\
Exit status: 0 deleted, 1 failure, 2 usage error or nothing of that name."
)]
pub struct Args {
    /// The image (`docker://HOST/REPO:TAG|@DIGEST`, `oci:PATH:TAG|@DIGEST`).
    reference: String,
    /// Delete only the tag, keeping the manifest and its other tags.
    #[arg(long)]
    tag_only: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// What was deleted.
#[derive(serde::Serialize)]
struct Deleted {
    /// The reference given.
    reference: String,
    /// The manifest digest, when a manifest (or a layout's entries of it) was deleted, or the one the
    /// deleted tag named.
    digest: Option<String>,
    /// `manifest` (it and every tag on it), `tag` (the tag only), or `tag-repointed` (the tag only,
    /// by regctl's technique).
    deleted: &'static str,
}

/// Runs `hoist delete`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let shown = hoist::reference::without_credentials(&args.reference).into_owned();
    let deleted = match reference {
        TransportRef::Oci { path, reference } => delete_in_layout(&path, reference, args.tag_only)?,
        #[cfg(feature = "registry")]
        TransportRef::Docker(name) => {
            let opts = args.registry.apply(super::open_options());
            delete_in_registry(&name, &opts, args.tag_only)?
        }
        other => {
            return Err(Usage(format!(
                "delete works on registries (docker://) and OCI layouts (oci:), not {}",
                other.transport()
            ))
            .into());
        }
    };
    let deleted = Deleted {
        reference: shown,
        digest: deleted.0.map(|d| d.to_string()),
        deleted: deleted.1,
    };
    match args.format {
        Format::Json => crate::output::print_json(&deleted)?,
        Format::Text => match (&deleted.digest, deleted.deleted) {
            (Some(d), "manifest") => println!("deleted {} (manifest {d})", deleted.reference),
            (Some(d), _) => println!("deleted tag {} (it named {d})", deleted.reference),
            (None, _) => println!("deleted {}", deleted.reference),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn delete_in_layout(
    path: &std::path::Path,
    reference: Option<LayoutRef>,
    tag_only: bool,
) -> Result<(Option<Digest>, &'static str)> {
    let layout = Layout::open(path)?.with_limits(super::limits());
    let _lock = layout.lock()?;
    let location = format!("layout {}", path.display());
    match reference {
        Some(LayoutRef::Tag(tag)) => {
            let desc = layout.resolve(Some(&LayoutRef::Tag(tag.clone())))?;
            layout
                .remove_tag(&tag)
                .with_context(|| format!("removing tag {tag} from {location}"))?;
            Ok((Some(hoist::descriptor::digest_of(&desc)?), "tag"))
        }
        Some(LayoutRef::Digest(digest)) if !tag_only => {
            let removed = layout
                .remove_digest(&digest)
                .with_context(|| format!("removing {digest} from {location}"))?;
            if removed == 0 {
                return Err(hoist::Error::NotFound {
                    reference: format!("@{digest}"),
                    location,
                    hint: " (no index.json entry has that digest)".into(),
                }
                .into());
            }
            Ok((Some(digest), "manifest"))
        }
        _ => Err(Usage(format!(
            "delete in a layout takes {}: write oci:PATH:TAG{}",
            if tag_only {
                "a tag"
            } else {
                "a tag or a digest"
            },
            if tag_only { "" } else { " or oci:PATH@DIGEST" }
        ))
        .into()),
    }
}

#[cfg(feature = "registry")]
fn delete_in_registry(
    name: &hoist::reference::ImageName,
    opts: &hoist::transport::OpenOptions,
    tag_only: bool,
) -> Result<(Option<Digest>, &'static str)> {
    use hoist::transport::Source;
    use hoist::transport::registry::{RegistryDestination, RegistrySource, TagDeletion};

    let dest = RegistryDestination::open(name, opts)?;
    if tag_only {
        let (Some(tag), None) = (&name.tag, &name.digest) else {
            return Err(Usage(format!(
                "--tag-only deletes a tag: write docker://{}:TAG without a digest",
                name.name()
            ))
            .into());
        };
        // The tag must exist: a registry may answer a tag it does not know with success.
        let root = RegistrySource::open(name, opts)?
            .root()
            .with_context(|| format!("resolving docker://{name}"))?;
        let how = dest
            .delete_tag(tag)
            .with_context(|| format!("deleting tag docker://{name}"))?;
        let label = match how {
            TagDeletion::Deleted => "tag",
            TagDeletion::Repointed => "tag-repointed",
        };
        return Ok((Some(root.digest().clone()), label));
    }
    let digest = match &name.digest {
        Some(d) => d.clone(),
        None => RegistrySource::open(name, opts)?
            .root()
            .with_context(|| format!("resolving docker://{name}"))?
            .digest()
            .clone(),
    };
    dest.delete_manifest(&digest)
        .with_context(|| format!("deleting docker://{}@{digest}", name.name()))?;
    Ok((Some(digest), "manifest"))
}
