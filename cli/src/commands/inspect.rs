//! `hoist inspect REF`: the fields `skopeo inspect` prints, or the raw manifest/config bytes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::platform::Platform;
use hoist::transport::open_source;

/// Output format of `inspect`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON, as skopeo prints it.
    Json,
    /// Aligned `Key: value` lines.
    Text,
}

/// Arguments of `hoist inspect`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist inspect oci:./layout:latest\n  hoist inspect --raw oci:./layout:latest | sha256sum\n  hoist inspect --config --format json oci-archive:img.tar"
)]
pub struct Args {
    /// The image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`, ...).
    reference: String,
    /// Print the root manifest or index exactly as stored (byte for byte).
    #[arg(long)]
    raw: bool,
    /// Print the image config (pretty JSON; with --raw, exactly as stored).
    #[arg(long)]
    config: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Which image of an index to describe (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Registry images: do not list the repository's tags into `RepoTags` (skopeo's `--no-tags`).
    #[arg(short, long)]
    no_tags: bool,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist inspect`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let source = open_source(&reference, &args.registry.apply(super::open_options()))
        .with_context(|| format!("opening {}", args.reference))?;
    let root = source
        .root()
        .with_context(|| format!("reading {}", source.name()))?;
    let mut out = std::io::stdout().lock();
    if args.raw && !args.config {
        out.write_all(root.bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let root_digest = root.digest().clone();
    let wanted = args.platform.clone().unwrap_or_else(Platform::host);
    let image = hoist::image::resolve_root(source.as_ref(), root, &wanted)
        .with_context(|| format!("reading the image config of {}", source.name()))?;
    if args.config {
        if args.raw {
            out.write_all(&image.config_bytes)?;
        } else {
            let v: serde_json::Value =
                serde_json::from_slice(&image.config_bytes).context("parsing the config")?;
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    // As skopeo: a registry image's RepoTags are its repository's tags.
    let image_name = reference.image_name().map(|n| n.name());
    let repo_tags = match &image_name {
        Some(n) if reference.kind().tags_are_repo_tags && !args.no_tags => source
            .tags()
            .with_context(|| format!("listing the tags of {n} (--no-tags skips it)"))?,
        _ => Vec::new(),
    };
    let inspection = hoist::inspect::inspect(&image, &root_digest, image_name, repo_tags);
    match args.format {
        Format::Json => crate::output::print_json(&inspection)?,
        Format::Text => write!(out, "{}", hoist::inspect::to_text(&inspection))?,
    }
    Ok(ExitCode::SUCCESS)
}
