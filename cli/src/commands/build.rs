//! `hoist new DEST` and `hoist append [--base REF] DEST LAYER...`: images built without a daemon, thin
//! shells over [`hoist::ImageBuilder`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::ImageBuilder;
use hoist::build::history_entry;
use hoist::diff::MtimePolicy;
use hoist::media_type::Compression;
use hoist::platform::Platform;
use hoist::transport::{open_destination, open_source};

/// Arguments of `hoist new`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  hoist new oci:./layout:empty\n  \
    SOURCE_DATE_EPOCH=1700000000 hoist new --platform linux/arm64 docker://localhost:5000/empty:v1")]
pub struct NewArgs {
    /// Where to write the image (any writable transport, e.g. `oci:./layout:TAG`).
    destination: String,
    /// The config's `os`/`architecture`[/`variant`] (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    /// The config's `created` time, seconds since the epoch, for reproducible images.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<i64>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Arguments of `hoist append`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist append oci:./layout:v1 ./rootfs-additions\n  \
    hoist append --base oci:./layout:v1 oci:./layout:v2 ./app:/opt/app layer.tar.gz\n  \
    tar -C ./files -c . | hoist append oci:./layout:v1 -\n  \
    SOURCE_DATE_EPOCH=1700000000 hoist append --uid 0 --gid 0 --base docker://localhost:5000/base:v1 \
    docker://localhost:5000/app:v1 ./app\n  \
    hoist append --remove /etc/motd --opaque /var/cache oci:./layout:v1"
)]
pub struct AppendArgs {
    /// The image to start from (default: DEST itself, edited in place as `umoci insert` does).
    #[arg(long)]
    base: Option<String>,
    /// With an index as the base: which platform's image to start from (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Where to write the new image (any writable transport).
    destination: String,
    /// Each a directory, a tarball (plain, gzip or zstd; `-` for stdin), or `DIR:PATH` to place a
    /// directory's contents under PATH in the image. One layer each.
    layers: Vec<String>,
    /// Add a whiteout of this image path (the path is deleted); repeatable. Goes in a layer of its
    /// own, before the LAYERs.
    #[arg(long, value_name = "PATH")]
    remove: Vec<PathBuf>,
    /// Add an opaque marker in this image directory (what lower layers had in it is hidden);
    /// repeatable. In the same layer as --remove.
    #[arg(long, value_name = "PATH")]
    opaque: Vec<PathBuf>,
    /// Layer compression (default: gzip).
    #[arg(long, value_enum)]
    dest_compress_format: Option<super::layer_args::CompressArg>,
    #[command(flatten)]
    layer: super::layer_args::LayerArgs,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

fn created(epoch: Option<i64>) -> String {
    match epoch {
        Some(t) => hoist::config_edit::rfc3339(t),
        None => hoist::config_edit::now_rfc3339(),
    }
}

fn write(
    builder: &ImageBuilder<'_>,
    destination: &str,
    registry: &super::registry_args::RegistryArgs,
) -> Result<ExitCode> {
    let dst = open_dst(destination, registry)?;
    write_to(builder, dst.as_ref())
}

/// Opens the destination `destination` (an archive holding other images is refused, not dropped).
fn open_dst(
    destination: &str,
    registry: &super::registry_args::RegistryArgs,
) -> Result<Box<dyn hoist::Destination>> {
    let dst_ref = super::parse_ref(destination)?;
    let opts = registry.apply(super::open_options());
    hoist::transport::check_keeps_other_images(&dst_ref, &opts)?;
    open_destination(&dst_ref, &opts).with_context(|| format!("opening destination {destination}"))
}

/// Writes the built image to `dst` and reports it.
fn write_to(builder: &ImageBuilder<'_>, dst: &dyn hoist::Destination) -> Result<ExitCode> {
    let report = builder
        .write(dst, &super::copy_options())
        .with_context(|| format!("writing {}", dst.name()))?;
    eprintln!(
        "wrote {} {}: {} blobs uploaded, {} already present, {} mounted",
        dst.name(),
        report.digest,
        report.blobs_copied + report.blobs_linked,
        report.blobs_skipped,
        report.blobs_mounted
    );
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
}

/// Runs `hoist new`.
pub fn run_new(args: NewArgs) -> Result<ExitCode> {
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let mut builder = ImageBuilder::empty(&platform)?;
    if let Some(top) = builder.config_mut().as_object_mut() {
        top.insert(
            "created".into(),
            serde_json::Value::String(created(args.source_date_epoch)),
        );
    }
    write(&builder, &args.destination, &args.registry)
}

/// One LAYER argument.
enum LayerArg {
    Stdin,
    Dir(PathBuf, Option<PathBuf>),
    Tar(PathBuf),
}

fn parse_layer(text: &str) -> Result<LayerArg> {
    if text == "-" {
        return Ok(LayerArg::Stdin);
    }
    let whole = Path::new(text);
    if let Ok(meta) = std::fs::metadata(whole) {
        return Ok(if meta.is_dir() {
            LayerArg::Dir(whole.to_path_buf(), None)
        } else {
            LayerArg::Tar(whole.to_path_buf())
        });
    }
    if let Some((dir, at)) = text.split_once(':')
        && Path::new(dir).is_dir()
        && !at.is_empty()
    {
        return Ok(LayerArg::Dir(PathBuf::from(dir), Some(PathBuf::from(at))));
    }
    bail!("layer {text:?}: no such file or directory (give a directory, a tarball, DIR:PATH or -)")
}

/// Runs `hoist append`.
pub fn run_append(args: AppendArgs) -> Result<ExitCode> {
    if args.layers.is_empty() && args.remove.is_empty() && args.opaque.is_empty() {
        bail!("nothing to append: give a LAYER, --remove PATH or --opaque PATH");
    }
    if args.layers.iter().filter(|l| *l == "-").count() > 1 {
        bail!("only one LAYER can be read from stdin (-)");
    }
    // Every argument is checked before anything is read or written.
    let layers = args
        .layers
        .iter()
        .map(|l| parse_layer(l))
        .collect::<Result<Vec<_>>>()?;
    let tarball = layers
        .iter()
        .any(|l| matches!(l, LayerArg::Stdin | LayerArg::Tar(_)));
    if tarball {
        for (flag, given) in [
            ("--uid", args.layer.uid.is_some()),
            ("--gid", args.layer.gid.is_some()),
            ("--mtime", args.layer.mtime.is_some()),
        ] {
            if given {
                bail!(
                    "{flag} applies to directory layers; a tarball layer's entries are kept as \
                     they are (append the tarballs in a run of their own)"
                );
            }
        }
    }
    let mut opts = args.layer.layer_options(Compression::Gzip);
    if let Some(c) = args.dest_compress_format {
        opts.compression = c.into();
    }
    if let Some(level) = opts.level {
        hoist::compress::check_level(opts.compression, level as i32).map_err(anyhow::Error::msg)?;
    }
    let base_text = args.base.as_deref().unwrap_or(&args.destination);
    let base_ref = super::parse_ref(base_text)?;
    let base = open_source(&base_ref, &args.registry.apply(super::open_options()))
        .with_context(|| format!("opening the base image {base_text}"))?;
    let mut builder = ImageBuilder::from_source(base.as_ref(), args.platform.as_ref())
        .with_context(|| format!("reading the base image {}", base.name()))?;
    builder.cancel_with(&super::cancel_token());
    // New layers are written where the destination can take them without a second copy.
    let dst = open_dst(&args.destination, &args.registry)?;
    if let Some(dir) = dst.staging_dir() {
        builder.scratch_dir(&dir);
    }
    let epoch = match opts.mtime {
        MtimePolicy::Fixed(t) | MtimePolicy::Clamp(t) => Some(t),
        MtimePolicy::Keep => None,
    };
    let when = created(epoch);
    let history = |builder: &mut ImageBuilder<'_>, what: String| {
        if !args.layer.no_history {
            let by = args.layer.history_created_by.clone().unwrap_or(what);
            builder.add_history(history_entry(
                Some(&when),
                &by,
                args.layer.history_author.as_deref(),
                args.layer.history_comment.as_deref(),
                false,
            ));
        }
    };
    if !args.remove.is_empty() || !args.opaque.is_empty() {
        builder
            .add_dir_with(None, None, &args.remove, &args.opaque, &opts)
            .context("writing the whiteout layer")?;
        history(&mut builder, "hoist append (whiteouts)".into());
    }
    for layer in &layers {
        // The history names the kind of layer, never a host path: the image stays reproducible
        // from another directory or machine.
        let what = match layer {
            LayerArg::Stdin | LayerArg::Tar(_) => "hoist append: a tarball".to_string(),
            LayerArg::Dir(_, None) => "hoist append: a directory".to_string(),
            LayerArg::Dir(_, Some(at)) => {
                format!("hoist append: a directory at {}", at.display())
            }
        };
        match layer {
            LayerArg::Stdin => {
                builder
                    .add_tar(std::io::stdin(), &opts)
                    .context("reading the layer tarball from stdin")?;
            }
            LayerArg::Dir(dir, at) => {
                builder
                    .add_dir(dir, at.as_deref(), &opts)
                    .with_context(|| format!("writing a layer of {}", dir.display()))?;
            }
            LayerArg::Tar(path) => {
                let f = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                builder
                    .add_tar(f, &opts)
                    .with_context(|| format!("reading the layer tarball {}", path.display()))?;
            }
        }
        history(&mut builder, what);
    }
    if let Some(top) = builder.config_mut().as_object_mut() {
        top.insert("created".into(), serde_json::Value::String(when.clone()));
    }
    write_to(&builder, dst.as_ref())
}

/// Arguments of `hoist flatten`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist flatten oci:./layout:v1 oci:./layout:flat\n  \
    SOURCE_DATE_EPOCH=1700000000 hoist flatten --platform linux/arm64 docker://localhost:5000/app:v1 oci:./flat:v1"
)]
pub struct FlattenArgs {
    /// The image to flatten.
    source: String,
    /// Where to write the one-layer image.
    destination: String,
    /// With an index as the source: which platform's image (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Layer compression (default: gzip).
    #[arg(long, value_enum)]
    dest_compress_format: Option<super::layer_args::CompressArg>,
    #[command(flatten)]
    layer: super::layer_args::LayerArgs,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist flatten`.
pub fn run_flatten(args: FlattenArgs) -> Result<ExitCode> {
    let mut opts = args.layer.layer_options(Compression::Gzip);
    if let Some(c) = args.dest_compress_format {
        opts.compression = c.into();
    }
    let src_ref = super::parse_ref(&args.source)?;
    let src = open_source(&src_ref, &args.registry.apply(super::open_options()))
        .with_context(|| format!("opening {}", args.source))?;
    let mut builder = ImageBuilder::from_source(src.as_ref(), args.platform.as_ref())
        .with_context(|| format!("reading {}", src.name()))?;
    builder.cancel_with(&super::cancel_token());
    // The layer is written where the destination can take it without a second copy.
    let dst = open_dst(&args.destination, &args.registry)?;
    if let Some(dir) = dst.staging_dir() {
        builder.scratch_dir(&dir);
    }
    let epoch = match opts.mtime {
        MtimePolicy::Fixed(t) | MtimePolicy::Clamp(t) => Some(t),
        MtimePolicy::Keep => None,
    };
    let when = created(epoch);
    let history = (!args.layer.no_history).then(|| {
        history_entry(
            Some(&when),
            args.layer
                .history_created_by
                .as_deref()
                .unwrap_or("hoist flatten"),
            args.layer.history_author.as_deref(),
            args.layer.history_comment.as_deref(),
            false,
        )
    });
    builder
        .flatten(&opts, history)
        .with_context(|| format!("flattening {}", src.name()))?;
    if let Some(top) = builder.config_mut().as_object_mut() {
        top.insert("created".into(), serde_json::Value::String(when));
    }
    write_to(&builder, dst.as_ref())
}

/// Arguments of `hoist rebase`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist rebase --old-base oci:./l:base-v1 --new-base oci:./l:base-v2 oci:./l:app oci:./l:app-rebased\n  \
    hoist rebase --tls-verify=false --old-base docker://localhost:5000/base:v1 \
    --new-base docker://localhost:5000/base:v2 docker://localhost:5000/app:v1 docker://localhost:5000/app:v2"
)]
pub struct RebaseArgs {
    /// The base SRC was built on (its layers must be SRC's bottom layers).
    #[arg(long, value_name = "REF")]
    old_base: String,
    /// The base to put SRC's own layers on.
    #[arg(long, value_name = "REF")]
    new_base: String,
    /// The image to rebase.
    source: String,
    /// Where to write the rebased image.
    destination: String,
    /// With indexes: which platform's images (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist rebase`.
pub fn run_rebase(args: RebaseArgs) -> Result<ExitCode> {
    let open = args.registry.apply(super::open_options());
    let open_src = |text: &str| -> Result<Box<dyn hoist::Source>> {
        let r = super::parse_ref(text)?;
        open_source(&r, &open).with_context(|| format!("opening {text}"))
    };
    let src = open_src(&args.source)?;
    let old = open_src(&args.old_base)?;
    let new = open_src(&args.new_base)?;
    let mut builder = ImageBuilder::from_source(src.as_ref(), args.platform.as_ref())
        .with_context(|| format!("reading {}", src.name()))?;
    builder.cancel_with(&super::cancel_token());
    builder
        .rebase(old.as_ref(), new.as_ref(), args.platform.as_ref())
        .with_context(|| format!("rebasing {}", src.name()))?;
    write(&builder, &args.destination, &args.registry)
}
