//! `hoist tag REF NEWTAG...`: more tags for an image without pulling it: a registry gets the same
//! manifest bytes `PUT` under each new tag; a layout gets an `index.json` entry per tag.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::layout::Layout;
use hoist::reference::TransportRef;

use crate::output::{Format, Usage};

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
    let reference = super::parse_ref(&args.reference)?;
    let digest = match reference {
        TransportRef::Oci { path, reference } => {
            for t in &args.tags {
                hoist::reference::check_tag(t, hoist::reference::TagGrammar::LayoutRefName)?;
            }
            let layout = Layout::open(&path)?.with_limits(super::limits());
            let _lock = layout.lock()?;
            let desc = layout.resolve(reference.as_ref())?;
            for t in &args.tags {
                layout
                    .set_tag(Some(t), &desc)
                    .with_context(|| format!("tagging {t} in layout {}", path.display()))?;
            }
            desc.digest().to_string()
        }
        #[cfg(feature = "registry")]
        TransportRef::Docker(name) => {
            use hoist::transport::Source;
            use hoist::transport::registry::{RegistryDestination, RegistrySource};
            for t in &args.tags {
                hoist::reference::check_tag(t, hoist::reference::TagGrammar::Registry)?;
            }
            let opts = args.registry.apply(super::open_options());
            let doc = RegistrySource::open(&name, &opts)?
                .root()
                .with_context(|| format!("reading docker://{name}"))?;
            let dest = RegistryDestination::open(&name, &opts)?;
            for t in &args.tags {
                dest.put_tag(t, &doc)
                    .with_context(|| format!("tagging docker://{}:{t}", name.name()))?;
            }
            doc.digest().to_string()
        }
        other => {
            return Err(Usage(format!(
                "tag works on registries (docker://) and OCI layouts (oci:), not {}",
                other.transport()
            ))
            .into());
        }
    };
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
