//! `hoist config --image REF`: edit an image's config as `umoci config` does, writing a new config
//! and manifest and moving the tag. Every transport goes through [`hoist::ImageBuilder`], which
//! reads only the manifest and config and never pulls a layer, and writes back to the image's own
//! name, its `--tag` beside it ([`TransportRef::edited_image`]) or `--dest`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::config_edit::{ClearField, ConfigChanges};
use hoist::reference::TransportRef;

/// Arguments of `hoist config` (umoci's flag names).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hoist config --image oci:./layout:v1 --config.env PATH=/usr/bin:/bin --config.cmd /bin/sh\n  \
    hoist config --image oci:./layout:v1 --tag v2 --config.label org.example=yes --config.exposedports 8080\n  \
    hoist config --image oci:./layout:v1 --clear config.env --config.entrypoint /init --config.entrypoint --verbose\n  \
    hoist config --image docker://localhost:5000/app:v1 --label org.example=yes --annotation team=web\n  \
    hoist config --image oci:./multi:v1 --platform linux/arm64 --config.env MODE=arm --dest oci:./multi:v2")]
pub struct Args {
    /// The image to edit (any transport: `oci:PATH[:TAG|@DIGEST]`, `docker://...`, `dir:PATH`, ...).
    #[arg(long)]
    image: String,
    /// Write the edited image here instead of back to --image (any writable transport).
    #[arg(long, value_name = "REF")]
    dest: Option<String>,
    /// When --image is an index: the platform whose image is edited (default: the host's). The
    /// result is a new index whose entry for that platform names the new manifest.
    #[arg(long)]
    platform: Option<hoist::Platform>,
    /// The tag to point at the edited image (default: the tag of --image).
    #[arg(long)]
    tag: Option<String>,
    /// Set an environment variable (`KEY=VALUE`, replacing an existing KEY); repeatable.
    #[arg(long = "config.env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The entrypoint, one word per use (replaces the old one).
    #[arg(
        long = "config.entrypoint",
        value_name = "WORD",
        allow_hyphen_values = true
    )]
    entrypoint: Vec<String>,
    /// The command, one word per use (replaces the old one).
    #[arg(long = "config.cmd", value_name = "WORD", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// The user (`NAME`, `UID`, `UID:GID`, ...).
    #[arg(long = "config.user")]
    user: Option<String>,
    /// The working directory.
    #[arg(long = "config.workingdir")]
    working_dir: Option<String>,
    /// The stop signal.
    #[arg(long = "config.stopsignal")]
    stop_signal: Option<String>,
    /// Add a label (`KEY=VALUE`); repeatable.
    #[arg(long = "config.label", alias = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Expose a port (`80`, `80/tcp`, `53/udp`); repeatable.
    #[arg(long = "config.exposedports", value_name = "PORT")]
    exposed_ports: Vec<String>,
    /// Add a volume; repeatable.
    #[arg(long = "config.volume", value_name = "PATH")]
    volumes: Vec<String>,
    /// The image author.
    #[arg(long)]
    author: Option<String>,
    /// The image creation time (RFC 3339).
    #[arg(long)]
    created: Option<String>,
    /// The image's operating system.
    #[arg(long)]
    os: Option<String>,
    /// The image's architecture.
    #[arg(long)]
    architecture: Option<String>,
    /// Add a manifest annotation (`KEY=VALUE`); repeatable.
    #[arg(
        long = "manifest.annotation",
        alias = "annotation",
        value_name = "KEY=VALUE"
    )]
    manifest_annotations: Vec<String>,
    /// Empty a field before the others are set: config.env, config.labels, config.entrypoint,
    /// config.cmd, config.exposedports, config.volume, manifest.annotations; repeatable.
    #[arg(long, value_name = "FIELD")]
    clear: Vec<String>,
    /// `created_by` of the history entry.
    #[arg(long = "history.created_by")]
    history_created_by: Option<String>,
    /// `author` of the history entry (default: --author).
    #[arg(long = "history.author")]
    history_author: Option<String>,
    /// `comment` of the history entry.
    #[arg(long = "history.comment")]
    history_comment: Option<String>,
    /// `created` of the history entry (default: --created, else now).
    #[arg(long = "history.created")]
    history_created: Option<String>,
    /// Do not add a history entry.
    #[arg(long)]
    no_history: bool,
    /// Seconds since the epoch to record as `created` and as the history entry's time, unless
    /// --created or --history.created say otherwise (for reproducible images, as repack and diff).
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    source_date_epoch: Option<i64>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist config`.
pub fn run(args: Args) -> Result<ExitCode> {
    let image_ref = super::parse_ref(&args.image)?;
    run_built(args, image_ref)
}

/// The changes the flags ask for (created from the epoch unless --created says otherwise).
fn changes(args: &Args) -> Result<ConfigChanges> {
    let clear = args
        .clear
        .iter()
        .map(|c| ClearField::parse(c))
        .collect::<hoist::Result<Vec<_>>>()?;
    let mut changes = ConfigChanges::default();
    changes.clear = clear;
    changes.env = args.env.clone();
    changes.entrypoint = (!args.entrypoint.is_empty()).then(|| args.entrypoint.clone());
    changes.cmd = (!args.cmd.is_empty()).then(|| args.cmd.clone());
    changes.user = args.user.clone();
    changes.working_dir = args.working_dir.clone();
    changes.stop_signal = args.stop_signal.clone();
    changes.labels = args.labels.clone();
    changes.exposed_ports = args.exposed_ports.clone();
    changes.volumes = args.volumes.clone();
    changes.author = args.author.clone();
    changes.created = args.created.clone();
    changes.os = args.os.clone();
    changes.architecture = args.architecture.clone();
    changes.manifest_annotations = args.manifest_annotations.clone();
    if changes.is_empty() && args.tag.is_none() && args.dest.is_none() {
        bail!(
            "nothing to change: give at least one --config.*, --author, --created, --clear or --tag"
        );
    }
    let epoch = args.source_date_epoch.map(hoist::config_edit::rfc3339);
    changes.created = changes.created.or(epoch);
    Ok(changes)
}

/// The history entry the flags ask for, `None` with --no-history.
fn history(args: &Args, epoch: Option<String>) -> Result<Option<serde_json::Value>> {
    if args.no_history {
        return Ok(None);
    }
    let created = args
        .history_created
        .clone()
        .or(args.created.clone())
        .or(epoch);
    if let Some(c) = &created {
        hoist::config_edit::check_rfc3339(c).context("--history.created")?;
    }
    Ok(Some(hoist::build::history_entry(
        created.as_deref(),
        args.history_created_by.as_deref().unwrap_or("hoist config"),
        args.history_author.as_deref().or(args.author.as_deref()),
        args.history_comment.as_deref(),
        true,
    )))
}

/// `hoist config` on any transport, through the image builder: the base's layers are never read.
fn run_built(args: Args, image_ref: TransportRef) -> Result<ExitCode> {
    let changes = changes(&args)?;
    let epoch = args.source_date_epoch.map(hoist::config_edit::rfc3339);
    let dest_ref = match &args.dest {
        Some(d) => super::parse_ref(d)?,
        None => image_ref
            .edited_image(args.tag.as_deref())
            .context("--tag")?,
    };
    let open = args.registry.apply(super::open_options());
    let src =
        hoist::open_source(&image_ref, &open).with_context(|| format!("opening {}", args.image))?;
    let mut builder = hoist::ImageBuilder::from_source(src.as_ref(), args.platform.as_ref())
        .with_context(|| format!("reading {}", args.image))?;
    builder.keep_index(true);
    builder
        .edit_config(&changes)
        .with_context(|| format!("editing the config of {}", args.image))?;
    if let Some(h) = history(&args, epoch)? {
        builder.add_history(h);
    }
    hoist::transport::check_keeps_other_images(&dest_ref, &open)?;
    let dst = hoist::open_destination(&dest_ref, &open)
        .with_context(|| format!("opening destination {dest_ref}"))?;
    let report = builder
        .write(dst.as_ref(), &super::copy_options())
        .with_context(|| format!("writing the edited image to {}", dst.name()))?;
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
}
