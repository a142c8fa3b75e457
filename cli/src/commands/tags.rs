//! `hoist tags REF`: the tags of a layout, archive or registry repository; for a docker-archive, the
//! `RepoTags` of every image in it.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::layout::Layout;
use hoist::reference::{ArchiveSelector, TransportRef};
use hoist::transport::open_source;

/// `--format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One tag per line.
    Text,
    /// A JSON array of `{"tag", "digest", "mediaType"}`: the manifest (or index) each tag names.
    Json,
}

/// Arguments of `hoist tags`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  hoist tags oci:./layout\n  \
    hoist tags docker-archive:./saved.tar   # RepoTags of every image\n  \
    hoist tags --format json oci:./layout | jq -r '.[] | .tag + \" \" + .digest'")]
pub struct Args {
    /// The layout or archive (`oci:PATH`, `oci-archive:PATH`, `docker-archive:PATH`).
    reference: String,
    /// Print a JSON array of tag names instead of one tag per line.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Output format (`json`: each tag with the digest it names).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// Runs `hoist tags`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = archive_tags_ref(super::parse_ref(&args.reference)?);
    if args.format == Some(Format::Json) {
        let described: Vec<serde_json::Value> = match &reference {
            TransportRef::Oci { path, .. } => Layout::open(path)?
                .with_limits(super::limits())
                .tags()
                .with_context(|| format!("listing tags of {}", args.reference))?
                .into_iter()
                .map(|(tag, d)| {
                    serde_json::json!({
                        "tag": tag,
                        "digest": d.digest().to_string(),
                        "mediaType": d.media_type().to_string(),
                    })
                })
                .collect(),
            _ => {
                let source = open_source(&reference, &super::open_options())?;
                let tags = source
                    .tags()
                    .with_context(|| format!("listing tags of {}", source.name()))?;
                let mut out = Vec::new();
                for tag in tags {
                    let tagged = super::parse_ref(&format!("{}:{tag}", args.reference))?;
                    let root = open_source(&tagged, &super::open_options())
                        .and_then(|s| s.root())
                        .with_context(|| format!("reading tag {tag} of {}", source.name()))?;
                    out.push(serde_json::json!({
                        "tag": tag,
                        "digest": root.digest().to_string(),
                        "mediaType": root.descriptor().media_type().to_string(),
                    }));
                }
                out
            }
        };
        crate::output::print_json(&described)?;
        return Ok(ExitCode::SUCCESS);
    }
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
