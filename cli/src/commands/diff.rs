//! `hoist diff LOWER UPPER`: the changes between two directories as a layer, written to a file or
//! appended to an image of any writable transport (through [`hoist::ImageBuilder`], as `append`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::ImageBuilder;
use hoist::diff::{ChangeKind, DiffOptions, DirTree, compute, write_layer_file};
use hoist::media_type::Compression;
use serde_json::json;

/// Arguments of `hoist diff`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist diff ./before ./after -o layer.tar.gz\n  \
    SOURCE_DATE_EPOCH=1700000000 hoist diff ./before ./after -o layer.tar.zst --uid 0 --gid 0\n  \
    hoist diff ./before ./after --image oci:./layout:v1 --tag v2\n  \
    hoist diff --list ./before ./after\n  \
    hoist unpack --state ./tree.state oci:./layout:v1 ./tree && hoist diff --list --state ./tree.state ./tree"
)]
pub struct Args {
    /// The lower directory (what the layer applies on top of); with --state, the unpacked tree.
    lower: PathBuf,
    /// The upper directory (what applying the layer should give); not with --state.
    #[arg(required_unless_present = "state", conflicts_with = "state")]
    upper: Option<PathBuf>,
    /// Diff a plain unpacked tree against the record `hoist unpack --state FILE` wrote (the lower
    /// side is then the image as unpacked, as `repack` sees it).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Write the layer to this file (compression from the extension: .gz/.tgz gzip, .zst zstd).
    #[arg(short, long, conflicts_with = "image", required_unless_present_any = ["image", "list"])]
    output: Option<PathBuf>,
    /// Append the layer to this image (any transport: `oci:PATH[:TAG]`, `docker://...`,
    /// `oci-archive:PATH`, ...), writing a new config and manifest back to it.
    #[arg(long)]
    image: Option<String>,
    /// With --image: the tag to point at the new image, in the same layout or registry repository
    /// (default: the tag of --image).
    #[arg(long, requires = "image")]
    tag: Option<String>,
    #[command(flatten)]
    layer: super::layer_args::LayerArgs,
    /// Accepted for compatibility: the bytes of files whose size and times agree are always compared.
    #[arg(long, hide = true)]
    compare_content: bool,
    /// Leave this path (relative to the trees, and all below it) out of the diff; repeatable.
    #[arg(long = "exclude", value_name = "PATH")]
    exclude: Vec<std::path::PathBuf>,
    /// Print the changes (one `A|M|D path` line each); with no output, only that.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
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
    let recorded = match &args.state {
        Some(state) => Some(
            hoist::repack::find_state(&args.lower, Some(state))
                .with_context(|| format!("reading the unpack record {}", state.display()))?
                .1,
        ),
        None => None,
    };
    let (lower_dir, upper) = match &args.upper {
        Some(u) => (Some(&args.lower), u),
        None => (None, &args.lower),
    };
    for (what, dir) in lower_dir
        .map(|l| ("lower", l))
        .into_iter()
        .chain([("upper", upper)])
    {
        if !dir.is_dir() {
            bail!("the {what} tree {} is not a directory", dir.display());
        }
        if dir.join(hoist::unpack::INCOMPLETE_MARKER).exists() {
            bail!(
                "the {what} tree {} is an unfinished unpack ({} is present): unpack it again",
                dir.display(),
                hoist::unpack::INCOMPLETE_MARKER
            );
        }
    }
    let dir_tree = DirTree::new(&args.lower);
    let (lower, lower_name, uid_map, gid_map): (&dyn hoist::diff::LowerTree, _, _, _) =
        match &recorded {
            Some(s) => (
                s,
                args.state.as_deref().unwrap_or(&args.lower).display(),
                s.header.uid_maps(),
                s.header.gid_maps(),
            ),
            None => (&dir_tree, args.lower.display(), Vec::new(), Vec::new()),
        };
    let mut opts = DiffOptions::default();
    opts.full_hash = args.compare_content;
    opts.exclude = args.exclude.clone();
    opts.uid_map = uid_map;
    opts.gid_map = gid_map;
    opts.overlay_whiteouts = recorded
        .as_ref()
        .is_some_and(|s| s.header.whiteout_format == "overlay");
    let diff = compute(lower, upper, &opts)
        .with_context(|| format!("comparing {lower_name} with {}", upper.display()))?;
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
    if let Some(out) = &args.output {
        let layer = args.layer.layer_options(from_extension(out));
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
        bail!("nothing to do: give -o FILE, --image REF or --list");
    };
    // Written through the image builder, as `append` writes: any transport the base is read from,
    // any writable destination (the image's own name, or its --tag beside it).
    let image_ref = super::parse_ref(image)?;
    let dest_ref = image_ref
        .edited_image(args.tag.as_deref())
        .context("--tag")?;
    let open = args.registry.apply(super::open_options());
    let base = hoist::open_source(&image_ref, &open)
        .with_context(|| format!("opening the image {image}"))?;
    let mut builder = ImageBuilder::from_source(base.as_ref(), None)
        .with_context(|| format!("reading the image {image}"))?;
    hoist::transport::check_keeps_other_images(&dest_ref, &open)?;
    let dst = hoist::open_destination(&dest_ref, &open)
        .with_context(|| format!("opening destination {dest_ref}"))?;
    if let Some(dir) = dst.staging_dir() {
        builder.scratch_dir(&dir);
    }
    builder.cancel_with(&super::cancel_token());
    let layer = builder
        .append_diff(&diff, &args.layer.append_options(None))
        .with_context(|| format!("appending a layer to {image}"))?
        .clone();
    let report = builder
        .write(dst.as_ref(), &super::copy_options())
        .with_context(|| format!("writing {}", dst.name()))?;
    crate::output::print_json(&json!({
        "digest": layer.digest.to_string(),
        "diffId": layer.diff_id.to_string(),
        "size": layer.size,
        "mediaType": layer.media_type(),
        "manifest": report.digest.to_string(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
