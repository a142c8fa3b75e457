//! `hoist list-tags docker://HOST/REPO`: a registry repository's tags, following `Link` pagination,
//! printed as `skopeo list-tags` does; `docker-archive:FILE`: the RepoTags of every image in it.

use std::process::ExitCode;

use anyhow::{Context, Result};

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
    let registry = reference.kind().tags_are_repo_tags;
    if !registry && !reference.kind().tags_are_image_names {
        return Err(crate::output::Usage(format!(
            "list-tags takes a docker:// or docker-archive: reference, not {:?} (use `hoist tags` \
             for layouts)",
            hoist::reference::without_credentials(&args.reference)
        ))
        .into());
    }
    let mut opts = args.registry.apply(super::open_options());
    opts.page_size = args.page_size;
    let tags = hoist::transport::list_tags(&reference, &opts)
        .with_context(|| format!("listing tags of {}", args.reference))?;
    match reference.image_name().filter(|_| registry) {
        // As skopeo: a registry's listing names its repository; a docker-archive's is the RepoTags
        // of every image of the archive, without a repository.
        Some(name) => crate::output::print_json(&Listing {
            repository: name.name(),
            tags,
        })?,
        None => crate::output::print_json(&ArchiveListing { tags })?,
    }
    Ok(ExitCode::SUCCESS)
}
