//! `hoist diff LOWER UPPER`: the changes between two directories as a layer, written to a file or
//! appended to an image in a layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::diff::{
    AppendOptions, ChangeKind, DiffOptions, DirTree, LayerOptions, MtimePolicy, append_diff,
    compute, write_layer_file,
};
use hoist::layout::Layout;
use hoist::media_type::Compression;
use hoist::reference::TransportRef;
use serde_json::json;

/// Layer compression chosen on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressArg {
    /// Plain tar.
    None,
    /// gzip, compressed in parallel blocks (any gzip reader decodes it).
    Gzip,
    /// zstd, multithreaded.
    Zstd,
}

impl From<CompressArg> for Compression {
    fn from(c: CompressArg) -> Self {
        match c {
            CompressArg::None => Compression::None,
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::Zstd => Compression::Zstd,
        }
    }
}

/// Arguments of `hoist diff`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist diff ./before ./after -o layer.tar.gz\n  \
    SOURCE_DATE_EPOCH=1700000000 hoist diff ./before ./after -o layer.tar.zst --uid 0 --gid 0\n  \
    hoist diff ./before ./after --image oci:./layout:v1 --tag v2\n  \
    hoist diff --list ./before ./after"
)]
pub struct Args {
    /// The lower directory (what the layer applies on top of).
    lower: PathBuf,
    /// The upper directory (what applying the layer should give).
    upper: PathBuf,
    /// Write the layer to this file (compression from the extension: .gz/.tgz gzip, .zst zstd).
    #[arg(short, long, conflicts_with = "image", required_unless_present_any = ["image", "list"])]
    output: Option<PathBuf>,
    /// Append the layer to this image (`oci:PATH[:TAG]`), writing a new config and manifest.
    #[arg(long)]
    image: Option<String>,
    /// With --image: the tag to point at the new image (default: the tag of --image).
    #[arg(long, requires = "image")]
    tag: Option<String>,
    /// Compression (default: from the output's extension; gzip with --image).
    #[arg(long, value_enum)]
    compress: Option<CompressArg>,
    /// Compression level (gzip 1-9, zstd 1-22).
    #[arg(long)]
    level: Option<u32>,
    /// Clamp entry times to this many seconds since the epoch, for reproducible layers.
    #[arg(long, env = "SOURCE_DATE_EPOCH", conflicts_with = "mtime")]
    source_date_epoch: Option<i64>,
    /// Give every entry this modification time (seconds since the epoch).
    #[arg(long)]
    mtime: Option<i64>,
    /// Write every entry with this owner.
    #[arg(long)]
    uid: Option<u32>,
    /// Write every entry with this group.
    #[arg(long)]
    gid: Option<u32>,
    /// Compare the bytes of files whose size and times agree (slower, sure).
    #[arg(long)]
    compare_content: bool,
    /// Print the changes (one `A|M|D path` line each); with no output, only that.
    #[arg(long)]
    list: bool,
    /// With --image: `created_by` of the history entry.
    #[arg(long = "history.created_by")]
    history_created_by: Option<String>,
    /// With --image: `author` of the history entry.
    #[arg(long = "history.author")]
    history_author: Option<String>,
    /// With --image: `comment` of the history entry.
    #[arg(long = "history.comment")]
    history_comment: Option<String>,
    /// With --image: do not add a history entry.
    #[arg(long)]
    no_history: bool,
}

fn from_extension(path: &Path) -> Compression {
    let name = path.to_string_lossy();
    if name.ends_with(".gz") || name.ends_with(".tgz") {
        Compression::Gzip
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Runs `hoist diff`.
pub fn run(args: Args) -> Result<ExitCode> {
    for (what, dir) in [("lower", &args.lower), ("upper", &args.upper)] {
        if !dir.is_dir() {
            bail!("the {what} tree {} is not a directory", dir.display());
        }
    }
    let diff = compute(
        &DirTree::new(&args.lower),
        &args.upper,
        &DiffOptions {
            compare_content: args.compare_content,
        },
    )
    .with_context(|| {
        format!(
            "comparing {} with {}",
            args.lower.display(),
            args.upper.display()
        )
    })?;
    if args.list {
        for c in diff.changes() {
            let (tag, detail) = match &c.kind {
                ChangeKind::Added => ("A", String::new()),
                ChangeKind::Deleted => ("D", String::new()),
                ChangeKind::Modified(r) => ("M", format!(" ({})", r.names().join(","))),
            };
            println!("{tag} {}{detail}", c.path.display());
        }
        if args.output.is_none() && args.image.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mtime = match (args.source_date_epoch, args.mtime) {
        (_, Some(t)) => MtimePolicy::Fixed(t),
        (Some(e), None) => MtimePolicy::Clamp(e),
        (None, None) => MtimePolicy::Keep,
    };
    let mut layer = LayerOptions {
        compression: Compression::Gzip,
        level: args.level,
        mtime,
        uid: args.uid,
        gid: args.gid,
    };
    if let Some(out) = &args.output {
        layer.compression = args
            .compress
            .map(Into::into)
            .unwrap_or_else(|| from_extension(out));
        let blob = write_layer_file(&diff, out, &layer)
            .with_context(|| format!("writing the layer to {}", out.display()))?;
        crate::output::print_json(&json!({
            "digest": blob.digest.to_string(),
            "diffId": blob.diff_id.to_string(),
            "size": blob.size,
            "mediaType": blob.media_type(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(image) = &args.image else {
        bail!("nothing to do: give -o FILE, --image oci:PATH[:TAG] or --list");
    };
    let (path, reference) = match super::parse_ref(image)? {
        TransportRef::Oci { path, reference } => (path, reference),
        other => bail!(
            "--image must be an OCI layout (oci:PATH[:TAG]), not {}",
            other.transport()
        ),
    };
    if let Some(c) = args.compress {
        layer.compression = c.into();
    }
    let layout = Layout::open(&path)?.with_limits(super::limits());
    let created = match mtime {
        MtimePolicy::Fixed(t) | MtimePolicy::Clamp(t) => Some(hoist::config_edit::rfc3339(t)),
        MtimePolicy::Keep => None,
    };
    let opts = AppendOptions {
        layer,
        tag: args.tag.clone(),
        created,
        created_by: args.history_created_by.clone(),
        author: args.history_author.clone(),
        comment: args.history_comment.clone(),
        no_history: args.no_history,
    };
    let appended = append_diff(&layout, reference.as_ref(), &diff, &opts)
        .with_context(|| format!("appending a layer to {image}"))?;
    crate::output::print_json(&json!({
        "digest": appended.layer.digest.to_string(),
        "diffId": appended.layer.diff_id.to_string(),
        "size": appended.layer.size,
        "mediaType": appended.layer.media_type(),
        "manifest": appended.manifest.digest().to_string(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
