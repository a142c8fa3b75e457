//! `hoist copy SRC DEST`: copy an image between transports, verifying every blob as it streams.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::copy::{CopyOptions, PlatformChoice, copy};
use hoist::platform::Platform;
use hoist::transport::{open_destination, open_source};

/// Arguments of `hoist copy`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist copy oci:./src:v1 oci:./dst:v1\n  hoist copy --all oci:./multi:latest oci-archive:multi.tar:latest\n  hoist copy --platform linux/arm64 oci:./multi:latest dir:./arm64"
)]
pub struct Args {
    /// Where to read the image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`).
    source: String,
    /// Where to write it (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`).
    destination: String,
    /// Copy the whole index, every platform (default: the host's platform only, as skopeo).
    #[arg(long, conflicts_with = "platform")]
    all: bool,
    /// Copy only these platforms (repeatable); more than one writes a new index of just those.
    #[arg(long)]
    platform: Vec<Platform>,
    /// Blobs in flight at once.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Write the digest of the destination's root manifest to this file.
    #[arg(long)]
    digestfile: Option<std::path::PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value_t = crate::progress::Mode::Auto)]
    progress: crate::progress::Mode,
}

/// Runs `hoist copy`.
pub fn run(args: Args) -> Result<ExitCode> {
    let src_ref = super::parse_ref(&args.source)?;
    let dst_ref = super::parse_ref(&args.destination)?;
    if src_ref == dst_ref {
        bail!("source and destination are the same image ({src_ref})");
    }
    let open = super::open_options();
    let source =
        open_source(&src_ref, &open).with_context(|| format!("opening source {}", args.source))?;
    let destination = open_destination(&dst_ref, &open)
        .with_context(|| format!("opening destination {}", args.destination))?;
    let platforms = match (args.all, args.platform.as_slice()) {
        (true, _) => PlatformChoice::All,
        (false, []) => PlatformChoice::Host,
        (false, [one]) => PlatformChoice::One(one.clone()),
        (false, many) => PlatformChoice::Subset(many.to_vec()),
    };
    let progress = crate::progress::sink(args.progress, args.quiet);
    let report = copy(
        source.as_ref(),
        destination.as_ref(),
        &CopyOptions {
            platforms,
            jobs: args.jobs,
            progress: progress.clone(),
            ..Default::default()
        },
    )
    .with_context(|| format!("copying {} to {}", source.name(), destination.name()))?;
    if let Some(path) = &args.digestfile {
        std::fs::write(path, report.digest.to_string())
            .with_context(|| format!("writing digest file {}", path.display()))?;
    }
    if !args.quiet {
        if report.digest != report.source_digest {
            eprintln!(
                "note: the written root {} differs from the source's {} (platform selection)",
                report.digest, report.source_digest
            );
        }
        eprintln!(
            "wrote {} {}: {} blobs copied, {} linked, {} already present ({})",
            destination.name(),
            report.digest,
            report.blobs_copied,
            report.blobs_linked,
            report.blobs_skipped,
            hoist::limits::human_bytes(report.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
