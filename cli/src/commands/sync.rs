//! `hoist sync --src T --dest T SOURCE DESTINATION`: copy many images (a registry repository's tags, a
//! YAML list, a directory of `dir:` images, a layout's tags) as `skopeo sync` does; the work is
//! [`hoist::sync`]. One line per image on stderr, then the counts; exit 1 when any image failed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::copy::PlatformChoice;
use hoist::sync::{ImageResult, Outcome, SyncDestination, SyncOptions, SyncSource};

use super::copy::ManifestFormat;

/// `--src`: what SOURCE is.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A registry repository (`HOST/REPO`: every tag) or one image (`HOST/REPO:TAG`).
    Docker,
    /// A directory tree; every directory holding a `manifest.json` is a `dir:` image.
    Dir,
    /// A YAML file in skopeo's format (registries, their images and settings).
    #[cfg(feature = "registry")]
    Yaml,
    /// An OCI layout: every tagged image in it.
    Oci,
}

/// `--dest`: what DESTINATION is.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestKind {
    /// A registry namespace (`HOST[:PORT][/PATH]`): images go to `DESTINATION/NAME:TAG`.
    Docker,
    /// A directory: each image becomes the `dir:` directory `DESTINATION/NAME:TAG`.
    Dir,
    /// One OCI layout holding every image, tagged `NAME:TAG`.
    Oci,
}

/// Arguments of `hoist sync`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Names: an image `registry.example.com/team/app:v1` becomes `app:v1` below DESTINATION \
(`DESTINATION/app:v1` as a dir: directory or registry image, or the tag `app:v1` of the one OCI layout); \
with --scoped the full name `registry.example.com/team/app:v1`. An image whose digest the destination \
already holds under that name is skipped (up to date).\n\n\
Examples:\n  hoist sync --src docker --dest dir registry.example.com/team/app /media/usb\n  \
hoist sync --src docker --dest oci --src-tls-verify=false 127.0.0.1:5000/team/app ./mirror\n  \
hoist sync --src yaml --dest docker sync.yml my-registry.local.lan/mirror\n  \
hoist sync --src dir --dest docker /media/usb my-registry.local.lan/team"
)]
pub struct Args {
    /// What SOURCE is.
    #[arg(short = 's', long = "src", value_enum)]
    src: SourceKind,
    /// What DESTINATION is.
    #[arg(short = 'd', long = "dest", value_enum)]
    dest: DestKind,
    /// Where the images are (a repository, a YAML file, a directory or a layout; see --src).
    source: String,
    /// Where they go (a registry namespace, a directory or a layout; see --dest).
    destination: String,
    /// Name each image at the destination by its full source name (registry and path included).
    #[arg(long)]
    scoped: bool,
    /// Copy every image of an index, and the index (default: the host's platform only).
    #[arg(short, long)]
    all: bool,
    /// Say what would be copied and what is up to date, but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go on after an image fails; exit 1 at the end if any did (default: stop at the first).
    #[arg(long)]
    keep_going: bool,
    /// Manifest format to write (default: the destination's own, converting as skopeo does).
    #[arg(short, long, value_enum)]
    format: Option<ManifestFormat>,
    /// Fail rather than write anything whose digest differs from the source's.
    #[arg(long)]
    preserve_digests: bool,
    /// Into `--dest oci` from `--src dir|oci`, share blob files by hard link
    /// instead of copying them (only files owned by you and not writable by group or others).
    #[arg(long)]
    link: bool,
    /// Also copy the referrers (signatures, SBOMs, attestations) of every image, and theirs.
    #[arg(long)]
    referrers: bool,
    /// With --referrers, only referrers of this artifact type (repeatable).
    #[arg(long, value_name = "ARTIFACT_TYPE", requires = "referrers")]
    referrers_filter: Vec<String>,
    /// Also copy cosign's legacy `sha256-<hex>.sig`, `.att` and `.sbom` tags of every manifest copied
    /// (as regctl's `--digest-tags`).
    #[arg(long)]
    digest_tags: bool,
    /// Blobs in flight at once, per image.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// How to show blob progress on stderr.
    #[arg(long, value_enum, default_value_t = crate::progress::Mode::None)]
    progress: crate::progress::Mode,
    #[command(flatten)]
    registry: super::registry_args::CopyRegistryArgs,
}

fn describe(r: &ImageResult) -> String {
    let arrow = if r.destination.is_empty() {
        r.source.clone()
    } else {
        format!("{} -> {}", r.source, r.destination)
    };
    match &r.outcome {
        Outcome::Copied(c) => format!(
            "copied {arrow} ({}; {} blobs copied, {} linked, {} mounted, {} already present)",
            c.digest, c.blobs_copied, c.blobs_linked, c.blobs_mounted, c.blobs_skipped
        ),
        Outcome::UpToDate(d) => format!("skipped (up to date) {arrow} ({d})"),
        Outcome::WouldCopy => format!("would copy {arrow}"),
        Outcome::Failed(e) => {
            let mut text = format!("failed {arrow}: {e}");
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let c_text = c.to_string();
                if !text.contains(&c_text) {
                    text.push_str(&format!("\n  caused by: {c_text}"));
                }
                cause = c.source();
            }
            text
        }
        other => format!("{arrow}: {other:?}"),
    }
}

/// Runs `hoist sync`.
pub fn run(args: Args) -> Result<ExitCode> {
    let source = match args.src {
        SourceKind::Docker => SyncSource::Docker(args.source.clone()),
        SourceKind::Dir => SyncSource::Dir(PathBuf::from(&args.source)),
        #[cfg(feature = "registry")]
        SourceKind::Yaml => SyncSource::Yaml(PathBuf::from(&args.source)),
        SourceKind::Oci => SyncSource::Oci(PathBuf::from(&args.source)),
    };
    let destination = match args.dest {
        DestKind::Docker => SyncDestination::Docker(args.destination.clone()),
        DestKind::Dir => SyncDestination::Dir(PathBuf::from(&args.destination)),
        DestKind::Oci => SyncDestination::Oci(PathBuf::from(&args.destination)),
    };
    let open = super::open_options();
    let mut opts = SyncOptions::default();
    opts.copy.platforms = if args.all {
        PlatformChoice::All
    } else {
        PlatformChoice::Host
    };
    opts.copy.jobs = args.jobs;
    opts.copy.cancel = super::cancel_token();
    opts.copy.progress = crate::progress::sink(args.progress, args.quiet);
    opts.copy.preserve_digests = args.preserve_digests;
    opts.copy.link = args.link;
    opts.copy.index_only = false;
    opts.copy.referrers = args.referrers;
    opts.copy.referrers_filter = args.referrers_filter.clone();
    opts.copy.digest_tags = args.digest_tags;
    opts.copy.convert.format = args.format.map(|f| match f {
        ManifestFormat::Oci => hoist::convert::Format::Oci,
        ManifestFormat::V2s2 => hoist::convert::Format::DockerV2S2,
    });
    opts.source = args.registry.source(open.clone());
    opts.destination = args.registry.destination(open);
    opts.scoped = args.scoped;
    opts.keep_going = args.keep_going;
    opts.dry_run = args.dry_run;
    let quiet = args.quiet;
    let report = hoist::sync::sync(&source, &destination, &opts, &|r: &ImageResult| {
        if !quiet || matches!(r.outcome, Outcome::Failed(_)) {
            eprintln!("{}", describe(r));
        }
    })
    .with_context(|| format!("syncing {} to {}", args.source, args.destination))?;
    let cancelled = report.images.iter().any(|r| match &r.outcome {
        Outcome::Failed(e) => e.is_cancelled(),
        _ => false,
    }) || (report.stopped && opts.copy.cancel.is_cancelled());
    if !quiet {
        let (verb, copied) = if args.dry_run {
            ("dry run, would sync", "to copy")
        } else {
            ("synced", "copied")
        };
        eprintln!(
            "{verb} {} image{}: {} {copied}, {} skipped (up to date), {} failed{}",
            report.images.len(),
            if report.images.len() == 1 { "" } else { "s" },
            report.copied() + report.would_copy(),
            report.up_to_date(),
            report.failed(),
            if cancelled {
                "; cancelled"
            } else if report.stopped {
                "; stopped at the first failure (--keep-going goes on)"
            } else {
                ""
            }
        );
    }
    if cancelled {
        return Err(hoist::Error::Cancelled.into());
    }
    // Exit 2 when every failure is an image that does not exist (as on every verb), else 1.
    let all_missing = report.images.iter().all(|r| match &r.outcome {
        Outcome::Failed(e) => e.is_not_found(),
        _ => true,
    });
    Ok(match report.failed() {
        0 => ExitCode::SUCCESS,
        _ if all_missing => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    })
}
