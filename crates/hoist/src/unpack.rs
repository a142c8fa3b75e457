//! Unpacking an image to a directory: resolve the image, stream every layer (verified, decompressed,
//! hashed for its diff_id) into the layer applier (`layer`), and record what was unpacked.
//!
//! One thread reads: blob bytes through the [`crate::blob::VerifiedReader`] (compressed digest and
//! size), the decoder, the diff_id hash and the tar parser; it moves on to the next layer as soon as one
//! is parsed. The calling thread writes files. A bounded channel between them keeps memory flat and
//! preserves layer order. Until the unpack has finished, the target holds a marker file
//! ([`INCOMPLETE_MARKER`]), so a failed unpack is never mistaken for a finished one; it is removed at
//! the end, so a finished plain tree holds exactly the image's files. The state record goes beside
//! `rootfs/` in a bundle and, for a plain tree, only where [`UnpackOptions::state`] says (never
//! inside the tree, where the container could edit it).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::cancel::CancelToken;
// The layer applier's types an embedder names in [`UnpackOptions`] and reads back from the state
// record: re-exported here, the applier itself (`layer`) is internal.
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{Image, resolve};
use crate::layer::Applier;
use crate::layer::read::stream_layers;
pub use crate::layer::state::{STATE_FORMAT, STATE_VERSION, StateHeader};
pub use crate::layer::{ApplyOptions, Resolver, StateEntry, UnpackState, WhiteoutFormat};
use crate::limits::Limits;
pub use crate::owner::IdMap;
use crate::platform::Platform;
use crate::progress::{Event, Sink, emit};
use crate::transport::Source;

/// The marker file present in the target while an unpack is under way (or after it failed).
pub const INCOMPLETE_MARKER: &str = ".hoist-unpack-incomplete";

/// The state file of a bundle (beside `rootfs/`).
pub const BUNDLE_STATE: &str = "hoist-state.json";
/// Where hoist before 0.2 kept a plain unpack's state: inside the tree, where a container can edit it,
/// so it is never read (repack names it in its error).
pub const LEGACY_PLAIN_STATE: &str = ".hoist-state.json";

/// Options of [`unpack`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// The platform to choose from an index (the host's when `None`).
    pub platform: Option<Platform>,
    /// Write an OCI runtime bundle (`DIR/rootfs`, `DIR/config.json`) instead of a plain tree.
    pub bundle: bool,
    /// How entries are applied (rootless, id maps, whiteout format).
    pub apply: ApplyOptions,
    /// Limits; the source's limits when `None`.
    pub limits: Option<Limits>,
    /// The reference being unpacked, recorded in the state so `repack` can find the image again.
    pub source_ref: Option<String>,
    /// Where a plain unpack writes its state record (`--state FILE`; it must lie outside the target):
    /// `None` writes none, leaving the tree exactly the image's. A bundle keeps its state in
    /// `DIR/hoist-state.json` and refuses this.
    pub state: Option<PathBuf>,
    /// Where progress events go: a plan, then each layer as a blob (compressed bytes read), finished
    /// as [`BlobOutcome::Applied`](crate::progress::BlobOutcome::Applied).
    pub progress: Option<Sink>,
    /// Stops the unpack from another thread: it fails with [`Error::Cancelled`] and the target keeps
    /// its [`INCOMPLETE_MARKER`] (so the partial tree is never taken for a finished one). Never
    /// cancelled by default.
    pub cancel: CancelToken,
}

/// What an unpack did.
#[derive(Debug, Clone)]
pub struct UnpackReport {
    /// The manifest unpacked.
    pub manifest: Digest,
    /// Number of layers applied.
    pub layers: usize,
    /// Entries applied.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// True when ownership was recorded rather than applied.
    pub rootless: bool,
    /// Device nodes not created (rootless): an empty regular file stands in each place.
    pub skipped_devices: Vec<String>,
    /// The tree's directory.
    pub rootfs: PathBuf,
    /// The state file, when one was written.
    pub state: Option<PathBuf>,
}

fn prepare_target(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::Other(format!(
                    "{} is not empty (its contents were not changed): unpack into a new or empty \
                     directory",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    }
    Ok(())
}

/// Unpacks the image of `source` into `dir` (created; must be absent or empty).
///
/// ```no_run
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let mut opts = hoist::UnpackOptions::default();
/// opts.apply.rootless = true; // ownership recorded in xattrs, not applied: no root needed
/// let report = hoist::unpack(src.as_ref(), std::path::Path::new("/tmp/rootfs"), &opts)?;
/// println!("{} layers, {} entries", report.layers, report.entries);
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn unpack(source: &dyn Source, dir: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
    let image = resolve(source, opts.platform.as_ref())?;
    unpack_image(source, &image, dir, opts)
}

/// Unpacks an already resolved image.
pub fn unpack_image(
    source: &dyn Source,
    image: &Image,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let limits = opts
        .limits
        .clone()
        .unwrap_or_else(|| source.limits().clone());
    let Some(config) = image.config.as_ref() else {
        return Err(Error::UnsupportedMediaType {
            media_type: image.manifest.config().media_type().to_string(),
            what: format!(
                "the config of {} (not a container image, nothing to unpack)",
                image.digest()
            ),
        });
    };
    let (layers, diff_ids) = image.layers_with_diff_ids()?;

    let privileged = !opts.apply.rootless && rustix::process::geteuid().is_root();
    if !privileged && opts.apply.whiteout == WhiteoutFormat::Overlay {
        return Err(Error::Unsupported(
            "--whiteout-format overlay creates character devices and trusted.* xattrs, which \
             needs root (not --rootless)"
                .into(),
        ));
    }
    if opts.bundle {
        // Before anything is written: a bundle of a non-Linux image would fail at its config.json.
        crate::bundle::check_os(config)?;
    }
    if opts.bundle && opts.state.is_some() {
        return Err(Error::Other(format!(
            "a bundle keeps its state in {}: leave out the state file",
            dir.join(BUNDLE_STATE).display()
        )));
    }
    if let Some(state) = &opts.state {
        check_state_outside(state, dir)?;
    }
    prepare_target(dir)?;
    let marker = dir.join(INCOMPLETE_MARKER);
    std::fs::write(
        &marker,
        format!(
            "hoist is unpacking {} here; if this file remains, the unpack did not finish\n",
            image.digest()
        ),
    )
    .ctx(|| format!("writing {}", marker.display()))?;
    let (rootfs, state_path, reserved) = if opts.bundle {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("setting the mode of {}", dir.display()))?;
        let r = dir.join("rootfs");
        std::fs::create_dir(&r).ctx(|| format!("creating {}", r.display()))?;
        (r, Some(dir.join(BUNDLE_STATE)), Vec::new())
    } else {
        (
            dir.to_path_buf(),
            opts.state.clone(),
            vec![INCOMPLETE_MARKER.as_bytes().to_vec()],
        )
    };
    let mut apply_opts = opts.apply.clone();
    apply_opts.reserved = reserved;
    let mut applier = Applier::new(&rootfs, apply_opts)?;
    let rootless = !applier.privileged();

    let n = layers.len();
    let names = crate::layer::read::layer_names(&layers);
    emit(
        &opts.progress,
        Event::Plan {
            blobs: n,
            bytes: layers.iter().map(|d| d.size()).sum(),
        },
    );
    stream_layers(
        source,
        &layers,
        &names,
        &diff_ids,
        &limits,
        &opts.progress,
        &opts.cancel,
        |msg| applier.apply(msg),
    )?;
    applier.finish()?;
    let report = applier.report().clone();
    if !report.skipped_devices.is_empty() {
        tracing::warn!(
            "{} device node(s) that a rootless unpack cannot create are empty files (e.g. {})",
            report.skipped_devices.len(),
            report.skipped_devices[0]
        );
    }
    if report.skipped_xattrs > 0 {
        tracing::warn!(
            "{} extended attribute(s) could not be set on this filesystem",
            report.skipped_xattrs
        );
    }

    if opts.bundle {
        let spec = crate::bundle::runtime_config(
            config,
            &crate::bundle::UserDb::from_rootfs(&rootfs)?,
            rootless,
            &image.digest().to_string(),
        )?;
        crate::bundle::write_config(&spec, dir)?;
    }
    let header = StateHeader {
        format: STATE_FORMAT.into(),
        version: STATE_VERSION,
        manifest: image.digest().to_string(),
        source: opts.source_ref.clone(),
        config: image.manifest.config().digest().to_string(),
        layers: layers.iter().map(|d| d.digest().to_string()).collect(),
        diff_ids: diff_ids.iter().map(|d| d.to_string()).collect(),
        rootfs: if opts.bundle {
            "rootfs".into()
        } else {
            ".".into()
        },
        rootless,
        whiteout_format: match opts.apply.whiteout {
            WhiteoutFormat::Apply => "apply".into(),
            WhiteoutFormat::Overlay => "overlay".into(),
        },
        skipped_devices: report.skipped_devices.clone(),
        entries: 0,
        // Owners were shifted only when applied (a rootless unpack records the image's ids).
        uid_map: if rootless {
            Vec::new()
        } else {
            crate::layer::state::from_maps(&opts.apply.uid_map)
        },
        gid_map: if rootless {
            Vec::new()
        } else {
            crate::layer::state::from_maps(&opts.apply.gid_map)
        },
        root: None,
    };
    if let Some(state_path) = &state_path {
        let exclude: Vec<&[u8]> = if opts.bundle {
            Vec::new()
        } else {
            vec![INCOMPLETE_MARKER.as_bytes()]
        };
        let mut state = UnpackState::scan(header, &rootfs, applier.digests(), &exclude)?;
        // Directories left open to an unprivileged owner until now are recorded with the image's mode.
        for (rel, mode) in applier.locked_dirs() {
            let rel = Path::new(std::ffi::OsStr::from_bytes(rel));
            if let Some((_, e)) = state.entries.iter_mut().find(|(p, _)| p == rel) {
                e.mode = *mode;
            }
        }
        state.save(state_path, !opts.bundle)?;
        // umoci's metadata too, so `umoci repack` works on the bundle (owners as umoci has them).
        if opts.bundle
            && opts.apply.uid_map.is_empty()
            && opts.apply.gid_map.is_empty()
            && opts.apply.whiteout == WhiteoutFormat::Apply
        {
            crate::umoci::write_bundle_meta(dir, image, &state)?;
        }
    }
    std::fs::remove_file(&marker).ctx(|| format!("removing {}", marker.display()))?;
    // Last: a directory closed again cannot be written into (the marker's removal included).
    applier.restore_modes()?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(UnpackReport {
        manifest: image.digest().clone(),
        layers: n,
        entries: report.entries,
        bytes: report.bytes,
        rootless,
        skipped_devices: report.skipped_devices,
        rootfs,
        state: state_path,
    })
}

/// True when `dir` holds a finished unpack: a directory without the incomplete marker (which is
/// removed last, after a bundle's state file is written; a plain tree has nothing else of hoist's).
pub fn is_complete(dir: &Path) -> bool {
    !dir.join(INCOMPLETE_MARKER).exists()
        && std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
}

/// `path` made absolute with symlinks resolved as far as it exists (the rest appended as written).
pub(crate) fn resolve_existing(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).ctx(|| format!("resolving {}", path.display()))?;
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// Refuses a state file inside the tree `dir`, where the container could edit it.
pub(crate) fn check_state_outside(state: &Path, dir: &Path) -> Result<()> {
    let (s, d) = (resolve_existing(state)?, resolve_existing(dir)?);
    if s.starts_with(&d) {
        return Err(Error::Other(format!(
            "the state file {} is inside the tree {}, where its contents could change it:              keep it outside",
            state.display(),
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod state_location_tests {
    use super::*;

    #[test]
    fn a_plain_tree_with_a_rootfs_directory_is_complete_without_a_state() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("rootfs")).unwrap();
        assert!(is_complete(t.path()));
        std::fs::write(t.path().join(INCOMPLETE_MARKER), "").unwrap();
        assert!(!is_complete(t.path()));
    }

    #[test]
    fn a_state_inside_the_tree_is_refused_also_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        assert!(check_state_outside(&t.path().join("s.json"), &tree).is_ok());
        assert!(check_state_outside(&tree.join("sub/s.json"), &tree).is_err());
        std::os::unix::fs::symlink(&tree, t.path().join("alias")).unwrap();
        assert!(check_state_outside(&t.path().join("alias/s.json"), &tree).is_err());
        // Not yet existing targets resolve through their existing ancestors.
        assert!(check_state_outside(&tree.join("s.json"), &t.path().join("tree/new")).is_ok());
        assert!(check_state_outside(&t.path().join("tree/new/s"), &tree.join("new")).is_err());
    }
}
