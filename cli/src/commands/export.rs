//! `hoist export IMAGE [FILE|-]`: the image's filesystem as one tar stream, as `crane export` (the tree
//! `hoist unpack` would make, applied the same way, never written to disk).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::platform::Platform;
use hoist::{ExportOptions, export, export_to_path};

/// Arguments of `hoist export`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist export oci:./layout:latest rootfs.tar\n  \
    hoist export oci:./layout:latest - | tar -x -C ./tree\n  \
    hoist export --platform linux/arm64 docker://localhost:5000/app:v1 app.tar"
)]
pub struct Args {
    /// The image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker://...`, ...).
    image: String,
    /// Where the tar goes: a file (replaced when complete; a FIFO, symlink or device is written
    /// through), or `-` (the default) for stdout.
    #[arg(default_value = "-")]
    file: PathBuf,
    /// The platform to export from a multi-platform image (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    #[command(flatten)]
    limits: super::apply_limits::ApplyLimitArgs,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// How to show progress on stderr (default: bars on a terminal, nothing otherwise).
    #[arg(long, value_enum)]
    progress: Option<crate::progress::Mode>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist export`.
pub fn run(args: Args) -> Result<ExitCode> {
    let (source, limits) = args.limits.open(&args.image, &args.registry)?;
    let mut opts = ExportOptions::default();
    opts.platform = args.platform;
    opts.cancel = super::cancel_token();
    opts.limits = Some(limits);
    opts.progress = crate::progress::when_watched(args.progress, args.quiet);
    let to_stdout = args.file.as_os_str() == "-";
    let report = if to_stdout {
        let mut out = std::io::stdout().lock();
        let r = export(source.as_ref(), &mut out, &opts);
        r.and_then(|r| {
            out.flush()
                .map_err(|e| hoist::Error::io("writing the export to stdout", e))?;
            Ok(r)
        })
    } else {
        export_to_path(source.as_ref(), &args.file, &opts)
    }
    .with_context(|| {
        format!(
            "exporting {} to {}",
            source.name(),
            if to_stdout {
                "stdout".to_string()
            } else {
                args.file.display().to_string()
            }
        )
    })?;
    if !args.quiet {
        eprintln!(
            "exported {} ({} layers, {} entries, {}){}",
            report.manifest,
            report.layers,
            report.entries,
            hoist::limits::human_bytes(report.bytes),
            if to_stdout {
                String::new()
            } else {
                format!(" to {}", args.file.display())
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
