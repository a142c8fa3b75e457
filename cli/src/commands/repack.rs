//! `hoist repack DIR`: the changes made to a tree written by `hoist unpack` become a new layer on the
//! image it came from, as `umoci repack` does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::repack::{RepackOptions, repack};
use serde_json::json;

/// Arguments of `hoist repack`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist unpack oci:./layout:v1 ./bundle --bundle\n  \
    echo hi > ./bundle/rootfs/hello.txt\n  hoist repack ./bundle --tag v2\n  \
    SOURCE_DATE_EPOCH=1700000000 hoist repack ./bundle --tag v2 --dest oci:./other --compress zstd\n  \
    umoci unpack --image ./layout:v1 ./ubundle && hoist repack ./ubundle --dest oci:./layout --tag v2\n  \
    hoist repack ./bundle --tag v3 --no-mask-volumes --history.comment 'data included'\n\n\
    With no changes the new layer is empty (as umoci writes it); the image still gets a new manifest."
)]
pub struct Args {
    /// A directory written by `hoist unpack` (a bundle, or a plain tree with --state), or a bundle
    /// `umoci unpack` wrote (with --dest naming its layout).
    dir: PathBuf,
    /// The state file a plain `hoist unpack --state FILE` wrote (a bundle keeps its own).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The tag to point at the new image (default: the tag that was unpacked).
    #[arg(long)]
    tag: Option<String>,
    /// Write into this layout (`oci:PATH`) instead of the one the tree was unpacked from.
    #[arg(long)]
    dest: Option<String>,
    /// Leave this path of the rootfs out of the layer (repeatable), as umoci's --mask-path.
    #[arg(long = "mask-path", value_name = "PATH")]
    mask_paths: Vec<PathBuf>,
    /// Keep the image's volume paths in the layer (by default they are masked, as umoci does).
    #[arg(long)]
    no_mask_volumes: bool,
    /// Hash every file whose size and times agree, not only those whose inode or ctime changed
    /// since the unpack (slower; for trees whose ctimes cannot be trusted, e.g. copied back).
    #[arg(long, alias = "compare-content")]
    full_hash: bool,
    /// Record the new image as the tree's base, so the next repack holds only later changes
    /// (without it, as in umoci, each repack holds every change since the unpack).
    #[arg(long)]
    refresh_bundle: bool,
    /// How to show progress on stderr (default: bars on a terminal, nothing otherwise).
    #[arg(long, value_enum)]
    progress: Option<crate::progress::Mode>,
    #[command(flatten)]
    layer: super::layer_args::LayerArgs,
}

/// Runs `hoist repack`.
pub fn run(args: Args) -> Result<ExitCode> {
    let dest = match args.dest.as_deref().map(super::parse_ref).transpose()? {
        None => None,
        Some(reference) => Some(
            reference
                .whole_layout("--dest (give the tag with --tag)")?
                .to_path_buf(),
        ),
    };
    let mut append = args.layer.append_options(args.tag.clone());
    append.tag = args.tag.clone();
    let mut opts = RepackOptions::default();
    opts.dest = dest;
    opts.state = args.state.clone();
    opts.append = append;
    opts.mask_paths = args.mask_paths.clone();
    opts.keep_volumes = args.no_mask_volumes;
    opts.full_hash = args.full_hash;
    opts.open = super::open_options();
    opts.refresh = args.refresh_bundle;
    opts.cancel = super::cancel_token();
    opts.progress = crate::progress::when_watched(args.progress, false);
    let done =
        repack(&args.dir, &opts).with_context(|| format!("repacking {}", args.dir.display()))?;
    if done.changes == 0 {
        eprintln!("note: no changes since the unpack: the new layer is empty");
    }
    crate::output::print_json(&json!({
        "manifest": done.appended.manifest.digest().to_string(),
        "layer": done.appended.layer.digest.to_string(),
        "diffId": done.appended.layer.diff_id.to_string(),
        "size": done.appended.layer.size,
        "changes": done.changes,
        "layout": done.layout.display().to_string(),
        "tag": done.tag,
    }))?;
    Ok(ExitCode::SUCCESS)
}
