//! `hoist tags REF`: the tags of a layout, archive or registry repository; for a docker-archive, the
//! `RepoTags` of every image in it.

use std::process::ExitCode;

use anyhow::{Context, Result};
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
    let reference = super::parse_ref(&args.reference)?;
    let opts = super::open_options();
    if args.format == Some(Format::Json) {
        let described: Vec<serde_json::Value> = if reference.kind().repository {
            let (repo, _) = hoist::open_repository(&reference, &opts)?;
            repo.tagged()
                .with_context(|| format!("listing tags of {}", repo.name()))?
                .into_iter()
                .map(|(tag, d)| described(&tag, &d))
                .collect()
        } else {
            let source = open_source(&reference.any_image(), &opts)?;
            let tags = source
                .tags()
                .with_context(|| format!("listing tags of {}", source.name()))?;
            let mut out = Vec::new();
            for tag in tags {
                let tagged = super::parse_ref(&format!("{}:{tag}", args.reference))?;
                let root = open_source(&tagged, &opts)
                    .and_then(|s| s.root())
                    .with_context(|| format!("reading tag {tag} of {}", source.name()))?;
                out.push(described(&tag, &root.descriptor()));
            }
            out
        };
        crate::output::print_json(&described)?;
        return Ok(ExitCode::SUCCESS);
    }
    let tags = hoist::transport::list_tags(&reference, &opts)
        .with_context(|| format!("listing tags of {}", args.reference))?;
    if args.json {
        crate::output::print_json(&tags)?;
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One tag of `--format json`: the tag and the manifest (or index) it names.
fn described(tag: &str, d: &hoist::descriptor::Descriptor) -> serde_json::Value {
    serde_json::json!({
        "tag": tag,
        "digest": d.digest().to_string(),
        "mediaType": d.media_type().to_string(),
    })
}
