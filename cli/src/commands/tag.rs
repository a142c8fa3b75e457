//! `hoist tag REF NEWTAG...`: more tags for an image without pulling it: a registry gets the same
//! manifest bytes `PUT` under each new tag; a layout gets an `index.json` entry per tag.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::output::Format;

/// Arguments of `hoist tag`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A tag that exists is moved to the image. Nothing is pulled: a registry is sent the \
manifest's exact bytes under each new tag, so the digest stays the same.\n\n\
Examples:\n  hoist tag --tls-verify=false docker://localhost:5000/app:v1.2.3 v1.2 v1 latest\n  \
hoist tag oci:./layout:v1 stable"
)]
pub struct Args {
    /// The image (`docker://HOST/REPO:TAG|@DIGEST`, `oci:PATH:TAG|@DIGEST`).
    reference: String,
    /// The new tags (in the same repository or layout).
    #[arg(required = true, value_name = "NEWTAG")]
    tags: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// What was tagged.
#[derive(serde::Serialize)]
struct Tagged {
    /// The image's manifest (or index) digest.
    digest: String,
    /// The tags that now name it.
    tags: Vec<String>,
}

/// Runs `hoist tag`.
pub fn run(args: Args) -> Result<ExitCode> {
    let opts = args.registry.apply(super::open_options());
    let (repo, item) = super::repository_item(&args.reference, &opts, "to tag")?;
    let doc = repo
        .resolve(&item)
        .with_context(|| format!("reading {}{item}", repo.name()))?;
    repo.tag(&doc, &args.tags)
        .with_context(|| format!("tagging {}{item}", repo.name()))?;
    let digest = doc.digest().to_string();
    let tagged = Tagged {
        digest,
        tags: args.tags,
    };
    match args.format {
        Format::Json => crate::output::print_json(&tagged)?,
        Format::Text => {
            for t in &tagged.tags {
                println!("{t} -> {}", tagged.digest);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
