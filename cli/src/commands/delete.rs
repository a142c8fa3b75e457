//! `hoist delete REF`: delete an image's manifest from a registry (by digest, or a tag resolved to
//! its digest), or only a tag (`--tag-only`); in an OCI layout, remove the tag or the entries of a
//! digest from `index.json` (`hoist gc` then removes the blobs nothing reaches).

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::transport::repository::Deleted;

use crate::output::Format;

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
struct Report {
    /// The reference given.
    reference: String,
    /// The manifest digest deleted (or a layout's entries of it), or the one the deleted tag named.
    digest: String,
    /// `manifest` (it and every tag on it), `tag` (the tag only), or `tag-repointed` (the tag only,
    /// by regctl's technique).
    deleted: &'static str,
}

/// Runs `hoist delete`.
pub fn run(args: Args) -> Result<ExitCode> {
    let shown = hoist::reference::without_credentials(&args.reference).into_owned();
    let opts = args.registry.apply(super::open_options());
    let (repo, item) = super::repository_item(&args.reference, &opts, "to delete")?;
    let deleted = repo
        .delete(&item, args.tag_only)
        .with_context(|| format!("deleting {shown}"))?;
    let (digest, what) = match deleted {
        Deleted::Manifest(d) => (d, "manifest"),
        Deleted::Tag {
            digest,
            repointed: false,
        } => (digest, "tag"),
        Deleted::Tag {
            digest,
            repointed: true,
        } => (digest, "tag-repointed"),
    };
    let report = Report {
        reference: shown,
        digest: digest.to_string(),
        deleted: what,
    };
    match args.format {
        Format::Json => crate::output::print_json(&report)?,
        Format::Text if what == "manifest" => {
            println!("deleted {} (manifest {})", report.reference, report.digest)
        }
        Format::Text => println!(
            "deleted tag {} (it named {})",
            report.reference, report.digest
        ),
    }
    Ok(ExitCode::SUCCESS)
}
