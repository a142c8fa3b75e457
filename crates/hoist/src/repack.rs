//! Repacking an unpacked tree: the changes since `unpack` become a new layer on the image it came from.
//!
//! The lower side is the unpack state record (no layer is read again), the upper side the rootfs as it
//! is now. The layer is appended with [`crate::append::append_diff`] (new config and manifest, the tag moved
//! atomically; the old manifest stays reachable by digest until gc). With `refresh`, the state is
//! rewritten to describe the new image, so a second repack diffs against the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::append::{AppendOptions, Appended, append_diff};
use crate::cancel::CancelToken;
use crate::config_edit::ImageEdit;
use crate::copy::{CopyOptions, copy};
use crate::diff::{DiffOptions, compute};
use crate::error::{Error, Result};
use crate::layer::state::{StateHeader, UnpackState};
use crate::layout::Layout;
use crate::progress::{Event, Sink, emit};
use crate::reference::{LayoutRef, TransportRef};
use crate::transport::oci::OciDestination;
use crate::transport::{OpenOptions, open_source};
use crate::unpack::{BUNDLE_STATE, INCOMPLETE_MARKER, LEGACY_PLAIN_STATE, check_state_outside};

/// Options of [`repack`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RepackOptions {
    /// The layout to write into; `None` means the layout the tree was unpacked from.
    pub dest: Option<PathBuf>,
    /// The state file of a plain unpack (`unpack --state FILE`); `None` for a bundle, whose state is
    /// `DIR/hoist-state.json`.
    pub state: Option<PathBuf>,
    /// How the layer and history entry are written; `append.tag` is the tag to point at the new
    /// image (default: the tag the tree was unpacked from).
    pub append: AppendOptions,
    /// Paths inside the rootfs left out of the layer (umoci's `--mask-path`); a leading `/` is allowed.
    pub mask_paths: Vec<PathBuf>,
    /// Keep the image's `Volumes` in the layer (umoci's `--no-mask-volumes`); by default they are
    /// masked like [`RepackOptions::mask_paths`], as umoci does, since a volume's contents belong to
    /// the container's data, not the image.
    pub keep_volumes: bool,
    /// Hash every file whose metadata agrees, even those whose inode and ctime show them untouched
    /// since the unpack (see [`DiffOptions::full_hash`]).
    pub full_hash: bool,
    /// Options for opening the original source when the image must first be copied to `dest`.
    pub open: OpenOptions,
    /// Rewrite the state to describe the new image, so the next repack diffs against it (umoci's
    /// `--refresh-bundle`). Off by default, as in umoci: repacking again repeats the same changes.
    pub refresh: bool,
    /// Where progress goes: the copy of the base image when there is one, then a step for the scan
    /// of the tree and one for the layer write.
    pub progress: Option<Sink>,
    /// Stops the repack from another thread (after the scan, in the layer's writing, in the copy
    /// that seeds a new `--dest`): it fails with [`Error::Cancelled`], the tag unmoved, the state
    /// unchanged and temp files removed. Never cancelled by default.
    pub cancel: CancelToken,
}

/// What [`repack`] did.
#[derive(Debug, Clone)]
pub struct Repacked {
    /// The layer and manifest written.
    pub appended: Appended,
    /// Number of changed paths (0: the layer is empty).
    pub changes: usize,
    /// The layout written to.
    pub layout: PathBuf,
    /// The tag that now names the new image.
    pub tag: Option<String>,
}

/// Finds and loads the state of an unpacked directory and its tree: `state` for a plain unpack (its
/// `rootfs` must be `.`, the tree is `dir`), else the bundle's `dir/hoist-state.json` (`rootfs`, the
/// tree is `dir/rootfs`, a real directory). Refuses an unfinished unpack, a state inside the tree and
/// a state that says otherwise.
pub fn find_state(dir: &Path, state: Option<&Path>) -> Result<(PathBuf, UnpackState, PathBuf)> {
    if dir.join(INCOMPLETE_MARKER).exists() {
        return Err(Error::Other(format!(
            "{} is an unfinished unpack ({INCOMPLETE_MARKER} is present): unpack it again",
            dir.display()
        )));
    }
    let (state_path, rootfs, want) = match state {
        Some(_) if dir.join(BUNDLE_STATE).exists() => {
            return Err(Error::Other(format!(
                "{} is a bundle (it has {BUNDLE_STATE}): leave out --state, a plain unpack's record",
                dir.display()
            )));
        }
        Some(s) => (s.to_path_buf(), dir.to_path_buf(), "."),
        None => {
            let p = dir.join(BUNDLE_STATE);
            if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                let legacy = if dir.join(LEGACY_PLAIN_STATE).exists() {
                    format!(
                        " ({LEGACY_PLAIN_STATE} inside the tree is not trusted: the tree's \
                         contents can change it; unpack again with --state FILE)"
                    )
                } else {
                    String::new()
                };
                return Err(Error::Other(format!(
                    "{} is not a bundle written by hoist unpack (no {BUNDLE_STATE}); for a plain \
                     unpack, give the state file it wrote with --state FILE{legacy}",
                    dir.display()
                )));
            }
            (p, dir.join("rootfs"), "rootfs")
        }
    };
    if !std::fs::symlink_metadata(&rootfs).is_ok_and(|m| m.is_dir()) {
        return Err(Error::Other(format!(
            "{} is not a directory (a symlink is not followed)",
            rootfs.display()
        )));
    }
    check_state_outside(&state_path, &rootfs)?;
    let loaded = UnpackState::load(&state_path)?;
    if loaded.header.rootfs != want {
        return Err(Error::invalid_document(
            format!("state file {}", state_path.display()),
            format!(
                "it records a {} (rootfs {:?}) but is used for a {}",
                if loaded.header.rootfs == "." {
                    "plain unpack"
                } else {
                    "bundle"
                },
                loaded.header.rootfs,
                if want == "." { "plain tree" } else { "bundle" }
            ),
        ));
    }
    Ok((state_path, loaded, rootfs))
}

/// Copies the image the tree was unpacked from into `dest` under `tag`, checking it is the same
/// manifest.
fn seed_destination(
    header: &StateHeader,
    dest: &Path,
    tag: &str,
    open: &OpenOptions,
    progress: &Option<Sink>,
    cancel: &CancelToken,
) -> Result<()> {
    let manifest = crate::Digest::parse(&header.manifest)?;
    let source_ref = match header.source.as_deref().map(TransportRef::parse) {
        Some(Ok(reference)) => reference.pinned_to(&manifest),
        Some(Err(e)) => return Err(e),
        None => {
            return Err(Error::Other(
                "the unpack state does not say where the image came from; unpack it again with this hoist".into(),
            ));
        }
    };
    let source = open_source(&source_ref, open)?;
    let destination = OciDestination::open(dest, Some(LayoutRef::Tag(tag.to_string())))?;
    let report = copy(
        source.as_ref(),
        &destination,
        &CopyOptions {
            platforms: crate::copy::PlatformChoice::All,
            progress: progress.clone(),
            cancel: cancel.clone(),
            ..CopyOptions::default()
        },
    )?;
    if report.digest != manifest {
        return Err(Error::Other(format!(
            "{source_ref} now resolves to {} but the tree was unpacked from {manifest}",
            report.digest
        )));
    }
    Ok(())
}

/// Repacks the unpacked directory `dir` (a bundle or a plain unpack) as a new image.
///
/// ```no_run
/// // After `hoist::unpack` into /tmp/bundle and changes to its files:
/// let mut opts = hoist::RepackOptions::default();
/// opts.append.tag = Some("v2".into());
/// let repacked = hoist::repack(std::path::Path::new("/tmp/bundle"), &opts)?;
/// println!("{} changed paths, image tagged {:?}", repacked.changes, repacked.tag);
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn repack(dir: &Path, opts: &RepackOptions) -> Result<Repacked> {
    // A bundle umoci unpacked (umoci.json, its mtree, no hoist state) names no layout: --dest does.
    let umoci_bundle = opts.state.is_none()
        && !dir.join(BUNDLE_STATE).exists()
        && dir.join(crate::umoci::UMOCI_JSON).exists();
    let (state_path, state, rootfs) = match (&opts.dest, umoci_bundle) {
        (Some(dest), true) => (
            dir.join(BUNDLE_STATE),
            crate::umoci::read_bundle_state(dir, dest)?,
            dir.join("rootfs"),
        ),
        (None, true) => {
            return Err(Error::Other(format!(
                "{} is a bundle umoci unpacked, which does not record its layout: name it with \
                 --dest oci:PATH (and the new tag with --tag)",
                dir.display()
            )));
        }
        _ => find_state(dir, opts.state.as_deref())?,
    };
    let origin = state.header.source_layout();
    let manifest = crate::Digest::parse(&state.header.manifest)?;

    let (layout_path, base, tag) = match (&opts.dest, &origin) {
        (None, Some((path, source_tag))) => (
            path.clone(),
            LayoutRef::Digest(manifest.clone()),
            opts.append.tag.clone().or_else(|| source_tag.clone()),
        ),
        (None, None) => {
            return Err(Error::Other(format!(
                "{} was not unpacked from an oci: layout ({}); name one with --dest oci:PATH",
                dir.display(),
                state.header.source.as_deref().unwrap_or("source unknown")
            )));
        }
        (Some(dest), _) => {
            let tag = opts
                .append
                .tag
                .clone()
                .or_else(|| origin.as_ref().and_then(|(_, t)| t.clone()))
                .ok_or_else(|| Error::Other("name the new image with --tag".into()))?;
            let same = origin.as_ref().is_some_and(|(p, _)| {
                std::fs::canonicalize(p).ok() == std::fs::canonicalize(dest).ok()
            });
            if same {
                (dest.clone(), LayoutRef::Digest(manifest.clone()), Some(tag))
            } else {
                seed_destination(
                    &state.header,
                    dest,
                    &tag,
                    &opts.open,
                    &opts.progress,
                    &opts.cancel,
                )?;
                (dest.clone(), LayoutRef::Tag(tag.clone()), Some(tag))
            }
        }
    };

    let layout = Layout::open(&layout_path)?;
    let mut masked = opts.mask_paths.clone();
    if !opts.keep_volumes {
        let edit = ImageEdit::open(&layout, Some(&base))?;
        if let Some(volumes) = edit.config()["config"]["Volumes"].as_object() {
            masked.extend(volumes.keys().map(|v| {
                PathBuf::from(
                    String::from_utf8_lossy(&crate::layer::root::lexical_clean(v.as_bytes()))
                        .into_owned(),
                )
            }));
        }
    }
    let exclude: Vec<PathBuf> = masked
        .iter()
        .map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf())
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    emit(
        &opts.progress,
        Event::Step {
            name: format!("scanning {} for changes", rootfs.display()),
            total: None,
        },
    );
    let diff = compute(
        &state,
        &rootfs,
        &DiffOptions {
            full_hash: opts.full_hash,
            exclude,
            uid_map: state.header.uid_maps(),
            gid_map: state.header.gid_maps(),
            overlay_whiteouts: state.header.whiteout_format == "overlay",
        },
    )?;
    opts.cancel.check()?;
    let changes = diff.changes().len();
    let mut append = opts.append.clone();
    append.tag = tag.clone();
    append.progress = opts.progress.clone();
    append.cancel = opts.cancel.clone();
    if append.created_by.is_none() {
        append.created_by = Some("hoist repack".into());
    }
    let appended = append_diff(&layout, Some(&base), &diff, &append)?;

    if !opts.refresh {
        return Ok(Repacked {
            appended,
            changes,
            layout: layout_path,
            tag,
        });
    }
    // The tree now is the new image: record that, so the next repack diffs against this one.
    let mut header = state.header.clone();
    header.format = crate::layer::state::STATE_FORMAT.into();
    header.manifest = appended.manifest.digest().to_string();
    let new_manifest = appended.manifest.manifest()?;
    header.config = new_manifest.config().digest().to_string();
    header.layers = new_manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    header.diff_ids.push(appended.layer.diff_id.to_string());
    header.source = Some(
        TransportRef::Oci {
            path: std::path::absolute(&layout_path).unwrap_or(layout_path.clone()),
            reference: tag.clone().map(LayoutRef::Tag),
        }
        .to_string(),
    );
    let refreshed = UnpackState::scan(header, &rootfs, &HashMap::new(), &[])?;
    refreshed.save(&state_path, opts.state.is_some())?;
    // umoci's metadata of the bundle (hoist's or umoci's own) describes the new image too.
    if opts.state.is_none() && dir.join(crate::umoci::UMOCI_JSON).is_file() {
        crate::umoci::refresh_bundle_meta(dir, &appended.manifest.descriptor(), &refreshed)?;
    }

    Ok(Repacked {
        appended,
        changes,
        layout: layout_path,
        tag,
    })
}
