//! `hoist config --image oci:PATH[:TAG]`: edit an image's config as `umoci config` does, writing a new
//! config and manifest and moving the tag.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::config_edit::{ClearField, ConfigChanges, ImageEdit};
use hoist::layout::Layout;
use hoist::reference::{LayoutRef, TransportRef};

/// Arguments of `hoist config` (umoci's flag names).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hoist config --image oci:./layout:v1 --config.env PATH=/usr/bin:/bin --config.cmd /bin/sh\n  \
    hoist config --image oci:./layout:v1 --tag v2 --config.label org.example=yes --config.exposedports 8080\n  \
    hoist config --image oci:./layout:v1 --clear config.env --config.entrypoint /init --config.entrypoint --verbose")]
pub struct Args {
    /// The image to edit (`oci:PATH[:TAG|@DIGEST]`).
    #[arg(long)]
    image: String,
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
    #[arg(long = "config.label", value_name = "KEY=VALUE")]
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
    #[arg(long = "manifest.annotation", value_name = "KEY=VALUE")]
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
}

/// Runs `hoist config`.
pub fn run(args: Args) -> Result<ExitCode> {
    let (path, reference) = match super::parse_ref(&args.image)? {
        TransportRef::Oci { path, reference } => (path, reference),
        other => bail!(
            "--image must be an OCI layout (oci:PATH[:TAG]), not {}",
            other.transport()
        ),
    };
    let clear = args
        .clear
        .iter()
        .map(|c| ClearField::parse(c))
        .collect::<hoist::Result<Vec<_>>>()?;
    let changes = ConfigChanges {
        clear,
        env: args.env,
        entrypoint: (!args.entrypoint.is_empty()).then_some(args.entrypoint),
        cmd: (!args.cmd.is_empty()).then_some(args.cmd),
        user: args.user,
        working_dir: args.working_dir,
        stop_signal: args.stop_signal,
        labels: args.labels,
        exposed_ports: args.exposed_ports,
        volumes: args.volumes,
        author: args.author.clone(),
        created: args.created.clone(),
        os: args.os,
        architecture: args.architecture,
        manifest_annotations: args.manifest_annotations,
    };
    let tag = args.tag.clone().or_else(|| match &reference {
        Some(LayoutRef::Tag(t)) => Some(t.clone()),
        _ => None,
    });
    if changes.is_empty() && args.tag.is_none() {
        bail!(
            "nothing to change: give at least one --config.*, --author, --created, --clear or --tag"
        );
    }
    let epoch = args.source_date_epoch.map(hoist::config_edit::rfc3339);
    let changes = ConfigChanges {
        created: changes.created.or(epoch.clone()),
        ..changes
    };
    let layout = Layout::open(&path)?.with_limits(super::limits());
    let mut edit = ImageEdit::open(&layout, reference.as_ref())
        .with_context(|| format!("opening {}", args.image))?;
    edit.apply(&changes)
        .with_context(|| format!("editing the config of {}", args.image))?;
    if !args.no_history {
        let created = args
            .history_created
            .clone()
            .or(args.created.clone())
            .or(epoch);
        if let Some(c) = &created {
            hoist::config_edit::check_rfc3339(c).context("--history.created")?;
        }
        let mut h = ImageEdit::history_entry(
            created.as_deref(),
            args.history_created_by.as_deref().unwrap_or("hoist config"),
            args.history_author.as_deref().or(args.author.as_deref()),
            true,
        );
        if let (Some(c), Some(o)) = (&args.history_comment, h.as_object_mut()) {
            o.insert("comment".into(), serde_json::Value::String(c.clone()));
        }
        edit.add_history(h);
    }
    let doc = edit
        .commit(tag.as_deref())
        .with_context(|| format!("writing the edited image into {}", path.display()))?;
    println!("{}", doc.digest());
    Ok(ExitCode::SUCCESS)
}
