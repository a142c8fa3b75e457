//! `hoist unpack REF DIR`: apply an image's layers to a directory (or an OCI runtime bundle), safely
//! and verified, as `umoci unpack` does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::layer::WhiteoutFormat;
use hoist::owner::IdMap;
use hoist::platform::Platform;
use hoist::unpack::{UnpackOptions, unpack};

/// `--whiteout-format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutArg {
    /// Apply whiteouts: remove what they name (default).
    Apply,
    /// Keep them as overlayfs whiteouts (0/0 character devices, `trusted.overlay.opaque`).
    Overlay,
}

/// Arguments of `hoist unpack`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist unpack oci:./layout:latest ./rootfs\n  \
    hoist unpack --bundle oci:./layout:latest ./bundle && runc run -b ./bundle ctr\n  \
    hoist unpack --rootless --platform linux/arm64 oci-archive:img.tar ./tree\n  \
    hoist unpack --uid-map 0:100000:65536 --gid-map 0:100000:65536 oci:./layout:v1 ./shifted\n  \
    hoist unpack --tls-verify=false docker://localhost:5000/app:v1 ./from-registry"
)]
pub struct Args {
    /// The image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`, ...).
    image: String,
    /// The target directory (created; must be absent or empty).
    dir: PathBuf,
    /// The platform to unpack from a multi-platform image (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Write an OCI runtime bundle: DIR/rootfs, DIR/config.json (mode 0700), as umoci does.
    #[arg(long)]
    bundle: bool,
    /// Record what was unpacked in FILE (outside DIR), for `hoist repack --state FILE DIR`. A plain
    /// tree gets nothing of hoist's in it; a bundle keeps its record in DIR/hoist-state.json.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    state: Option<PathBuf>,
    /// Do not apply ownership, devices or security.* xattrs; record owners in the
    /// user.rootlesscontainers xattr (umoci-compatible). The default when not running as root.
    #[arg(long)]
    rootless: bool,
    /// Shift owners: CONTAINER:HOST:SIZE (repeatable; as root).
    #[arg(long, conflicts_with = "rootless")]
    uid_map: Vec<IdMap>,
    /// Shift groups: CONTAINER:HOST:SIZE (repeatable; as root).
    #[arg(long, conflicts_with = "rootless")]
    gid_map: Vec<IdMap>,
    /// Keep a symlink to a directory when a later layer has a directory at its path: write through
    /// it (inside DIR) instead of replacing it, as `umoci unpack --keep-dirlinks`.
    #[arg(long)]
    keep_dirlinks: bool,
    /// What to do with whiteouts.
    #[arg(long, value_enum, default_value_t = WhiteoutArg::Apply)]
    whiteout_format: WhiteoutArg,
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

/// Runs `hoist unpack`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.image)?;
    let (source, limits) = args.limits.open(&args.image, &args.registry)?;
    let mut opts = UnpackOptions::default();
    opts.platform = args.platform;
    opts.cancel = super::cancel_token();
    opts.bundle = args.bundle;
    opts.apply.rootless = args.rootless;
    opts.apply.uid_map = args.uid_map;
    opts.apply.gid_map = args.gid_map;
    opts.apply.whiteout = match args.whiteout_format {
        WhiteoutArg::Apply => WhiteoutFormat::Apply,
        WhiteoutArg::Overlay => WhiteoutFormat::Overlay,
    };
    opts.apply.keep_dirlinks = args.keep_dirlinks;
    opts.limits = Some(limits);
    opts.source_ref = Some(reference.absolute().to_string());
    opts.state = args.state.clone();
    opts.progress = crate::progress::when_watched(args.progress, args.quiet);
    let existed = args.dir.symlink_metadata().is_ok();
    let report = unpack(source.as_ref(), &args.dir, &opts).with_context(|| {
        // Only a directory hoist created may be removed; one the user made is theirs.
        let started = args.dir.join(hoist::unpack::INCOMPLETE_MARKER).exists();
        let hint = match (started, existed) {
            (false, true) => "hoist did not change it",
            (false, false) => "nothing was unpacked",
            (true, true) => "left incomplete: empty it and retry",
            (true, false) => "left incomplete: hoist created it; remove it and retry",
        };
        format!(
            "unpacking {} into {} ({hint})",
            source.name(),
            args.dir.display()
        )
    })?;
    if !args.quiet {
        eprintln!(
            "unpacked {} ({} layers, {} entries, {}){} into {}",
            report.manifest,
            report.layers,
            report.entries,
            hoist::limits::human_bytes(report.bytes),
            if report.rootless { ", rootless" } else { "" },
            args.dir.display()
        );
        if !report.skipped_devices.is_empty() {
            eprintln!(
                "warning: {} device node(s) were not created (rootless; an empty file stands in each place, as umoci does), e.g. /{}",
                report.skipped_devices.len(),
                report.skipped_devices[0]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
