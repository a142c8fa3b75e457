//! `hoist catalog docker://HOST`: the repositories of a registry (`GET /v2/_catalog`), following
//! `Link` pagination as `list-tags` does.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::output::Format;

/// Arguments of `hoist catalog`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The catalog is paged as tag lists are, within the same limits (--max-tag-pages pages, \
--max-tags repositories). Registries may restrict or disable it (Docker Hub does).\n\n\
Examples:\n  hoist catalog docker://registry.example:5000\n  \
hoist catalog --tls-verify=false --format json docker://127.0.0.1:5000"
)]
pub struct Args {
    /// The registry (`docker://HOST[:PORT]`; a repository path is ignored).
    registry: String,
    /// Repositories to ask for per request (default: as many as the registry sends).
    #[arg(long, value_name = "N")]
    page_size: Option<usize>,
    /// Output format: one repository per line, or `{"Registry": ..., "Repositories": [...]}`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    registry_args: super::registry_args::RegistryArgs,
}

/// The JSON `hoist catalog --format json` prints (in the style of `skopeo list-tags`).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Catalog {
    registry: String,
    repositories: Vec<String>,
}

/// Runs `hoist catalog`.
pub fn run(args: Args) -> Result<ExitCode> {
    let host = super::login::registry_host(&args.registry)?;
    let opts = args.registry_args.apply(super::open_options());
    let repositories = hoist::transport::registry::catalog(&host, &opts, args.page_size)
        .with_context(|| format!("listing the repositories of {host}"))?;
    match args.format {
        Format::Json => crate::output::print_json(&Catalog {
            registry: host,
            repositories,
        })?,
        Format::Text => {
            for r in repositories {
                println!("{r}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
