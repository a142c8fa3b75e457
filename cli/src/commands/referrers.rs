//! `hoist referrers REF` (as `oras discover`): the tree of an image's referrers (signatures, SBOMs,
//! attestations, and theirs), as text or `--format json`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::referrers::{self, Node};
use hoist::transport::open_source;

use crate::output::Format;

/// Arguments of `hoist referrers`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Lists the manifests whose subject is the image's manifest (or index), and theirs: \
a registry's referrers API (or its sha256-<hex> tag-schema fallback index), or the manifests of an \
OCI layout's index.json. dir: and docker-archive: cannot hold referrers.\n\n\
Examples:\n  hoist referrers docker://registry.example/app:v1\n  \
hoist referrers --artifact-type application/spdx+json --format json oci:./layout:v1"
)]
pub struct Args {
    /// The image (`docker://HOST/REPO:TAG|@DIGEST`, `oci:PATH:TAG`, `oci-archive:FILE`).
    reference: String,
    /// Keep only referrers of this artifact type (repeatable).
    #[arg(long = "artifact-type", value_name = "TYPE")]
    artifact_types: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// The JSON `hoist referrers` prints.
#[derive(serde::Serialize)]
struct Listing {
    reference: String,
    digest: String,
    #[serde(rename = "mediaType")]
    media_type: String,
    referrers: Vec<Node>,
}

/// Runs `hoist referrers`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let opts = args.registry.apply(super::open_options());
    let source = open_source(&reference, &opts)?;
    let root = source.root()?;
    let tree = referrers::tree(source.as_ref(), root.digest(), &args.artifact_types)
        .with_context(|| format!("listing the referrers of {}", source.name()))?;
    match args.format {
        Format::Json => crate::output::print_json(&Listing {
            reference: hoist::reference::without_credentials(&args.reference).into_owned(),
            digest: root.digest().to_string(),
            media_type: root.media_type().to_string(),
            referrers: tree,
        })?,
        Format::Text => {
            println!("{}@{}", source.name(), root.digest());
            print_nodes(&tree, "");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints nodes as a tree: `├── TYPE DIGEST`, then their annotations, then their referrers.
fn print_nodes(nodes: &[Node], indent: &str) {
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let d = &node.descriptor;
        let artifact_type =
            referrers::listed_artifact_type(d).unwrap_or_else(|| d.media_type().to_string());
        println!(
            "{indent}{} {artifact_type} {}",
            if last { "└──" } else { "├──" },
            d.digest()
        );
        let inner = format!("{indent}{}", if last { "    " } else { "│   " });
        if let Some(a) = d.annotations() {
            let mut keys: Vec<_> = a.iter().collect();
            keys.sort();
            for (k, v) in keys {
                println!("{inner}    {k}: {v}");
            }
        }
        print_nodes(&node.referrers, &inner);
    }
}
