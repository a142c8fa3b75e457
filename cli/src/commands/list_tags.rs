//! `hoist list-tags docker://HOST/REPO`: a registry repository's tags, following `Link` pagination,
//! printed as `skopeo list-tags` does.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::reference::TransportRef;
use hoist::transport::Source;
use hoist::transport::registry::RegistrySource;

/// Arguments of `hoist list-tags`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist list-tags docker://registry.example:5000/team/app\n  hoist list-tags --tls-verify=false docker://127.0.0.1:5000/app"
)]
pub struct Args {
    /// The repository (`docker://HOST[:PORT]/REPO`; a tag, if given, is ignored).
    reference: String,
    /// Tags to ask for per request (default: as many as the registry sends).
    #[arg(long, value_name = "N")]
    page_size: Option<usize>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// The JSON `skopeo list-tags` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    repository: String,
    tags: Vec<String>,
}

/// Runs `hoist list-tags`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let TransportRef::Docker(name) = reference else {
        return Err(crate::output::Usage(format!(
            "list-tags takes a docker:// reference, not {:?} (use `hoist tags` for layouts and archives)",
            hoist::reference::without_credentials(&args.reference)
        ))
        .into());
    };
    let opts = args.registry.apply(super::open_options());
    let mut source = RegistrySource::open(&name, &opts)?;
    if let Some(n) = args.page_size {
        source = source.with_page_size(n);
    }
    let tags = source
        .tags()
        .with_context(|| format!("listing tags of {}", name.name()))?;
    crate::output::print_json(&Listing {
        repository: name.name(),
        tags,
    })?;
    Ok(ExitCode::SUCCESS)
}
