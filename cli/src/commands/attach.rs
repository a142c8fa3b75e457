//! `hoist attach --artifact-type TYPE REF FILE[:MEDIATYPE]...` (as `oras attach`): an artifact
//! manifest whose subject is the image's manifest, stored as its referrer where the image lives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::referrers::{self, AttachOptions};

use crate::output::Format;

/// Arguments of `hoist attach`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes an OCI artifact manifest (artifactType TYPE, the empty config, one layer per \
FILE titled with its name, subject the image's manifest or index) beside the image: a registry \
repository (kept discoverable without the referrers API by the sha256-<hex> fallback index) or an \
OCI layout (an untagged index.json entry, as oras does).\n\n\
Examples:\n  hoist attach --artifact-type application/spdx+json docker://registry.example/app:v1 sbom.json:application/spdx+json\n  \
hoist attach --artifact-type application/vnd.example.note --annotation note=hi oci:./layout:v1"
)]
pub struct Args {
    /// The artifact's type.
    #[arg(long, value_name = "TYPE")]
    artifact_type: String,
    /// An annotation of the artifact manifest (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// The image (`docker://HOST/REPO:TAG|@DIGEST`, `oci:PATH:TAG`).
    reference: String,
    /// Files to attach, each with an optional media type (default
    /// `application/vnd.oci.image.layer.v1.tar`, as oras).
    #[arg(value_name = "FILE[:MEDIATYPE]")]
    files: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// What `hoist attach` wrote.
#[derive(serde::Serialize)]
struct Attached {
    digest: String,
    #[serde(rename = "artifactType")]
    artifact_type: String,
    subject: String,
}

/// Runs `hoist attach`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let mut o = AttachOptions::default();
    o.artifact_type = args.artifact_type.clone();
    for a in &args.annotations {
        let (k, v) = a.split_once('=').ok_or_else(|| {
            crate::output::Usage(format!("--annotation {a:?}: expected KEY=VALUE"))
        })?;
        o.annotations.insert(k.to_string(), v.to_string());
    }
    for f in &args.files {
        // FILE:MEDIATYPE splits at the last ':' when what follows looks like a media type.
        let (path, media_type) = match f.rsplit_once(':') {
            Some((p, mt)) if mt.contains('/') && !p.is_empty() => (p, Some(mt.to_string())),
            _ => (f.as_str(), None),
        };
        o.files.push((PathBuf::from(path), media_type));
    }
    let opts = args.registry.apply(super::open_options());
    let doc = referrers::attach(&reference, &o, &opts)
        .with_context(|| format!("attaching to {reference}"))?;
    let subject = referrers::subject(&doc)?
        .map(|s| s.digest().to_string())
        .unwrap_or_default();
    let attached = Attached {
        digest: doc.digest().to_string(),
        artifact_type: args.artifact_type,
        subject,
    };
    match args.format {
        Format::Json => crate::output::print_json(&attached)?,
        Format::Text => println!(
            "attached {} ({}) to {}",
            attached.digest, attached.artifact_type, attached.subject
        ),
    }
    Ok(ExitCode::SUCCESS)
}
