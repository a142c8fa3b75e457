//! `hoist tags REF`: the tags of a layout, archive or registry repository; for a docker-archive, the
//! `RepoTags` of every image in it.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::reference::{ArchiveSelector, TransportRef};
use hoist::transport::open_source;

/// Arguments of `hoist tags`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist tags oci:./layout\n  hoist tags docker-archive:./saved.tar   # RepoTags of every image"
)]
pub struct Args {
    /// The layout or archive (`oci:PATH`, `oci-archive:PATH`, `docker-archive:PATH`).
    reference: String,
    /// Print a JSON array instead of one tag per line.
    #[arg(long)]
    json: bool,
}

/// Runs `hoist tags`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = archive_tags_ref(super::parse_ref(&args.reference)?);
    let source = open_source(&reference, &super::open_options())?;
    let tags = source
        .tags()
        .with_context(|| format!("listing tags of {}", source.name()))?;
    if args.json {
        crate::output::print_json(&tags)?;
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A docker-archive's tags are the `RepoTags` of every image in it, whichever image is opened: an
/// archive of several images, which cannot be opened without picking one, is opened at its first.
pub fn archive_tags_ref(reference: TransportRef) -> TransportRef {
    match reference {
        TransportRef::DockerArchive {
            path,
            selector: None,
        } => TransportRef::DockerArchive {
            path,
            selector: Some(ArchiveSelector::Index(0)),
        },
        other => other,
    }
}
