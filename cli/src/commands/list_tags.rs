//! `hoist list-tags docker://HOST/REPO`: a registry repository's tags, following `Link` pagination,
//! printed as `skopeo list-tags` does; `docker-archive:FILE`: the RepoTags of every image in it.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::reference::TransportRef;
use hoist::transport::Source;
use hoist::transport::registry::RegistrySource;

/// Arguments of `hoist list-tags`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist list-tags docker://registry.example:5000/team/app\n  hoist list-tags --tls-verify=false docker://127.0.0.1:5000/app\n  hoist list-tags docker-archive:./saved.tar"
)]
pub struct Args {
    /// The repository (`docker://HOST[:PORT]/REPO`; a tag, if given, is ignored), or a
    /// `docker-archive:FILE`.
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

/// The JSON `skopeo list-tags docker-archive:FILE` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveListing {
    tags: Vec<String>,
}

/// Runs `hoist list-tags`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    if let TransportRef::DockerArchive { .. } = reference {
        // As skopeo: the RepoTags of every image of the archive, without a repository.
        let source = hoist::transport::open_source(
            &super::tags::archive_tags_ref(reference),
            &super::open_options(),
        )?;
        let tags = source
            .tags()
            .with_context(|| format!("listing tags of {}", source.name()))?;
        crate::output::print_json(&ArchiveListing { tags })?;
        return Ok(ExitCode::SUCCESS);
    }
    let TransportRef::Docker(name) = reference else {
        return Err(crate::output::Usage(format!(
            "list-tags takes a docker:// or docker-archive: reference, not {:?} (use `hoist tags` \
             for layouts)",
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
