//! Garbage collection: blobs that no chain of descriptors from `index.json` reaches are removed, and
//! so is what is not part of a layout: stray files and directories under the root, `blobs/` and
//! `blobs/ALG/` (any name that is not `oci-layout`, `index.json`, `blobs`, a known algorithm or a
//! digest of it), and temp files of dead writers. Nothing is followed: a stray symlink is removed
//! itself. A stray that some process holds `flock`ed (a live writer's temp directory, such as
//! umoci's `.umoci-*`) is left alone, as are hoist's own live temp files.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::media_type::{self, Kind};

use super::Layout;

/// What a garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Blobs kept.
    pub kept: usize,
    /// Leftover temp files removed.
    pub temp_files_removed: usize,
    /// Stray files and directories removed (paths relative to the layout root).
    pub strays_removed: Vec<PathBuf>,
    /// True when nothing was removed: the report lists what would be.
    pub dry_run: bool,
}

/// Options of [`Layout::gc_with`].
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct GcOptions {
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
}

impl Layout {
    /// Garbage collection with options: with [`GcOptions::dry_run`] nothing is removed (and the
    /// writer lock, whose taking removes stale temp files, is not taken).
    pub fn gc_with(&self, opts: GcOptions) -> Result<GcReport> {
        if opts.dry_run {
            return collect_with(self, true);
        }
        let lock = self.lock()?;
        let mut report = collect_with(self, false)?;
        report.temp_files_removed += lock.stale_removed();
        Ok(report)
    }
}

/// Every blob digest reachable from `index.json` (documents that cannot be read are kept, not walked).
pub fn reachable(layout: &Layout) -> Result<HashSet<Digest>> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Descriptor> = layout.index()?.manifests().clone();
    while let Some(desc) = stack.pop() {
        let digest = digest_of(&desc)?;
        if !seen.insert(digest) {
            continue;
        }
        match media_type::kind(desc.media_type().as_ref()) {
            Kind::Manifest { .. } => {
                if let Ok(m) = layout.read_document(&desc).and_then(|d| d.manifest()) {
                    stack.push(m.config().clone());
                    stack.extend(m.layers().iter().cloned());
                    stack.extend(m.subject().iter().cloned());
                }
            }
            Kind::Index { .. } => {
                if let Ok(i) = layout.read_document(&desc).and_then(|d| d.index()) {
                    stack.extend(i.manifests().iter().cloned());
                    stack.extend(i.subject().iter().cloned());
                }
            }
            _ => {}
        }
    }
    Ok(seen)
}

pub(super) fn collect(layout: &Layout) -> Result<GcReport> {
    collect_with(layout, false)
}

fn collect_with(layout: &Layout, dry_run: bool) -> Result<GcReport> {
    let keep = reachable(layout)?;
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let blobs = layout.root().join("blobs");
    for alg in [
        crate::digest::Algorithm::Sha256,
        crate::digest::Algorithm::Sha512,
    ] {
        let dir = blobs.join(alg.as_str());
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::Error::io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            let digest = name
                .to_str()
                .and_then(|n| Digest::parse(&format!("{}:{n}", alg.as_str())).ok());
            let Some(digest) = digest else {
                remove_stray(layout.root(), &entry.path(), dry_run, &mut report)?;
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                // A blob path that is not a regular file is a layout error the verifier names.
                continue;
            }
            if keep.contains(&digest) {
                report.kept += 1;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if !dry_run {
                fs::remove_file(entry.path())
                    .ctx(|| format!("removing {}", entry.path().display()))?;
            }
            report.bytes_freed += size;
            report.removed.push(digest);
        }
    }
    // Strays: what a layout does not hold at its root and under blobs/.
    let known_algs = [
        crate::digest::Algorithm::Sha256.as_str(),
        crate::digest::Algorithm::Sha512.as_str(),
    ];
    for (dir, allowed) in [
        (
            layout.root().to_path_buf(),
            &["oci-layout", "index.json", "blobs"][..],
        ),
        (blobs.clone(), &known_algs[..]),
    ] {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::Error::io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| allowed.contains(&n)) {
                continue;
            }
            remove_stray(layout.root(), &entry.path(), dry_run, &mut report)?;
        }
    }
    // Temp files that a live writer holds (a repack writing its layer without the layout lock) are
    // locked and left alone.
    for dir in [layout.root().to_path_buf(), blobs.clone()]
        .into_iter()
        .chain(known_algs.iter().map(|a| blobs.join(a)))
    {
        report.temp_files_removed += crate::durable::find_stale(&dir, !dry_run)?.len();
    }
    report.removed.sort();
    report.strays_removed.sort();
    Ok(report)
}

/// Removes (or, in a dry run, records) `path`, a stray in the layout at `root`, unless it is one of
/// hoist's temp files (left to [`crate::durable::find_stale`]) or some process holds it `flock`ed.
fn remove_stray(root: &Path, path: &Path, dry_run: bool, report: &mut GcReport) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if name.starts_with(super::TEMP_PREFIX) {
        return Ok(());
    }
    let meta = fs::symlink_metadata(path).ctx(|| format!("reading {}", path.display()))?;
    // A live writer's temp directory or file is locked: leave it. The lock taken here is held until
    // the stray is removed. O_NONBLOCK keeps a FIFO from blocking the open.
    let _held = if meta.is_dir() || meta.is_file() {
        match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => {
                if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
                    tracing::info!("leaving {}: another process holds it", path.display());
                    return Ok(());
                }
                Some(f)
            }
            Err(_) => None,
        }
    } else {
        None
    };
    if !dry_run {
        let gone = if meta.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        gone.ctx(|| format!("removing {}", path.display()))?;
    }
    report
        .strays_removed
        .push(path.strip_prefix(root).unwrap_or(path).to_path_buf());
    Ok(())
}
