//! `hoist runtime-config REF [FILE]`: the OCI runtime `config.json` that `unpack --bundle` would
//! write, made without unpacking (umoci's `raw runtime-config`): `/etc/passwd` and `/etc/group` are
//! read from `--rootfs DIR` (umoci's flag) or else from the image's layers, top layer first.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::bundle::{RuntimeConfigOptions, image_runtime_config, to_json};
use hoist::image::resolve;
use hoist::platform::Platform;
use hoist::transport::open_source;

/// Arguments of `hoist runtime-config`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist runtime-config oci:./layout:latest > config.json\n  \
    hoist runtime-config oci:./layout:latest ./bundle/config.json\n  \
    hoist runtime-config --rootfs ./bundle/rootfs oci:./layout:latest ./bundle/config.json\n  \
    hoist runtime-config --rootless --platform linux/arm64 oci-archive:img.tar config.json"
)]
pub struct Args {
    /// The image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`, ...).
    image: String,
    /// Where to write it (default: stdout). A symlink, FIFO or device is written through.
    file: Option<PathBuf>,
    /// The platform to choose from a multi-platform image (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    /// Write the rootless variant (user namespace mapping the current user), as `unpack --rootless
    /// --bundle` does. The default when not running as root.
    #[arg(long)]
    rootless: bool,
    /// Read `/etc/passwd` and `/etc/group` from this unpacked rootfs (confined to it: a symlink
    /// cannot lead out) instead of the image's layers, which are then not read; `root.path` becomes
    /// its last component, as umoci's `--rootfs` does.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist runtime-config`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.image)?;
    let open = args.registry.apply(super::open_options());
    let source =
        open_source(&reference, &open).with_context(|| format!("opening {}", args.image))?;
    let image = resolve(source.as_ref(), args.platform.as_ref())
        .with_context(|| format!("resolving {}", source.name()))?;
    let mut o = RuntimeConfigOptions::default();
    // SAFETY: geteuid has no preconditions and cannot fail.
    o.rootless = args.rootless || unsafe { libc::geteuid() } != 0;
    o.rootfs = args.rootfs.clone();
    let spec =
        image_runtime_config(source.as_ref(), &image, &o).with_context(|| match &args.rootfs {
            Some(dir) => format!(
                "making the runtime config of {} with the users of {}",
                source.name(),
                dir.display()
            ),
            None => format!("making the runtime config of {}", source.name()),
        })?;
    let bytes = to_json(&spec)?;
    match &args.file {
        Some(path) => hoist::output::write_file(path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
